"""Versioned DDL for Baton's store, applied in order by ``baton db upgrade`` (never by hand)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, Engine, MetaData, String, Table, inspect, select, text

from baton.events import catchup, projections, schema, summaries

Migration = tuple[int, str, Callable[[Connection], None]]

# The execution table as version 1 made it: a second projection of a run, whose state said
# "completed" where the other said "success". Version 9 replaces it with a view of the one projection.
_V1_EXECUTIONS = Table(
    "workflow_executions",
    MetaData(),
    Column("id", schema.Sequence, primary_key=True, autoincrement=True),
    Column("workflow_id", String(250), nullable=False, unique=True),  # the run id
    Column("trigger_id", String(250), nullable=False),  # the workflow that ran
    Column("agents_involved", schema.Json, nullable=False),
    Column("execution_status", String(32), nullable=False),  # running | completed | failed
    Column("result", schema.Json),
    Column("timestamp", schema.UTCDateTime(), nullable=False),
)
EXECUTIONS_VIEW = "workflow_executions"


def _v1(conn: Connection) -> None:
    for table in (schema.events, schema.blobs, _V1_EXECUTIONS):
        table.create(conn)


def _v2(conn: Connection) -> None:
    schema.context_versions.create(conn)


def _v3(conn: Connection) -> None:
    schema.agent_slots.create(conn)
    schema.agent_health.create(conn)


def _v4(conn: Connection) -> None:
    schema.signal_buckets.create(conn)
    schema.monitor_state.create(conn)


def _v5(conn: Connection) -> None:
    column = schema.agent_health.c.concurrency_cap
    if column.name in {c["name"] for c in inspect(conn).get_columns(schema.agent_health.name)}:
        return  # a store created at version 3 or later by this code has it from _v3's table already
    type_ = column.type.compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE {schema.agent_health.name} ADD COLUMN {column.name} {type_}"))


def _v6(conn: Connection) -> None:
    schema.budget_ledger.create(conn)


def _v7(conn: Connection) -> None:
    (index,) = [i for i in schema.events.indexes if i.name == "ix_baton_events_workflow_step"]
    index.create(conn, checkfirst=True)  # a store created at version 1 by this code has it already


def _v8(conn: Connection) -> None:
    for table in summaries.TABLES:
        table.create(conn, checkfirst=True)  # a store set back below 8 (as a test does) has them
    summaries.rebuild_in(conn)  # the runs already in the store show on the dashboard too


def _add_columns(conn: Connection, table: Table, names: tuple[str, ...]) -> bool:
    """Add ``table``'s columns ``names`` that the stored table lacks; whether any was added."""
    present = {c["name"] for c in inspect(conn).get_columns(table.name)}
    missing = [table.c[name] for name in names if name not in present]
    for column in missing:
        type_ = column.type.compile(dialect=conn.dialect)
        default = f" DEFAULT {column.server_default.arg}" if column.server_default is not None else ""
        not_null = " NOT NULL" if not column.nullable and default else ""
        conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {type_}{default}{not_null}"))
    return bool(missing)


def _v9(conn: Connection) -> None:
    """One projection of a run: the run summary gains its agents and outputs, the agents' calls their run
    and tokens (every agent statistic reads them), and the execution table becomes a view of the run summary,
    in Airflow's words for a run's state (success where it said completed)."""
    added = _add_columns(conn, schema.run_summary, ("agents", "result"))
    added |= _add_columns(conn, schema.agent_calls, ("run_id", "input_tokens", "output_tokens"))
    found = inspect(conn)
    if EXECUTIONS_VIEW in found.get_table_names():
        conn.execute(text(f"DROP TABLE {EXECUTIONS_VIEW}"))
    if EXECUTIONS_VIEW not in found.get_view_names():
        body = projections.seed_columns().compile(
            dialect=conn.dialect, compile_kwargs={"literal_binds": True}
        )
        conn.execute(text(f"CREATE VIEW {EXECUTIONS_VIEW} AS {body}"))
    if added:  # a store made at version 8 before: its rows get the new columns from the events
        summaries.rebuild_in(conn)


def _v10(conn: Connection) -> None:
    """The pages' projection caught up from the log after the appends: its cursor, at the newest event (its
    rows followed every append until now)."""
    schema.projection_cursors.create(conn, checkfirst=True)  # a store set back below 10 (a test) has it
    catchup.start(conn, projections.PAGES)


def _v11(conn: Connection) -> None:
    schema.slot_waiters.create(conn, checkfirst=True)  # a store set back below 11 (a test) has it


MIGRATIONS: list[Migration] = [
    (1, "events, blobs and workflow_executions", _v1),
    (2, "the shared context of runs", _v2),
    (3, "agent load slots and circuit breakers", _v3),
    (4, "signal buckets and the monitor's state", _v4),
    (5, "a runbook's cap on an agent's concurrency", _v5),
    (6, "the budgets' ledger of reservations and spend", _v6),
    (7, "an index of each step's history, for learned routing and experiments", _v7),
    (8, "the dashboard's projections: runs, tasks, agents' calls and hourly step figures", _v8),
    (9, "one projection of a run, in Airflow's states: workflow_executions a view of it", _v9),
    (10, "the pages' projection caught up from the log, out of the append's transaction: its cursor", _v10),
    (11, "the callers waiting for an agent's slot, the next slot to the run that must start soonest", _v11),
]


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table(schema.schema_version.name):
        return 0
    return conn.scalar(
        select(schema.schema_version.c.version).order_by(schema.schema_version.c.version.desc())
    )


def upgrade(engine: Engine) -> list[str]:
    """Apply every migration newer than the store's version; what was applied."""
    applied = []
    with engine.begin() as conn:
        schema.schema_version.create(conn, checkfirst=True)
        version = current_version(conn) or 0
        for number, description, apply in MIGRATIONS:
            if number > version:
                apply(conn)
                conn.execute(
                    schema.schema_version.insert().values(
                        version=number, description=description, applied_at=datetime.now(UTC)
                    )
                )
                applied.append(f"{number}: {description}")
    return applied
