"""baton.tracing with OpenTelemetry's SDK and its in-memory exporter: nesting, attributes, errors."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from baton import tracing


@pytest.fixture(scope="module")
def exporter():
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the first test of this process to set one
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_spans_nest_and_keep_only_scalar_attributes(exporter):
    exporter.clear()
    with (
        tracing.span("baton.step", step="assess", try_number=2, agent=None, secret={"prompt": "x"}) as outer,
        tracing.span("baton.model_call", agent="a") as inner,
    ):
        tracing.annotate(inner, input_tokens=54, output=["not", "kept"])
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["baton.model_call"].parent.span_id == outer.get_span_context().span_id
    assert dict(spans["baton.step"].attributes) == {"baton.step": "assess", "baton.try_number": 2}
    assert dict(spans["baton.model_call"].attributes) == {"baton.agent": "a", "baton.input_tokens": 54}


def test_an_error_marks_the_span_with_its_class_and_never_its_message(exporter):
    exporter.clear()
    with (
        pytest.raises(ValueError, match="the model answered 'secret'"),
        tracing.span("baton.subtask", item="i1"),
    ):
        raise ValueError("the model answered 'secret'")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == trace.StatusCode.ERROR
    assert span.status.description == "ValueError"
    assert span.events == ()  # no exception event: its message could quote an answer


def _control(kind: str) -> BaseException:
    from airflow.sdk.exceptions import AirflowSkipException, TaskAwaitingInput, TaskDeferred

    if kind == "AirflowSkipException":
        return AirflowSkipException("its condition is false")
    if kind == "TaskDeferred":
        return TaskDeferred(trigger=None, method_name="resume")
    return TaskAwaitingInput(method_name="resume")


@pytest.mark.parametrize("kind", ["AirflowSkipException", "TaskDeferred", "TaskAwaitingInput"])
def test_airflows_control_flow_is_no_error_and_the_span_says_how_it_ended(exporter, kind):
    exporter.clear()
    with pytest.raises(type(_control(kind))), tracing.span("baton.step", step="sign_off"):
        raise _control(kind)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == trace.StatusCode.UNSET
    assert span.attributes["baton.ended"] == kind
