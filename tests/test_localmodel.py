"""The local model's server (issue 59): llama.cpp with Gemma 3 270M behind OpenAI's Chat Completions API,
answered for real (``scripts/local_model.sh`` installs it; ``make test`` runs that script), and what it refuses."""

from __future__ import annotations

import io
import json
import logging
import re
import shlex
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from baton import localmodel
from baton.localmodel import (
    MAX_BODY,
    MAX_MESSAGES,
    MAX_SCHEMA_TEXT,
    Refused,
    Shape,
    constraint,
    turns,
)
from tests.conftest import ROOT

SCORE = {
    "type": "object",
    "properties": {"company": {"type": "string"}, "score": {"type": "integer"}, "hot": {"type": "boolean"}},
    "required": ["company", "score", "hot"],
    "additionalProperties": False,
}


def _tool(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": "the answer", "parameters": parameters},
    }


def test_a_conversation_becomes_turns_the_chat_template_knows():
    """A tool call is the assistant's JSON; a tool's result (a re-ask's feedback is one) a user turn; turns of
    one role in a row are joined (Gemma's template alternates); a developer message is a system one."""
    got = turns([
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Score Acme."}, {"type": "image_url"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "final_result", "arguments": '{"score": 5}'}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "final_result", "content": "company: Field required"},
        {"role": "user", "content": "Fix the errors and try again."},
    ])  # fmt: skip
    assert got == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Score Acme."},
        {"role": "assistant", "content": '{"name": "final_result", "arguments": "{\\"score\\": 5}"}'},
        {"role": "user", "content": "The result of your call of final_result:\ncompany: Field required\n\n"
                                    "Fix the errors and try again."},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        (None, "'messages' must be a non-empty list"),
        ([], "'messages' must be a non-empty list"),
        ({"role": "user"}, "'messages' must be a non-empty list"),
        ([{"role": "user", "content": "x"}] * (MAX_MESSAGES + 1), f"at most {MAX_MESSAGES}"),
        ([{"role": "root", "content": "x"}], "messages[0] must be an object with a role of"),
        (["hello"], "messages[0] must be an object with a role of"),
        (
            [{"role": "user", "content": {"nested": {"deep": 1}}}],
            "messages[0].content must be a string or a list",
        ),
    ],
)
def test_a_malformed_conversation_is_refused_with_what_is_wrong(messages, error):
    with pytest.raises(Refused, match=error.replace("[", r"\[").replace("]", r"\]")) as refused:
        turns(messages)
    assert refused.value.status == 400


def test_hostile_parts_of_a_conversation_are_left_out_not_a_failure():
    """Tool calls that are not a list of calls, parts without text, text that is not a string: left out."""
    got = turns([
        {"role": "user", "content": [{"type": "text", "text": 5}, {"text": "kept"}, "loose", None]},
        {"role": "assistant", "content": "ok", "tool_calls": 7},
        {"role": "assistant", "content": "", "tool_calls": ["x", {"function": "not a dict"}, {"id": 1}]},
    ])  # fmt: skip
    assert got == [{"role": "user", "content": "kept"}, {"role": "assistant", "content": "ok"}]


def test_an_output_tool_constrains_the_answer_to_its_arguments_and_tells_the_model_its_fields():
    """pydantic-ai's structured output: the tools, ``tool_choice`` required or one function; OpenAI's
    ``json_schema`` response format; ``json_object``; free text."""
    one = constraint({"tools": [_tool("final_result", SCORE)], "tool_choice": "required"})
    assert (one.schema, one.tools) == (localmodel.bounded(SCORE), ("final_result",))
    assert one.instruction.startswith("Answer (the answer) with only a JSON object of these fields: ")
    assert '"score":{"type":"integer"}' in one.instruction
    two = {"tools": [_tool("a", SCORE), _tool("b", {"type": "object"})], "tool_choice": "required"}
    shape = constraint(two)
    assert shape.tools == ("a", "b") and [
        o["properties"]["name"]["const"] for o in shape.schema["anyOf"]
    ] == ["a", "b"]
    assert shape.instruction.startswith("Call one of: a, b.")
    named = {**two, "tool_choice": {"type": "function", "function": {"name": "b"}}}
    assert constraint(named).tools == ("b",)
    assert constraint({**two, "tool_choice": "none"}) == Shape()
    as_schema = constraint(
        {"response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": SCORE}}}
    )
    assert (as_schema.schema, as_schema.tools) == (localmodel.bounded(SCORE), ())
    assert constraint({"response_format": {"type": "json_object"}}).schema == {"type": "object"}
    assert constraint({}) == Shape()
    huge = constraint(
        {"tools": [_tool("t", {"type": "object", "properties": {f"f{i}": {} for i in range(10_000)}})]}
    )
    assert (
        len(huge.instruction) < MAX_SCHEMA_TEXT + 200
    )  # the fields told are cut short; the grammar keeps all
    with pytest.raises(Refused, match="names a function that is not among 'tools'"):
        constraint({**two, "tool_choice": {"type": "function", "function": {"name": "c"}}})
    with pytest.raises(Refused, match="must be a JSON Schema object"):
        constraint({"response_format": {"type": "json_schema", "json_schema": {"schema": "no"}}})
    with pytest.raises(Refused, match="'response_format' must be an object"):
        constraint({"response_format": "json"})


