"""``airflow dags test`` of a workflow with a ``deadline:`` exits 0 (issue 17): Airflow 3.3.2 fails a
successful test run that has Deadline Alerts, so under ``dags test`` Baton leaves them out and says so."""

from __future__ import annotations

import os
import subprocess
import sys

from baton.compile.build import under_dags_test


def test_a_workflow_with_a_deadline_passes_airflow_dags_test(airflow_db):
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "lead_qualification"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-4000:]
    assert "state=success" in printed
    assert (
        "lead_qualification: its deadlines are left out of `airflow dags test` (Airflow 3.3.2 fails a successful "
        "test run that has Deadline Alerts: 'dict' object has no attribute 'hex')"
    ) in printed
    assert "'dict' object has no attribute 'hex'\n" not in printed  # the defect itself is not hit


def test_only_airflow_dags_test_leaves_deadlines_out(monkeypatch):
    for argv, expected in (
        (["/venv/bin/airflow", "dags", "test", "x"], True),
        (["/venv/lib/airflow/__main__.py", "dags", "test", "x"], True),
        (["/venv/bin/airflow", "dags", "trigger", "x"], False),
        (["/venv/bin/airflow", "scheduler"], False),
        (["pytest", "dags", "test"], False),
        ([], False),
    ):
        monkeypatch.setattr(sys, "argv", argv)
        assert under_dags_test() is expected, argv
