"""SagaOperator: the last task of a workflow whose steps declare ``compensate:``.

It runs once every step is done (trigger rule ``all_done``). When no step failed it is skipped and
the run succeeds. When one failed for good it undoes the completed steps, newest first
(:mod:`baton.coordination.saga`), then fails, so the run ends failed with its saga recorded. A
compensation that fails every try raises an alert and asks a person (Required Actions page): done by
hand, retry, or leave it undone.

With ``run_id_param`` set it is the task of the ``baton_compensate`` DAG instead: an operator
compensates any past run on purpose from the Airflow UI (trigger with the run's id).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from baton.plan import SagaPlan

DONE_BY_HAND = "I undid it by hand"
RETRY = "Retry the compensation"
LEAVE = "Leave it undone"


class SagaOperator(BaseOperator):
    """Compensate the completed steps of a failed run (this run, or the one named in the params).

    :param plan: the workflow's saga (its steps that declare ``compensate``); None for the manual DAG,
        which reads the run's workflow from its events.
    :param run_id_param: compensate the run whose id is this param (the manual DAG), not this run.
    """

    ui_color = "#fbe9e7"
    template_fields: Sequence[str] = ()  # nothing to render: the plan is the template's, the run id a param

    def __init__(
        self,
        *,
        workflow: str,
        plan: SagaPlan | None = None,
        run_id_param: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow = workflow
        self.plan = plan
        self.run_id_param = run_id_param

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        saga = self._saga(context)
        if self.run_id_param is None:
            failed = self._failed_steps(context, saga)
            if not failed:
                raise AirflowSkipException("No step failed: nothing to compensate.")
            self.log.warning("Steps %s failed: compensating the completed steps, newest first", failed)
        return self._conclude(context, saga, saga.run(), given_up=[])

    def resume_escalation(self, context: Any, event: dict[str, Any], kind: str, state: dict[str, Any]) -> Any:
        """A person answered about a compensation that kept failing: go on from there."""
        saga = self._saga(context)
        target = next((t for t in saga.targets() if t.name == state["target"]), None)
        chosen = list(event.get("chosen_options") or [])
        by = event.get("responded_by_user") or {}
        who = (by.get("name") or by.get("id") or "") if isinstance(by, dict) else str(by)
        given_up = list(state.get("given_up") or [])
        choice = chosen[0] if chosen else LEAVE  # a timeout with no default leaves it undone
        self.log.info(
            "%s chose '%s' for the compensation of %s", who or "the timeout", choice, state["target"]
        )
        if choice == DONE_BY_HAND and target is not None:
            saga.mark_done(target, who)
        elif choice != RETRY:
            given_up.append(state["target"])
        return self._conclude(context, saga, saga.run(skip=set(given_up)), given_up)

    # ---------------------------------------------------------------------------------------------

    def _run_id(self, context: Any) -> str:
        if self.run_id_param is None:
            return context["ti"].run_id
        run_id = (context["params"].get(self.run_id_param) or "").strip()
        if not run_id:
            from baton.errors import AgentError

            raise AgentError(f"Give the id of the run to compensate in the '{self.run_id_param}' param.")
        return run_id

    def _saga(self, context: Any) -> Any:
        from baton.coordination.saga import Saga
        from baton.events import EventStore

        store = EventStore.from_airflow()
        run_id = self._run_id(context)
        if self.plan is not None:
            return Saga(
                store,
                run_id,
                self.plan,
                inputs=dict(context["params"]),
                saga_id=f"auto.{context['ti'].try_number}",
                trigger="run_failed",
            )
        from baton.coordination.saga import saga_for_run
        from baton.hooks.airflow_runs import conf_of_run

        return saga_for_run(store, run_id, saga_id=f"manual.{context['ti'].run_id}", read_conf=conf_of_run)

    def _failed_steps(self, context: Any, saga: Any) -> list[str]:
        """The steps of this run that ended failed: Airflow counts them, the events name them."""
        ti = context["ti"]
        try:
            failed = ti.get_ti_count(dag_id=ti.dag_id, run_ids=[ti.run_id], states=["failed"])
        except Exception:  # no task-state API here: the events alone say it
            self.log.info("Task states unavailable; reading the failures from Baton's events")
            failed = None
        if failed == 0:
            return []
        return saga.failed_steps() or ["a step"]

    def _conclude(self, context: Any, saga: Any, outcome: Any, given_up: list[str]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        if outcome.stuck is not None:
            saga.alert_stuck(outcome, "Compensation stuck; a person is asked.", context["ti"].try_number)
            raise self._ask(context, saga, outcome, given_up)
        done = saga.finish(outcome, given_up)
        summary = {
            "run_id": saga.run_id,
            "outcome": done["outcome"],
            "compensated": done["compensated"],
            "left_undone": given_up,
        }
        self.log.info("Saga of run %s: %s", saga.run_id, summary)
        if self.run_id_param is not None:
            return summary
        undone = f"; left undone: {', '.join(given_up)}" if given_up else ""
        raise AirflowFailException(
            f"The run failed at {', '.join(saga.failed_steps()) or 'a step'}; "
            f"compensated {len(summary['compensated'])} completed step(s) newest first "
            f"({', '.join(summary['compensated']) or 'none declared compensate'}){undone}."
        )

    def _ask(self, context: Any, saga: Any, outcome: Any, given_up: list[str]) -> BaseException:
        from baton.coordination import escalation
        from baton.events.event import Event

        target = outcome.stuck.name
        question = escalation.Question(
            kind="compensation",
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
        escalation.ask(context, question)
        ti = context["ti"]
        saga.store.append(
            [
                Event.of_task(
                    ti,
                    "approval.requested",
                    payload=escalation.requested_payload(question),
                    discriminator=f"compensation|{target}|{len(given_up)}",
                )
            ]
        )
        return escalation.awaiting(question)