@pytest.fixture(scope="module")
def model() -> localmodel.LocalModel:
    """The real model (the installed Gemma 3 270M), loaded once for this module."""
    try:
        path = localmodel.model_path()
    except SystemExit as missing:
        pytest.skip(str(missing))  # a failure under CI (tests/ci_skips.py): make test installs it
    return localmodel.LocalModel(path, threads=2)


@pytest.fixture(scope="module")
def server(model) -> Iterator[str]:
    """The model served on a free port, as ``make run MODEL=local`` serves it."""
    http = localmodel.serve(model, 0)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_address[1]}/v1"
    finally:
        http.shutdown()
        http.server_close()


def test_the_real_model_answers_an_output_tool_with_a_call_whose_arguments_fit_its_schema(server):
    body = {
        "model": "gemma-3-270m",
        "messages": [
            {"role": "user", "content": "Score the lead Acme Corp from 0 to 100 and say if it is hot."}
        ],
        "tools": [_tool("final_result", SCORE)],
        "tool_choice": "required",
        "max_tokens": 128,
    }
    answer = httpx.post(f"{server}/chat/completions", json=body, timeout=120).raise_for_status().json()
    (choice,) = answer["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "final_result"
    arguments = json.loads(call["function"]["arguments"])
    assert set(arguments) == {"company", "score", "hot"}
    assert isinstance(arguments["company"], str) and isinstance(arguments["hot"], bool)
    assert isinstance(arguments["score"], int)
    usage = answer["usage"]
    assert usage["prompt_tokens"] > 10 and 0 < usage["completion_tokens"] <= 128
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_the_real_model_answers_text_and_models_and_health(server):
    body = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
    answer = httpx.post(f"{server}/chat/completions", json=body, timeout=120).raise_for_status().json()
    assert isinstance(answer["choices"][0]["message"]["content"], str)
    assert answer["usage"]["completion_tokens"] <= 8
    assert httpx.get(f"{server}/models").json()["data"][0]["id"] == "gemma-3-270m"
    assert httpx.get(server.removesuffix("/v1") + "/health").json()["status"] == "ok"


@pytest.mark.parametrize(
    ("content", "status", "error"),
    [
        (b"{", 400, "the body is not JSON"),
        (b"[1, 2]", 400, "the body must be a JSON object"),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "stream": true}',
            400,
            "streaming is not supported",
        ),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}', 400, "'max_tokens' must be"),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": true}',
            400,
            "'max_tokens' must be",
        ),
        (b"x" * (MAX_BODY + 1), 413, f"a body of 1 to {MAX_BODY} bytes"),
        (("[" * 100_000 + "]" * 100_000).encode(), 400, "the body is not JSON"),  # deeply nested
        (
            b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
            400,
            "NaN is not a JSON number",
        ),
        (b'{"messages": [], "top_p": -Infinity}', 400, "-Infinity is not a JSON number"),
    ],
)
def test_hostile_requests_are_refused_with_openais_error_body(server, content, status, error):
    response = httpx.post(
        f"{server}/chat/completions",
        content=content,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == status
    assert error in response.json()["error"]["message"]


STORY_SCHEMA = {
    "type": "object",
    "properties": {"story": {"type": "string", "minLength": 400}},
    "required": ["story"],
}
STORY = {"type": "json_schema", "json_schema": {"name": "story", "schema": STORY_SCHEMA}}


def test_a_conversation_longer_than_the_context_is_refused_and_a_long_answer_is_cut_at_the_bound(
    server, monkeypatch
):
    """However many tokens a request asks for, the answer stops at ``MAX_TOKENS`` (here set to 6, an answer that
    must be 400 characters long), marked ``length``."""
    huge = {"messages": [{"role": "user", "content": "word " * 20_000}], "max_tokens": 4}
    response = httpx.post(f"{server}/chat/completions", json=huge, timeout=120)
    assert response.status_code == 400
    assert "does not fit the model's context" in response.json()["error"]["message"]
    monkeypatch.setattr(localmodel, "MAX_TOKENS", 6)
    long = {
        "messages": [{"role": "user", "content": "Tell a story."}],
        "max_tokens": 10**9,
        "response_format": STORY,
    }
    answer = httpx.post(f"{server}/chat/completions", json=long, timeout=300).raise_for_status().json()
    assert answer["usage"]["completion_tokens"] == 6
    assert answer["choices"][0]["finish_reason"] == "length"


def test_a_burst_beyond_the_waiting_bound_is_told_to_come_back(server):
    """One generation at a time, ``MAX_WAITING`` waiting: the rest get 503 with Retry-After at once, and every
    request is answered one way or the other."""
    body = {
        "messages": [{"role": "user", "content": "Tell a story."}],
        "max_tokens": 12,
        "response_format": STORY,
    }

    def call() -> tuple[int, str | None]:
        response = httpx.post(f"{server}/chat/completions", json=body, timeout=600)
        return response.status_code, response.headers.get("Retry-After")

    with ThreadPoolExecutor(localmodel.MAX_WAITING + 4) as pool:
        futures = [pool.submit(call) for _ in range(localmodel.MAX_WAITING + 4)]
        answers = [future.result(timeout=900) for future in futures]  # a thread's failure fails the test
    assert {status for status, _ in answers} == {200, 503}, answers
    assert all(after == "2" for status, after in answers if status == 503)
    assert sum(status == 200 for status, _ in answers) >= localmodel.MAX_WAITING, answers


@pytest.mark.parametrize(
    ("length", "status"),
    [(None, 400), ("abc", 400), ("-5", 400), ("0", 400), (str(MAX_BODY + 1), 413), ("1e9", 400)],
)
def test_a_body_without_a_sane_content_length_is_refused_before_it_is_read(length, status):
    """The body is read only up to what a Content-Length between 1 and ``MAX_BODY`` says."""
    stream = io.BytesIO(b"{}")
    with pytest.raises(Refused, match=f"a body of 1 to {MAX_BODY} bytes") as refused:
        localmodel.request_body(length, stream)
    assert refused.value.status == status and stream.tell() == 0
    assert localmodel.request_body("2", io.BytesIO(b"{}")) == {}


def _documented_connection(server: str) -> dict[str, Any]:
    """The connection docs/plug-in.md tells a user to create for the local model, on this test's port."""
    text = (ROOT / "docs" / "plug-in.md").read_text()
    section = text[text.index("## A real model on this machine") :]
    found = re.search(r"airflow connections add baton_llm (.*?)\n```", section, re.S)
    assert found, "docs/plug-in.md names no connection for the local model"
    words = shlex.split(found.group(1).replace("\\\n", " "))
    option = dict(zip(words[::2], words[1::2], strict=True))
    assert option["--conn-type"] == "pydanticai" and option["--conn-host"] == "http://127.0.0.1:8089/v1"
    extra = json.loads(option["--conn-extra"])
    return {"conn_type": "pydanticai", "host": server, "password": option["--conn-password"], "extra": extra}


def test_a_bundled_workflow_runs_end_to_end_on_the_real_model_under_dag_test(server, model, airflow_db):
    """support_triage with baton_llm the connection docs/plug-in.md gives for the local model (common-ai's
    OpenAI-compatible path, as ``make run MODEL=local`` defines it): its triage is the real model's, valid against
    the step's output schema, and the tokens its ``model.called`` events record are those the server counted."""
    from demo.http_service import PartnerService

    from baton.events import EventStore
    from baton.events.replay import timeline
    from tests.conftest import DAGS, run_dag_test_in_subprocess

    connection = _documented_connection(server)
    before = len(model.served)
    with PartnerService() as helpdesk:
        run, results, output = run_dag_test_in_subprocess(
            DAGS, "dags-folder", "support_triage", {"helpdesk_url": helpdesk.url("/local")},
            env={"AIRFLOW_CONN_BATON_LLM": json.dumps(connection)},
        )  # fmt: skip
        assert run.state == "success", output[-4000:]
        tickets = [p["body"]["ticket"] for p in helpdesk.posts("/local/tickets")]
    # the version the rollout gave the run ("" or "v2."): its triage ran, the other version's was skipped
    prefix = next(
        task[: -len("triage")]
        for task, (state, _) in results.items()
        if task.endswith("triage") and state == "success"
    )
    triage = results[f"{prefix}triage"][1]
    assert triage["priority"] in ("low", "normal", "high")
    assert isinstance(triage["urgent"], list) and all(isinstance(t, str) for t in triage["urgent"])
    assert isinstance(triage["summary"], str)
    assert sorted(tickets) == sorted(t["id"] for t in results[f"{prefix}load_tickets"][1]["tickets"])
    called = list(EventStore.from_airflow().read(run.run_id, types=["model.called"]))
    assert called and not any(e.payload.get("offline") for e in called)
    for event, line in zip(called, timeline(called), strict=True):  # baton replay: the model, tokens, re-asks
        p = event.payload
        assert f"gemma-3-270m: {p['input_tokens']} in / {p['output_tokens']} out tokens" in line, line
        assert ("re-ask" in line) == (p["requests"] > 1), line
    served = list(model.served)[before:]
    assert sum(e.payload["requests"] for e in called) == len(served)
    assert sum(e.payload["input_tokens"] for e in called) == sum(u["prompt_tokens"] for u in served)
    assert sum(e.payload["output_tokens"] for e in called) == sum(u["completion_tokens"] for u in served)


def test_unbounded_strings_and_arrays_get_a_bound_and_nothing_the_schema_refused_is_allowed():
    """A small model under a grammar writes one string until its token limit: every string and array without a
    bound gets one (never below what the schema asks at least); enums, patterns and formats keep theirs; a
    schema nested past ``MAX_DEPTH`` is refused; hostile bounds count as none."""
    from baton.localmodel import MAX_DEPTH, MAX_ITEMS, MAX_STRING, bounded

    schema = {"type": "object", "properties": {
        "summary": {"type": "string"}, "code": {"type": "string", "pattern": "^[A-Z]+$"},
        "tier": {"type": "string", "enum": ["hot", "cold"]}, "short": {"type": "string", "maxLength": 5},
        "long": {"type": "string", "minLength": 1000}, "ids": {"type": "array", "items": {"type": "string"}},
        "odd": {"type": "string", "minLength": "many"}, "flag": {"type": "array", "minItems": True},
    }}  # fmt: skip
    got = bounded(schema)["properties"]
    assert got["summary"] == {"type": "string", "maxLength": MAX_STRING}
    assert got["code"] == schema["properties"]["code"] and got["tier"] == schema["properties"]["tier"]
    assert got["short"]["maxLength"] == 5 and got["long"]["maxLength"] == 1000
    assert got["ids"] == {
        "type": "array",
        "items": {"type": "string", "maxLength": MAX_STRING},
        "maxItems": MAX_ITEMS,
    }
    assert got["odd"]["maxLength"] == MAX_STRING and got["flag"]["maxItems"] == MAX_ITEMS
    assert schema["properties"]["summary"] == {"type": "string"}  # the caller's schema is left as it was
    deep: dict = {"type": "string"}
    for _ in range(MAX_DEPTH + 1):
        deep = {"type": "array", "items": deep}
    with pytest.raises(Refused, match=f"nested deeper than {MAX_DEPTH} levels"):
        constraint({"tools": [_tool("t", {"type": "object", "properties": {"x": deep}})]})


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_a_fan_out_of_10_items_on_the_real_model_stops_where_its_token_budget_says(
    server, model, store, monkeypatch
):
    """10 items at 4 at once, each call bound to 700 tokens (its usage limits: what it reserves), against a per-run
    budget of 1,000 tokens: items are answered while their reservation fits, and the budget refuses the rest,
    naming itself; an item may also fail for the model's own reasons (its answers broke the schema, or its
    re-asks outgrew the call's limits: the real model does that now and then), never for another. What the
    budget settled is what the model used (the server's count), never above 1,000, nothing left held."""
    from datetime import timedelta
    from types import SimpleNamespace

    from pydantic import TypeAdapter

    from baton.budgets.ledger import Ledger
    from baton.coordination.fanout import BatchResult, FanOut, subtasks_of
    from baton.events.recorder import StepRecorder
    from baton.plan import CompiledStep, FanOutPlan
    from baton.spec.budgets import Budget
    from baton.spec.roster import Agent
    from baton.spec.step import Step

    connection = _documented_connection(server)
    monkeypatch.setenv("AIRFLOW_CONN_LOCAL_LLM", json.dumps(connection))
    agent = Agent(name="assessor", llm_conn_id="local_llm", capabilities=["assess"], max_concurrency=4,
                  cost={"input_per_1k": 0.1, "output_per_1k": 0.2})  # fmt: skip
    spec = TypeAdapter(Step).validate_python({
        "id": "assess", "agent": "assessor", "for_each": {"over": "src.items", "concurrency": 4},
        "instruction": "Assess the lead {{ item.name }}: a score from 0 to 100 and one reason.",
        "output": {"score": {"type": "integer"}, "reason": {"type": "string"}},
        "usage_limits": {"input_tokens_limit": 300, "output_tokens_limit": 400},
    })  # fmt: skip
    plan = FanOutPlan(source="src", field="items", concurrency=4, batch_size=None, partial_failure="continue")
    step = CompiledStep(workflow="leads", template_version=1, spec=spec, agent=agent, fan_out=plan)
    ti = SimpleNamespace(run_id="local_b1", task_id="assess", map_index=-1, try_number=1, max_tries=1)
    context = {"ti": ti, "dag_run": SimpleNamespace(run_type="manual", conf={}), "logical_date": None}
    recorder = StepRecorder(store, context, workflow="leads", template_version=1)
    budget = Budget(name="leads-run", scope="workflow:leads", per="run", tokens=1000, warn_at=None)
    scope = {"inputs": {}, "steps": {}, "context": {}, "run": {"id": "local_b1"}}
    before = len(model.served)
    fan = FanOut(
        step, context, scope, recorder, timedelta(hours=1), logging.getLogger("test"), budgets=[budget]
    )
    items = subtasks_of([{"name": name} for name in ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark",
                                                    "Wayne", "Wonka", "Cyberdyne", "Tyrell")])  # fmt: skip
    outcome = fan.run(items, BatchResult())

    assert len(outcome.results) + len(outcome.failures) == 10
    refusal = "may not call its model: budget 'leads-run' (workflow:leads, per run, window run:local_b1)"
    refused = [f for f in outcome.failures.values() if refusal in f["error"]]
    own = [f for f in outcome.failures.values() if refusal not in f["error"]]
    assert outcome.results and refused, (len(outcome.results), outcome.failures)  # the budget stopped it
    for failure in own:
        assert (
            "hit the step's usage limits" in failure["error"] or "gave no valid output" in failure["error"]
        ), failure
    for result in outcome.results.values():
        assert isinstance(result["output"]["score"], int) and isinstance(result["output"]["reason"], str)
    events = list(store.read("local_b1"))
    called = [e for e in events if e.type == "model.called"]
    served = list(model.served)[before:]
    used = sum(u["total_tokens"] for u in served)
    settled, held = Ledger(store).spent(budget, "run:local_b1")
    assert (
        settled.tokens == used <= 1000 and held.tokens == 0
    )  # the budget counts every call, failed ones too
    # every call the model answered has its model.called, a failed one too (its tokens were spent)
    assert sum(e.payload["input_tokens"] + e.payload["output_tokens"] for e in called) == used, own


def test_baton_replay_says_how_many_times_a_call_was_asked_again():
    from datetime import UTC, datetime

    from baton.events.event import Event
    from baton.events.replay import timeline

    def line(requests: object) -> str:
        payload = {"model": "gemma-3-270m", "input_tokens": 900, "output_tokens": 300, "cost": 0.0, "latency_s": 9.5,
                   "prompt_sha256": "ab" * 32, "requests": requests}  # fmt: skip
        event = Event(type="model.called", run_id="r", workflow="w", step="s", try_number=1, payload=payload,
                      seq=1, ts=datetime.now(UTC))  # fmt: skip
        return timeline([event])[0]

    assert line(3).endswith("; 3 requests: 2 re-asks") and line(2).endswith("; 2 requests: 1 re-ask")
    assert "re-ask" not in line(1)


def test_an_unknown_path_is_a_404_with_openais_error_body(server):
    for response in (httpx.get(f"{server}/nothing"), httpx.post(f"{server}/completions", json={})):
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "invalid_request_error"
