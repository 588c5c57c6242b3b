"""The append-only log of events: appends, idempotent by key, that keep the projections the log was handed in
the same transaction (or after it, from the log: ``caught_up``, ``baton.events.catchup``); reads in sequence
order; large outputs stored once (blobs).

The log knows nothing of which projections there are: whoever opens a store hands them in
(``baton.events.store.EventStore`` hands Baton's, ``baton.events.projections.PROJECTIONS``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import OperationalError, ProgrammingError

from baton.errors import BatonError
from baton.events import catchup, reconnect, schema
from baton.events.event import CorruptEvent, Event
from baton.events.rows import as_sqlalchemy_raises, from_row, rows_of, select_events

INLINE_LIMIT = 16_384  # bytes of JSON; a larger output is stored once in baton_blobs, by reference
_DEFERRED = "baton.events.deferred"  # a connection's info: the events its transaction's appends put off


class StoreError(BatonError):
    """The store cannot be used as it is (not migrated, unreachable); says what to do."""


@dataclass(frozen=True)
class Projection:
    """Rows kept from the events, handed to the log that keeps them current.

    ``apply(conn, events)`` folds events (in sequence order) into its rows: in the append's transaction the
    events just stored, or, ``caught_up``, the events after its cursor, read back from the log by
    ``EventLog.catch_up`` (what a page reads: nothing there needs to commit with the event, and the append
    stays an INSERT). ``rebuild(conn)`` recomputes its rows from the stored events alone, in the caller's
    transaction (after a bulk load, a migration that changes its tables); a ``caught_up`` one's is
    ``rebuild(conn, until)``: from the events up to sequence number ``until``, where its cursor is set.
    Keep in the append's transaction only what a writer reads back to decide."""

    name: str
    apply: Callable[[Connection, Sequence[Event]], None]
    rebuild: Callable[..., Any]
    caught_up: bool = False


@cache
def _append_statement(dialect: str):
    """INSERT ... ON CONFLICT (key) DO NOTHING RETURNING seq, key: built once, compiled once per dialect.

    Executed with a list of rows, SQLAlchemy sends them as one multi-row statement (insertmanyvalues)
    and hands back the rows actually inserted.
    """
    return (
        schema.insert_for(dialect)(schema.events)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(schema.events.c.seq, schema.events.c.idempotency_key)
    )


@cache
def _one_sql(dialect: Any) -> str:
    """``_append_statement`` compiled once per dialect (an engine's, cached by ``engine_for``) for one row, as
    psycopg's cursor is handed it: an EventStore is opened per task and per request."""
    columns = [c.name for c in schema.events.c if c.name != "seq"]
    return str(_append_statement("postgresql").compile(dialect=dialect, column_keys=columns))


