"""``agent_timeout``: one call of a step's worker bounded apart from the task's ``execution_timeout``.

The one place the limit is enforced, the same way for every call: the call is awaited under
``asyncio.timeout``, and one that overruns fails with ``AgentTimeout`` (the task goes on: its retry,
reassignment or escalation decide what happens next). A fan-out item's or a group's call is a coroutine
already (:func:`bounded`); a step's one call (a skill, a browser, a model) is plain code, run in a daemon
thread awaited the same way (:func:`call_with_timeout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from baton.errors import AgentTimeout

T = TypeVar("T")


async def bounded(
    call: Awaitable[T], seconds: float | None, what: str, *, items: int = 1, a_try: bool = False
) -> T:
    """``call``, failed with ``AgentTimeout`` after ``seconds`` (a step's ``agent_timeout``; None or 0: no
    bound) times ``items`` (the items one call answers). ``what`` names the call in the message; ``a_try``:
    the message says that the try fails and how to give the agent longer."""
    if not seconds:
        return await call
    try:
        async with asyncio.timeout(seconds * items) as limit:
            return await call
    except TimeoutError:
        if not limit.expired():  # the call's own timeout, not the agent's
            raise
        if items > 1:
            text = f"{what} did not answer within {seconds * items:g} s (agent_timeout {seconds:g} s an item)"
        else:
            text = f"{what} did not answer within its agent_timeout of {seconds:g} s"
        if a_try:
            text += "; this try fails (raise agent_timeout in the template if the agent needs longer)"
        raise AgentTimeout(text) from None


def call_with_timeout(call: Callable[[], T], seconds: float | None, what: str) -> T:
    """``call()`` within ``seconds`` (None or 0: no bound, called here), run in a daemon thread with this
    thread's context variables. A call that overruns is abandoned, not killed — Python cannot stop a
    thread — and the task's try fails with ``AgentTimeout``; the thread being a daemon, it never holds the
    task process open."""
    if not seconds:
        return call()
    return asyncio.run(bounded(_in_thread(call), seconds, what, a_try=True))


async def _in_thread(call: Callable[[], T]) -> T:
    """``call()`` in a daemon thread, awaited; once the loop awaiting it has closed (it timed out), the
    thread's result goes nowhere."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(value: Any, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(value)

    def run() -> None:
        value, error = None, None
        try:
            value = context.run(call)
        except BaseException as raised:  # handed to the waiting loop
            error = raised
        with contextlib.suppress(RuntimeError):  # the loop closed: the call was abandoned
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=run, name="baton-agent-call", daemon=True).start()
    return await done
