"""agent_timeout: one agent call bounded apart from the task's execution_timeout."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from baton.agents.timeout import bounded, call_with_timeout
from baton.errors import AgentTimeout

WHO = contextvars.ContextVar("who", default="nobody")


def test_a_call_that_overruns_fails_the_try_with_agent_timeout_and_does_not_wait_for_it():
    """The call blocks until released; the timeout is raised while it still blocks (it was not waited for),
    and the call ends once released (its thread is not left behind for good)."""
    release, returned = threading.Event(), threading.Event()

    def blocked() -> None:
        release.wait(timeout=60)
        returned.set()

    with pytest.raises(AgentTimeout) as raised:
        call_with_timeout(blocked, 0.2, "agent slow_bot on step 'draft'")
    assert not returned.is_set()  # raised while the call was still running
    release.set()
    assert returned.wait(timeout=60)
    assert str(raised.value) == (
        "agent slow_bot on step 'draft' did not answer within its agent_timeout of 0.2 s; this try fails "
        "(raise agent_timeout in the template if the agent needs longer)"
    )


def test_a_call_in_time_returns_its_value_and_sees_the_callers_context():
    WHO.set("the step")
    assert call_with_timeout(lambda: f"answered for {WHO.get()}", 5, "agent") == "answered for the step"


def test_a_call_that_raises_raises_its_own_error():
    def broken():
        raise ValueError("the model refused")

    with pytest.raises(ValueError, match="the model refused"):
        call_with_timeout(broken, 5, "agent")


def test_a_coroutine_that_overruns_is_cancelled_and_a_group_gets_the_timeout_times_its_items():
    cancelled: list[bool] = []

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(AgentTimeout) as raised:
        asyncio.run(bounded(hangs(), 0.05, "the call for 3 items of step 'fan'", items=3))
    assert cancelled == [True]
    assert str(raised.value) == (
        "the call for 3 items of step 'fan' did not answer within 0.15 s (agent_timeout 0.05 s an item)"
    )


def test_a_calls_own_timeout_is_not_taken_for_the_agent_timeout():
    async def times_out() -> None:
        raise TimeoutError("the provider's read timed out")

    with pytest.raises(TimeoutError, match="the provider's read timed out") as raised:
        asyncio.run(bounded(times_out(), 60, "subtask a of step 'fan'"))
    assert not isinstance(raised.value, AgentTimeout)


def test_without_an_agent_timeout_the_call_runs_here():
    assert call_with_timeout(lambda: threading.current_thread().name, None, "agent") == (
        threading.current_thread().name
    )
    assert asyncio.run(bounded(asyncio.sleep(0, result="answered"), None, "subtask a")) == "answered"
