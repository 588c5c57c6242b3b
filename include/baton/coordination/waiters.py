"""Who waits for an agent's load slot, and who gets the next one: the caller whose run must start soonest.

Every agent call holds one of its agent's slots (:mod:`baton.coordination.load`). A caller that finds them all
held waits and asks again; while it waits it has a row in ``baton_slot_waiters`` with its run's *start-by
time*, the same one Airflow's queue is ordered by (``priority.assigned``, :mod:`baton.queue`: the run's deadline
less its predicted time to finish, or its level's age bound). A caller takes a free slot only while fewer
callers with an earlier start-by wait than there are free slots, so the run that must start soonest gets the
next slot whenever it began waiting, and a low-priority run is never starved: its start-by is its age bound,
after which work that arrives later comes behind it unless its own deadline or bound is earlier still.

The items of one fan-out share their task's row (they do not wait for one another), which goes when the last
of them is served. A row lives ``WAIT_TTL`` after its caller last asked: a killed caller holds no one up for
longer. A run with no ``priority.assigned`` (one that did not start through a scheduler with Baton's listener,
as under ``dag.test()``) stands at its level's age bound from its start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select, text

from baton.events import schema
from baton.events.event import Event
from baton.spec.priority import LEVELS, default_max_wait

log = logging.getLogger(__name__)

#: How long a waiting caller's row outlives its last ask (callers ask again every 0.5 s at most).
WAIT_TTL = timedelta(seconds=5)

#: The callers ahead of this one: waiting for the same agent (their rows live), of another task, with an
#: earlier start-by time. A CTE of :mod:`baton.coordination.load`'s statement that takes a slot.
AHEAD = """ahead(k) AS (SELECT count(*) FROM baton_slot_waiters
  WHERE agent = :agent AND expires_at > :now AND waiter <> :waiter AND start_by < :start_by)"""
START_BY = bindparam("start_by", type_=schema.UTCDateTime())

_TIMES = (
    START_BY,
    bindparam("now", type_=schema.UTCDateTime()),
    bindparam("expires", type_=schema.UTCDateTime()),
)
_WAIT = text(
    """INSERT INTO baton_slot_waiters (agent, waiter, start_by, since, expires_at)
VALUES (:agent, :waiter, :start_by, :now, :expires)
ON CONFLICT (agent, waiter) DO UPDATE SET start_by = excluded.start_by, expires_at = excluded.expires_at"""
).bindparams(*_TIMES)
_EXPIRED = text("DELETE FROM baton_slot_waiters WHERE agent = :agent AND expires_at <= :now").bindparams(
    _TIMES[1]
)
_W = schema.slot_waiters.c
_SERVED = schema.slot_waiters.delete().where(
    _W.waiter == bindparam("waiter"), _W.agent.in_(bindparam("agents", expanding=True))
)
_E = schema.events.c
_STANDING = (
    select(_E.payload)
    .where(_E.run_id == bindparam("run_id"), _E.type == "priority.assigned")
    .order_by(_E.seq)
    .limit(1)
)


def waited(events: Sequence[Event], since: float | None, start_by: datetime | None = None) -> Sequence[Event]:
    """``events`` with the seconds waited since ``since`` (``time.monotonic()``) in their ``agent.selected``
    (``queue_wait_s``) and, for a caller that waited with a place, the start-by time it waited with
    (``queue_start_by``: why it was served when it was); unchanged when ``since`` is None."""
    if since is None:
        return events
    wait = round(max(0.0, time.monotonic() - since), 3)
    extra: dict[str, Any] = {"queue_wait_s": wait}
    if start_by is not None and wait > 0:
        extra["queue_start_by"] = start_by.astimezone(UTC).isoformat(timespec="seconds")
    return [replace(e, payload={**e.payload, **extra}) if e.type == "agent.selected" else e for e in events]


@dataclass
class Place:
    """Where one task's calls stand among the callers waiting for slots: ``waiter`` names the task instance
    (run / task / map index), ``run_id`` its run, whose ``priority.assigned`` says its start-by time;
    ``fallback`` the start-by time of a run that has none."""

    waiter: str
    run_id: str
    fallback: datetime
    _start_by: datetime | None = field(default=None, repr=False)

    def start_by(self, conn: Connection) -> datetime:
        """The run's start-by time, read once (in ``conn``'s transaction: SQLite's second one would wait)."""
        if self._start_by is None:
            self._start_by = run_start_by(conn, self.run_id) or self.fallback
        return self._start_by


def run_start_by(conn: Connection, run_id: str) -> datetime | None:
    """The start-by time of the run's ``priority.assigned`` (its first), or None."""
    payload = conn.execute(_STANDING, {"run_id": run_id}).scalar()
    try:
        moment = datetime.fromisoformat(payload["start_by"])
    except (TypeError, KeyError, ValueError):
        if payload is not None:
            log.warning(
                "The priority.assigned of run %s has no readable start_by: its level's bound counts", run_id
            )
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def place_of(recorder: Any) -> Place:
    """The place of the task a step's recorder records (its run, task and map index, from Airflow's context);
    without a ``priority.assigned`` its run stands at its level's age bound (the task's ``priority_weight``,
    the template's level) from when the run started."""
    common, context = recorder.common, getattr(recorder, "context", None) or {}
    level = getattr(context.get("task"), "priority_weight", None)
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 100:
        level = LEVELS["normal"]
    started = getattr(context.get("dag_run"), "start_date", None)
    if not isinstance(started, datetime):
        started = datetime.now(UTC)
    waiter = f"{common['run_id']}/{common['step']}/{common['map_index']}"[:250]
    return Place(waiter, common["run_id"], started + default_max_wait(level))


class Waiting:
    """The callers of one process (of one task) waiting for slots, each known by when it began waiting."""

    def __init__(self, place: Place | None):
        self.place = place
        self._callers: dict[str, set[float]] = {}  # agent -> the callers (their ``since``) waiting for it

    def params(self, conn: Connection, now: datetime) -> dict[str, Any]:
        """What :data:`AHEAD` compares with: a caller with no place stands as one that must start now."""
        if self.place is None:
            return {"waiter": "", "start_by": now}
        return {"waiter": self.place.waiter, "start_by": self.place.start_by(conn)}

    def wait_in(self, conn: Connection, agent: str, since: float | None, params: dict[str, Any]) -> None:
        """The caller found no slot it may take: its task's row (re)written, living ``WAIT_TTL`` more; the
        agent's expired rows (killed callers') go. A caller that does not wait (no ``since``) writes nothing."""
        if self.place is None or since is None:
            return
        self._callers.setdefault(agent, set()).add(since)
        now = params["now"]
        conn.execute(_EXPIRED, {"agent": agent, "now": now})
        conn.execute(_WAIT, {**params, "agent": agent, "expires": now + WAIT_TTL})

    def served_in(self, conn: Connection, since: float | None) -> None:
        """The caller got a slot: it waits no more for any agent; its task's rows go where none of its other
        callers still waits."""
        if self.place is None or since is None or not self._callers:
            return
        done = []
        for agent, callers in list(self._callers.items()):
            callers.discard(since)
            if not callers:
                done.append(agent)
                del self._callers[agent]
        if done:
            conn.execute(_SERVED, {"waiter": self.place.waiter, "agents": done})
