"""Last of the shared Airflow's files (tests/conftest.py): the checks its tests deferred to here
(``shared_airflow.defer``), each a test's own assertion that only waits, so that the files between use
that wait. Each check runs once, in the order deferred; the first that fails fails this test."""

from __future__ import annotations

import pytest

from devtools.standalone import Standalone
from tests.integration.shared_airflow import DEFERRED

pytestmark = pytest.mark.integration


def test_the_checks_the_shared_airflows_tests_deferred_pass(shared_running: Standalone):
    if not DEFERRED:
        pytest.skip("no test of this session deferred a check (the test that does was not selected)")
    while DEFERRED:
        what, check = DEFERRED.pop(0)
        try:
            check()
        except AssertionError as error:
            raise AssertionError(f"deferred check: {what}: {error}") from error
