"""One run's Gantt chart: a bar per step try, per fan-out item attempt and per compensation, and markers
for what happened between them: reassignments (a next try or item attempt on another agent, or a person's
choice), context conflicts with their resolution, questions to people (asked; answered by whom, with the options
chosen; or closed by a stop), a person's stop (who, why), the saga's start and outcome, and circuits
opened. A try that Baton's offline model answered (made-up data) says
so: ``offline`` on its bar, and ``offline_calls`` for the run.

Bounded: the run's events are read by its (run, seq) index, at most ``MAX_EVENTS`` of them, and only the
payload fields the chart shows (never an output); at most ``MAX_BARS`` bars and ``MAX_MARKERS`` markers are
answered. ``truncated`` says when any bound cut the answer."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, true

from baton.events import schema
from baton.events.store import EventStore
from baton.events.summary_writes import payload_field
from baton.ops.dashboard.common import iso, rounded

MAX_EVENTS = 20_000
MAX_BARS = 2_000
MAX_MARKERS = 500
TYPES = (
    "run.started",
    "run.succeeded",
    "run.failed",
    "step.started",
    "step.succeeded",
    "step.failed",
    "step.retried",
    "step.skipped",
    "step.reassigned",
    "agent.selected",
    "agent.breaker_opened",
    "subtask.started",
    "subtask.succeeded",
    "subtask.failed",
    "context.conflict",
    "context.resolved",
    "approval.requested",
    "approval.answered",
    "run.stopped",
    "saga.started",
    "saga.completed",
    "compensation.started",
    "compensation.succeeded",
    "compensation.failed",
)
FIELDS = ("subtask", "key", "strategy", "outcome", "kind", "by", "target", "error_class", "reason")
LISTS = ("chosen", "questions_closed")  # JSON lists of a payload: an answer's options, a stop's questions
NUMBERS = ("attempt", "after_try", "version")
NOT_BARS = (
    "step.reassigned",
    "step.retried",
)  # a person's choice (a marker); a retry (its failure is the end)
ENDS = {
    "step.succeeded": "success",
    "step.failed": "failed",
    "step.skipped": "skipped",
    "subtask.succeeded": "success",
    "subtask.failed": "failed",
    "compensation.succeeded": "success",
    "compensation.failed": "failed",
}


def chart(store: EventStore, run_id: str, max_events: int = MAX_EVENTS) -> dict[str, Any] | None:
    """The run's chart, or None when the store has no event of it."""
    rows = _read(store, run_id, max_events + 1)
    if not rows:
        return None if not store.has_run(run_id) else _empty(run_id)
    truncated = len(rows) > max_events
    chart = Chart(run_id)
    for row in rows[:max_events]:
        chart.add(row)
    return chart.document(truncated)


def _read(store: EventStore, run_id: str, limit: int) -> list[Any]:
    e, dialect = schema.events.c, store.engine.dialect.name
    fields = [payload_field(dialect, name).label(name) for name in FIELDS]
    fields.append(payload_field(dialect, "agent").label("chosen"))  # agent.selected's, a person's choice
    fields += [payload_field(dialect, name, "integer").label(name) for name in NUMBERS]
    fields += [payload_field(dialect, name, "json").label(f"{name}_list") for name in LISTS]
    flags = ("reassigned", "timed_out", "offline")
    fields += [payload_field(dialect, name, "boolean").label(name) for name in flags]
    query = select(e.seq, e.type, e.workflow, e.step, e.map_index, e.try_number, e.agent, e.ts, *fields)
    offline = (e.type == "model.called") & (payload_field(dialect, "offline", "boolean") == true())
    query = query.where(e.run_id == run_id, or_(e.type.in_(TYPES), offline))  # only the offline calls
    with store.engine.connect() as conn:
        return conn.execute(query.order_by(e.seq).limit(limit)).all()


def _empty(run_id: str) -> dict[str, Any]:
    return Chart(run_id).document(False)


