"""A step waiting for a person under ``airflow dags test`` (issue 17): its log says exactly how to answer,
once, and SIGTERM stops the wait. (``baton approve`` itself answers in every workflow test with a person:
tests/hitl.py; its refusals are in tests/workflows/test_invoice_processing.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.conftest import FIXTURE_DAGS


def test_a_waiting_step_says_how_to_answer_and_sigterm_stops_the_wait(airflow_db, tmp_path):
    log = tmp_path / "dags_test.log"
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(FIXTURE_DAGS)}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "dags", "test", "ask_person"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while "Waiting for Human-in-the-loop input" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    printed = log.read_text()
    assert printed.count("Waiting for a person: ask_person.decide") == 1  # said once, not every second
    assert "options: Use the output below | Reject; form fields: go" in printed
    assert " decide --option 'Use the output below' [--field name=value ...]" in printed
    assert (
        "PATCH /api/v2/dags/ask_person/dagRuns/" in printed
        and "/taskInstances/decide/-1/hitlDetails" in printed
    )
    assert "SIGTERM while waiting for a person: the test run stops here" in printed


def test_an_answer_waits_for_the_step_to_park_and_for_the_question_to_settle(monkeypatch):
    """Airflow 3.3 fails a task answered in the moments after it parked (see SETTLE_S): the answer waits
    until the step has left `running` and its question is SETTLE_S old, and never longer than PARK_WAIT_S."""
    from datetime import UTC, datetime, timedelta

    from baton.cli import approve

    monkeypatch.setattr(approve, "SETTLE_S", 0.6)
    clock = _Clock()
    monkeypatch.setattr(approve, "time", clock)  # what it waits is counted, not timed
    states = iter(["running", "running", "running", "awaiting_input"])
    seen: list[str] = []

    def state() -> str:
        seen.append(next(states))
        return seen[-1]

    approve._settle(state, datetime.now(UTC))
    assert seen == ["running", "running", "running", "awaiting_input"]  # polled until it parked
    assert clock.slept[:3] == [0.5, 0.5, 0.5]  # a poll every 0.5 s
    (settle,) = clock.slept[3:]  # then the rest of SETTLE_S: the question was asked just now
    assert 0.3 < settle <= 0.6, clock.slept  # the age the question had when it parked is not waited again

    clock.slept.clear()
    approve._settle(lambda: "awaiting_input", datetime.now(UTC) - timedelta(seconds=0.2))
    (settle,) = clock.slept  # parked, but asked 0.2 s ago: waits the rest of 0.6 s
    assert 0 < settle <= 0.4, clock.slept

    monkeypatch.setattr(approve, "PARK_WAIT_S", 0.8)
    clock.slept.clear()
    approve._settle(lambda: "running", None)  # never parks (a stuck worker): gives up, the PATCH says why
    assert clock.slept == [0.5, 0.5]  # polls at 0 and 0.5 s; at 1.0 s PARK_WAIT_S has passed
    assert approve._parse_time("2026-11-22T18:49:08.304478Z") == datetime(
        2026, 11, 22, 18, 49, 8, 304478, UTC
    )
    assert approve._parse_time("not a time") is None


class _Clock:
    """``time`` for ``approve._settle``: sleeping advances a clock of its own, and each sleep is recorded."""

    def __init__(self) -> None:
        self.now, self.slept = 1000.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
