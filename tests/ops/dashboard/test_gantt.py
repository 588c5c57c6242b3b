"""One run's Gantt chart: bars per try, fan-out item and compensation; markers for reassignments,
conflicts, questions, the saga and circuits; bounded for a run of 100,000 events (test_api.py)."""

from __future__ import annotations

from baton.ops.dashboard import gantt
from tests.ops.dashboard.scenario import Run


def _item(run: Run, kind: str, at: float, agent: str, sub: str, attempt: int, **payload) -> object:
    body = {"subtask": sub, "attempt": attempt, **payload}
    if kind == "subtask.succeeded":
        body |= {"sha256": "ab", "size": 2, "output": "x" * 1000}
    return run.event(kind, at, "enrich", agent=agent, payload=body, discriminator=f"{sub}#{attempt}")


def _story(store) -> None:
    run = Run(store, "run_g")
    run.start("score", 1, agent="flaky")
    run.fail("score", 3, agent="flaky")
    run.append(
        run.event("step.reassigned", 4, "score", payload={"agent": "steady", "after_try": 1, "by": "ana"})
    )
    run.start("score", 5, agent="steady", try_number=2)
    run.append(
        *run.conflict("score", 6, "merged", 2, version=3),
        run.event("approval.requested", 7, "score", 2, payload={"subject": "ok?", "kind": "review"}),
    )
    run.append(run.event("approval.answered", 9, "score", 2, payload={"chosen": ["Approve"], "by": "bo"}))
    run.succeed("score", 10, 5.0, agent="steady", try_number=2)
    run.start("enrich", 10, agent=None)
    run.append(
        _item(run, "subtask.started", 10, "a1", "0", 1),
        _item(run, "subtask.failed", 11, "a1", "0", 1, error_class="Timeout", reassigned=True),
        _item(run, "subtask.started", 11, "a2", "0", 2),
        _item(run, "subtask.succeeded", 13, "a2", "0", 2, latency_s=2.0),
    )
    run.fail("enrich", 14, agent=None, retry=False)
    saga = run.event("saga.started", 15, "_compensate", payload={"plan": ["score"]})
    comp = run.event(
        "compensation.started", 15, "score", 0, payload={"target": "score", "attempt": 1}, discriminator="s|1"
    )
    done = run.event(
        "compensation.succeeded",
        16,
        "score",
        0,
        payload={"target": "score", "attempt": 1},
        discriminator="s|1",
    )
    end = run.event(
        "saga.completed", 17, "_compensate", payload={"outcome": "compensated", "compensated": ["score"]}
    )
    run.append(saga, comp, done, end)
    run.end(18, ok=False)


def test_a_runs_bars_and_markers(store):
    _story(store)
    chart = gantt.chart(store, "run_g")
    assert (chart["state"], chart["truncated"]) == ("failed", False)
    bars = [
        (b["kind"], b["step"], b["try_number"], b["attempt"], b["agent"], b["state"], b["duration_s"])
        for b in chart["bars"]
    ]
    assert bars == [
        ("try", "score", 1, None, "flaky", "failed", 2.0),
        ("try", "score", 2, None, "steady", "success", 5.0),
        ("try", "enrich", 1, None, None, "failed", 4.0),
        ("item", "enrich", 1, 1, "a1", "failed", 1.0),
        ("item", "enrich", 1, 2, "a2", "success", 2.0),
        ("compensation", "score", 0, 1, None, "success", 1.0),
    ]
    marks = {(m["kind"], m.get("by")) for m in chart["markers"]}
    assert marks >= {("reassignment", "ana"), ("reassignment", None), ("question", "bo"), ("conflict", None)}
    (conflict,) = [m for m in chart["markers"] if m["kind"] == "conflict"]
    assert conflict["resolution"]["outcome"] == "merged" and conflict["resolution"]["version"] == 3
    (question,) = [m for m in chart["markers"] if m["kind"] == "question"]
    assert (question["question"], question["at"], question["answered_at"]) == (
        "review",
        "2026-03-02T09:00:07+00:00",
        "2026-03-02T09:00:09+00:00",
    )
    assert (question["by"], question["chosen"], question["open"], question["timed_out"]) == (
        "bo",
        ["Approve"],
        False,
        False,
    )
    moves = [
        (m["from_agent"], m["to_agent"])
        for m in chart["markers"]
        if m["kind"] == "reassignment" and not m.get("by")
    ]
    assert moves == [("flaky", "steady"), ("a1", None)]
    assert [m["outcome"] for m in chart["markers"] if m["kind"].startswith("saga")] == [None, "compensated"]
    assert "x" * 100 not in str(chart), "no output is read"


def test_an_unknown_run_has_no_chart(store):
    assert gantt.chart(store, "nobody") is None


def test_a_stop_says_who_and_why_and_closes_the_questions_still_open(store):
    run = Run(store, "run_s")
    run.start("draft", 1, agent="writer")
    run.succeed("draft", 3, 2.0, agent="writer")
    run.append(
        run.event("approval.requested", 4, "approve", payload={"subject": "Ann Lee?", "kind": "approval"})
    )
    stop = {"by": "ana", "reason": "the customer cancelled", "questions_closed": ["approve"],
            "compensation_run_id": "manual__stop__1"}  # fmt: skip
    run.append(run.event("run.stopped", 6, None, 0, payload=stop))
    run.end(7, ok=False)
    chart = gantt.chart(store, "run_s")
    assert chart["stopped"] is True and chart["state"] == "failed"
    (stopped,) = [m for m in chart["markers"] if m["kind"] == "stopped"]
    assert (stopped["by"], stopped["reason"], stopped["questions_closed"]) == (
        "ana", "the customer cancelled", ["approve"]
    )  # fmt: skip
    (question,) = [m for m in chart["markers"] if m["kind"] == "question"]
    assert (question["open"], question["by"], question["chosen"]) == (False, "run stopped by ana", [])
    assert "Ann Lee" not in str(chart), "a question's subject (it may name a person) is not on the page"


def test_a_question_asked_and_not_answered_is_open(store):
    run = Run(store, "run_q")
    run.append(run.event("approval.requested", 4, "approve", payload={"subject": "?", "kind": "approval"}))
    (question,) = [m for m in gantt.chart(store, "run_q")["markers"] if m["kind"] == "question"]
    assert (question["open"], question["answered_at"], question["chosen"]) == (True, None, None)
    assert gantt.chart(store, "run_q")["stopped"] is False
