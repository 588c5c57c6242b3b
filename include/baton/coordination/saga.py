"""The saga: when a run fails, undo what its completed steps did, newest first.

The event store says what completed: a step's ``step.succeeded`` (with the output recorded beside
it) and each ``subtask.succeeded`` of a for_each step (also of one that failed as a whole: its
finished items did their work). Each target whose step declares ``compensate:`` gets the call, with
the step's (or the item's) output; a call is retried, and one that still fails stops the saga
there (older steps may depend on it being undone): the caller asks a person or reports it.

Every compensation is recorded (``compensation.started/succeeded/failed``), so a second saga over
the same run — the task resumed after a person answered, or retried after its process died, ``baton
compensate RUN_ID`` after the automatic one — skips what is already undone and never undoes anything twice.
A compensation whose call returned but whose success was not recorded (the process died in between) is
called again: its effect (``baton.effects``) has the same key, so the recorded result is reused, not
repeated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton import effects, templating
from baton.agents.model import answer_text
from baton.agents.skills import run_skill
from baton.alerts import Alert, send
from baton.coordination.subtasks import subtasks_of
from baton.coordination.tasks import SAGA_TASK
from baton.errors import AgentError, CompensationFailed
from baton.events.event import Event
from baton.events.recorder import redact
from baton.events.store import EventStore
from baton.hooks.airflow_runs import conf_from_metadata_db
from baton.plan import SagaPlan, plan_workflow
from baton.spec.loading import load_named
from baton.spec.roster import Agent
from baton.spec.step import Compensation

__all__ = ["SAGA_TASK", "Outcome", "Saga", "Target", "saga_for_run"]

log = logging.getLogger(__name__)

# Hooks an extension (BATON_EXTENSIONS) may add: each runs right after a compensation's call returned and
# before its success is recorded, with the saga and the target, and may fail the saga's try (the development
# tools' fault injection does, to prove that a saga retried after dying there undoes nothing twice).
AFTER_COMPENSATION: list[Callable[[Saga, Target], None]] = []


@dataclass(frozen=True)
class Target:
    """One completed unit of work to undo: a step (or one batch of it), or one item of a for_each."""

    step: str
    map_index: int
    subtask: str
    output: Any
    seq: int
    item: Any = None
    index: int | None = None

    @property
    def name(self) -> str:
        if self.subtask:
            return f"{self.step}[{self.subtask}]"
        return self.step if self.map_index < 0 else f"{self.step}[{self.map_index}]"


@dataclass
class Outcome:
    """What a saga did: the targets undone (now or by an earlier saga) and the one it stopped at."""

    compensated: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    stuck: Target | None = None
    error: str = ""
    left: list[str] = field(default_factory=list)  # not attempted: older than the stuck one

    @property
    def state(self) -> str:
        if self.stuck is None:
            return "compensated" if self.compensated or self.already else "nothing_to_do"
        return "partial"


class Saga:
    """The compensations of one run.

    :param plan: the workflow's saga: the steps that declare ``compensate`` and the agents that do it.
    :param inputs: the run's inputs (the template's defaults and the run's conf).
    :param saga_id: tells this saga's events from another's over the same run.
    :param try_number: the try of the task running the saga (1 outside a task).
    """

    def __init__(
        self,
        store: EventStore,
        run_id: str,
        plan: SagaPlan,
        *,
        inputs: dict[str, Any] | None = None,
        saga_id: str = "auto",
        trigger: str = "run_failed",
        sleep: Callable[[float], None] = time.sleep,
        try_number: int = 1,
    ):
        self.store = store
        self.run_id = run_id
        self.plan = plan
        self.workflow = plan.workflow
        self.template_version = plan.template_version
        self.inputs = inputs or {}
        self.saga_id = saga_id
        self.trigger = trigger
        self.sleep = sleep
        self.try_number = try_number

    # --- what to undo ----------------------------------------------------------------------------

    def targets(self) -> list[Target]:
        """The completed work of the run whose step declares a compensation, newest first (one read
        of the store; a for_each item gets its entry of the list it was made from)."""
        outputs: dict[tuple[str, int], dict] = {}
        done: dict[tuple[str, int, str], Target] = {}
        kinds = ["output.recorded", "step.succeeded", "subtask.succeeded"]
        for event in self.store.read(self.run_id, types=kinds):
            step = getattr(event, "step", None)
            if event.type == "output.recorded":  # every step's: a for_each's list comes from one
                outputs[(step, event.map_index)] = event.payload
            elif step not in self.plan.steps:
                continue
            elif event.type == "subtask.succeeded":
                sub = event.payload["subtask"]
                output = self.store.output_of(event.payload)
                done[(step, event.map_index, sub)] = Target(step, event.map_index, sub, output, event.seq)
            elif self.plan.steps[step].fan_out is None:  # a for_each step is undone item by item
                output = self.store.output_of(outputs.get((step, event.map_index), {}))
                done[(step, event.map_index, "")] = Target(step, event.map_index, "", output, event.seq)
        items = {name: self._items(name, outputs) for name, step in self.plan.steps.items() if step.fan_out}
        targets = [self._with_item(t, items.get(t.step, {})) for t in done.values()]
        return sorted(targets, key=lambda t: t.seq, reverse=True)

    def _items(self, step: str, outputs: dict[tuple[str, int], dict]) -> dict[str, Any]:
        """Subtask id -> (index, item) of a for_each step, from the recorded output of its list's step."""
        fan_out = self.plan.steps[step].fan_out
        source = self.store.output_of(outputs.get((fan_out.source, -1), {})) or {}
        items = source.get(fan_out.field) if isinstance(source, dict) else None
        return {sub.id: sub for sub in subtasks_of(items if isinstance(items, list) else [])}

    @staticmethod
    def _with_item(target: Target, subtasks: dict[str, Any]) -> Target:
        sub = subtasks.get(target.subtask) if target.subtask else None
        return Target(**{**target.__dict__, "item": sub.item, "index": sub.index}) if sub else target

    def compensated(self) -> set[str]:
        """Targets undone by any saga of this run (or marked done by hand)."""
        events = self.store.read(self.run_id, types=["compensation.succeeded"])
        return {e.payload["target"] for e in events if hasattr(e, "payload")}

    def failed_steps(self) -> list[str]:
        failed = self.store.read(self.run_id, types=["step.failed"])
        return sorted(
            {
                e.step
                for e in failed
                if hasattr(e, "payload") and not e.payload.get("will_retry") and e.step != SAGA_TASK
            }
        )

    # --- undoing ---------------------------------------------------------------------------------

    def run(self, skip: set[str] | frozenset[str] = frozenset()) -> Outcome:
        """Compensate every target not undone yet, newest first; stop at the first that fails every
        try (``Outcome.stuck``). Records ``saga.started`` (once per saga id).

        :param skip: targets a person chose to leave as they are.
        """
        targets = [t for t in self.targets() if t.name not in skip]
        already = self.compensated()
        outcome = Outcome(already=[t.name for t in targets if t.name in already])
        self._saga_event(
            "saga.started",
            {
                "trigger": self.trigger,
                "failed_steps": self.failed_steps(),
                "plan": [t.name for t in targets],
                "already": outcome.already,
            },
        )
        pending = [t for t in targets if t.name not in already]
        for position, target in enumerate(pending):
            try:
                self.compensate(target)
            except CompensationFailed as error:
                outcome.stuck, outcome.error = target, str(error)
                outcome.left = [t.name for t in pending[position + 1 :]]
                return outcome
            outcome.compensated.append(target.name)
        return outcome

    def finish(self, outcome: Outcome, given_up: list[str] = ()) -> dict[str, Any]:
        """Record the saga's outcome (``saga.completed``); its payload."""
        failed = [*given_up, *([outcome.stuck.name] if outcome.stuck else []), *outcome.left]
        payload = {
            "outcome": "partial" if failed else outcome.state,
            "compensated": [*outcome.already, *outcome.compensated],
            "failed": failed,
            "trigger": self.trigger,
        }
        self._saga_event("saga.completed", payload)
        return payload

    def alert_stuck(self, outcome: Outcome, note: str, attempt: int | None = None) -> None:
        """Tell people (Slack, or the log) that the compensation of ``outcome.stuck`` keeps failing."""
        alert = Alert(
            kind="compensation_failed",
            workflow=self.workflow,
            run_id=self.run_id,
            step=outcome.stuck.name,
            message=f"{note} {outcome.error}"[:1500],
            error_class=CompensationFailed.__name__,
            attempt=attempt,
        )
        send(alert, self.store)

    def compensate(self, target: Target) -> Any:
        """Run the target's compensation, retried with backoff; ``CompensationFailed`` after the last try."""
        spec = self.plan.steps[target.step].spec.compensate
        tries = 1 + spec.retries
        delay = spec.retry_delay.total_seconds()
        worker = f"skill {spec.skill}" if spec.skill else f"agent {spec.agent}"
        last = ""
        for attempt in range(1, tries + 1):
            self._event(target, "compensation.started", {"attempt": attempt, "worker": worker}, attempt)
            try:
                result = self._call(spec, target, attempt)
            except Exception as error:  # the compensation's own failure: retried, then reported
                last = redact(f"{type(error).__name__}: {error}")[:1000]
                will_retry = attempt < tries
                payload = {
                    "attempt": attempt,
                    "error_class": type(error).__name__,
                    "error": last,
                    "will_retry": will_retry,
                }
                self._event(target, "compensation.failed", payload, attempt)
                log.warning("Compensation of %s failed (try %d of %d): %s", target.name, attempt, tries, last)
                if will_retry:
                    self.sleep(min(delay * 2 ** (attempt - 1), 60.0))
                continue
            for hook in AFTER_COMPENSATION:  # outside the try: a hook's failure fails the saga's try
                hook(self, target)
            digest = hashlib.sha256(json.dumps(result, sort_keys=True, default=str).encode()).hexdigest()
            self._event(target, "compensation.succeeded", {"attempt": attempt, "sha256": digest}, attempt)
            log.info("Compensated %s (%s, try %d)", target.name, worker, attempt)
            return result
        raise CompensationFailed(
            f"the compensation of {target.name} ({worker}) failed {tries} time(s): {last}"
        )

    def mark_done(self, target: Target, by: str) -> None:
        """A person undid the target by hand."""
        self._event(target, "compensation.succeeded", {"attempt": 0, "by": by or "a person"}, "hand")

    def scope(self, target: Target) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "steps": {},
            "context": {},
            "output": target.output,
            "item": target.item,
            "index": target.index,
            "run": {"id": self.run_id, "logical_date": None, "ds": None, "try_number": 1},
        }

    def _call(self, spec: Compensation, target: Target, attempt: int) -> Any:
        scope = self.scope(target)
        instruction = templating.render(spec.instruction, scope)
        with effects.scope(
            self.store,
            run_id=self.run_id,
            workflow=self.workflow,
            step=f"{target.step}/compensate",
            map_index=target.map_index,
            try_number=attempt,
            subtask=target.subtask,
            template_version=self.template_version,
        ):
            if spec.skill:
                return self._skill(spec.skill, spec, target, instruction, scope)
            agent = self.plan.agents[spec.agent]
            if agent.skill:
                return self._skill(agent.skill, spec, target, instruction, scope)
            return self._llm(agent, instruction or f"Undo what step {target.name} did.")

    def _skill(self, name: str, spec: Compensation, target: Target, instruction: str, scope: dict) -> Any:
        return run_skill(
            name,
            workflow=self.workflow,
            step_id=f"{target.step}.compensate",
            output_spec=None,
            instruction=instruction,
            scope=scope,
            with_=spec.with_,
        )

    def _llm(self, agent: Agent, prompt: str) -> Any:
        return answer_text(agent, prompt)

    # --- events ----------------------------------------------------------------------------------

    def _event(self, target: Target, kind: str, payload: dict[str, Any], attempt: Any) -> None:
        discriminator = f"{self.saga_id}|{target.subtask}|{attempt}"
        self._append(kind, {"target": target.name, **payload}, target.step, target.map_index, discriminator)

    def _saga_event(self, kind: str, payload: dict[str, Any]) -> None:
        self._append(kind, payload, SAGA_TASK, -1, self.saga_id)

    def _append(
        self, kind: str, payload: dict[str, Any], step: str, map_index: int, discriminator: str
    ) -> None:
        event = Event(
            type=kind,
            run_id=self.run_id,
            workflow=self.workflow,
            step=step,
            map_index=map_index,
            template_version=self.template_version,
            payload=payload,
            discriminator=discriminator,
        )
        self.store.append([event])


