"""One try of one step, as ``StepOperator.execute()`` delegates it: read, decide, call, check, write, record.

:class:`StepRun` holds what the try knows (the compiled step, Airflow's task context, its recorder, the
Jinja scope) and composes the runtime parts, each of which takes the compiled step whole: the call
(:mod:`baton.agents.call`), routing and load slots (:mod:`baton.coordination.routing`), the fan-out
(:mod:`baton.coordination.fanout`), the shared context (:mod:`baton.context.step`) and a person's
decisions (:mod:`baton.coordination.questions`: a failure that calls for a person asks them, and their
answer goes to the handler of its kind; the modules of the kinds a step asks are imported here, which
registers them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException, TaskAwaitingInput, TaskDeferred

from baton import metrics, templating, tracing
from baton.agents.call import call_step
from baton.agents.skills import final
from baton.assets import emit
from baton.context.step import read_context, write_context
from baton.coordination import (
    approval,
    conflict,
    evaluation,
    live,
    partial_failure,
    questions,
    spend,
    variants,
)
from baton.coordination.fanout import FanOut
from baton.coordination.requirements import check_requirements
from baton.coordination.routed import choose_for_step, route_and_take, run_in_slot
from baton.coordination.scope import jinja_scope
from baton.errors import BudgetExceeded
from baton.events.recorder import StepRecorder
from baton.events.store import EventStore
from baton.plan import CompiledStep
from baton.spec.roster import Agent
from baton.spec.step import PersonStep

# The modules of the kinds of question a step may ask, whose handlers they registered when imported.
ASKS = (approval, conflict, partial_failure, spend)


class StepRun:
    """One try of ``step`` in the task whose Airflow context is ``context``.

    :param batch: ``[start, end)`` of a for_each list this task runs (a mapped task's batch).
    :param ttl: how long a load slot may be held (the task's ``execution_timeout``, else an hour).
    """

    def __init__(
        self,
        step: CompiledStep,
        context: Any,
        *,
        batch: list[int] | None = None,
        ttl: timedelta | None = None,
        log: logging.Logger | logging.LoggerAdapter | None = None,
    ):
        self.step = step
        self.context = context
        self.batch = batch
        self.ttl = ttl or timedelta(hours=1)
        self.log = log or logging.getLogger(__name__)
        self.output: Any = None  # what the try's start succeeded with
        self.recorder = StepRecorder(
            EventStore.from_airflow(),
            context,
            workflow=step.workflow,
            template_version=step.template_version,
            agent=step.agent.name if step.agent else None,
            pool=step.pool,
        )

    # --- the try ---------------------------------------------------------------------------------

    @contextmanager
    def _observed(self, **extra: Any) -> Iterator[None]:
        """The try's span and metrics (its duration, a failure), around its start or its resumption."""
        step = self.step
        with (
            tracing.span(
                "baton.step",
                workflow=step.workflow,
                step=step.task_id,
                agent=step.agent.name if step.agent else None,
                try_number=getattr(self.context.get("ti"), "try_number", None),
                fan_out=bool(step.fan_out),
                **extra,
            ),
            metrics.step_try(step.workflow, step.task_id),
        ):
            yield

    def execute(self) -> dict[str, Any]:
        with self._observed():
            return self.start()

    def start(self) -> dict[str, Any]:
        """The try from its start: the step's work, or the question that parks it."""
        step, recorder = self.step, self.recorder
        try:
            spend.free_earlier_tries(recorder)  # a killed try's reservations (this one has none yet)
            scope = self.scope()
            versions = self.read_context(scope)
            if step.spec.when and not templating.evaluate(step.spec.when, scope):
                recorder.start()
                raise AirflowSkipException(
                    f"Step '{step.task_id}' skipped: its condition `{step.spec.when}` is false."
                )
            if (recorded := evaluation.recorded_output(step.spec.id)) is not None:
                recorder.start()  # an evaluation case's recorded output (a business system's): not run
                output = recorded
            elif step.fan_out:
                output = self.fan_out(scope, versions)
            elif isinstance(step.spec, PersonStep):
                recorder.start()
                raise self.ask(approval.review_question(step, self.context, scope, None))
            else:
                if step.spec.variants is not None:
                    self.step = step = self.arm(scope)
                check_requirements(step, scope, after=False)
                output = self.call(scope)
                check_requirements(step, {**scope, "output": output}, after=True)
                if step.spec.reviewed and evaluation.current() is None:  # an evaluation judges it instead
                    agent = recorder.common["agent"]
                    who = f"agent {agent}" if agent else f"skill {step.skill}"
                    raise self.ask(approval.review_question(step, self.context, scope, output, who))
            self.finish(scope, output, versions)
        except (TaskAwaitingInput, TaskDeferred):
            raise
        except AirflowSkipException as skip:
            recorder.skipped(str(skip))
            raise
        except BaseException as error:
            stop = questions.on_failure(error, self)  # a person to ask, or a wait, instead of failing
            if isinstance(stop, questions.Question):
                raise self.ask(stop) from error
            if stop is not None:
                raise stop from error
            recorder.failed(error)
            raise
        recorder.succeeded(output)
        self.output = output  # its live checks score it once Airflow knows of the success (score_live)
        return output

    def resume(self, event: Any, kind: str, state: dict[str, Any]) -> Any:
        """The person answered (or the timeout applied the defaults), or what the step waited for came:
        the handler of the question's kind goes on from there."""
        with self._observed(resumed=kind):
            return questions.handler_for(kind).resume(self, event, state)

    def answered(self, handler: questions.StepHandler, answer: questions.Answer) -> Any:
        """A person's answer to the step's question: recorded (with its verdict on an agent's work, which
        learned routing learns), then the step's output from it, written as an agent's would be."""
        kind = answer.kind
        try:
            answered = [self.recorder.event("approval.answered", answer.payload(), discriminator=kind)]
            if (judged := handler.verdict(answer)) is not None:
                answered.append(self.recorder.event("feedback.recorded", judged, discriminator=kind))
            self.recorder.record(*answered)
            answer.raise_if_refused(self.step.task_id)
            scope = self.scope()
            versions = self.read_context(scope)
            output = handler.apply(answer, self, scope, versions)
            if handler.finishes:
                self.finish(scope, output, versions)
        except (TaskAwaitingInput, TaskDeferred):
            raise
        except BaseException as error:
            self.recorder.failed(error)
            raise
        self.recorder.succeeded(output)
        return output

    def score_live(self) -> None:
        """The step's live checks (``evaluate``) on the output its try started with and succeeded with, once
        Airflow was told of the success (the operator's ``on_success_callback``)."""
        if self.output is not None:
            live.score_after(self.step, self.output, self.recorder, self.context, self.ttl)

    # --- the parts -------------------------------------------------------------------------------

    def arm(self, scope: dict[str, Any]) -> CompiledStep:
        """The step as this try's arm of its variants has it: the one assigned to the run (recorded), or in an
        evaluation the arm it names (else the step as written)."""
        if (case := evaluation.current()) is not None:
            arm = case.arms.get(self.step.spec.id)
            return self.step if arm is None else variants.applied(self.step, arm)
        step, assigned = variants.choose(self.step, self.recorder, scope)
        self.recorder.record(assigned)
        return step

    def scope(self) -> dict[str, Any]:
        """The Jinja scope of this try: ``inputs``, ``steps``, ``context``, ``trigger``, ``run``."""
        return jinja_scope(self.step, self.context)

    def read_context(self, scope: dict[str, Any]) -> dict[str, int]:
        return read_context(self.recorder.store, self.step, self.context, scope)

    def call(self, scope: dict[str, Any], agent: Agent | None = None) -> dict[str, Any]:
        """The step's work, once: its skill, or an agent (``agent``, the named one, or the router's
        choice) holding one of its load slots; a failure counts against the agent's circuit breaker. A
        routed call its agent's budget refuses with ``at_limit: fallback`` goes, once, to the cheapest
        capable agent whose call fits (``prefer: cheap``, that agent left out)."""
        step, recorder = self.step, self.recorder
        if agent is None and step.routed:
            agent = self.reassigned()  # a person chose this try's agent on the Coordination page
        if agent is None and step.agent is None and not step.routed:  # a skill step
            recorder.start()
            return call_step(step, None, scope, self.context, recorder, self.log)
        holder = f"{recorder.common['run_id']}/{step.task_id}"
        guard = spend.guard_for(recorder, self.context, self.ttl)

        def work(chosen: Agent) -> Any:
            return lambda: call_step(step, chosen, scope, self.context, recorder, self.log, guard)

        if agent is not None or not step.routed:  # a person's choice, or the template's agent
            agent, selected = choose_for_step(step, recorder, self.tried(), agent, self.log)
            recorder.common["agent"] = agent.name
            events = [*recorder.start_events(), selected]
            return run_in_slot(recorder, agent, holder, self.ttl, events, work(agent))
        tried = self.tried()  # routed: the choice and its slot in one transaction
        agent, slot = route_and_take(step, recorder, tried, holder, self.ttl, self.log)
        try:
            return run_in_slot(recorder, agent, holder, self.ttl, [], work(agent), slot)
        except BudgetExceeded as error:
            budget = getattr(error, "budget", None)
            if budget is None or budget.at_limit != "fallback":
                raise
        tried = {**tried, agent.name: f"budget '{budget.name}' refused its call"}
        agent, slot = route_and_take(step, recorder, tried, holder, self.ttl, self.log, prefer="cheap")
        try:
            return run_in_slot(recorder, agent, holder, self.ttl, [], work(agent), slot)
        except BudgetExceeded as error:  # the cheap one does not fit either: no retry spends more
            raise final(BudgetExceeded)(str(error)) from None

    def fan_out(self, scope: dict[str, Any], versions: dict[str, int]) -> dict[str, Any]:
        """A for_each batch: its items as concurrent calls, then the join (context merged, the
        partial-failure policy applied)."""
        return self.fan(scope).run_batch(self.batch, versions, ask=self.ask)

    def fan(self, scope: dict[str, Any]) -> FanOut:
        """The fan-out of this try's batch (its items' events, what earlier tries finished)."""
        return FanOut(self.step, self.context, scope, self.recorder, self.ttl, self.log)

    def finish(self, scope: dict[str, Any], output: Any, versions: dict[str, int]) -> None:
        """After the output is known: the context writes (a for_each's were merged at its join), and
        the asset events."""
        if not self.step.fan_out:
            write_context(self.recorder.store, self.step, self.context, scope, output, versions, self.log)
        emit(self.step, self.context, scope, output, self.recorder)

    def reassigned(self) -> Agent | None:
        """The agent a person chose for this try (``step.reassigned`` after the previous try), if it is one
        of the step's candidates; None otherwise (the router chooses)."""
        common = self.recorder.common
        if common["map_index"] != -1:
            return None
        found = self.recorder.store.read(
            common["run_id"], step=(common["step"], -1), types=["step.reassigned"]
        )
        names = [
            e.payload.get("agent")
            for e in found
            if getattr(e, "payload", {}).get("after_try") == common["try_number"] - 1
        ]
        by_name = {a.name: a for a in self.step.candidates}
        return by_name.get(names[-1]) if names else None

    def tried(self) -> dict[str, str]:
        """Agents chosen for this step in earlier tries of this run (which therefore did not succeed)."""
        common = self.recorder.common
        if common["try_number"] <= 1:  # the first try (Airflow counts from 1): none before it to read
            return {}
        chosen = self.recorder.store.read(
            common["run_id"],
            step=(common["step"], common["map_index"]),
            types=["agent.selected"],
            before_try=common["try_number"],
        )
        return {
            e.agent: f"failed try {e.try_number} of this step" for e in chosen if getattr(e, "agent", None)
        }

    def ask(self, question: questions.Question) -> BaseException:
        """Write the request for a person and its event; the exception that parks the task (in an evaluation
        case, where nobody answers, the error the step fails with)."""
        if evaluation.current() is not None:
            return evaluation.refuse_question(self.step.spec.id, question.kind, question.subject)
        questions.ask(self.context, question)
        self.recorder.record(
            self.recorder.event(
                "approval.requested", questions.requested_payload(question), discriminator=question.kind
            )
        )
        self.log.info("Step %s asks a person (%s): %s", self.step.task_id, question.kind, question.subject)
        return questions.awaiting(question)
