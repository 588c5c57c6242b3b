"""A rollout's decisions (``rollout:``): which version each run takes, when the new version's share grows,
and when it goes back to 0 by itself.

The state is the rollout's events (``rollout.started`` / ``advanced`` / ``completed`` / ``rolled_back``,
each recorded once: its event key is the rollout's and the stage's, so runs that start at once agree) and
the runs' ``version.assigned``. At each run's start (the ``baton_version`` task) the rollout is replayed:

- the runs of each version that ended (``run.succeeded`` / ``run.failed``) go, in the order they ended,
  into a sequential experiment (:class:`baton.optimize.experiments.Experiment`, current version as the
  control): its failure and latency guardrails and its success test are e-values, valid however often
  they are looked at, so a look at every run start does not inflate the rate of needless rollbacks
  (``alpha``). The new version stopped on a guardrail, or doing worse -> ``rollout.rolled_back``.
- a stage that lasted ``every`` with ``min_runs`` of the new version's runs ended in it, the guardrails
  holding -> ``rollout.advanced`` (``step`` more), up to 100 % (``rollout.completed``).

The run then takes ``canary`` when its hash falls under the share (the same answer in every process), or
``stable``; a retry of the task keeps what was recorded first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from baton.coordination import evaluation
from baton.coordination.tasks import EVAL_STEP, VERSION_TASK
from baton.events.event import Event
from baton.events.store import EventStore
from baton.optimize.assignment import assign
from baton.optimize.experiments import Experiment

log = logging.getLogger(__name__)

__all__ = [
    "EVAL_STEP",
    "VERSION_TASK",
    "Rollout",
    "RolloutState",
    "experiment",
    "replay",
    "rollout_name",
    "version_of_run",
]

MAX_RUNS = 20_000  # the latest assigned runs a rollout is replayed from
# A canary is rolled back for breakage, not for a few percent: a wide mixture (Beta(5, 5)) decides
# within about a dozen discordant pairs when the new version fails where the old one does not.
CONCENTRATION = 5.0
DECISIONS = ("rollout.started", "rollout.advanced", "rollout.completed", "rollout.rolled_back")


def rollout_name(workflow: str, stable: int, canary: int) -> str:
    return f"{workflow}:v{stable}->v{canary}"


@dataclass
class RolloutState:
    """A rollout replayed from its events."""

    name: str
    share: float = 0.0
    stage: int = -1  # -1: not started; 0: the first stage
    stage_at: datetime | None = None
    stage_seq: int = 0  # the sequence number of the stage's decision
    status: str = "not started"  # running | completed | rolled back
    reason: str = ""
    assigned: dict[str, str] = field(default_factory=dict)  # run id -> stable | canary
    assigned_seq: dict[str, int] = field(default_factory=dict)
    ended: list[tuple[int, str, bool, float | None]] = field(default_factory=list)  # (seq, run, ok, s)
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def canary_ended(self, since_seq: int = 0) -> int:
        """The new version's runs that ended, of those assigned after ``since_seq``."""
        return sum(
            1
            for _, run_id, _, _ in self.ended
            if self.assigned[run_id] == "canary" and self.assigned_seq[run_id] > since_seq
        )


def replay(store: EventStore, workflow: str, stable: int, canary: int) -> RolloutState:
    name = rollout_name(workflow, stable, canary)
    state = RolloutState(name)
    rows = store.step_history(workflow, VERSION_TASK, [*DECISIONS, "version.assigned"], MAX_RUNS)
    for seq, run_id, _, kind, _, payload in rows:
        if payload.get("rollout") != name:
            continue
        if kind == "version.assigned":
            state.assigned[run_id], state.assigned_seq[run_id] = payload["arm"], seq
            continue
        state.decisions.append({"type": kind, **payload})
        if state.status in ("rolled back", "completed"):
            continue
        state.stage_seq = seq
        state.share, state.reason = float(payload["share"]), payload.get("reason", "")
        state.stage = int(payload.get("stage", 0))
        state.stage_at = datetime.fromisoformat(payload["at"])
        state.status = {"rollout.completed": "completed", "rollout.rolled_back": "rolled back"}.get(
            kind, "running"
        )
    if state.assigned:
        ends = store.step_history(workflow, None, ["run.succeeded", "run.failed"], MAX_RUNS * 2)
        for seq, run_id, _, kind, _, payload in ends:
            if run_id in state.assigned:
                state.ended.append((seq, run_id, kind == "run.succeeded", payload.get("duration_s")))
    return state


def experiment(state: RolloutState, spec: Any) -> Experiment:
    """The rollout's runs so far as a sequential experiment of ``canary`` against ``stable``."""
    test = Experiment(
        state.name,
        {"stable": 1.0, "canary": 1.0},
        control="stable",
        alpha=spec.alpha,
        guardrail_alpha=spec.alpha,
        min_runs=spec.min_runs,
        concentration=CONCENTRATION,
    )
    test.replay(
        (state.assigned[run_id], ok, not ok, seconds) for _, run_id, ok, seconds in sorted(state.ended)
    )
    return test


