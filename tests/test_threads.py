"""tests/threads.py: a thread's failure fails the test that started the threads, a hang does too."""

from __future__ import annotations

import threading

import pytest

from tests.threads import run_threads


def test_the_results_come_in_the_order_of_the_calls():
    assert run_threads([lambda i=i: i * i for i in range(5)]) == [0, 1, 4, 9, 16]


def test_a_thread_that_raises_fails_the_caller_with_its_error_not_its_peers_broken_barrier():
    start = threading.Barrier(3)

    def waits() -> None:
        start.wait(timeout=60)  # released at once when the other raises, not after 60 s

    def raises() -> None:
        raise ValueError("the model refused")

    with pytest.raises(ExceptionGroup) as caught:
        run_threads([waits, raises, waits], start=start)
    assert str(caught.value) == "1 of 3 threads raised (1 sub-exception)"
    ((error,),) = [caught.value.exceptions]
    assert isinstance(error, ValueError) and str(error) == "the model refused"


def test_a_thread_still_running_at_the_bound_fails_the_caller():
    release = threading.Event()
    try:
        with pytest.raises(AssertionError, match=r"^threads \[1\] of 2 still running after 0.2 s$"):
            run_threads([lambda: None, lambda: release.wait(60)], timeout=0.2)
    finally:
        release.set()
