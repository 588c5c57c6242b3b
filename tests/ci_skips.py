"""Under CI (``CI=true``, as CI runs ``.ci/run``) a skipped test is a failure: a binary or a service that is
missing there must not hide the feature it tests. Outside CI a skip stays a skip (a developer's machine may
lack what CI has). Loaded by tests/conftest.py (``pytest_plugins``)."""

from __future__ import annotations

import os

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and under_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where a skip is a failure: {reason}"
