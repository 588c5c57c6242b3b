"""Baton's OpenTelemetry spans, inside Airflow's own task spans.

With Airflow's traces on (``[traces] otel_on``, and the standard ``OTEL_EXPORTER_OTLP_*`` variables),
each task process runs its task inside a ``worker.<task_id>`` span; Baton's spans open inside it: the
step (``baton.step``), each item of a fan-out (``baton.subtask``) and each model call
(``baton.model_call``). Their attributes name the workflow, the step, the agent, the item, the try and
what a call used (model, tokens, cost); never an instruction, a prompt, an output or a person's answer. With
traces off, OpenTelemetry's no-op tracer makes each span a few attribute lookups.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

_TRACER = trace.get_tracer("baton")


def _attributes(values: dict[str, Any]) -> dict[str, Any]:
    return {
        f"baton.{key}": value for key, value in values.items() if isinstance(value, str | int | float | bool)
    }


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span ``name`` under the current one (the task's), with ``baton.<key>`` attributes. An error
    that leaves it marks it failed with the exception's class only: a message may quote a model's answer.
    Airflow's control flow (a skip, a deferral, a step parked for a person) is no error: the span keeps
    its status and says how it ended in ``baton.ended``."""
    from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSkipException

    with _TRACER.start_as_current_span(
        name, attributes=_attributes(attributes), record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except (AirflowSkipException, AirflowRescheduleException) as control:
            current.set_attribute("baton.ended", type(control).__name__)
            raise
        except Exception as error:
            current.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
            raise
        except BaseException as control:  # TaskDeferred, TaskAwaitingInput: the try goes on later
            current.set_attribute("baton.ended", type(control).__name__)
            raise


def annotate(current: trace.Span, **attributes: Any) -> None:
    """Attributes learnt during the span (a call's tokens and cost)."""
    current.set_attributes(_attributes(attributes))
