"""SagaOperator: the last task of a workflow whose steps declare ``compensate:``.

It runs once every step is done (trigger rule ``all_done``). When no step failed it is skipped and
the run succeeds. When one failed for good it undoes the completed steps, newest first
(:mod:`baton.coordination.saga`), then fails, so the run ends failed with its saga recorded. A
compensation that fails every try raises an alert and asks a person (Required Actions page): done by
hand, retry, or leave it undone. The try itself is :class:`baton.coordination.compensation.SagaTask`'s.

With ``run_id_param`` set it is the task of the ``baton_compensate`` DAG instead: an operator
compensates any past run on purpose from the Airflow UI (trigger with the run's id).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from baton.plan import SagaPlan


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
        return self._task(context).execute()

    def resume_escalation(self, context: Any, event: dict[str, Any], kind: str, state: dict[str, Any]) -> Any:
        """A person answered about a compensation that kept failing: go on from there."""
        return self._task(context).resume(event, kind, state)

    def _task(self, context: Any) -> Any:
        from baton.coordination.compensation import SagaTask  # deferred: parsing a DAG file loads no runtime

        return SagaTask(self, context)
