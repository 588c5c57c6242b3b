"""StepOperator: one Baton step as an Airflow task. It holds the compiled step and delegates its try to
:class:`baton.coordination.step.StepRun`, which it imports in ``execute()``: parsing a DAG of these
operators loads no runtime (common-ai, pydantic-ai, the store's driver).

It was called ``AgentOperator`` until 0.2, the name of common-ai's operator that runs one pydantic-ai
agent; that name stays importable from :mod:`baton.operators`, deprecated (:data:`baton.operators.MOVED`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from baton.errors import AgentError
from baton.plan import CompiledStep


class StepOperator(BaseOperator):
    """Run one step of a Baton workflow: render its instruction, do it (an agent, a skill, a browser, a
    person), check its output, write its context, emit its assets, and record every event of it.

    :param step: the compiled step (everything it needs, from the template and the roster).
    :param batch: ``[start, end)`` of the for_each list this task runs (the mapped argument), or None.
    """

    ui_color = "#e7effd"
    records_own_events = True  # the listener leaves this task's start and end to it
    # Empty on purpose: a step's Jinja is the template's (sandboxed, bounded, over the step's own scope),
    # rendered by the step at run time, never by Airflow's templating of operator fields.
    template_fields: Sequence[str] = ()

    def __init__(self, *, step: CompiledStep | dict[str, Any], batch: list[int] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.step = step if isinstance(step, CompiledStep) else CompiledStep.model_validate(step)
        self.batch = batch
        self._try: Any = None  # the StepRun of this try, in the task's process
        if self.step.spec.evaluate is not None:  # its live checks, after Airflow knows of the success
            given = self.on_success_callback
            given = [] if given is None else list(given) if isinstance(given, list) else [given]
            self.on_success_callback = [*given, _score_live]

    def execute(self, context: Any) -> dict[str, Any]:
        return self._run(context).execute()

    def resume_escalation(self, context: Any, event: dict[str, Any], kind: str, state: dict[str, Any]) -> Any:
        """The person answered (or the timeout applied the defaults): the step goes on from there."""
        return self._run(context).resume(event, kind, state)

    def _run(self, context: Any) -> Any:
        from baton.coordination.step import StepRun  # deferred: parsing a DAG file loads no runtime

        self._try = StepRun(self.step, context, batch=self.batch, ttl=self.execution_timeout, log=self.log)
        return self._try


def _score_live(context: Any) -> None:
    """A step's ``on_success_callback``: its live checks on the output its try succeeded with (Airflow has
    sent the success before it runs callbacks, so no downstream step waits for them)."""
    task = context["task"]
    if getattr(task, "_try", None) is not None:
        task._try.score_live()


class FanOutBatches(BaseOperator):
    """The ``[start, end)`` batches a for_each step with ``batch_size`` is mapped over.

    Airflow maps only over a task's return value, and the list's step returns its whole output, so
    this small task turns the list's length into batches.
    """

    ui_color = "#f4f1e8"
    template_fields: Sequence[str] = ()  # nothing to render: the source, field and size are the template's

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
