"""The tables of Baton's store: the append-only events, large outputs, and the projections."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()


class UTCDateTime(TypeDecorator):
    """A ``DateTime(timezone=True)`` that always reads back aware. The store writes UTC; PostgreSQL's
    ``timestamptz`` comes back aware, SQLite (which keeps no zone) naive: here it gets UTC attached, so
    no reader has to."""

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
Sequence = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")

events = Table(
    "baton_events",
    metadata,
    Column("seq", Sequence, primary_key=True, autoincrement=True),
    Column("run_id", String(250), nullable=False),
    Column("workflow", String(250), nullable=False),
    Column("template_version", Integer),
    Column("step", String(250)),
    Column("map_index", Integer, nullable=False, server_default="-1"),
    Column("try_number", Integer, nullable=False, server_default="0"),
    Column("agent", String(250)),
    Column("type", String(64), nullable=False),
    Column("payload", Json, nullable=False),
    Column("ts", UTCDateTime(), nullable=False),
    Column("idempotency_key", String(512), nullable=False, unique=True),
    Index("ix_baton_events_run_seq", "run_id", "seq"),
    Index("ix_baton_events_agent_type", "agent", "type"),
    Index("ix_baton_events_workflow_step", "workflow", "step", "seq"),  # a step's history (learning)
)

blobs = Table(
    "baton_blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("content", Text, nullable=False),
)

# The shared context of a run: every version of every key, append-only (see baton.context).
context_versions = Table(
    "baton_context",
    metadata,
    Column("run_id", String(250), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("value", Json),
    Column("writer", String(250), nullable=False),
    Column("ts", UTCDateTime(), nullable=False),
)

# Load: one row per agent call running now, in one of the agent's max_concurrency slots. Taking a
# slot is inserting its (agent, slot) row: two callers cannot both take one, on either database.
agent_slots = Table(
    "baton_agent_slots",
    metadata,
    Column("agent", String(250), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("holder", String(250), nullable=False),  # run / step / map index / subtask, pid
    Column("acquired_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),  # a killed holder frees it then
)

# The callers waiting for an agent's slot (baton.coordination.waiters): one row per task instance while
# it waits, with its run's start-by time; the next free slot goes to the earliest.
slot_waiters = Table(
    "baton_slot_waiters",
    metadata,
    Column("agent", String(250), primary_key=True),
    Column("waiter", String(250), primary_key=True),  # run / task / map index: a fan-out's items share it
    Column("start_by", UTCDateTime(), nullable=False),
    Column("since", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),  # a killed caller's row goes then
)

# The circuit breaker of each agent: failures in a row, and until when routing leaves it out.
agent_health = Table(
    "baton_agent_health",
    metadata,
    Column("agent", String(250), primary_key=True),
    Column("consecutive_failures", Integer, nullable=False),
    Column("opened_until", UTCDateTime()),
    Column("last_error", String(1000), nullable=False, server_default=""),
    Column("updated_at", UTCDateTime(), nullable=False),
    # An incident's runbook (lower_concurrency) holds the agent to fewer slots than its max_concurrency.
    Column("concurrency_cap", Integer),
)

# Operations: per-minute buckets of each signal, per scope (agent:x, workflow:w, ...), folded
# incrementally from the events; and the monitor's own state (its cursor in the events, the incident book).
signal_buckets = Table(
    "baton_signal_buckets",
    metadata,
    Column("kind", String(40), primary_key=True),
    Column("scope", String(250), primary_key=True),
    Column("bucket", UTCDateTime(), primary_key=True),
    Column("total", Integer, nullable=False),  # calls (rate signals) or points (value signals)
    Column("bad", Integer, nullable=False),  # failures among them (rate signals)
    Column("value_sum", Float, nullable=False),  # the points' sum (value signals): the bucket's mean
    Index("baton_signal_buckets_bucket", "bucket"),
)

monitor_state = Table(
    "baton_monitor_state",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", Json, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Budgets: each model call's reservation in each budget that applies, settled to its actual use.
budget_ledger = Table(
    "baton_budget_ledger",
    metadata,
    Column("id", Sequence, primary_key=True, autoincrement=True),
    Column("budget", String(100), nullable=False),
    Column("window", String(250), nullable=False),  # run:<id>, YYYY-MM-DD or YYYY-MM (UTC)
    Column("holder", String(250), nullable=False),  # <run>/<task>[<item>]#<try> pid <pid>@<host>
    Column("state", String(10), nullable=False),  # reserved | settled | raised (a person's, once a window)
    Column("cost", Float, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),  # a reservation no try settled by then is void
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("baton_budget_ledger_window", "budget", "window"),
    Index("baton_budget_ledger_holder", "holder"),
)

schema_version = Table(
    "baton_schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("description", String(250), nullable=False),
    Column("applied_at", UTCDateTime(), nullable=False),
)

# The projections, kept current in the append's transaction (events/summaries.py): a row per run (the one
# projection of a run: the pages, the API's runs, `baton runs` and the view workflow_executions read it),
# so that the Coordination and Management pages read a few rows per request, never the events of a window.
# Times of a task's try are epoch seconds (floats): a try's duration is a subtraction on either database.
run_summary = Table(
    "baton_run_summary",
    metadata,
    Column("run_id", String(250), primary_key=True),
    Column("workflow", String(250), nullable=False),
    Column("template_version", Integer),
    Column("state", String(16), nullable=False),  # Airflow's words for a run: running | success | failed
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
    Column("duration_s", Float),
    Column("tasks", Integer),  # the run's tasks when it ended (what a running run of its workflow expects)
    Column("work_s", Float),  # its tries' and fan-out items' seconds, summed, when it ended (the speed-up)
    Column("questions", Integer, nullable=False, server_default="0"),  # asked of a person
    Column("answers", Integer, nullable=False, server_default="0"),
    Column("conflicts", Integer, nullable=False, server_default="0"),  # context conflicts
    Column("conflicts_auto", Integer, nullable=False, server_default="0"),  # resolved by their strategy
    Column("conflicts_escalated", Integer, nullable=False, server_default="0"),  # left to a person / failed
    Column("agents", Json),  # every agent chosen for it, in the order first chosen (NULL: none yet)
    Column("result", Json),  # once it ended: {"outputs": {step: output, or {"ref": blob digest}}}
    Index("ix_baton_run_summary_started", "started_at", "run_id"),
    Index("ix_baton_run_summary_workflow", "workflow", "started_at", "run_id"),
    Index("ix_baton_run_summary_state", "state", "started_at", "run_id"),
)

task_state = Table(
    "baton_task_state",
    metadata,
    Column("run_id", String(250), primary_key=True),
    Column("step", String(250), primary_key=True),
    Column("map_index", Integer, primary_key=True),
    Column("state", String(16)),  # replay.STEP_STATES' values; NULL before the first try's event
    Column("try_number", Integer, nullable=False),
    Column("agent", String(250)),
    Column("started_s", Float),  # the latest try's start
    Column("ended_s", Float),  # ... and end (NULL while it runs)
    Column("seconds", Float, nullable=False),  # every try's duration, summed
    Column("asked_s", Float),  # a question to a person open since (NULL: none open)
    Column("question", String(32)),  # its kind (approval, escalation, review, ...)
)

# One row per agent call that ended (a step's try, a fan-out item) and per model call (its cost and tokens):
# every agent's statistics (baton.events.projections.agent_stats: the router's, the API's and the agents'
# board's), read by time or newest first.
agent_calls = Table(
    "baton_agent_calls",
    metadata,
    Column("id", Sequence, primary_key=True, autoincrement=True),
    Column("agent", String(250), nullable=False),
    Column("ts", UTCDateTime(), nullable=False),
    Column("kind", String(8), nullable=False),  # step | item | model
    Column("run_id", String(250)),
    Column("ok", Integer),  # 1 succeeded, 0 failed; NULL for a model call
    Column("latency_s", Float),
    Column("cost", Float, nullable=False, server_default="0"),
    Column("input_tokens", Integer, nullable=False, server_default="0"),  # a model call's
    Column("output_tokens", Integer, nullable=False, server_default="0"),
    Index("ix_baton_agent_calls_ts", "ts"),
)

# Per hour, workflow, step and agent ('' for none): step tries, failures, successful seconds, circuits
# opened: the analytics of a window of up to a year read its hours, not its events.
step_hours = Table(
    "baton_step_hours",
    metadata,
    Column("hour", UTCDateTime(), primary_key=True),
    Column("workflow", String(250), primary_key=True),
    Column("step", String(250), primary_key=True),
    Column("agent", String(250), primary_key=True),
    Column("tries", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("ok_seconds", Float, nullable=False),
    Column("breaker_opens", Integer, nullable=False),
    Index("ix_baton_step_hours_workflow", "workflow", "hour"),
)

agents_seen = Table(
    "baton_agents_seen",
    metadata,
    Column("agent", String(250), primary_key=True),
    Column("first_seen", UTCDateTime(), nullable=False),
)


# Where each projection kept behind the log (events/catchup.py) stands: the last sequence number it applied,
# and the numbers below it not seen yet (a PostgreSQL append that had not committed then, or a number an
# idempotent append consumed and never stored): [[seq, first seen (epoch s), snapshot xmax then], ...].
# Written in the transaction that writes the projection's rows, so that the two never disagree.
projection_cursors = Table(
    "baton_projection_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("gaps", JSON, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)


def insert_for(dialect: str) -> Any:
    """The INSERT of a dialect (PostgreSQL's or SQLite's: both can say ON CONFLICT) for ``dialect``'s name."""
    return (postgresql if dialect == "postgresql" else sqlite).insert
