"""The projections kept behind the log (the pages' read models): applied after the append's transaction, from
a durable cursor, by ``catch_up``; rebuilt from the log by ``rebuild``.

A projection handed to the log with ``caught_up=True`` costs an append nothing (an append is its INSERT); its
rows follow the log when ``catch_up`` runs: the events after its cursor (a row of
``baton_projection_cursors``) are applied in sequence order and the cursor moved past them, in ONE transaction.
The readers call it before they read (``EventLog.catch_up``), so a page sees every event committed before it
asked, up to ``READ_LIMIT`` of them. Hence:

- a crash between an append and the catch-up loses nothing: the events are in the log, the cursor has not moved,
  the next catch-up applies them; a catch-up that fails (killed, rolled back) moves neither rows nor cursor;
- two catch-ups (two API-server workers, two tasks) never apply an event twice: each locks its cursor's row
  first (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite every write transaction is ``BEGIN IMMEDIATE``),
  and the second reads the cursor the first moved;
- no event is skipped for committing after a later one. On SQLite writers take turns: numbers commit in order.
  On PostgreSQL a number is taken before its transaction commits, so a catch-up may see 11 before 10 commits. A
  number missing below the newest one applied is a gap, kept with the cursor and looked up again at each
  catch-up until it is found (applied then) or settled: it has been missing for ``SETTLE_S`` and every
  transaction running when it was seen has ended (the oldest running transaction, ``pg_snapshot_xmin``, is past
  the snapshot's ``xmax`` of that moment). Most gaps are numbers an idempotent append took and never stored
  (``ON CONFLICT DO NOTHING`` takes its number first; the listener and the operator write the same facts), and
  settle at the next catch-up. Two limits keep that bookkeeping bounded, each a way to miss an event that only
  a rebuild brings back: a gap is dropped after ``GIVE_UP_S`` (a transaction left open that long anywhere on
  the server holds the horizon back), and numbers more than ``MAX_GAPS`` below the newest seen are not waited for.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Connection, String, func, select, text, update

from baton.events import schema
from baton.events.event import Event
from baton.events.rows import from_row, select_events

READ_LIMIT = (
    10_000  # events a catch-up applies at most: what a reader may wait for (bench/events.py: its rate)
)
SETTLE_S = 2.0
GIVE_UP_S = 600.0
MAX_GAPS = 10_000

_CURSOR_COLUMNS = {"seq": BigInteger(), "gaps": JSON(), "xmin": String()}
_LOCK = {
    "postgresql": text(
        "SELECT seq, gaps, pg_snapshot_xmin(pg_current_snapshot())::text AS xmin "
        "FROM baton_projection_cursors WHERE name = :name FOR UPDATE"
    ).columns(**_CURSOR_COLUMNS),
    "sqlite": text("SELECT seq, gaps, NULL AS xmin FROM baton_projection_cursors WHERE name = :name").columns(
        **_CURSOR_COLUMNS
    ),
}
_XMAX = text("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")


def _event(row: Any) -> Event | None:
    """The event of a stored row, or None for a row no projection can read (an unknown type, a payload that is
    not a JSON object): the replay reports those (``CorruptEvent``); a projection leaves them out."""
    found = from_row(row, validate=False)
    return found if isinstance(found, Event) else None


def behind(conn: Connection, name: str) -> bool:
    """Whether projection ``name`` may have events to apply (a gap open, or a number past its cursor): one
    unlocked read, so that a reader of a projection that is current takes no lock."""
    c = schema.projection_cursors.c
    newest = select(func.max(schema.events.c.seq)).scalar_subquery()
    row = conn.execute(select(c.seq, c.gaps, newest).where(c.name == name)).first()
    return row is None or bool(row[1]) or (row[2] or 0) > row[0]


def _lock(conn: Connection, name: str) -> Any:
    """The cursor's row, locked for this transaction (made at 0 if there is none: a new, empty projection)."""
    statement = _LOCK[conn.dialect.name]
    row = conn.execute(statement, {"name": name}).first()
    if row is None:
        cursors = schema.insert_for(conn.dialect.name)(schema.projection_cursors)
        conn.execute(
            cursors.values(name=name, seq=0, gaps=[], updated_at=datetime.now(UTC)).on_conflict_do_nothing()
        )
        row = conn.execute(statement, {"name": name}).first()
    return row


def _settled(gap: list[Any], xmin: int | None, now: float) -> bool:
    seq, seen, xmax = gap
    waited = now - seen
    return waited >= GIVE_UP_S or (xmin is not None and xmin >= xmax and waited >= SETTLE_S)


def _missing(conn: Connection, after: int, last: int, present: set[int], now: float) -> list[list[Any]]:
    """The numbers from ``after`` to ``last`` not among ``present`` (at most ``MAX_GAPS`` below ``last``), as
    gaps seen ``now``; none on SQLite, whose numbers commit in order."""
    if conn.dialect.name != "postgresql":
        return []
    numbers = [s for s in range(max(after, last - MAX_GAPS) + 1, last) if s not in present]
    if not numbers:
        return []
    xmax = int(conn.scalar(_XMAX))
    return [[s, now, xmax] for s in numbers]


def catch_up(conn: Connection, projection: Any, limit: int = READ_LIMIT) -> int:
    """Apply to ``projection`` (a ``log.Projection``) the events after its cursor, at most ``limit``, and the
    gaps' events now found, in ``conn``'s transaction; move its cursor. The number of events applied."""
    row = _lock(conn, projection.name)
    cursor, gaps = row.seq, [list(g) for g in row.gaps or ()]
    xmin = int(row.xmin) if row.xmin is not None else None
    e = schema.events.c
    found = conn.execute(select_events().where(e.seq > cursor).order_by(e.seq).limit(limit)).all()
    late = []
    if gaps:
        late = conn.execute(select_events().where(e.seq.in_([g[0] for g in gaps])).order_by(e.seq)).all()
    now = time.time()
    arrived = {r.seq for r in late}
    still = [g for g in gaps if g[0] not in arrived and not _settled(g, xmin, now)]
    if found:
        last = found[-1].seq
        still += _missing(conn, cursor, last, {r.seq for r in found}, now)
        cursor = last
    still = still[-MAX_GAPS:]
    rows = sorted([*late, *found], key=lambda r: r.seq) if late else found
    events = [event for event in map(_event, rows) if event is not None]
    if events:
        projection.apply(conn, events)
    if found or still != gaps:
        c = schema.projection_cursors.c
        conn.execute(
            update(schema.projection_cursors)
            .where(c.name == projection.name)
            .values(seq=cursor, gaps=still, updated_at=datetime.now(UTC))
        )
    return len(rows)


def start(conn: Connection, name: str, top: int | None = None) -> None:
    """Set projection ``name``'s cursor at event ``top`` (the newest: None), whose rows have just been made from
    the events up to it (a rebuild, a migration), in ``conn``'s transaction. Its gaps: the numbers up to ``top``
    not stored, above its cursor until then (below it, each was found or settled already) or among its open
    gaps; at most ``MAX_GAPS`` below ``top`` (a new cursor: every number there)."""
    row = _lock(conn, name)
    before, open_gaps = row.seq, [list(g) for g in row.gaps or ()]
    e = schema.events.c
    if top is None:  # the newest and the numbers below it in one statement: one snapshot
        newest = select(func.max(e.seq)).scalar_subquery()
        present = set(conn.scalars(select(e.seq).where(e.seq > newest - MAX_GAPS)))
        top = max(present, default=0)
    else:
        present = set(conn.scalars(select(e.seq).where(e.seq > top - MAX_GAPS, e.seq <= top)))
    present |= (
        set(conn.scalars(select(e.seq).where(e.seq.in_([g[0] for g in open_gaps])))) if open_gaps else set()
    )
    gaps = [g for g in open_gaps if g[0] <= top and g[0] not in present]
    gaps += _missing(conn, max(before, top - MAX_GAPS, 0), top, present, time.time())
    c = schema.projection_cursors.c
    values = {"seq": max(top, before), "gaps": gaps[-MAX_GAPS:], "updated_at": datetime.now(UTC)}
    conn.execute(update(schema.projection_cursors).where(c.name == name).values(**values))


def rebuild(conn: Connection, projection: Any) -> None:
    """Recompute ``projection``'s rows from the events up to the newest, and set its cursor there, in
    ``conn``'s transaction: under the cursor's lock, so that no catch-up applies an event in between. On
    PostgreSQL ``conn`` is REPEATABLE READ (``EventLog.rebuild``): the rebuild and the gaps it leaves read the
    same snapshot, so an event committed meanwhile is a gap, caught up once, not folded twice."""
    _lock(conn, projection.name)
    top = conn.scalar(select(func.max(schema.events.c.seq))) or 0
    projection.rebuild(conn, top)
    start(conn, projection.name, top)
