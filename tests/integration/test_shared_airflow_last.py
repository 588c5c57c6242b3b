"""Last of the shared Airflow's files (tests/conftest.py): the checks its tests deferred to here
(``shared_airflow.defer``), each a test's own assertion that only waits, so that the files between use
that wait. Each check runs once, in the order deferred; the first that fails fails this test (its error
noted with what it checks). Were this file not selected, ``shared_running``'s teardown would run them."""

from __future__ import annotations

import pytest

from devtools.standalone import Standalone
from tests.integration import shared_airflow
from tests.integration.shared_airflow import DEFERRED, defer, run_deferred

pytestmark = pytest.mark.integration


def test_deferred_checks_run_once_each_in_order_and_a_failure_says_what_it_checked(monkeypatch):
    monkeypatch.setattr(shared_airflow, "DEFERRED", [])  # this session's real ones stay for the test below
    ran: list[str] = []
    defer("first", lambda: ran.append("first"))
    defer("second", lambda: ran.append("second"))
    assert run_deferred() == 2 and ran == ["first", "second"]
    assert run_deferred() == 0 and ran == ["first", "second"]  # once each

    def broken() -> None:
        raise AssertionError("no resolved incident at agent:x after 420 s")

    defer("x's incident resolves", broken)
    defer("after it", lambda: ran.append("after it"))
    with pytest.raises(AssertionError, match="no resolved incident at agent:x after 420 s") as raised:
        run_deferred()
    assert raised.value.__notes__ == ["deferred check: x's incident resolves"]
    assert [what for what, _ in shared_airflow.DEFERRED] == ["after it"]  # left for the teardown


def test_the_checks_the_shared_airflows_tests_deferred_pass(shared_running: Standalone):
    if not DEFERRED:
        pytest.skip("no test of this session deferred a check (the test that does was not selected)")
    assert run_deferred() >= 1