class EventLog:
    """Appends and reads events; keeps the ``projections`` it was handed current.

    :param engine: the store's database (``baton.events.store.engine_for``).
    :param projections: kept in each append's transaction, in this order, or caught up after it.
    """

    def __init__(self, engine: Engine, projections: Sequence[Projection] = ()):
        self.engine = engine
        self.projections = tuple(projections)
        self.in_append = tuple(p for p in self.projections if not p.caught_up)
        self.caught_up = tuple(p for p in self.projections if p.caught_up)
        # One event, with nothing to keep in its transaction, is one INSERT on PostgreSQL (``_append_one``).
        alone = not self.in_append and (engine.dialect.name, engine.dialect.driver) == (
            "postgresql",
            "psycopg",
        )
        self._one = engine.execution_options(isolation_level="AUTOCOMMIT") if alone else None

    def append(self, events: Sequence[Event]) -> list[int]:
        """Store the events not stored yet (by key), in one transaction; the new sequence numbers."""
        if not events:
            return []

        def work() -> list[int]:
            if self._one is not None and len(events) == 1:
                return self._append_one(events[0])
            with self.engine.begin() as conn:
                return self.append_in(conn, events)

        try:
            return reconnect.retrying(work, f"append of {len(events)} event(s)")
        except (OperationalError, ProgrammingError) as error:
            self._unmigrated(error, "baton_events")
            raise

    def _append_one(self, event: Event) -> list[int]:
        """One event on PostgreSQL: its INSERT alone, atomic on its own, in autocommit (one round trip instead
        of BEGIN, INSERT, COMMIT, and as durable: the statement's commit waits for the WAL as COMMIT does),
        sent by psycopg's cursor as SQLAlchemy compiled it once (its execute's own work, for one row, cost as
        much as the round trips). Single appends in bench/events.py: 2,095 events/s (0.57 of a raw INSERT)
        instead of 1,024 (0.35) on an idle machine. A batch keeps its transaction (SQLAlchemy may split a long
        one into several INSERTs)."""
        dialect, row = self.engine.dialect, event.row()
        row["payload"] = dialect.loaded_dbapi.types.json.Jsonb(
            row["payload"]
        )  # as SQLAlchemy's JSONB binds it
        sql = _one_sql(dialect)
        with (
            self._one.connect() as conn,
            conn.connection.dbapi_connection.cursor() as cursor,
            as_sqlalchemy_raises(conn, sql, row),
        ):
            cursor.execute(sql, row)
            return [seq for seq, _ in cursor.fetchall()]

    def _unmigrated(self, error: Exception, table: str) -> None:
        """Raise StoreError when ``error`` says that ``table`` is missing: the store is not migrated."""
        if table in str(error) and ("no such table" in str(error) or "does not exist" in str(error)):
            raise StoreError(
                f"Baton's event store {self.engine.url.render_as_string()} has no "
                f"{'tables' if table == schema.events.name else 'table ' + table} yet: run `baton db upgrade` "
                "(make run does it)."
            ) from None

    def append_in(self, conn: Connection, events: Sequence[Event]) -> list[int]:
        """``append`` inside the caller's transaction, so that a change and its events commit together.
        Inside :meth:`deferred` the events join the transaction's one INSERT at its end: no sequence
        numbers then (``[]``)."""
        if not events:
            return []
        pending = conn.info.get(_DEFERRED)
        if pending is not None:
            pending.extend(events)
            return []
        statement = _append_statement(self.engine.dialect.name)
        stored = {key: seq for seq, key in conn.execute(statement, [e.row() for e in events])}
        if self.in_append and stored:
            new = [e for e in events if e.key in stored]
            for projection in self.in_append:
                projection.apply(conn, new)
        return sorted(stored.values())

    @contextmanager
    def deferred(self, conn: Connection) -> Iterator[list[Event]]:
        """The appends made in ``conn`` inside the block wait for its end, then go in one INSERT, in the
        order they were asked for (a group transaction of many writes: one statement, not one each). The
        list it yields is those events: a caller that rolls a write back to a savepoint drops its own."""
        if _DEFERRED in conn.info:
            raise RuntimeError("appends are already deferred in this transaction")
        pending: list[Event] = []
        conn.info[_DEFERRED] = pending
        try:
            yield pending
        finally:
            del conn.info[_DEFERRED]
        self.append_in(conn, pending)

    def catch_up(self, limit: int = catchup.READ_LIMIT) -> int:
        """Apply to the ``caught_up`` projections the events stored since they last were (at most ``limit``
        each), each in one transaction with its cursor; the number applied. Called by their readers before
        they read; no lock is taken when they are current."""

        def work(projection: Projection) -> int:
            with self.engine.connect() as conn:
                if not catchup.behind(conn, projection.name):
                    return 0
            with self.engine.begin() as conn:
                return catchup.catch_up(conn, projection, limit)

        applied = 0
        try:
            for projection in self.caught_up:
                applied += reconnect.retrying(lambda p=projection: work(p), f"catch-up of {projection.name}")
        except (OperationalError, ProgrammingError) as error:
            self._unmigrated(error, schema.projection_cursors.name)
            raise
        return applied

    def rebuild(self) -> None:
        """Recompute every projection from the events alone, in one transaction (on PostgreSQL REPEATABLE
        READ: one snapshot of the log for every projection and cursor)."""
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                for projection in self.projections:
                    if projection.caught_up:
                        catchup.rebuild(conn, projection)
                    else:
                        projection.rebuild(conn)

    def put_blob(self, content: str) -> str:
        digest = hashlib.sha256(content.encode()).hexdigest()
        statement = schema.insert_for(self.engine.dialect.name)(schema.blobs).values(
            sha256=digest, size=len(content), content=content
        )
        with self.engine.begin() as conn:
            conn.execute(statement.on_conflict_do_nothing(index_elements=["sha256"]))
        return digest

    def blob(self, digest: str) -> Any:
        with self.engine.connect() as conn:
            content = conn.scalar(select(schema.blobs.c.content).where(schema.blobs.c.sha256 == digest))
        return None if content is None else json.loads(content)

    def output_payload(self, output: Any) -> dict[str, Any]:
        """The payload of an ``output.recorded`` event: inline when small, by reference when large."""
        text = json.dumps(output, sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode()).hexdigest()
        if len(text) <= INLINE_LIMIT:
            return {"sha256": digest, "size": len(text), "output": output}
        return {"sha256": digest, "size": len(text), "ref": self.put_blob(text)}

    def get(self, key: str) -> Event | CorruptEvent | None:
        """The event stored under an idempotency key, or None (one row, by its unique index)."""
        with self.engine.connect() as conn:
            row = conn.execute(select_events().where(schema.events.c.idempotency_key == key)).first()
        return None if row is None else from_row(row)

    def newest(self, key_prefix: str) -> Event | CorruptEvent | None:
        """The newest event whose key starts with ``key_prefix`` (a chain such as a sensor's marks)."""
        e = schema.events.c
        prefix = key_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = select_events().where(e.idempotency_key.like(f"{prefix}%", escape="\\"))
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(e.seq.desc()).limit(1)).first()
        return from_row(row) if row is not None else None

    def output_of(self, payload: dict[str, Any], field: str = "output") -> Any:
        """The value an ``output_payload`` payload holds (``field``), inline or from its blob."""
        return self.blob(payload["ref"]) if payload.get("ref") else payload.get(field)

    def read(
        self,
        run_id: str | None = None,
        *,
        until: int | None = None,
        after: int = 0,
        step: tuple[str, int] | None = None,
        types: Sequence[str] | None = None,
        before_try: int | None = None,
    ) -> Iterator[Event | CorruptEvent]:
        """Events in sequence order; a row that cannot be read comes back as a ``CorruptEvent``.

        :param step: (step id, map index): only that task's events.
        :param types: only events of these types.
        :param before_try: only events of tries before this one.
        """
        e = schema.events.c
        query = select_events().where(e.seq > after)
        if run_id is not None:
            query = query.where(e.run_id == run_id)
        if until is not None:
            query = query.where(e.seq <= until)
        if step is not None:
            query = query.where(e.step == step[0], e.map_index == step[1])
        if types is not None:
            query = query.where(e.type.in_(list(types)))
        if before_try is not None:
            query = query.where(e.try_number < before_try)
        with self.engine.connect() as conn:
            for row in rows_of(conn, query.order_by(e.seq)):
                yield from_row(row)

    def step_history(
        self, workflow: str, step: str, types: Sequence[str], limit: int, conn: Connection | None = None
    ) -> list[Any]:
        """The latest ``limit`` events of ``types`` of one step of a workflow (its unmapped task), oldest
        first, as rows (seq, run_id, try_number, type, agent, payload): what a learned route and a step's
        experiment learn from, read by the (workflow, step, seq) index. ``conn``: in that transaction."""
        e = schema.events.c
        query = select(e.seq, e.run_id, e.try_number, e.type, e.agent, e.payload).where(
            e.workflow == workflow, e.step == step, e.map_index == -1, e.type.in_(list(types))
        )
        query = query.order_by(e.seq.desc()).limit(limit)
        with nullcontext(conn) if conn is not None else self.engine.connect() as read:
            return list(reversed(read.execute(query).all()))

    def run_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.scalars(select(schema.events.c.run_id).distinct()))

    def has_run(self, run_id: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.scalar(select(schema.events.c.seq).where(schema.events.c.run_id == run_id).limit(1))
        return found is not None
