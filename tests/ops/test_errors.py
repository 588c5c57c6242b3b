"""Error patterns on a real store (SQLite and PostgreSQL): failures that differ only in numbers, ids, times
and values are one pattern; what is new, rising or quiet in the recent part of the window is said; the
report is bounded and personal values are masked; ``baton errors`` prints it and refuses bad windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from baton.cli import main as baton
from baton.events.event import Event
from baton.ops.reports import errors
from baton.ops.reports.errors import normalise, patterns

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _failed(n: int, ago: timedelta, error: str, step: str = "post", agent: str | None = "poster",
            error_class: str = "AgentError", workflow: str = "invoices",
            kind: str = "step.failed") -> Event:  # fmt: skip
    payload = {"error_class": error_class, "error": error}
    if kind == "subtask.failed":
        payload["subtask"] = f"item-{n}"
    return Event(type=kind, run_id=f"run-{n}", workflow=workflow, step=step, try_number=1, agent=agent,
                 payload=payload, ts=NOW - ago, discriminator=str(n))  # fmt: skip


@pytest.fixture
def failures(store):
    events = [  # a steady timeout all day, a 502 that began in the last hour, a schema error that stopped
        _failed(
            i, timedelta(hours=i % 20 + 0.5), f"timed out after {30 + i} s calling https://erp.example/x/{i}"
        )
        for i in range(20)
    ]
    events += [
        _failed(
            100 + i,
            timedelta(minutes=5 * i + 1),
            f"HTTP 502 from 10.0.0.{i}:8080 for order {i:08x}",
            step="fetch",
            agent="erp",
        )  # fmt: skip
        for i in range(6)
    ]
    events += [
        _failed(
            200 + i,
            timedelta(hours=10 + i),
            "output broke the schema: 'total' is not a number",
            error_class="OutputInvalid",
            kind="subtask.failed",
        )  # fmt: skip
        for i in range(4)
    ]
    events.append(_failed(300, timedelta(hours=30), "too old for the window"))
    store.append(events)
    return store


def test_failures_of_one_kind_are_one_pattern_and_what_changed_is_said(failures):
    found = patterns(failures, hours=24, recent_hours=1, now=NOW)
    shown = [(p.count, p.recent, p.change, p.step, p.agent, p.error_class, p.message) for p in found]
    assert shown == [
        (20, 1, "steady", "post", "poster", "AgentError", "timed out after <n> s calling <url>"),
        (6, 6, "new", "fetch", "erp", "AgentError", "HTTP <n> from <ip> for order <hex>"),
        (
            4,
            0,
            "quiet",
            "post",
            "poster",
            "OutputInvalid",
            "output broke the schema: <value> is not a number",
        ),
    ]
    assert found[1].runs == ["run-105", "run-104", "run-103"]  # three examples, newest first
    assert found[1].first_seen == NOW - timedelta(minutes=26) and found[1].last_seen == NOW - timedelta(
        minutes=1
    )


def test_a_pattern_that_comes_much_more_often_lately_is_rising(store):
    store.append([_failed(i, timedelta(hours=2 + 2 * i), "pool exhausted after 12 waits") for i in range(4)])
    store.append(
        [_failed(10 + i, timedelta(minutes=10 * i + 1), "pool exhausted after 40 waits") for i in range(4)]
    )
    (found,) = patterns(store, hours=24, recent_hours=1, now=NOW)
    assert (found.count, found.recent, found.change) == (8, 4, "rising")


def test_what_failed_after_a_person_stopped_its_run_is_not_a_pattern(store):
    """A stop from the Coordination page fails the run's running tasks (TaskLost): the stop's doing. Two runs
    lose a task the same way; one was stopped by a person a minute before: one failure is a pattern. A
    failure of the stopped run before its stop still counts, and a stop that Airflow refused explains
    nothing."""
    lost = "task was lost: its worker stopped answering"
    store.append([
        _failed(1, timedelta(minutes=5), lost, error_class="TaskLost"),
        _failed(2, timedelta(minutes=5), lost, error_class="TaskLost"),
        _failed(2, timedelta(minutes=30), "timed out after 30 s", step="fetch", error_class="AgentTimeout"),
        _failed(3, timedelta(minutes=5), lost, error_class="TaskLost"),
    ])  # fmt: skip
    for run, ok in (("run-2", True), ("run-3", False)):
        payload = {"verb": "stop", "target": f"invoices/{run}", "by": "admin", "ok": ok, "detail": "running"}
        store.append([Event(type="action.taken", run_id=f"action:invoices/{run}", workflow="invoices",
                            payload=payload, ts=NOW - timedelta(minutes=6), discriminator=f"stop-{run}")])  # fmt: skip
    found = {(p.error_class, p.count, tuple(sorted(p.runs))) for p in patterns(store, hours=24, now=NOW)}
    assert found == {("TaskLost", 2, ("run-1", "run-3")), ("AgentTimeout", 1, ("run-2",))}


def test_a_workflow_of_its_own_and_nothing_outside_the_window(failures):
    assert patterns(failures, hours=24, workflow="payroll", now=NOW) == []
    assert sum(p.count for p in patterns(failures, hours=48, now=NOW)) == 31  # the 30 h old one too


@pytest.mark.parametrize(
    ("message", "normalised"),
    [
        ("user jane.doe@example.com not found", "user <email> not found"),
        (
            "run 3f2a9c1e-1b2c-4d5e-8f90-123456789abc failed at 2026-11-25T10:00:00Z",
            "run <uuid> failed at <time>",
        ),
        ("  many\n\n  spaces\tand lines  ", "many spaces and lines"),
        ("x" * 10_000, "x" * 300),
        ("'" * 5000, ("<value>" * 2500)[:300]),
    ],
)
def test_what_differs_between_failures_of_one_kind_and_what_is_personal_is_masked(message, normalised):
    assert normalise(message) == normalised


def test_the_report_reads_a_bounded_number_of_failures(store, monkeypatch):
    monkeypatch.setattr(errors, "MAX_EVENTS", 50)
    store.append([_failed(i, timedelta(minutes=120 - i), f"boom {i}") for i in range(120)])  # as they come
    (found,) = patterns(store, hours=24, now=NOW)
    assert (found.count, found.first_seen, found.last_seen) == (
        50,
        NOW - timedelta(minutes=50),
        NOW - timedelta(minutes=1),
    )


def test_baton_errors_prints_the_patterns_and_refuses_bad_windows(failures, capsys, monkeypatch):
    url = failures.engine.url.set(drivername=failures.engine.url.drivername.split("+")[0])
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", url.render_as_string(hide_password=False))
    monkeypatch.setattr(errors, "datetime", _Frozen)
    assert baton(["errors"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "30 failure(s) in the last 24 h in 3 pattern(s); recent: the last 1 h"
    assert (
        out[2]
        == "       6 (6 recent, new) invoices.fetch [erp] AgentError: HTTP <n> from <ip> for order <hex>"
    )
    assert baton(["errors", "--json", "--workflow", "invoices", "--hours", "12"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [p["count"] for p in document["patterns"]] == [12, 6, 2]
    for argv in (["--hours", "0"], ["--hours", "nan"], ["--hours", "1e9"], ["--recent", "soon"]):
        with pytest.raises(SystemExit) as exit:
            baton(["errors", *argv])
        assert exit.value.code == 2
    err = capsys.readouterr().err
    assert (
        "0 hours: give more than 0 and at most a year (8784)" in err
        and "'soon' is not a number of hours" in err
    )


class _Frozen(datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW
