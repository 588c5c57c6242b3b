"""Baton's OpenTelemetry spans, inside Airflow's own task spans, after OpenTelemetry's GenAI conventions.

With Airflow's traces on (``[traces] otel_on``, and the standard ``OTEL_EXPORTER_OTLP_*`` variables),
each task process runs its task inside a ``worker.<task_id>`` span; Baton's spans open inside it: the
step (``baton.step``), each item of a fan-out (``baton.subtask``), each agent call (``invoke_agent
<agent>``, the GenAI conventions' agent span) and, inside that, pydantic-ai's own spans: ``chat <model>``
per model request and ``execute_tool <tool>`` per tool call the model makes (MCP, browser).

The ``gen_ai.*`` attributes are the conventions' (operation, agent, provider, requested and answering
model, input and output tokens); Baton's own are ``baton.*`` (workflow, step, item, attempt, try, cost).
Content capture is off: never an instruction, a prompt, an output, a tool's arguments or result, or an
error's message (its class only). With traces off (no SDK tracer provider in the process) Baton's spans
are OpenTelemetry's no-op ones and pydantic-ai runs uninstrumented.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from opentelemetry import trace

_TRACER = trace.get_tracer("baton")
_INT64 = (-(2**63), 2**63 - 1)  # what OTLP carries: a larger int would fail the export of its whole batch
SEMCONV_VERSION = 5  # pydantic-ai's format of the GenAI conventions, pinned as common-ai pins it


def _scalar(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return max(_INT64[0], min(value, _INT64[1]))
    return value


def _attributes(values: dict[str, Any], prefix: str = "baton.") -> dict[str, Any]:
    return {
        f"{prefix}{key}": _scalar(value)
        for key, value in values.items()
        if isinstance(value, str | int | float | bool)
    }


@contextmanager
def _span(name: str, attributes: dict[str, Any]) -> Iterator[trace.Span]:
    from airflow.sdk.exceptions import (
        AirflowRescheduleException,
        AirflowSkipException,
        AirflowTaskTerminated,
        AirflowTaskTimeout,
    )

    with _TRACER.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except (AirflowSkipException, AirflowRescheduleException) as control:
            current.set_attribute("baton.ended", type(control).__name__)
            raise
        except (Exception, AirflowTaskTimeout, AirflowTaskTerminated) as error:
            current.set_attribute("error.type", type(error).__name__)
            current.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
            raise
        except BaseException as control:  # TaskDeferred, TaskAwaitingInput: the try goes on later
            current.set_attribute("baton.ended", type(control).__name__)
            raise


def span(name: str, **attributes: Any) -> Any:
    """A span ``name`` under the current one (the task's), with ``baton.<key>`` attributes. An error
    that leaves it (Airflow's timeout and termination too) marks it failed with the exception's class only
    (``error.type`` and the status): a message may quote a model's answer. Airflow's control flow (a skip,
    a deferral, a step parked for a person) is no error: the span keeps its status and says how it ended
    in ``baton.ended``."""
    return _span(name, _attributes(attributes))


def invoke_agent(agent: str, *, model: str | None = None, **attributes: Any) -> Any:
    """The span of one call of ``agent`` (``invoke_agent <agent>``): the conventions' attributes known
    before the call (the agent, the model asked for) and ``baton.<key>`` ones; see :func:`agent_used`."""
    known = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent}
    if model:
        known["gen_ai.request.model"] = model
    return _span(f"invoke_agent {agent}", {**known, **_attributes(attributes)})


def agent_used(
    current: trace.Span,
    *,
    provider: str | None = None,
    request_model: str | None = None,
    response_model: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    **attributes: Any,
) -> None:
    """What an agent call used, learnt when it ended: the provider (``gen_ai.provider.name``, and the
    deprecated ``gen_ai.system`` that older backends read), the models, the tokens; ``baton.<key>``
    for the rest (the cost at the roster's prices)."""
    if not current.is_recording():
        return
    used = {
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,
        "gen_ai.request.model": request_model,
        "gen_ai.response.model": response_model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    current.set_attributes({**_attributes(used, prefix=""), **_attributes(attributes)})


def annotate(current: trace.Span, **attributes: Any) -> None:
    """``baton.<key>`` attributes learnt during the span."""
    if current.is_recording():
        current.set_attributes(_attributes(attributes))


def traced(provider: Any = None) -> bool:
    """Whether spans go anywhere: a tracer provider was set (Airflow sets the SDK's when traces are on)."""
    provider = provider or trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def agent_capabilities() -> list[Any]:
    """The pydantic-ai capabilities an agent gets for its ``chat`` and ``execute_tool`` spans: none with
    traces off (pydantic-ai then does no tracing work at all)."""
    provider = trace.get_tracer_provider()
    if not traced(provider):
        return []
    return [_capability_class()(settings=_settings(provider))]


@cache
def _settings(provider: Any) -> Any:
    """pydantic-ai's instrumentation without content: no prompt, instruction, output, tool arguments or
    result, binary data or request parameters; only names, ids, models and counts."""
    from pydantic_ai.models.instrumented import InstrumentationSettings

    return InstrumentationSettings(
        tracer_provider=provider,
        include_content=False,
        include_binary_content=False,
        include_model_request_parameters=False,
        version=SEMCONV_VERSION,
    )


@cache
def _capability_class() -> type:
    from pydantic_ai.capabilities import Instrumentation

    class ModelAndToolSpans(Instrumentation):
        """pydantic-ai's instrumentation less its own agent-run span: Baton's ``invoke_agent`` span,
        which also covers a call that never reached the model, is the agent's. Being an
        ``Instrumentation``, it also stands in for the one common-ai adds with ``[common.ai]
        otel_export_enabled`` (whose content capture could be on)."""

        async def wrap_run(self, ctx: Any, *, handler: Any) -> Any:
            return await handler()

    return ModelAndToolSpans
