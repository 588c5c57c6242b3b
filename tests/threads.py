"""Threads that fail the test that started them. ``run_threads`` runs each call in a thread of its own and
gives their results in order; a call that raises fails the caller with its exception (every thread's, as an
ExceptionGroup), and one still running after the bound fails it too: no thread's failure leaves a test
asserting less, and no hang waits for pytest's own timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any


def run_threads(
    calls: Sequence[Callable[[], Any]], timeout: float = 120.0, start: threading.Barrier | None = None
) -> list[Any]:
    """Each of ``calls`` in a thread, all started, all joined within ``timeout`` seconds; their results in
    order. ``start``: the barrier the calls wait on to begin together, broken when one of them raises, so
    that the others stop waiting for it (their BrokenBarrierError is left out of the failure then)."""
    results: list[Any] = [None] * len(calls)
    errors: dict[int, BaseException] = {}

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            results[i] = call()
        except BaseException as error:  # handed to the test's thread below
            errors[i] = error
            if start is not None:
                start.abort()

    threads = [
        threading.Thread(target=run, args=(i, call), name=f"test-thread-{i}", daemon=True)
        for i, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    running = [i for i, thread in enumerate(threads) if thread.is_alive()]
    causes = {i: e for i, e in errors.items() if not isinstance(e, threading.BrokenBarrierError)} or errors
    if causes:
        note = f" ({len(running)} still running after {timeout:g} s)" if running else ""
        raise ExceptionGroup(
            f"{len(causes)} of {len(calls)} threads raised{note}", [causes[i] for i in sorted(causes)]
        )
    assert not running, f"threads {running} of {len(calls)} still running after {timeout:g} s"
    return results