def saga_for_run(
    store: EventStore,
    run_id: str,
    *,
    saga_id: str,
    dags_folder: Any = None,
    read_conf: Callable[[str, str], dict[str, Any]] | None = None,
) -> Saga:
    """The saga of a past run, from its events and its workflow's current template (``baton
    compensate RUN_ID`` and the ``baton_compensate`` DAG).

    :param read_conf: (dag id, run id) -> the run's conf (the events keep only its digest); by
        default Airflow's metadata DB; where neither reaches it, the template's defaults are the inputs.
    """
    events = store.read(run_id)
    first = next((e for e in events if hasattr(e, "payload")), None)
    events.close()
    if first is None:
        raise AgentError(
            f"No events for run '{run_id}' in Baton's store: nothing to compensate (`baton runs` lists runs)."
        )
    folder = Path(dags_folder or os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or "dags")
    workflow, roster = load_named(folder, first.workflow)
    plan = plan_workflow(workflow, roster)
    if read_conf is None:
        read_conf = conf_from_metadata_db
    try:
        conf = read_conf(workflow.workflow, run_id) if read_conf is not None else {}
    except Exception as error:
        log.warning(
            "The conf of run %s is not readable here (%s); using the template's defaults", run_id, error
        )
        conf = {}
    inputs = {name: spec.default for name, spec in workflow.inputs.items()} | dict(conf)
    return Saga(store, run_id, plan.saga(), inputs=inputs, saga_id=saga_id, trigger="manual")
