"""The saga's task at run time (``SagaOperator`` delegates to :class:`SagaTask`): undo a failed run's
completed steps (:mod:`baton.coordination.saga`), and when a compensation fails every try, alert and ask
a person (Required Actions page): done by hand, retry, or leave it undone.

The ``compensation`` kind of :mod:`~baton.coordination.questions`: the answer resumes the saga's task,
which goes on undoing from where it stopped.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from baton.coordination import evaluation
from baton.coordination.questions import (
    Answer,
    Handler,
    Question,
    ask,
    awaiting,
    handler_for,
    register,
    requested_payload,
)
from baton.coordination.saga import Outcome, Saga, saga_for_run
from baton.errors import AgentError
from baton.events.event import Event
from baton.events.store import EventStore
from baton.hooks.airflow_runs import conf_of_run

DONE_BY_HAND = "I undid it by hand"
RETRY = "Retry the compensation"
LEAVE = "Leave it undone"


def compensation_question(saga: Saga, outcome: Outcome, given_up: list[str]) -> Question:
    """Undoing ``outcome.stuck`` failed every try: a person undoes it by hand, retries, or leaves it."""
    target = outcome.stuck.name
    return Question(
        kind=Compensation.kind,
        subject=f"{saga.workflow}: the compensation of {target} keeps failing",
        body=(
            f"**Workflow** `{saga.workflow}` · **run** `{saga.run_id}`\n\n"
            f"The run failed and its completed steps are being undone, newest first. Undoing "
            f"**{target}** failed every try:\n\n{outcome.error}\n\n"
            f"Still to undo after it: {', '.join(outcome.left) or 'nothing'}.\n\n"
            "Undo it by hand and say so, retry the compensation, or leave it undone."
        ),
        options=[DONE_BY_HAND, RETRY, LEAVE],
        state={"target": target, "given_up": given_up},
        reason=outcome.error[:1000],
    )


class SagaTask:
    """One try of the saga's task: ``operator`` is the ``SagaOperator`` (its plan, its run id param, its
    log), ``context`` Airflow's task context."""

    def __init__(self, operator: Any, context: Any):
        self.operator = operator
        self.context = context
        self.log = operator.log
        self.saga = self._saga()

    def execute(self) -> dict[str, Any]:
        """This run's saga when a step failed for good (skipped when none did), or the named run's."""
        if self.operator.run_id_param is None:
            failed = self._failed_steps()
            if not failed:
                raise AirflowSkipException("No step failed: nothing to compensate.")
            if (case := evaluation.current()) is not None:  # its steps were recorded or only asked a model
                raise AirflowSkipException(
                    f"Steps {failed} failed in evaluation case '{case.id}': nothing to undo."
                )
            self.log.warning("Steps %s failed: compensating the completed steps, newest first", failed)
        return self.conclude(self.saga.run(), given_up=[])

    def resume(self, event: Any, kind: str, state: dict[str, Any]) -> Any:
        """A person answered: the handler of the question's kind goes on from there."""
        return handler_for(kind).resume(self, event, state)

    def conclude(self, outcome: Outcome, given_up: list[str]) -> dict[str, Any]:
        """Ask a person about a stuck compensation; else record the saga's end: the manual DAG's task
        returns its summary, a failed run's fails (the run stays failed, its saga recorded)."""
        saga = self.saga
        if outcome.stuck is not None:
            saga.alert_stuck(outcome, "Compensation stuck; a person is asked.", self.context["ti"].try_number)
            raise self._ask(outcome, given_up)
        done = saga.finish(outcome, given_up)
        summary = {
            "run_id": saga.run_id,
            "outcome": done["outcome"],
            "compensated": done["compensated"],
            "left_undone": given_up,
        }
        self.log.info("Saga of run %s: %s", saga.run_id, summary)
        if self.operator.run_id_param is not None:
            return summary
        undone = f"; left undone: {', '.join(given_up)}" if given_up else ""
        raise AirflowFailException(
            f"The run failed at {', '.join(saga.failed_steps()) or 'a step'}; "
            f"compensated {len(summary['compensated'])} completed step(s) newest first "
            f"({', '.join(summary['compensated']) or 'none declared compensate'}){undone}."
        )

    # ---------------------------------------------------------------------------------------------

    def _run_id(self) -> str:
        param = self.operator.run_id_param
        if param is None:
            return self.context["ti"].run_id
        run_id = (self.context["params"].get(param) or "").strip()
        if not run_id:
            raise AgentError(f"Give the id of the run to compensate in the '{param}' param.")
        return run_id

    def _saga(self) -> Saga:
        context, plan = self.context, self.operator.plan
        store = EventStore.from_airflow()
        run_id = self._run_id()
        if plan is not None:
            return Saga(
                store,
                run_id,
                plan,
                inputs=dict(context["params"]),
                saga_id=f"auto.{context['ti'].try_number}",
                trigger="run_failed",
                try_number=context["ti"].try_number,
            )
        return saga_for_run(store, run_id, saga_id=f"manual.{context['ti'].run_id}", read_conf=conf_of_run)

    def _failed_steps(self) -> list[str]:
        """The steps of this run that ended failed: Airflow counts them, the events name them."""
        ti = self.context["ti"]
        try:
            failed = ti.get_ti_count(dag_id=ti.dag_id, run_ids=[ti.run_id], states=["failed"])
        except Exception:  # no task-state API here: the events alone say it
            self.log.info("Task states unavailable; reading the failures from Baton's events")
            failed = None
        if failed == 0:
            return []
        return self.saga.failed_steps() or ["a step"]

    def _ask(self, outcome: Outcome, given_up: list[str]) -> BaseException:
        question = compensation_question(self.saga, outcome, given_up)
        ask(self.context, question)
        discriminator = f"compensation|{outcome.stuck.name}|{len(given_up)}"
        payload = requested_payload(question)
        requested = Event.of_task(
            self.context["ti"], "approval.requested", payload=payload, discriminator=discriminator
        )
        self.saga.store.append([requested])
        return awaiting(question)


class Compensation(Handler):
    """Done by hand: the target is marked undone by that person; retry: the saga tries it again; leave
    (or a timeout with no default): it is given up. The saga then goes on with the older targets."""

    kind: ClassVar[str] = "compensation"

    def resume(self, host: SagaTask, event: Any, state: dict[str, Any]) -> Any:
        answer = Answer.of(event, self.kind, state)
        saga, name = host.saga, state["target"]
        target = next((t for t in saga.targets() if t.name == name), None)
        given_up = list(state.get("given_up") or [])
        choice = answer.chosen[0] if answer.chosen else LEAVE  # a timeout with no default leaves it undone
        host.log.info("%s chose '%s' for the compensation of %s", answer.by or "the timeout", choice, name)
        if choice == DONE_BY_HAND and target is not None:
            saga.mark_done(target, answer.by)
        elif choice != RETRY:
            given_up.append(name)
        return host.conclude(saga.run(skip=set(given_up)), given_up)


register(Compensation())
