"""AgentOperator: one Baton step — render the instruction, call the agent or skill, validate the output."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from baton import templating
from baton.errors import AgentError


def join_batches(value: Any) -> dict[str, Any] | None:
    """The output of a for_each step: its batches' results and failures, in list order."""
    batches = [value] if isinstance(value, dict) else [v for v in (value or []) if isinstance(v, dict)]
    if not batches:
        return None
    return {
        "results": [r for b in batches for r in b.get("results", [])],
        "failures": [f for b in batches for f in b.get("failures", [])],
        "total": sum(b.get("total", 0) for b in batches),
    }


def _json_block(value: Any) -> str:
    return f"```json\n{json.dumps(value, indent=2, default=str)[:4000]}\n```"


class PersonDecided(AgentError, AirflowFailException):
    """A person failed or rejected the step: their decision is final, no retry asks them again."""


class AgentOperator(BaseOperator):
    """Run one step of a Baton workflow.

    The runtime (common-ai, pydantic-ai, the skills) is imported in ``execute()``, so that
    parsing a DAG of these operators stays cheap.

    :param workflow: the workflow (DAG) id, for logs and skill requests.
    :param instruction: Jinja over ``inputs``, ``steps`` (upstream outputs) and ``run``.
    :param agent: the roster entry of the agent (``Agent.model_dump()``), or None for a skill step.
    :param skill: the registered skill to run, for a skill step.
    :param output_spec: output fields (name -> field spec), a registered output model name, or None.
    :param reads: upstream step ids whose outputs the instruction or condition reads.
    :param when: a Jinja condition; when false the step is skipped.
    :param output_retries: how many times the model is asked again after an invalid output.
    :param template_version: the template's ``version``, recorded with every event of the step.
    :param usage_limits: common-ai usage limits (``request_limit``, ``total_tokens_limit``, ...).
    :param context_keys: the workflow's shared-context keys and their conflict strategies.
    :param context_writes: context key -> expression of what this step writes there (over ``output``).
    :param route: ``{capabilities, prefer}``: the agent is picked at run time among ``roster``.
    :param roster: the roster's agents (``Agent.model_dump()``), for routing and for a person to pick.
    :param fan_out: ``{source, field}``: run once per item of that upstream list (a for_each step).
    :param batch: ``[start, end)`` of the list this task runs (the mapped argument of a for_each).
    :param concurrency: agent calls at once inside one task of a for_each.
    :param partial_failure: ``fail``, ``continue`` or ``escalate`` when some subtasks fail.
    :param escalate: ``{when, timeout, default, subject}``: when a person takes over.
    :param fanned_reads: the upstream steps in ``reads`` that are for_each steps (their batches are joined).
    :param skill_args: the skill's arguments (the template's ``with``), Jinja over the step's scope.
    :param agent_timeout: seconds one agent call may take (distinct from ``execution_timeout``).
    :param emits: ``[{asset, extra}]``: asset events emitted on success (``extra`` is Jinja over
        ``output`` and the scope); the assets are also the task's ``outlets``.
    :param trigger_kind: ``sensor``, ``asset`` or ``queue``: what ``trigger`` holds in the scope.
    """

    ui_color = "#e7effd"
    records_own_events = True  # the listener leaves this task's start and end to it
    template_fields: Sequence[str] = ()

    def __init__(
        self,
        *,
        workflow: str,
        instruction: str = "",
        agent: dict[str, Any] | None = None,
        skill: str | None = None,
        output_spec: dict[str, Any] | str | None = None,
        reads: Sequence[str] = (),
        when: str | None = None,
        output_retries: int = 2,
        template_version: int | None = None,
        usage_limits: dict[str, int] | None = None,
        context_keys: dict[str, str] | None = None,
        context_writes: dict[str, str] | None = None,
        route: dict[str, Any] | None = None,
        roster: list[dict[str, Any]] | None = None,
        fan_out: dict[str, Any] | None = None,
        batch: list[int] | None = None,
        concurrency: int | None = None,
        partial_failure: str = "fail",
        escalate: dict[str, Any] | None = None,
        fanned_reads: Sequence[str] = (),
        skill_args: dict[str, Any] | None = None,
        agent_timeout: float | None = None,
        emits: list[dict[str, Any]] | None = None,
        trigger_kind: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow = workflow
        self.instruction = instruction
        self.agent = agent
        self.skill = skill
        self.output_spec = output_spec
        self.reads = list(reads)
        self.when = when
        self.output_retries = output_retries
        self.template_version = template_version
        self.usage_limits = usage_limits
        self.context_keys = context_keys or {}
        self.context_writes = context_writes or {}
        self.route = route
        self.roster = roster or []
        self.fan_out = fan_out
        self.batch = batch
        self.concurrency = concurrency
        self.partial_failure = partial_failure
        self.escalate = escalate
        self.fanned_reads = list(fanned_reads)
        self.skill_args = skill_args or {}
        self.agent_timeout = agent_timeout
        self.emits = emits or []
        self.trigger_kind = trigger_kind

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import TaskAwaitingInput

        recorder = self._recorder(context)
        try:
            scope = self.jinja_context(context)
            versions = self._read_context(recorder.store, context, scope)
            if self.when and not templating.evaluate(self.when, scope):
                recorder.start()
                raise AirflowSkipException(
                    f"Step '{self.task_id}' skipped: its condition `{self.when}` is false."
                )
            if self.fan_out:
                output = self._fan_out(context, scope, recorder, versions)
            elif not (self.agent or self.skill or self.route):
                recorder.start()
                raise self._ask(context, recorder, self._review_question(context, scope, None))
            else:
                output = self._run_step(context, scope, recorder)
                if (self.escalate or {}).get("when") == "always":
                    raise self._ask(context, recorder, self._review_question(context, scope, output))
            self._finish(context, scope, output, versions, recorder)
            self._emit(context, scope, output, recorder)
        except TaskAwaitingInput:
            raise
        except AirflowSkipException as skip:
            recorder.skipped(str(skip))
            raise
        except BaseException as error:
            question = self._escalation_for(error, context, recorder)
            if question is not None:
                raise self._ask(context, recorder, question) from error
            recorder.failed(error)
            raise
        recorder.succeeded(output)
        return output

    def _recorder(self, context: Any) -> Any:
        from baton.events import EventStore
        from baton.events.recorder import StepRecorder

        return StepRecorder(
            EventStore.from_airflow(),
            context,
            workflow=self.workflow,
            template_version=self.template_version,
            agent=(self.agent or {}).get("name"),
            pool=self.pool,
        )

    def _finish(
        self, context: Any, scope: dict[str, Any], output: Any, versions: dict[str, int], recorder: Any
    ) -> None:
        """After the output is known: the context writes (a for_each's were merged at its join)."""
        if not self.fan_out:
            self._write_context(recorder.store, context, scope, output, versions)

    def _emit(self, context: Any, scope: dict[str, Any], output: Any, recorder: Any) -> None:
        """Set the extra of each asset event this step emits (Airflow stores the events when the task
        succeeds) and record what was sent: the payload's keys and digest."""
        if not self.emits:
            return
        from baton.assets import asset

        for emit in self.emits:
            extra = templating.arguments(emit.get("extra") or {}, {**scope, "output": output})
            context["outlet_events"][asset(emit["asset"])].extra = extra
            digest = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode()).hexdigest()
            recorder.record(
                recorder.event(
                    "asset.emitted",
                    {"asset": emit["asset"], "extra_keys": sorted(extra), "extra_sha256": digest},
                    discriminator=emit["asset"],
                )
            )

    # --- one agent call: named or routed ---------------------------------------------------------

    def _run_step(self, context: Any, scope: dict[str, Any], recorder: Any) -> dict[str, Any]:
        """Run the step's skill, or its agent (the named one, or the router's choice) in one of the
        agent's slots; a failure counts against the agent's circuit breaker."""
        if self.skill or not (self.agent or self.route):
            recorder.start()
            return self._run(context, scope, recorder)
        from baton.coordination.breaker import record_failure, record_success
        from baton.coordination.routing import Slots

        agent, selected = self._choose(recorder)
        self.agent = agent.model_dump(mode="json")
        recorder.common["agent"] = agent.name
        slots = Slots(recorder.store)
        holder = f"{recorder.common['run_id']}/{self.task_id}"
        ttl = self.execution_timeout or timedelta(hours=1)
        slot = slots.take(agent, holder, ttl, [*recorder.start_events(), selected])
        try:
            output = self._run(context, scope, recorder)
        except Exception as error:
            record_failure(recorder, agent, error)
            raise
        finally:
            slots.release(agent.name, slot)
        record_success(recorder, agent)
        return output

    def _choose(self, recorder: Any) -> tuple[Any, Any]:
        """The agent of this try and its ``agent.selected`` event: the named agent, or the router's
        best candidate, leaving out the agents that failed this step in earlier tries."""
        from baton.coordination.routing import Router
        from baton.spec.roster import Agent

        if not self.route:
            agent = Agent.model_validate(self.agent)
            payload = {"agent": agent.name, "candidates": [agent.name], "reason": "named by the template"}
            return agent, recorder.event("agent.selected", payload, agent=agent.name)
        router = Router(recorder.store, [Agent.model_validate(a) for a in self.roster])
        choice = router.rank(
            self.route["capabilities"], self.route.get("prefer", "balanced"), self._failed_before(recorder)
        )
        self.log.info("Step %s routed to %s: %s", self.task_id, choice.agent.name, choice.reason)
        return choice.agent, recorder.event("agent.selected", choice.payload(), agent=choice.agent.name)

    def _failed_before(self, recorder: Any) -> dict[str, str]:
        """Agents chosen for this step in earlier tries of this run (which therefore did not succeed)."""
        common = recorder.common
        chosen = recorder.store.read(
            common["run_id"],
            step=(common["step"], common["map_index"]),
            types=["agent.selected"],
            before_try=common["try_number"],
        )
        return {
            e.agent: f"failed try {e.try_number} of this step" for e in chosen if getattr(e, "agent", None)
        }

    # --- for_each --------------------------------------------------------------------------------

    def _fan_out(
        self, context: Any, scope: dict[str, Any], recorder: Any, versions: dict[str, int]
    ) -> dict[str, Any]:
        from baton.coordination.fanout import FanOut, Outcome, subtasks_of

        source, field = self.fan_out["source"], self.fan_out["field"]
        items = (scope["steps"].get(source) or {}).get(field) or []
        if not isinstance(items, list):
            raise AgentError(
                f"for_each of step '{self.task_id}': '{source}.{field}' is a {type(items).__name__}, not a list"
            )
        start, end = self.batch if self.batch else (0, len(items))
        subtasks = subtasks_of(items[start:end], start)
        fan = FanOut(self, context, scope, recorder)
        ids = {s.id for s in subtasks}
        outcome = Outcome(results={k: v for k, v in fan.done_before().items() if k in ids})
        planned = {
            "source": f"{source}.{field}",
            "total": len(items),
            "batch": [start, end],
            "subtasks": [s.id for s in subtasks],
            "concurrency": fan.concurrency,
            "reused": sorted(outcome.results),
        }
        recorder.start(recorder.event("fanout.planned", planned))
        self.log.info(
            "Step %s: %d subtask(s) of %d (%s), %d at once, %d done by an earlier try",
            self.task_id,
            len(subtasks),
            len(items),
            planned["source"],
            fan.concurrency,
            len(outcome.results),
        )
        fan.run(subtasks, outcome)
        return self._join(context, scope, recorder, subtasks, outcome, versions)

    def _join(
        self,
        context: Any,
        scope: dict[str, Any],
        recorder: Any,
        subtasks: list,
        outcome: Any,
        versions: dict[str, int],
    ) -> dict[str, Any]:
        """The sync point of a batch: merge the subtasks' context writes, apply the partial-failure policy."""
        from baton.context.store import ContextEscalation
        from baton.coordination import escalation

        order = [s for s in subtasks if s.id in outcome.results]
        output = {
            "results": [outcome.results[s.id] for s in order],
            "failures": [outcome.failures[s.id] for s in subtasks if s.id in outcome.failures],
            "total": len(subtasks),
        }
        try:
            self._merge_subtask_writes(recorder.store, context, scope, order, outcome, versions)
        except ContextEscalation as conflict:
            conflict.output = output  # what the step returns once the person has decided
            raise
        if not output["failures"]:
            return output
        summary = "; ".join(f"{f['id']}: {f['error']}" for f in output["failures"][:5])
        if self.partial_failure == "continue":
            self.log.warning(
                "Step %s: %d subtask(s) failed, continuing: %s",
                self.task_id,
                len(output["failures"]),
                summary,
            )
            return output
        if self.partial_failure == "escalate":
            question = escalation.Question(
                kind="partial_failure",
                subject=f"{self.workflow}.{self.task_id}: {len(output['failures'])} of {len(subtasks)} subtasks failed",
                body=self._body(
                    context,
                    f"These subtasks failed:\n\n{summary}\n\nContinue without them, retry "
                    "them, give their outputs below (JSON: subtask id -> output), or fail the step.",
                ),
                options=[
                    escalation.CONTINUE,
                    escalation.RETRY_FAILED,
                    escalation.USE_OUTPUT,
                    escalation.FAIL,
                ],
                params={
                    "outputs": escalation.Param(
                        None, type=["object", "null"], description="subtask id -> output"
                    )
                },
                timeout=self._escalation_timeout(),
                state={"failures": output["failures"], "batch": self.batch},
                reason=summary[:1000],
            )
            raise self._ask(context, recorder, question)
        raise AgentError(
            f"Step '{self.task_id}': {len(output['failures'])} of {len(subtasks)} subtasks failed ({summary}). "
            "The next try reruns only these; set partial_failure: continue or escalate to go on without them."
        )

    def _merge_subtask_writes(
        self,
        store: Any,
        context: Any,
        scope: dict[str, Any],
        done: list,
        outcome: Any,
        versions: dict[str, int],
    ) -> None:
        """Each subtask writes into its own namespace (``key[subtask]``); then the join merges them
        into ``key`` over the version read when the batch started, so parallel writers conflict and
        the key's strategy resolves them (each conflict and resolution is an event)."""
        if not self.context_writes or not outcome.results:
            return
        from baton.context import ContextStore

        contexts = ContextStore(store)
        for sub in done:  # in list order, so the merged value does not depend on who finished first
            sid = sub.id
            values = {**scope, "output": outcome.results[sid]["output"], "item": sub.item, "index": sub.index}
            for key, expression in self.context_writes.items():
                value = templating.value(expression, values)
                writer = self._writer(context, sid)
                space = f"{key}[{sid}]"
                current = contexts.get(writer.run_id, space)
                contexts.write(
                    writer,
                    space,
                    value,
                    base_version=current.version if current else 0,
                    strategy="last_writer_wins",
                )
                entry = contexts.write(
                    writer, key, value, base_version=versions.get(key, 0), strategy=self.context_keys[key]
                )
                self.log.info("Subtask %s merged into context key %s: version %d", sid, key, entry.version)

    def _run(self, context: Any, scope: dict[str, Any], recorder: Any) -> dict[str, Any]:
        prompt = templating.render(self.instruction, scope)
        self.log.info(
            "Step %s (%s): instruction of %d chars, sha256 %s; upstream outputs read: %s",
            self.task_id,
            self.worker,
            len(prompt),
            hashlib.sha256(prompt.encode()).hexdigest()[:16],
            ", ".join(self.reads) or "none",
        )
        from baton import effects

        ti = context["ti"]
        with effects.scope(
            recorder.store,
            run_id=ti.run_id,
            workflow=self.workflow,
            step=self.task_id,
            map_index=ti.map_index if ti.map_index is not None else -1,
            try_number=ti.try_number,
            template_version=self.template_version,
        ):
            output = self._timed(lambda: self._call(prompt, scope, context, recorder))
            from baton.agents import faults

            faults.after_call()
        self.log.info(
            "Step %s output: keys %s, %d bytes",
            self.task_id,
            sorted(output),
            len(json.dumps(output, default=str)),
        )
        return output

    def _call(self, prompt: str, scope: dict[str, Any], context: Any, recorder: Any) -> dict[str, Any]:
        """The step's work, inside its effects scope: its skill, or its agent's skill or model."""
        skill = self.skill or (self.agent or {}).get("skill")
        if skill:
            from baton.agents.skills import run_skill

            return run_skill(
                skill,
                workflow=self.workflow,
                step_id=self.task_id,
                output_spec=self.output_spec,
                instruction=prompt,
                scope=scope,
                with_=self.skill_args,
            )
        from baton.agents.llm import run_llm_step

        return run_llm_step(self, prompt, context, recorder)

    def _timed(self, call: Any) -> Any:
        """``call()``, failed with ``AgentTimeout`` after ``agent_timeout`` seconds (the task goes on:
        its retry, reassignment or escalation decide what happens next)."""
        if not self.agent_timeout:
            return call()
        from baton.agents.timeout import call_with_timeout

        return call_with_timeout(call, self.agent_timeout, f"{self.worker} on step '{self.task_id}'")

    def _read_context(self, store: Any, context: Any, scope: dict[str, Any]) -> dict[str, int]:
        """Put the run's shared context in ``scope``; the version of each key read (0: not written yet)."""
        if not self.context_keys:
            return {}
        from baton.context import ContextStore

        entries = ContextStore(store).snapshot(context["ti"].run_id)
        scope["context"] = {key: entries[key].value if key in entries else None for key in self.context_keys}
        return {key: entries[key].version if key in entries else 0 for key in self.context_keys}

    def _write_context(
        self, store: Any, context: Any, scope: dict[str, Any], output: Any, versions: dict[str, int]
    ) -> None:
        """Write this step's ``writes`` over the versions it read; conflicts go to each key's strategy."""
        if not self.context_writes:
            return
        from baton.context import ContextStore
        from baton.context.store import ContextEscalation

        writer = self._writer(context)
        values = {**scope, "output": output}
        contexts = ContextStore(store)
        escalations = []
        for key, expression in self.context_writes.items():
            try:
                entry = contexts.write(
                    writer,
                    key,
                    templating.value(expression, values),
                    base_version=versions.get(key, 0),
                    strategy=self.context_keys[key],
                )
            except ContextEscalation as conflict:
                escalations.append(conflict)  # the other keys are still written; a person decides this one
                continue
            self.log.info("Step %s wrote context key %s: version %d", self.task_id, key, entry.version)
        if escalations:
            escalations[0].output = output
            raise escalations[0]

    def _writer(self, context: Any, subtask: str | None = None) -> Any:
        from baton.context import Writer

        ti = context["ti"]
        map_index = ti.map_index if ti.map_index is not None else -1
        name = self.task_id if map_index < 0 else f"{self.task_id}[{map_index}]"
        return Writer(
            run_id=ti.run_id,
            workflow=self.workflow,
            step=self.task_id,
            map_index=map_index,
            try_number=ti.try_number,
            name=f"{self.task_id}[{subtask}]" if subtask else name,
        )

    # --- a person takes over ---------------------------------------------------------------------

    def _escalation_timeout(self) -> timedelta | None:
        timeout = (self.escalate or {}).get("timeout")
        return timedelta(seconds=timeout) if isinstance(timeout, (int, float)) else timeout

    def _body(self, context: Any, text: str) -> str:
        ti = context["ti"]
        return f"**Workflow** `{self.workflow}` · **run** `{ti.run_id}` · **step** `{self.task_id}`\n\n{text}"

    def _agent_options(self) -> list[str]:
        from baton.coordination import escalation
        from baton.spec.roster import Agent

        if self.route:
            wanted = set(self.route["capabilities"])
            agents = [
                Agent.model_validate(a) for a in self.roster if wanted <= set(a.get("capabilities", []))
            ]
        else:
            agents = [Agent.model_validate(self.agent)] if self.agent else []
        return [escalation.RETRY_WITH + a.name for a in agents]

    def _escalation_for(self, error: BaseException, context: Any, recorder: Any) -> Any:
        """The question for a person when ``error`` ends the step and the template escalates it:
        a context conflict on an ``escalate`` key; or every candidate failed (no candidate left, or
        the last try failed) with ``escalate`` set. None: the failure stands (or is retried)."""
        from baton.context.store import ContextEscalation
        from baton.coordination import escalation
        from baton.coordination.routing import NoCandidate
        from baton.events.recorder import redact

        if isinstance(error, ContextEscalation):
            return escalation.Question(
                kind="conflict",
                subject=f"{self.workflow}.{self.task_id}: conflicting writes to context key '{error.key}'",
                body=self._body(
                    context,
                    f"{redact(str(error))}\n\nCurrent value:\n\n{_json_block(error.current)}"
                    f"\n\nThis step's value:\n\n{_json_block(error.proposed)}",
                ),
                options=[escalation.KEEP_CURRENT, escalation.USE_MINE, escalation.USE_VALUE, escalation.FAIL],
                params={
                    "value": escalation.Param(
                        None,
                        type=["object", "array", "string", "number", "null"],
                        description="the value to keep",
                    )
                },
                timeout=self._escalation_timeout(),
                state={
                    "key": error.key,
                    "proposed": error.proposed,
                    "output": getattr(error, "output", None),
                },
                reason=f"conflict on context key '{error.key}'",
            )
        if not self.escalate or isinstance(error, (KeyboardInterrupt, SystemExit)):
            return None
        ti = context["ti"]
        last_try = ti.try_number > getattr(ti, "max_tries", 0)
        if not (isinstance(error, NoCandidate) or last_try):
            return None
        reason = redact(f"{type(error).__name__}: {error}")[:2000]
        tried = sorted(self._failed_before(recorder)) + ([self.agent["name"]] if self.agent else [])
        return escalation.Question(
            kind="escalation",
            subject=self.escalate.get("subject")
            or f"{self.workflow}.{self.task_id} needs a person: every agent failed",
            body=self._body(
                context,
                f"The step failed and no agent is left to try.\n\n**Reason:** {reason}\n\n"
                f"**Agents tried:** {', '.join(sorted(set(tried))) or 'none'}\n\n"
                "Give the output below, retry with an agent of your choice, or fail the step.",
            ),
            options=[escalation.USE_OUTPUT, *self._agent_options(), escalation.FAIL],
            params=escalation.output_params(self.output_spec, None),
            timeout=self._escalation_timeout(),
            state={"reason": reason},
            reason=reason,
        )

    def _review_question(self, context: Any, scope: dict[str, Any], draft: dict[str, Any] | None) -> Any:
        """``escalate: human``: a person approves or edits the agent's output, or supplies it."""
        from baton.coordination import escalation

        instruction = templating.render(self.instruction, scope) if self.instruction else ""
        accept = (self.escalate or {}).get("default") == "accept" and draft is not None
        options = (
            [escalation.APPROVE, escalation.USE_OUTPUT, escalation.REJECT]
            if draft is not None
            else [
                escalation.USE_OUTPUT,
                escalation.REJECT,
            ]
        )
        return escalation.Question(
            kind="review",
            subject=(self.escalate or {}).get("subject") or f"{self.workflow}.{self.task_id}: review",
            body=self._body(
                context,
                (f"**Instruction:** {instruction}\n\n" if instruction else "")
                + (
                    f"**{self.worker}** proposes the output in the form; approve it, edit it, or reject it."
                    if draft is not None
                    else "Fill in the step's output."
                ),
            ),
            options=options,
            params=escalation.output_params(self.output_spec, draft),
            defaults=[escalation.APPROVE] if accept else None,
            timeout=self._escalation_timeout(),
            state={"draft": draft},
            reason="the template asks a person to review this step",
        )

    def _ask(self, context: Any, recorder: Any, question: Any) -> BaseException:
        """Write the request for a person and its event; the exception that parks the task."""
        from baton.coordination import escalation

        escalation.ask(context, question)
        recorder.record(
            recorder.event(
                "approval.requested", escalation.requested_payload(question), discriminator=question.kind
            )
        )
        self.log.info("Step %s asks a person (%s): %s", self.task_id, question.kind, question.subject)
        return escalation.awaiting(question)

    def resume_escalation(self, context: Any, event: dict[str, Any], kind: str, state: dict[str, Any]) -> Any:
        """The person answered (or the timeout applied the defaults): the step goes on from here."""
        from airflow.sdk.exceptions import TaskAwaitingInput

        from baton.coordination import escalation

        recorder = self._recorder(context)
        try:
            chosen = list(event.get("chosen_options") or [])
            params = dict(event.get("params_input") or {})
            by = event.get("responded_by_user") or {}
            recorder.record(
                recorder.event(
                    "approval.answered",
                    {
                        "chosen": chosen,
                        "by": (by.get("name") or by.get("id") or "") if isinstance(by, dict) else str(by),
                        "timed_out": bool(event.get("timedout")),
                        "fields": sorted(k for k, v in params.items() if v is not None),
                    },
                    discriminator=kind,
                )
            )
            if not chosen:
                raise AgentError(f"Step '{self.task_id}': the request to a person ended without an answer")
            choice = chosen[0]
            who = (by.get("name") if isinstance(by, dict) else by) or "the timeout default"
            if choice in (escalation.FAIL, escalation.REJECT):
                raise PersonDecided(
                    f"Step '{self.task_id}': {who} chose '{choice}' ({state.get('reason', kind)})"
                )
            scope = self.jinja_context(context)
            versions = self._read_context(recorder.store, context, scope)
            output = self._answer(context, scope, recorder, kind, choice, params, state, versions)
            if kind != "conflict":  # a conflict's answer is the context write itself
                self._finish(context, scope, output, versions, recorder)
            self._emit(context, scope, output, recorder)
        except TaskAwaitingInput:
            raise
        except BaseException as error:
            recorder.failed(error)
            raise
        recorder.succeeded(output)
        return output

    def _answer(
        self,
        context: Any,
        scope: dict[str, Any],
        recorder: Any,
        kind: str,
        choice: str,
        params: dict,
        state: dict,
        versions: dict[str, int],
    ) -> Any:
        from baton.coordination import escalation
        from baton.spec.roster import Agent

        if choice == escalation.APPROVE:
            return state["draft"]
        if choice.startswith(escalation.RETRY_WITH):
            name = choice[len(escalation.RETRY_WITH) :]
            agent = next((a for a in self.roster if a["name"] == name), None) or self.agent
            self.agent, self.route = Agent.model_validate(agent).model_dump(mode="json"), None
            return self._run_step(context, scope, recorder)
        if kind == "partial_failure":
            return self._answer_partial_failure(context, scope, recorder, choice, params, state, versions)
        if kind == "conflict":
            return self._answer_conflict(context, choice, params, state)
        output = escalation.params_to_output(self.output_spec, params)
        from baton.agents.outputs import output_model

        model = output_model(self.task_id, self.output_spec)
        return model.model_validate(output).model_dump(mode="json") if model else output

    def _answer_partial_failure(
        self,
        context: Any,
        scope: dict[str, Any],
        recorder: Any,
        choice: str,
        params: dict,
        state: dict,
        versions: dict[str, int],
    ) -> Any:
        from baton.coordination import escalation

        if choice == escalation.RETRY_FAILED:
            return self._fan_out(context, scope, recorder, versions)
        from baton.coordination.fanout import FanOut

        done = FanOut(self, context, scope, recorder).done_before()
        failures = state.get("failures", [])
        if choice == escalation.USE_OUTPUT:
            given = params.get("outputs") or {}
            for failure in failures:
                if failure["id"] in given:
                    done[failure["id"]] = {"id": failure["id"], "agent": None, "output": given[failure["id"]]}
            failures = [f for f in failures if f["id"] not in given]
        return {"results": list(done.values()), "failures": failures, "total": len(done) + len(failures)}

    def _answer_conflict(self, context: Any, choice: str, params: dict, state: dict) -> Any:
        from baton.context import ContextStore
        from baton.coordination import escalation
        from baton.events import EventStore

        if choice != escalation.KEEP_CURRENT:
            value = state["proposed"] if choice == escalation.USE_MINE else params.get("value")
            contexts = ContextStore(EventStore.from_airflow())
            current = contexts.get(context["ti"].run_id, state["key"])
            contexts.write(
                self._writer(context),
                state["key"],
                value,
                base_version=current.version if current else 0,
                strategy="last_writer_wins",
            )
        return state.get("output")

    @property
    def worker(self) -> str:
        return f"agent {self.agent['name']}" if self.agent else f"skill {self.skill}"

    def jinja_context(self, context: Any) -> dict[str, Any]:
        """``inputs`` (the validated params), ``steps`` (upstream outputs) and ``run`` for Jinja."""
        ti = context["ti"]
        steps = {step_id: ti.xcom_pull(task_ids=step_id) for step_id in self.reads}
        for step_id in self.fanned_reads:  # a for_each step: join its batches (one XCom per map index)
            steps[step_id] = join_batches(steps[step_id])
        run = context["dag_run"]
        logical_date = context.get("logical_date")
        return {
            "inputs": dict(context["params"]),
            "steps": steps,
            "context": {},
            "trigger": self._trigger(context),
            "run": {
                "id": run.run_id,
                "logical_date": logical_date.isoformat() if logical_date else None,
                "ds": context.get("ds"),
                "try_number": ti.try_number,
            },
        }

    def _trigger(self, context: Any) -> dict[str, Any]:
        """What started the run (empty for a manual or scheduled run): the asset events that triggered
        it (``payload``: the newest one's extra; ``events``: all); for a sensor, what it found is also
        at the top (``trigger.rows``, ``trigger.count``, ``trigger.value``, ``trigger.period``)."""
        if self.trigger_kind is None:
            return {}
        events = [
            {
                "asset": asset_key.name,
                "payload": dict(event.extra or {}),
                "source_dag_id": event.source_dag_id,
                "source_run_id": event.source_run_id,
                "timestamp": event.timestamp.isoformat() if event.timestamp else None,
            }
            for asset_key, asset_events in (context.get("triggering_asset_events") or {}).items()
            for event in asset_events
        ]
        events.sort(key=lambda e: e["timestamp"] or "")
        if not events:
            return {"events": [], "payload": {}}
        payload = events[-1]["payload"]
        if self.trigger_kind == "queue":  # a watcher's event: the message is under "payload"
            payload = payload.get("payload", payload)
        found = payload if self.trigger_kind == "sensor" else {}  # trigger.rows, trigger.value ...
        return {**found, "events": events, "payload": payload, "asset": events[-1]["asset"]}


class FanOutBatches(BaseOperator):
    """The ``[start, end)`` batches a for_each step with ``batch_size`` is mapped over.

    Airflow maps only over a task's return value, and the list's step returns its whole output, so
    this small task turns the list's length into batches.
    """

    ui_color = "#f4f1e8"
    template_fields: Sequence[str] = ()

    def __init__(self, *, source: str, field: str, batch_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source, self.field, self.batch_size = source, field, batch_size

    def execute(self, context: Any) -> list[list[int]]:
        items = (context["ti"].xcom_pull(task_ids=self.source) or {}).get(self.field) or []
        if not isinstance(items, list):
            raise AgentError(f"'{self.source}.{self.field}' is a {type(items).__name__}, not a list")
        size = self.batch_size
        batches = [[i, min(i + size, len(items))] for i in range(0, len(items), size)] or [[0, 0]]
        self.log.info(
            "%d item(s) of %s.%s in %d batch(es)", len(items), self.source, self.field, len(batches)
        )
        return batches
