"""An agent call bounded by the step's ``agent_timeout``, apart from the task's ``execution_timeout``."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from baton.errors import AgentTimeout

T = TypeVar("T")


def call_with_timeout(call: Callable[[], T], seconds: float, what: str) -> T:
    """Run ``call`` in a daemon thread (with this thread's context variables) and wait ``seconds``.

    A call that overruns is abandoned, not killed — Python cannot stop a thread — and the task's try
    fails with ``AgentTimeout``; the thread being a daemon, it never holds the task process open.
    """
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome["value"] = context.run(call)
        except BaseException as error:  # handed to the waiting thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="baton-agent-call", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise AgentTimeout(
            f"{what} did not answer within its agent_timeout of {seconds:g} s; this try fails "
            "(raise agent_timeout in the template if the agent needs longer)"
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
