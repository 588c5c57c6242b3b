"""Error patterns (``baton errors``, ``GET /baton/api/errors``): the failures of steps and fan-out items over
a window, grouped by their normalised message, error class, workflow, step and agent, with what changed
recently: a pattern that first came in the recent part of the window (new), one that comes at least twice
as often there as before (rising), one that stopped (quiet).

A message is normalised by masking what differs between two failures of the same kind: numbers, ids (UUIDs,
long hex), times, quoted values, URLs, e-mail and IP addresses. Masks, not a clustering algorithm such as
Drain: a report over a window must be the same whoever asks and in whatever order the failures came, and a
mask says plainly what it hid. The messages were redacted when recorded; the masks hide the rest of what
may be personal (an address, an id) before anything is shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from baton.events import schema
from baton.events.store import EventStore

FAILED = ("step.failed", "subtask.failed")
STOP_BEFORE = timedelta(days=1)  # a stop this long before the window still explains its failures
MAX_EVENTS = 100_000  # the newest failures a report reads: bounded time and memory however busy the store
MAX_MESSAGE = 300
RISING = 2.0  # a recent rate at least this many times the earlier one
MIN_RECENT = 3  # ... over at least this many recent failures

MASKS = [  # in this order: the longer forms first, so that a number inside an id is not masked alone
    (re.compile(r"https?://[^\s'\"<>]+"), "<url>"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (
        re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
        "<uuid>",
    ),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"'[^'\n]{0,200}'|\"[^\"\n]{0,200}\""), "<value>"),
    (re.compile(r"\d+(?:[.,]\d+)*"), "<n>"),
]


def normalise(message: str) -> str:
    """``message`` with what differs between failures of one kind masked (see the module's docstring)."""
    text = " ".join(str(message)[: MAX_MESSAGE * 4].split())
    for pattern, mask in MASKS:
        text = pattern.sub(mask, text)
    return text[:MAX_MESSAGE]


@dataclass
class Pattern:
    error_class: str
    message: str
    workflow: str
    step: str
    agent: str
    count: int = 0
    recent: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    runs: list[str] = field(default_factory=list)  # up to three runs it happened in, newest first
    change: str = "steady"

    def document(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in self.__dict__.items() if k not in ("first_seen", "last_seen")},
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
        }


def patterns(
    store: EventStore,
    hours: float = 24,
    recent_hours: float = 1,
    workflow: str | None = None,
    now: datetime | None = None,
) -> list[Pattern]:
    """The failure patterns of the last ``hours`` (of ``workflow``, or all), most frequent first, each
    with its change over the last ``recent_hours``."""
    now = now or datetime.now(UTC)
    since, recent_since = now - timedelta(hours=hours), now - timedelta(hours=min(recent_hours, hours))
    e = schema.events
    query = select(e.c.run_id, e.c.workflow, e.c.step, e.c.agent, e.c.payload, e.c.ts).where(
        e.c.type.in_(FAILED), e.c.ts > since, e.c.ts <= now
    )
    if workflow is not None:
        query = query.where(e.c.workflow == workflow)
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(e.c.seq.desc()).limit(MAX_EVENTS)).all()
        stopped = _stopped(conn, since - STOP_BEFORE, now)
    rows = [row for row in rows if not (row[0] in stopped and row[5] >= stopped[row[0]])]
    found = _group(rows, recent_since)
    before_hours = max(hours - recent_hours, 0.0)
    for pattern in found.values():
        pattern.change = _change(pattern, min(recent_hours, hours), before_hours)
    return sorted(found.values(), key=lambda p: (-p.count, -p.recent, p.workflow, p.step, p.message))


def _stopped(conn: Any, since: datetime, now: datetime) -> dict[str, datetime]:
    """The runs a person stopped (run id -> when), from the pages' ``action.taken`` events: what failed in
    them from then on (the tasks Airflow stopped, their ``TaskLost``) is the stop's doing, not a failure of
    the platform's to learn from, and is left out of the patterns."""
    e = schema.events
    query = select(e.c.payload, e.c.ts).where(e.c.type == "action.taken", e.c.ts > since, e.c.ts <= now)
    stopped: dict[str, datetime] = {}
    for payload, ts in conn.execute(query.order_by(e.c.seq.desc()).limit(MAX_EVENTS)).all():
        if payload.get("verb") == "stop" and payload.get("ok"):
            run_id = str(payload.get("target") or "").partition("/")[2]
            stopped[run_id] = min(stopped.get(run_id, ts), ts)
    return stopped


def _group(rows: Iterable[Any], recent_since: datetime) -> dict[tuple, Pattern]:
    found: dict[tuple, Pattern] = {}
    for run_id, workflow, step, agent, payload, ts in rows:
        error_class = str(payload.get("error_class") or "")[:100]
        key = (error_class, normalise(payload.get("error") or ""), workflow, step or "", agent or "")
        pattern = found.setdefault(key, Pattern(*key))
        pattern.count += 1
        pattern.recent += ts > recent_since
        pattern.first_seen = min(pattern.first_seen or ts, ts)
        pattern.last_seen = max(pattern.last_seen or ts, ts)
        if len(pattern.runs) < 3 and run_id not in pattern.runs:
            pattern.runs.append(run_id)
    return found


def _change(pattern: Pattern, recent_hours: float, before_hours: float) -> str:
    earlier = pattern.count - pattern.recent
    if pattern.recent and not earlier:
        return "new"
    if earlier and not pattern.recent:
        return "quiet"
    if pattern.recent >= MIN_RECENT and before_hours > 0:
        rate_now, rate_before = pattern.recent / recent_hours, earlier / before_hours
        if rate_now >= RISING * rate_before:
            return "rising"
    return "steady"
