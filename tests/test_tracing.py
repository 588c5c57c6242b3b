"""baton.tracing with OpenTelemetry's SDK and its in-memory exporter: nesting, the GenAI conventions'
attributes of a real agent call (common-ai's operator and the fan-out's direct calls, a tool the model
calls), no content in any span, errors, Airflow's control flow, and nothing at all with traces off."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import TypeAdapter

from baton import tracing
from baton.plan import CompiledStep
from baton.spec.roster import Agent
from baton.spec.step import Step

SECRET = "Zq7-planted-secret"  # in the instruction, the prompt, the tool's arguments and result, the output


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
        tracing.span("baton.subtask", agent="a") as inner,
    ):
        tracing.annotate(inner, attempt=1, output=["not", "kept"])
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["baton.subtask"].parent.span_id == outer.get_span_context().span_id
    assert dict(spans["baton.step"].attributes) == {"baton.step": "assess", "baton.try_number": 2}
    assert dict(spans["baton.subtask"].attributes) == {"baton.agent": "a", "baton.attempt": 1}


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
    assert span.attributes["error.type"] == "ValueError"
    assert span.events == ()  # no exception event: its message could quote an answer


def test_a_timed_out_try_is_a_failed_span(exporter):
    from airflow.sdk.exceptions import AirflowTaskTimeout

    exporter.clear()
    with pytest.raises(AirflowTaskTimeout), tracing.span("baton.step", step="slow"):
        raise AirflowTaskTimeout("Timeout, PID: 1")
    (span,) = exporter.get_finished_spans()
    assert (span.status.status_code, span.attributes["error.type"]) == (
        trace.StatusCode.ERROR,
        "AirflowTaskTimeout",
    )
    assert "baton.ended" not in span.attributes


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
    assert "error.type" not in span.attributes


# --- a real agent call ---------------------------------------------------------------------------

AGENT = Agent(
    name="assessor",
    model="baton:offline",
    description=f"Knows {SECRET}-description",
    system_prompt=f"You guard {SECRET}-instruction",
    cost={"input_per_1k": 1.0, "output_per_1k": 2.0},
)


def _step() -> CompiledStep:
    spec = {"id": "assess", "agent": "assessor", "instruction": "Assess", "output": {"verdict": "string"}}
    return CompiledStep(
        workflow="lead_check", template_version=1, spec=TypeAdapter(Step).validate_python(spec), agent=AGENT
    )


class _TaskInstance(SimpleNamespace):
    """What common-ai's operator and Baton read and write of a task instance: its XComs in a dict."""

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, key: str, **_: Any) -> Any:
        return self.xcoms.get(key)


class _Recorder(list):
    def event(self, kind: str, payload: dict[str, Any], discriminator: str = "") -> tuple:
        return kind, payload

    def record(self, event: tuple) -> None:
        self.append(event)


def lookup_tools(agent: dict[str, Any], record: Any) -> list[Any]:
    """A toolset builder (``TOOLSET_BUILDERS``): one tool, whose result quotes its argument."""
    from pydantic_ai.toolsets import FunctionToolset

    def lookup(query: str) -> str:
        if "fail" in query:
            raise ValueError(f"lookup refused {query}")
        return f"found {query}-result"

    return [FunctionToolset([lookup])]


@pytest.fixture
def calls_a_tool(monkeypatch):
    """The offline model first calls ``lookup`` with the planted secret (or with ``fail`` in it), then
    answers; the agent gets the tool through Baton's toolset builders."""
    from pydantic_ai.messages import ModelResponse, ToolCallPart, ToolReturnPart

    from baton.agents import tools
    from baton.hooks import offline

    def hook(query: str):
        async def first_call(messages: list, info: Any) -> ModelResponse | None:
            answered = any(isinstance(p, ToolReturnPart) for m in messages for p in m.parts)
            return None if answered else ModelResponse(parts=[ToolCallPart("lookup", {"query": query})])

        monkeypatch.setattr(offline, "REQUEST_HOOKS", [first_call])
        monkeypatch.setattr(tools, "TOOLSET_BUILDERS", ["tests.test_tracing:lookup_tools"])

    return hook