@dataclass(frozen=True)
class Rollout:
    """One workflow's rollout from ``stable`` to ``canary`` as the template declares it (``spec``)."""

    workflow: str
    stable: int
    canary: int
    spec: Any  # baton.spec.rollout.Rollout
    gate: str | None = None  # the new version's digest, when it must pass the workflow's dataset first

    @property
    def name(self) -> str:
        return rollout_name(self.workflow, self.stable, self.canary)

    def _event(self, kind: str, payload: dict[str, Any], discriminator: str = "") -> Event:
        return Event(
            type=kind,
            run_id=f"rollout:{self.name}"[:250],
            workflow=self.workflow,
            step=VERSION_TASK,
            payload={"rollout": self.name, **payload},
            discriminator=discriminator,
        )

    def decide(self, store: EventStore, now: datetime | None = None) -> RolloutState:
        """Replay the rollout and record what it decides now (once each); its state after that."""
        now = now or datetime.now(UTC)
        state = replay(store, self.workflow, self.stable, self.canary)
        at = now.isoformat()
        if state.status == "not started":
            if self.gate is not None and (waiting := self._gated(store)):
                state.reason = waiting
                return state
            share = min(100.0, self.spec.start)
            payload = {"at": at, "share": share, "from_version": self.stable, "to_version": self.canary}
            store.append([self._event("rollout.started", payload)])
            return replay(store, self.workflow, self.stable, self.canary)
        if state.status != "running":
            return state
        verdict = experiment(state, self.spec).decide()
        counts = verdict.why.get("counts", {})
        if verdict.status == "stopped":
            reason = f"v{self.canary} rolled back: {verdict.why.get('reason', '')}"[:2000]
            log.warning("Rollout %s: %s", self.name, reason)
            store.append([self._event("rollout.rolled_back", {"at": at, "share": 0.0, "reason": reason,
                                                               "counts": counts})])  # fmt: skip
            return replay(store, self.workflow, self.stable, self.canary)
        if self._stage_done(state, now):
            stage, share = state.stage + 1, min(100.0, state.share + self.spec.step)
            reason = (
                f"stage {state.stage} at {state.share:g} % held for {self.spec.every} with "
                f"{state.canary_ended(state.stage_seq)} run(s) of v{self.canary} ended: its guardrails hold "
                f"({verdict.why.get('reason', '')})"
            )[:2000]
            kind = "rollout.completed" if share >= 100 else "rollout.advanced"
            payload = {"at": at, "share": share, "reason": reason, "counts": counts}
            if kind == "rollout.advanced":
                payload["stage"] = stage
            store.append([self._event(kind, payload, discriminator=str(stage))])
            return replay(store, self.workflow, self.stable, self.canary)
        return state

    def _gated(self, store: EventStore) -> str:
        """Why the rollout waits for an evaluation (recorded once for this digest), or '' once the new version,
        as built (``gate``), passed the workflow's dataset against the current version."""
        found = evaluation.passed_evaluations(store, self.workflow, self.gate)
        if any(p.get("version") == self.canary and not p.get("variant") for p in found):
            return ""
        reason = (
            f"v{self.canary} (digest {self.gate}) has no passing evaluation of the workflow's dataset against "
            f"v{self.stable}: every run takes v{self.stable} until `baton eval {self.workflow} --version "
            f"{self.canary} --record` passes"
        )
        payload = {"rollout": self.name, "digest": self.gate, "reason": reason}
        store.append([self._event("rollout.gated", payload, discriminator=self.gate or "")])
        return reason

    def _stage_done(self, state: RolloutState, now: datetime) -> bool:
        """Whether the stage lasted ``every`` and ``min_runs`` of the new version's runs assigned in it ended."""
        if state.stage_at is None or now - state.stage_at < self.spec.every:
            return False
        return state.canary_ended(state.stage_seq) >= self.spec.min_runs

    def assign(self, store: EventStore, run_id: str) -> dict[str, Any]:
        """The version of run ``run_id`` (recorded as ``version.assigned``; a retry reads it back). A run
        whose steps started before the rollout (it was in flight when the DAG gained the new version)
        stays on the current version."""
        state = self.decide(store)
        if run_id in state.assigned:
            return self._assigned(store, run_id)
        started = list(store.read(run_id, types=["step.started"]))  # read whole: the connection is let go
        if any(getattr(e, "step", None) not in (None, VERSION_TASK) for e in started):
            arm, how = "stable", "its steps started before the rollout"
        elif state.status == "rolled back":
            arm, how = "stable", "rolled back"
        elif state.status == "not started":  # gated: its new version has not passed its evaluation
            arm, how = "stable", state.reason[:500]
        elif state.share >= 100:
            arm, how = "canary", "completed"
        else:
            weights = {"stable": 100.0 - state.share, "canary": state.share}
            arm, how = assign(state.name, run_id, weights), f"by the run's hash at {state.share:g} %"
        version = self.canary if arm == "canary" else self.stable
        payload = {"rollout": state.name, "version": version, "arm": arm, "share": state.share, "how": how}
        event = Event(type="version.assigned", run_id=run_id, workflow=self.workflow, step=VERSION_TASK,
                      template_version=version, payload=payload)  # fmt: skip
        store.append([event])
        return self._assigned(store, run_id)

    def _assigned(self, store: EventStore, run_id: str) -> dict[str, Any]:
        found = list(store.read(run_id, step=(VERSION_TASK, -1), types=["version.assigned"]))
        return next(e.payload for e in found if e.payload.get("rollout") == self.name)


def version_of_run(
    workflow: str, stable: int, canary: int, spec: Any, run_id: str, gate: str | None = None
) -> dict[str, Any]:
    """The version of run ``run_id`` (the ``baton_version`` task's choice), in Airflow's event store."""
    return Rollout(workflow, stable, canary, spec, gate).assign(EventStore.from_airflow(), run_id)