class Chart:
    """Folds a run's rows, in sequence order, into bars and markers."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.workflow = ""
        self.state = "running"
        self.started: datetime | None = None
        self.ended: datetime | None = None
        self.bars: dict[tuple, dict[str, Any]] = {}
        self.markers: list[dict[str, Any]] = []
        self.agents: dict[tuple[str, int, int], str] = {}  # (step, map index, try) -> its agent
        self.open: dict[str, list[dict[str, Any]]] = {"conflict": [], "question": []}
        self.reassigned: set[tuple[str, int, int]] = set()  # the tries already marked
        self.events = 0
        self.cut = False
        self.offline_calls = 0  # the model calls Baton's offline model answered
        self.stopped = False  # a person stopped the run (its failure is their doing, not the run's)

    def add(self, row: Any) -> None:
        self.events += 1
        self.workflow = row.workflow
        kind = row.type
        if kind == "run.stopped":
            self._stopped(row)
        elif kind.startswith("run."):
            self._run(row)
        elif kind.startswith(("step.", "subtask.", "compensation.")) and kind not in NOT_BARS:
            self._bar(row)
        elif kind == "agent.selected":
            self._selected(row)
        elif kind == "model.called":
            self._offline(row)
        else:
            self._marker(row)

    def _run(self, row: Any) -> None:
        if row.type == "run.started":
            self.started = self.started or row.ts
        else:
            self.state, self.ended = ("success" if row.type == "run.succeeded" else "failed"), row.ts

    def _bar_key(self, row: Any) -> tuple:
        if row.type.startswith("subtask."):
            return ("item", row.step, row.map_index, row.try_number, row.subtask, row.attempt or 1)
        if row.type.startswith("compensation."):
            return ("compensation", row.step, row.map_index, row.target, row.attempt or 0)
        return ("try", row.step, row.map_index, row.try_number)

    def _bar(self, row: Any) -> None:
        key = self._bar_key(row)
        bar = self.bars.get(key)
        if bar is None:
            if len(self.bars) >= MAX_BARS:
                self.cut = True
                return
            bar = self.bars[key] = self._new_bar(key, row)
        if row.type.endswith(".started"):
            bar["start"] = bar["start"] or row.ts
        elif row.type in ENDS:
            bar["end"], bar["state"] = row.ts, ENDS[row.type]
            bar["error_class"] = row.error_class or None
            if row.type == "subtask.failed" and row.reassigned:
                self._mark(row, "reassignment", subtask=row.subtask, from_agent=row.agent, to_agent=None)
        bar["agent"] = bar["agent"] or row.agent

    def _new_bar(self, key: tuple, row: Any) -> dict[str, Any]:
        kind = key[0]
        agent = self.agents.get((row.step, row.map_index, row.try_number)) if kind == "try" else None
        if kind == "try":
            self._reassigned_try(row)
        return {
            "kind": kind,
            "step": row.target if kind == "compensation" else row.step,
            "map_index": row.map_index,
            "subtask": row.subtask if kind == "item" else None,
            "try_number": row.try_number,
            "attempt": key[-1] if kind != "try" else None,
            "agent": agent or row.agent,
            "state": "running",
            "start": row.ts if row.type.endswith(".started") else None,
            "end": None,
            "error_class": None,
            "offline": False,
        }

    def _offline(self, row: Any) -> None:
        """A model call the offline model answered (the only ones read): its try's bar says so."""
        if not row.offline:
            return
        self.offline_calls += 1
        bar = self.bars.get(("try", row.step, row.map_index, row.try_number))
        if bar is not None:
            bar["offline"] = True

    def _selected(self, row: Any) -> None:
        if row.subtask:
            return  # an item's agent comes with its subtask.started
        chosen = row.chosen or row.agent
        self.agents[(row.step, row.map_index, row.try_number)] = chosen
        bar = self.bars.get(("try", row.step, row.map_index, row.try_number))
        if bar is not None:
            bar["agent"] = chosen
        self._reassigned_try(row)

    def _reassigned_try(self, row: Any) -> None:
        """A try whose agent differs from the previous try's: a reassignment marker (once per try)."""
        now = self.agents.get((row.step, row.map_index, row.try_number))
        before = self.agents.get((row.step, row.map_index, row.try_number - 1))
        key = (row.step, row.map_index, row.try_number)
        if now and before and now != before and key not in self.reassigned:
            self.reassigned.add(key)
            self._mark(row, "reassignment", from_agent=before, to_agent=now)

    def _marker(self, row: Any) -> None:
        kind = row.type
        if kind == "step.reassigned":
            self._mark(row, "reassignment", to_agent=row.chosen, by=row.by or None, after_try=row.after_try)
        elif kind == "agent.breaker_opened":
            self._mark(row, "circuit_opened", agent=row.chosen or row.agent)
        elif kind == "context.conflict":
            marker = self._mark(row, "conflict", key=row.key, strategy=row.strategy, resolution=None)
            self.open["conflict"].append(marker)
        elif kind == "context.resolved":
            self._resolve(row)
        elif kind == "approval.requested":
            marker = self._mark(row, "question", question=row.kind, answered_at=None, by=None, chosen=None,
                                timed_out=None, open=True)  # fmt: skip
            self.open["question"].append(marker)
        elif kind == "approval.answered":
            self._answer(row)
        elif kind in ("saga.started", "saga.completed"):
            self._mark(row, kind.replace(".", "_"), outcome=row.outcome)

    def _mark(self, row: Any, kind: str, **fields: Any) -> dict[str, Any]:
        marker = {"kind": kind, "at": row.ts, "step": row.step, "map_index": row.map_index, **fields}
        marker["try_number"] = row.try_number
        self.markers.append(marker)
        return marker

    def _resolve(self, row: Any) -> None:
        for marker in self.open["conflict"]:
            if marker["key"] == row.key and marker["step"] == row.step and marker["resolution"] is None:
                marker["resolution"] = {"outcome": row.outcome, "at": row.ts, "version": row.version}
                return
        self._mark(row, "conflict", key=row.key, strategy=row.strategy, resolution={"outcome": row.outcome})

    def _answer(self, row: Any) -> None:
        for marker in self.open["question"]:
            same = (marker["step"], marker["map_index"], marker["try_number"])
            if same == (row.step, row.map_index, row.try_number) and marker["answered_at"] is None:
                marker.update(answered_at=row.ts, by=row.by or None, timed_out=bool(row.timed_out),
                              chosen=_listed(row.chosen_list), open=False)  # fmt: skip
                return

    def _stopped(self, row: Any) -> None:
        """A person's stop: who and why; the questions it closed are no longer open (closed by the stop)."""
        closed = _listed(row.questions_closed_list)
        self._mark(row, "stopped", by=row.by or None, reason=row.reason or None, questions_closed=closed)
        self.stopped = True
        for marker in self.open["question"]:
            if marker["open"]:
                marker.update(open=False, answered_at=row.ts, by=f"run stopped by {row.by}", chosen=[])

    def document(self, truncated: bool) -> dict[str, Any]:
        bars = [_bar_document(bar) for bar in self.bars.values()]
        cut = truncated or self.cut or len(self.markers) > MAX_MARKERS
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "state": self.state,
            "stopped": self.stopped,
            "started_at": iso(self.started),
            "ended_at": iso(self.ended),
            "bars": bars,
            "markers": [_times(m) for m in self.markers[:MAX_MARKERS]],
            "events_read": self.events,
            "offline_calls": self.offline_calls,
            "truncated": cut,
        }


def _listed(value: Any) -> list[str] | None:
    """A payload's JSON list as read (a list, or its JSON text on some dialects), its items as text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return [str(item)[:250] for item in value[:50]] if isinstance(value, list) else None


def _bar_document(bar: dict[str, Any]) -> dict[str, Any]:
    start, end = bar["start"], bar["end"]
    took = (end - start).total_seconds() if start and end else None
    return {**bar, "start": iso(start), "end": iso(end), "duration_s": rounded(took)}


def _times(marker: dict[str, Any]) -> dict[str, Any]:
    done = {k: iso(v) if isinstance(v, datetime) else v for k, v in marker.items()}
    if isinstance(done.get("resolution"), dict):
        done["resolution"] = {
            k: iso(v) if isinstance(v, datetime) else v for k, v in done["resolution"].items()
        }
    return done