def _run_llm_step(prompt: str) -> tuple[dict[str, Any], _Recorder]:
    from baton.agents.llm import run_llm_step

    ti = _TaskInstance(dag_id="lead_check", task_id="assess", run_id="r1", map_index=-1, try_number=1)
    ti.xcoms, recorder = {}, _Recorder()
    context = {"ti": ti, "task_instance": ti}
    return run_llm_step(_step(), AGENT, prompt, context, recorder), recorder


def _everything_said(spans) -> str:
    """Every name, attribute, status and event of ``spans``, as one text to search."""
    said = [
        [s.name, dict(s.attributes), s.status.description, [[e.name, dict(e.attributes)] for e in s.events]]
        for s in spans
    ]
    return json.dumps(said, default=str)


GEN_AI_CALL = {
    "gen_ai.operation.name": "invoke_agent",
    "gen_ai.agent.name": "assessor",
    "gen_ai.provider.name": "function",  # pydantic-ai's name for the offline model's provider
    "gen_ai.system": "function",
    "gen_ai.request.model": "baton:offline",
    "gen_ai.response.model": "baton:offline",
}


@pytest.mark.parametrize("common_ai_capture", [False, True], ids=["plain", "common-ai-capture-on"])
def test_an_llm_step_is_one_invoke_agent_span_over_its_chat_and_tool_spans_without_content(
    exporter, calls_a_tool, monkeypatch, common_ai_capture
):
    if common_ai_capture:  # common-ai's own instrumentation, content on: Baton's stands in for it
        monkeypatch.setenv("AIRFLOW__COMMON_AI__OTEL_EXPORT_ENABLED", "True")
        monkeypatch.setenv("AIRFLOW__COMMON_AI__CAPTURE_CONTENT", "True")
    calls_a_tool(f"{SECRET}-args")
    exporter.clear()
    with tracing.span("baton.step", workflow="lead_check", step="assess") as outer:
        output, recorded = _run_llm_step(f"Assess {SECRET}-prompt")
    spans = exporter.get_finished_spans()
    assert SECRET in json.dumps(output)  # the plant reached the output
    assert [payload["tool"] for kind, payload in recorded if kind == "tool.called"] == ["lookup"]
    (call,) = [s for s in spans if s.name.startswith("invoke_agent")]
    assert call.name == "invoke_agent assessor" and call.kind == trace.SpanKind.INTERNAL
    assert call.parent.span_id == outer.get_span_context().span_id
    (event,) = [payload for kind, payload in recorded if kind == "model.called"]
    assert dict(call.attributes) == {
        **GEN_AI_CALL,
        "gen_ai.usage.input_tokens": event["input_tokens"],
        "gen_ai.usage.output_tokens": event["output_tokens"],
        "baton.workflow": "lead_check",
        "baton.step": "assess",
        "baton.cost": event["cost"],
    }
    assert event["input_tokens"] > 0 and event["cost"] > 0
    inside = [s for s in spans if s.parent and s.parent.span_id == call.context.span_id]
    assert sorted(s.name for s in inside) == [
        "chat baton:offline",
        "chat baton:offline",
        "execute_tool lookup",
    ]
    (tool,) = [s for s in inside if s.name == "execute_tool lookup"]
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "lookup" and tool.attributes["gen_ai.tool.call.id"]
    assert "gen_ai.tool.call.arguments" not in tool.attributes
    assert "gen_ai.tool.call.result" not in tool.attributes
    assert SECRET not in _everything_said(spans)


