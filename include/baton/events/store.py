"""The event store: append-only, idempotent, on the Airflow connection ``baton_store``.

SQLite (a file in the Airflow home) by default, PostgreSQL in production. An event carries an
idempotency key; appending it twice (a retry after a crash, the listener and the operator both)
stores it once. Projections are updated in the same transaction as the events they follow.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, Text, cast, create_engine, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError, ProgrammingError

from baton.errors import BatonError
from baton.events import projections, schema
from baton.events.decode import loads
from baton.events.types import EVENT_TYPES

STORE_CONN_ID = "baton_store"
INLINE_LIMIT = 16_384  # bytes of JSON; a larger output is stored once in baton_blobs, by reference


class StoreError(BatonError):
    """The store cannot be used as it is (not migrated, unreachable); says what to do."""


@dataclass(frozen=True)
class Event:
    """One fact about a run. ``key`` defaults to run/step/map index/try/type (+ ``discriminator``)."""

    type: str
    run_id: str
    workflow: str
    payload: dict[str, Any] = field(default_factory=dict)
    step: str | None = None
    map_index: int = -1
    try_number: int = 0
    agent: str | None = None
    template_version: int | None = None
    discriminator: str = ""
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))
    seq: int | None = None
    key: str = ""

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type '{self.type}'; known: {', '.join(sorted(EVENT_TYPES))}")
        if not self.key:
            parts = (self.run_id, self.step or "", str(self.map_index), str(self.try_number), self.type)
            key = "|".join(parts) + (f"|{self.discriminator}" if self.discriminator else "")
            object.__setattr__(self, "key", key)

    @classmethod
    def like(cls, source: Any, type: str, **fields: Any) -> Event:
        """An event of ``source``'s run, step, map index and try (an event, a context writer, an effect's
        scope: anything with those attributes); ``fields`` set the rest."""
        scope = {
            "run_id": source.run_id,
            "workflow": source.workflow,
            "step": source.step,
            "map_index": source.map_index,
            "try_number": source.try_number,
        }
        return cls(type=type, **{**scope, **fields})

    @classmethod
    def of_task(cls, ti: Any, type: str, **fields: Any) -> Event:
        """An event of an Airflow task instance's run, task, map index and try."""
        scope = {
            "run_id": ti.run_id,
            "workflow": ti.dag_id,
            "step": ti.task_id,
            "map_index": ti.map_index if getattr(ti, "map_index", None) is not None else -1,
            "try_number": ti.try_number or 0,
        }
        return cls(type=type, **{**scope, **fields})

    def row(self) -> dict[str, Any]:
        payload = EVENT_TYPES[self.type].model_validate(self.payload).model_dump(mode="json")
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "template_version": self.template_version,
            "step": self.step,
            "map_index": self.map_index,
            "try_number": self.try_number,
            "agent": self.agent,
            "type": self.type,
            "payload": payload,
            "ts": self.ts,
            "idempotency_key": self.key,
        }


@dataclass(frozen=True)
class CorruptEvent:
    """A stored row whose payload cannot be read or does not fit its type."""

    seq: int
    type: str
    problem: str

    def __str__(self) -> str:
        return f"event {self.seq} ({self.type}): {self.problem}"


def conf_digest(conf: dict[str, Any] | None) -> str:
    """The digest of a run's conf, recorded instead of the conf itself."""
    return hashlib.sha256(json.dumps(conf or {}, sort_keys=True, default=str).encode()).hexdigest()


def worker_name() -> str:
    """The name of the Celery worker this process runs in (``BATON_WORKER_NAME``, which scripts/celery.sh
    sets per worker; in containers the hostname already tells them apart), or ``""``."""
    return os.environ.get("BATON_WORKER_NAME", "")


def run_started_payload(dag_run: Any, logical_date: Any) -> dict[str, Any]:
    conf = dict(getattr(dag_run, "conf", None) or {})
    return {
        "run_type": str(getattr(dag_run, "run_type", "manual")),
        "logical_date": logical_date.isoformat() if logical_date else None,
        "conf_keys": sorted(conf),
        "conf_sha256": conf_digest(conf),
    }


