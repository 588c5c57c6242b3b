"""The runs' page: newest first, a page at a time by a cursor, each run with its progress, running steps,
ETA, agents and the people it waits on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from baton.events.event import Event
from baton.ops.dashboard import runs
from baton.ops.dashboard.common import SYSTEM_WORKFLOWS, CursorError, decode_cursor, encode_cursor
from tests.ops.dashboard.scenario import T0, Run


def _finished(store, count: int, workflow: str = "lead_scoring", took: float = 60.0, ok: bool = True) -> None:
    for i in range(count):
        run = Run(store, f"{workflow}-{i:03d}", workflow, at=T0 + timedelta(minutes=i))
        run.start("fetch", 1, agent="reader")
        run.succeed("fetch", 20, 19.0, agent="reader")
        run.start("score", 20)
        run.succeed("score", took, took - 20)
        run.end(took, ok=ok)


def test_pages_walk_every_run_once_newest_first_and_say_when_they_end(store):
    _finished(store, 7)
    _finished(store, 3, workflow="triage")
    seen, cursor = [], None
    for _ in range(10):
        found = runs.page(store, limit=3, before=cursor)
        seen += [r["run_id"] for r in found["runs"]]
        cursor = found["next"]
        if cursor is None:
            break
    starts = [r.split("-")[1] for r in seen]
    assert len(seen) == 10 == len(set(seen))
    assert starts == sorted(starts, reverse=True), "newest first"
    assert [r["run_id"] for r in runs.page(store, workflow="triage", limit=50)["runs"]] == [
        "triage-002",
        "triage-001",
        "triage-000",
    ]


def test_runs_started_at_the_same_moment_are_neither_lost_nor_repeated_between_pages(store):
    for name in ("a", "b", "c", "d", "e"):
        Run(store, name, at=T0)
    first = runs.page(store, limit=2)
    second = runs.page(store, limit=2, before=first["next"])
    third = runs.page(store, limit=2, before=second["next"])
    ids = [r["run_id"] for page in (first, second, third) for r in page["runs"]]
    assert ids == ["e", "d", "c", "b", "a"] and third["next"] is None


def test_a_running_run_shows_its_steps_eta_agents_and_the_person_it_waits_on(store):
    _finished(store, 3, took=100.0)
    run = Run(store, "now", at=T0 + timedelta(hours=1))
    run.start("fetch", 1, agent="reader")
    run.succeed("fetch", 20, 19.0, agent="reader")
    run.start("score", 20, agent="scorer")
    run.append(run.event("approval.requested", 30, "score", payload={"subject": "?", "kind": "review"}))
    found = runs.page(store, state="running", now=T0 + timedelta(hours=1, seconds=40))
    (only,) = found["runs"]
    assert only["state"] == "running" and only["elapsed_s"] == 40.0
    assert only["progress"] == {"done": 1, "succeeded": 1, "total": 2}
    # a person may take days: no countdown while one is awaited, and the page says why
    assert (only["eta_s"], only["eta_note"]) == (None, "waiting on a person")
    assert [(s["step"], s["agent"]) for s in only["running"]] == [("score", "scorer")]
    assert only["people_pending"] == [
        {"step": "score", "map_index": -1, "kind": "review", "since": "2026-03-02T10:00:30+00:00"}
    ]
    assert only["agents"] == ["reader", "scorer"]
    assert only["duration_s"] is None and only["running_count"] == 1 and only["people_pending_count"] == 1


def test_a_running_run_of_a_workflow_without_successful_history_has_no_eta(store):
    _finished(store, 2, ok=False)
    Run(store, "new")
    (only,) = runs.page(store, state="running")["runs"]
    assert only["eta_s"] is None and only["progress"] == {"done": 0, "succeeded": 0, "total": 0}
    assert only["eta_note"] == "no successful run yet to estimate from"


def test_a_running_runs_eta_is_its_workflows_usual_duration_left_and_none_once_past_it(store):
    _finished(store, 3, took=100.0)
    run = Run(store, "now", at=T0 + timedelta(hours=1))
    run.start("fetch", 1, agent="reader")
    (early,) = runs.page(store, state="running", now=T0 + timedelta(hours=1, seconds=40))["runs"]
    assert (early["eta_s"], early["eta_note"]) == (60.0, None), (
        "the median of the recent successes (100 s) - 40 s"
    )
    (late,) = runs.page(store, state="running", now=T0 + timedelta(hours=1, seconds=130))["runs"]
    assert (late["eta_s"], late["eta_note"]) == (None, "longer than its usual 100 s"), (
        "never a countdown at 0 s"
    )


def test_a_stopped_run_says_who_stopped_it_and_why_and_counts_only_its_successes(store):
    run = Run(store, "halted")
    run.start("fetch", 1, agent="reader")
    run.succeed("fetch", 5, 4.0, agent="reader")
    run.start("score", 6)
    run.fail("score", 9, retry=False)
    run.append(run.event("step.skipped", 9, "publish", agent=None))
    run.append(
        Event(
            type="run.stopped",
            run_id="halted",
            workflow="lead_scoring",
            ts=T0 + timedelta(seconds=8),
            payload={"by": "ana", "reason": "the customer cancelled", "questions_closed": ["approve"]},
        )
    )
    run.end(10, ok=False)
    (only,) = runs.page(store)["runs"]
    assert (only["state"], only["state_shown"]) == ("failed", "stopped")
    assert only["stopped"] == {
        "by": "ana",
        "reason": "the customer cancelled",
        "at": "2026-03-02T09:00:08+00:00",
    }
    assert only["progress"] == {"done": 3, "succeeded": 1, "total": 3}, "3 done, only 1 of them succeeded"
    (failed,) = [r for r in runs.page(store, workflow="lead_scoring")["runs"]]
    assert failed["stopped"] is not None
    _finished(store, 1, workflow="other", ok=False)
    other = runs.page(store, workflow="other")["runs"][0]
    assert (other["state_shown"], other["stopped"]) == ("failed", None), "a failure is not a stop"


def test_batons_own_runs_are_left_out_unless_asked_for(store):
    _finished(store, 2)
    for workflow in sorted(SYSTEM_WORKFLOWS):
        _finished(store, 1, workflow=workflow)
    listed = {r["workflow"] for r in runs.page(store)["runs"]}
    assert listed == {"lead_scoring"}
    assert {r["workflow"] for r in runs.page(store, system=True)["runs"]} == {
        "lead_scoring",
        *SYSTEM_WORKFLOWS,
    }
    asked = runs.page(store, workflow="baton_monitor")["runs"]
    assert [r["workflow"] for r in asked] == ["baton_monitor"], "named, a system workflow's runs are listed"


def test_finished_runs_have_their_duration_and_no_one_pending(store):
    _finished(store, 2)
    _finished(store, 1, workflow="triage", ok=False)
    found = runs.page(store, state="finished")["runs"]
    assert {r["state"] for r in found} == {"success", "failed"}
    assert all(r["duration_s"] == 60.0 and r["eta_s"] is None and r["people_pending"] == [] for r in found)
    assert runs.page(store, state="running")["runs"] == []


def test_a_cursor_that_is_not_one_of_ours_is_refused(store):
    good = encode_cursor(T0, "run-1")
    assert decode_cursor(good) == (T0, "run-1")
    forged = good[:-1] + ("0" if good[-1] != "0" else "1")
    for cursor in ("", "abc", "r1.e30.0000", forged, "r1." + "A" * 40 + ".x", good + "."):
        with pytest.raises(CursorError, match="not one this API gave"):
            runs.page(store, before=cursor or "x")
