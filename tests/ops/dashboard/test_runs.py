"""The runs' page: newest first, a page at a time by a cursor, each run with its progress, running steps,
ETA, agents and the people it waits on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from baton.ops.dashboard import runs
from baton.ops.dashboard.common import CursorError, decode_cursor, encode_cursor
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
    assert only["progress"] == {"done": 1, "total": 2}
    assert only["eta_s"] == 60.0, "the median of the workflow's recent successful runs (100 s) minus 40 s"
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
    assert only["eta_s"] is None and only["progress"] == {"done": 0, "total": 0}


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