def store_url(conn_id: str = STORE_CONN_ID) -> str:
    """The SQLAlchemy URL of the store: the Airflow connection, or SQLite in the Airflow home."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return connection_url(conn_id)
    except AirflowNotFoundException:
        home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
        return f"sqlite:///{home / 'baton_store.db'}"


def connection_url(conn_id: str) -> str:
    """The SQLAlchemy URL of an Airflow connection of type sqlite or postgres (raises
    ``AirflowNotFoundException`` when it is not defined)."""
    from airflow.sdk import BaseHook

    return url_of(BaseHook.get_connection(conn_id), conn_id)


def url_of(conn: Any, conn_id: str) -> str:
    """The SQLAlchemy URL of an ``airflow.sdk.Connection`` of type sqlite or postgres (else ValueError)."""
    if conn.conn_type == "sqlite":
        return f"sqlite:///{conn.schema or conn.host}"
    if conn.conn_type in ("postgres", "postgresql"):
        url = URL.create(
            "postgresql+psycopg", conn.login, conn.password or None, conn.host, conn.port, conn.schema
        )
        return url.render_as_string(False)
    raise ValueError(
        f"connection '{conn_id}' has type '{conn.conn_type}'; Baton reads sqlite or postgres connections"
    )


def _sqlite_setup(engine: Engine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE: many task processes append to one file."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@cache
def engine_for(url: str) -> Engine:
    """One engine per URL and process; its JSON columns are read with ``decode.loads``."""
    if url.startswith("sqlite"):
        engine = create_engine(url, json_deserializer=loads)
        _sqlite_setup(engine)
        return engine
    return create_engine(url, json_deserializer=loads, pool_pre_ping=True, pool_size=2, max_overflow=4)


def _insert(engine: Engine):
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert


@cache
def _append_statement(dialect: str):
    """INSERT ... ON CONFLICT (key) DO NOTHING RETURNING seq, key: built once, compiled once per dialect.

    Executed with a list of rows, SQLAlchemy sends them as one multi-row statement (insertmanyvalues)
    and hands back the rows actually inserted.
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(schema.events)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(schema.events.c.seq, schema.events.c.idempotency_key)
    )


class EventStore:
    """Appends and reads events; keeps the projections current."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def from_airflow(cls, conn_id: str = STORE_CONN_ID) -> EventStore:
        return cls(engine_for(store_url(conn_id)))

    def append(self, events: Sequence[Event]) -> list[int]:
        """Store the events not stored yet (by key), in one transaction; the new sequence numbers."""
        if not events:
            return []
        try:
            with self.engine.begin() as conn:
                return self.append_in(conn, events)
        except (OperationalError, ProgrammingError) as error:
            if "baton_events" in str(error) and (
                "no such table" in str(error) or "does not exist" in str(error)
            ):
                raise StoreError(
                    f"Baton's event store {self.engine.url.render_as_string()} has no tables yet: run "
                    "`baton db upgrade` (make run does it)."
                ) from None
            raise

    def append_in(self, conn: Connection, events: Sequence[Event]) -> list[int]:
        """``append`` inside the caller's transaction, so that a change and its events commit together."""
        if not events:
            return []
        statement = _append_statement(self.engine.dialect.name)
        stored = {key: seq for seq, key in conn.execute(statement, [e.row() for e in events])}
        projections.apply(conn, [(stored[e.key], e) for e in events if e.key in stored])
        return sorted(stored.values())

    def put_blob(self, content: str) -> str:
        digest = hashlib.sha256(content.encode()).hexdigest()
        statement = _insert(self.engine)(schema.blobs).values(
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
            row = conn.execute(_select_events().where(schema.events.c.idempotency_key == key)).first()
        return None if row is None else _from_row(row)

    def newest(self, key_prefix: str) -> Event | CorruptEvent | None:
        """The newest event whose key starts with ``key_prefix`` (a chain such as a sensor's marks)."""
        e = schema.events.c
        prefix = key_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = _select_events().where(e.idempotency_key.like(f"{prefix}%", escape="\\"))
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(e.seq.desc()).limit(1)).first()
        return _from_row(row) if row is not None else None

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
        query = _select_events().where(e.seq > after)
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
            for row in conn.execution_options(yield_per=5000).execute(query.order_by(e.seq)):
                yield _from_row(row)

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


def _select_events() -> Any:
    """SELECT of the columns ``_from_row`` reads, in its order."""
    e = schema.events.c
    return select(
        e.seq,
        e.run_id,
        e.workflow,
        e.template_version,
        e.step,
        e.map_index,
        e.try_number,
        e.agent,
        e.type,
        cast(e.payload, Text),
        e.ts,
        e.idempotency_key,
    )


def _from_row(row: Any) -> Event | CorruptEvent:
    seq, run_id, workflow, version, step, map_index, try_number, agent, kind, payload, ts, key = row
    try:
        data = loads(payload)
        model = EVENT_TYPES.get(kind)
        if model is None:
            return CorruptEvent(seq, kind, "unknown event type")
        model.model_validate(data)
    except ValueError as error:  # json.JSONDecodeError and pydantic.ValidationError are ValueErrors
        problem = (
            f"payload does not fit: {error.errors()[0]['loc']}: {error.errors()[0]['msg']}"
            if isinstance(error, ValidationError)
            else f"payload is not JSON: {error}"
        )
        return CorruptEvent(seq, kind, problem)
    return Event(
        type=kind,
        run_id=run_id,
        workflow=workflow,
        payload=data,
        step=step,
        map_index=map_index,
        try_number=try_number,
        agent=agent,
        template_version=version,
        ts=ts,
        seq=seq,
        key=key,
    )