def test_a_failing_tool_leaves_the_class_of_its_error_and_never_its_message(exporter, calls_a_tool):
    calls_a_tool(f"fail {SECRET}-args")
    exporter.clear()
    with pytest.raises(Exception, match=SECRET):  # pydantic-ai's own wrapping of the tool's ValueError
        _run_llm_step(f"Assess {SECRET}-prompt")
    spans = exporter.get_finished_spans()
    (call,) = [s for s in spans if s.name == "invoke_agent assessor"]
    assert call.status.status_code == trace.StatusCode.ERROR and call.attributes["error.type"]
    (tool,) = [s for s in spans if s.name == "execute_tool lookup"]
    assert tool.status.status_code == trace.StatusCode.ERROR
    assert [dict(e.attributes)["exception.type"] for e in tool.events] == ["ValueError"]
    assert SECRET not in _everything_said(spans)


def test_a_fan_out_items_call_is_an_invoke_agent_span_over_its_chat_span(exporter):
    from baton.agents.model import ModelCalls

    exporter.clear()
    with tracing.span("baton.subtask", agent="assessor", item="i1") as item:
        output, payload = asyncio.run(ModelCalls(_step()).call(AGENT, f"Assess {SECRET}-prompt"))
    spans = {s.name: s for s in exporter.get_finished_spans()}
    call = spans["invoke_agent assessor"]
    assert call.parent.span_id == item.get_span_context().span_id
    assert spans["chat baton:offline"].parent.span_id == call.context.span_id
    assert dict(call.attributes) == {
        **GEN_AI_CALL,
        "gen_ai.usage.input_tokens": payload["input_tokens"],
        "gen_ai.usage.output_tokens": payload["output_tokens"],
        "baton.workflow": "lead_check",
        "baton.step": "assess",
        "baton.cost": payload["cost"],
    }
    assert SECRET in json.dumps(output) and SECRET not in _everything_said(spans.values())


def test_huge_token_counts_stay_within_what_otlp_carries(exporter):
    exporter.clear()
    with tracing.invoke_agent("a") as current:
        tracing.agent_used(current, input_tokens=10**30, output_tokens=-(10**30), cost=1e300)
    (span,) = exporter.get_finished_spans()
    assert span.attributes["gen_ai.usage.input_tokens"] == 2**63 - 1
    assert span.attributes["gen_ai.usage.output_tokens"] == -(2**63)
    assert encode_spans([span]).ByteSize() > 0  # 10**30 itself would fail the export of the batch


def test_with_traces_off_agents_are_uninstrumented_and_spans_record_nothing():
    # A process with no tracer provider set, as a task's is with Airflow's traces off.
    script = """
from opentelemetry import trace
from baton import tracing
assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
assert tracing.agent_capabilities() == [] and not tracing.traced()
with tracing.span("baton.step", step="s") as step, tracing.invoke_agent("a", step="s") as call:
    tracing.agent_used(call, input_tokens=5)
    assert not step.is_recording() and not call.is_recording()
print("off")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "off", done.stderr[-2000:]


def test_a_resumed_try_is_a_step_span_too_and_its_failure_an_error(exporter, monkeypatch):
    """After a person answers, the try goes on in ``StepRun.resume``: it is observed as the start was
    (the same span, marked ``baton.resumed`` with the answer's kind), and a failure there is an error."""
    from baton.coordination import questions
    from baton.coordination.step import StepRun

    class Refused:  # the answer's kind handler: resuming with it fails
        def resume(self, run, event, state):
            raise ValueError("the approver said no")

    monkeypatch.setattr(questions, "handler_for", lambda kind: Refused())
    ti = SimpleNamespace(dag_id="lead_check", task_id="assess", run_id="r1", map_index=-1, try_number=2)
    exporter.clear()
    with pytest.raises(ValueError, match="the approver said no"):
        StepRun(_step(), {"ti": ti}).resume({}, "approval", {})
    (span,) = exporter.get_finished_spans()
    assert span.name == "baton.step"
    assert {k: span.attributes[k] for k in ("baton.step", "baton.try_number", "baton.resumed")} == {
        "baton.step": "assess",
        "baton.try_number": 2,
        "baton.resumed": "approval",
    }
    assert (span.status.status_code, span.attributes["error.type"]) == (trace.StatusCode.ERROR, "ValueError")
