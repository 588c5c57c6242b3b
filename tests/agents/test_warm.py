"""The model path's warm-up (baton.agents.warm), run by the forkserver's preload: it makes its call, leaves
nothing behind that a forked task would share, and a failure only logs."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading

from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from baton.agents import warm
from tests.agents.openai_server import OpenAICompatibleServer


class Plan(BaseModel):
    summary: str


def _call_after_fork(url: str, out) -> None:
    """A task's first model call, in a process forked after the warm-up: a real request to a real server."""
    try:
        provider = OpenAIProvider(api_key="sk-test", base_url=url)
        agent = Agent(OpenAIChatModel("gpt-test", provider=provider), output_type=Plan)
        out.put(asyncio.run(agent.run("Draft a plan")).output.summary)
    except BaseException as error:  # reported to the parent, which fails the test with it
        out.put(f"{type(error).__name__}: {error}")


def test_the_warm_up_answers_and_leaves_no_thread_or_event_loop():
    # The threads it started, not how many there are: another test's thread that ends meanwhile made a
    # count drop (4 == 5 in a clean clone's run).
    before = set(threading.enumerate())
    assert warm.warm_model_path() is True
    assert set(threading.enumerate()) - before == set()
    assert asyncio.events._get_running_loop() is None
    assert asyncio.get_event_loop_policy()._local._loop is None  # asyncio.run closed and unset its loop


def test_a_process_forked_after_the_warm_up_makes_its_own_model_call():
    assert warm.warm_model_path() is True
    with OpenAICompatibleServer({"summary": "a plan, from the server"}) as server:
        out = multiprocessing.get_context("fork").Queue()
        child = multiprocessing.get_context("fork").Process(
            target=_call_after_fork, args=(server.url + "/valid/v1", out)
        )
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0, f"the forked call's process ended with {child.exitcode}"
        assert out.get(timeout=5) == "a plan, from the server"
        assert [path for path, _ in server.requests] == ["/valid/v1/chat/completions"]


def test_a_warm_up_that_fails_logs_why_and_returns_false(monkeypatch, caplog):
    broken = {**warm._ANSWER, "choices": []}  # a completion without a choice: pydantic-ai refuses it
    monkeypatch.setattr(warm, "_ANSWER", broken)
    with caplog.at_level(logging.WARNING, logger="baton.agents.warm"):
        assert warm.warm_model_path() is False
    (record,) = [r for r in caplog.records if r.name == "baton.agents.warm"]
    assert record.getMessage().startswith("The model path's warm-up failed (")
    assert record.getMessage().endswith("); tasks build it on first use")


def test_the_warm_up_logs_no_request_and_leaves_the_http_log_level_as_it_was(caplog):
    """Its made-up host in a log line would puzzle whoever reads the scheduler's log; the tests' dag.test()
    server, which preloads as the forkserver does, reads its own stdout as its protocol."""
    logging.getLogger("httpx2").setLevel(logging.DEBUG)
    with caplog.at_level(logging.DEBUG):
        assert warm.warm_model_path() is True
    assert [r.getMessage() for r in caplog.records if r.name.startswith("httpx")] == []
    assert logging.getLogger("httpx2").level == logging.DEBUG
    logging.getLogger("httpx2").setLevel(logging.NOTSET)
