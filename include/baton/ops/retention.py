"""Retention of Baton's store (``baton db clean``): the rows of runs that finished before a cutoff are
archived (optionally), then deleted, in batches of whole runs, one transaction a batch.

A run is cleaned when ALL of these hold, else it is kept whole:

- its summary says it ended (``success`` / ``failed``, from its ``run.succeeded`` / ``run.failed`` event)
  before the cutoff, it has an end event, and none of its events is newer than the cutoff (a run cleared
  and running again in Airflow has newer events: kept); an open run has no end: kept;
- every one of its events is applied to the projections kept behind the log (at or below the ``pages``
  cursor, none a gap): a catch-up still to come would otherwise write its summary back;
- no open (or acknowledged) incident of the monitor's book concerns it: an incident on ``agent:A`` keeps
  every run with an event of agent A, one on ``workflow:W`` (or ``sensor:W``) every run of W, and any run
  id the incident's record names is kept (``retry_failed_runs`` reads those runs);
- it is not a run of an undecided rollout (``version.assigned`` of a rollout with no ``rollout.completed``
  / ``rollout.rolled_back``: coordination.rollout replays its runs' ends) nor of an undecided experiment
  (``variant.assigned`` of a step with no ``variant.decided``: coordination.variants replays outcomes).

The tables, one by one:

- ``baton_events``: the run's events (those numbered up to what the batch read: one appended meanwhile stays);
- ``baton_context``, ``baton_task_state``, ``baton_run_summary``: keyed by the run id, the run's alone;
- ``baton_agent_calls``: the run's calls (by run id, within its events' times). The agents' statistics
  and the router's track records then count the calls of the runs kept;
- ``baton_budget_ledger``: the rows of the run's own window (``run:<id>``), closed once it ended. The rows
  of day and month windows are kept: they are a window's spend, not a run's (their holder names a run,
  but the current window's must stay and a past one's are its history);
- left alone: ``baton_blobs`` (content-addressed, shared by runs: an unreferenced one is not proved here),
  ``baton_step_hours``, ``baton_signal_buckets`` and ``baton_agents_seen`` (aggregates, not per run; a
  rebuild of the projections from the log then lacks the cleaned runs), ``baton_agent_slots`` and
  ``baton_slot_waiters`` (live rows of calls, gone when their lease runs out), ``baton_agent_health``,
  ``baton_monitor_state``, ``baton_projection_cursors``, ``baton_schema_version``.

Incidents' and rollouts' own records (runs ``incident:<id>``, ``rollout:<name>``, ``experiment:...``) have
no end event: never cleaned.

Two cleans never run at once: a session advisory lock on PostgreSQL, an ``flock`` on a file beside the
database on SQLite (both let go by a crash); the second is refused (:class:`CleanBusy`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, delete, func, literal, or_, select

from baton.errors import BatonError
from baton.events import schema
from baton.events.projections import PAGES
from baton.events.store import EventStore
from baton.ops import retention_archive
from baton.ops.monitor.state import load_state

BATCH = 500  # runs a transaction
END = ("run.succeeded", "run.failed")
MAX_CATCH_UP = 100  # catch-ups (of READ_LIMIT events each) before a clean; runs past the cursor are kept
LOCK_KEY = int.from_bytes(hashlib.sha256(b"baton db clean").digest()[:8], "big", signed=True)
TABLES = ("baton_events", "baton_context", "baton_task_state", "baton_agent_calls", "baton_budget_ledger",
          "baton_run_summary")  # fmt: skip


class CleanBusy(BatonError):
    """Another ``baton db clean`` holds the store's clean lock."""


@dataclass
class Cleaned:
    runs: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Keep:
    """What the open incidents keep: runs of these workflows (or whose name starts so), with events of these
    agents, and these run ids."""

    workflows: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    run_ids: frozenset[str] = frozenset()


@contextmanager
def clean_lock(engine: Engine) -> Iterator[None]:
    """Hold the store's clean lock for the block, or raise :class:`CleanBusy` at once."""
    busy = CleanBusy(
        "another `baton db clean` is running on this store (it holds the clean lock): "
        "wait for it to finish, then run this one again"
    )
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = conn.scalar(select(func.pg_try_advisory_lock(LOCK_KEY)))
            conn.commit()
            if not got:
                raise busy
            try:
                yield
            finally:
                conn.scalar(select(func.pg_advisory_unlock(LOCK_KEY)))
                conn.commit()
        return
    database = engine.url.database or ":memory:"
    path = Path(f"{database}.clean.lock") if database != ":memory:" else None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600) if path else None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise busy from None
        yield
    finally:
        if fd is not None:
            os.close(fd)  # lets the flock go


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def kept_by_incidents(conn: Connection) -> Keep:
    """What the monitor's open incidents keep (see the module's docstring)."""
    book = load_state(conn, "book") or {}
    workflows, agents, names = set(), set(), set()
    for incident in (book.get("incidents") or {}).values():
        scope, _, name = str(incident.get("where", "")).partition(":")
        (agents if scope == "agent" else workflows).add(name)
        names.update(_strings(incident))
    return Keep(frozenset(workflows), frozenset(agents), frozenset(names))


def _undecided(conn: Connection, ids: list[str]) -> set[str]:
    """Of ``ids``, the runs of a rollout or an experiment not decided yet."""
    e = schema.events.c
    kinds = ["version.assigned", "variant.assigned"]
    rows = conn.execute(
        select(e.run_id, e.type, e.workflow, e.step, e.payload).where(e.run_id.in_(ids), e.type.in_(kinds))
    ).all()
    if not rows:
        return set()
    done = {p.get("rollout") for (p,) in conn.execute(
        select(e.payload).where(e.type.in_(["rollout.completed", "rollout.rolled_back"])))}  # fmt: skip
    settled = set(conn.execute(select(e.workflow, e.step).where(e.type == "variant.decided")).all())
    return {
        run for run, kind, workflow, step, payload in rows
        if (kind == "version.assigned" and payload.get("rollout") not in done)
        or (kind == "variant.assigned" and (workflow, step) not in settled)
    }  # fmt: skip


def _cursor(conn: Connection) -> tuple[int, set[int]]:
    c = schema.projection_cursors.c
    row = conn.execute(select(c.seq, c.gaps).where(c.name == PAGES)).first()
    return (row[0], {int(gap[0]) for gap in row[1] or []}) if row else (-1, set())


def _page(conn: Connection, state: str, cutoff: datetime, after: tuple[Any, str] | None) -> list[Any]:
    """The next ``BATCH`` summaries of runs in ``state`` that ended before ``cutoff``, by start then id."""
    s = schema.run_summary.c
    query = select(s.run_id, s.workflow, s.started_at, s.ended_at).where(
        s.state == state, s.started_at < cutoff, s.ended_at < cutoff
    )
    if after is not None:
        query = query.where(or_(s.started_at > after[0], and_(s.started_at == after[0], s.run_id > after[1])))
    return conn.execute(query.order_by(s.started_at, s.run_id).limit(BATCH)).all()


def _eligible(conn: Connection, page: list[Any], cutoff: datetime, keep: Keep) -> dict[str, Any]:
    """Of a page of summaries, the runs to clean: run id -> (end day, first ts, last ts, last seq)."""
    e = schema.events.c
    ids = [row.run_id for row in page if not any(row.workflow.startswith(w) for w in keep.workflows)]
    ids = [run for run in ids if run not in keep.run_ids]
    if not ids:
        return {}
    top, gaps = _cursor(conn)
    by_agent = func.max(case((e.agent.in_(sorted(keep.agents)), 1), else_=0)) if keep.agents else literal(0)
    stats = select(
        e.run_id, func.min(e.ts), func.max(e.ts), func.max(e.seq), func.max(case((e.type.in_(END), e.seq))),
        by_agent,
    ).where(e.run_id.in_(ids)).group_by(e.run_id)  # fmt: skip
    found = {row[0]: row[1:] for row in conn.execute(stats)}
    gapped = set(conn.scalars(select(e.run_id).where(e.run_id.in_(ids), e.seq.in_(gaps)))) if gaps else set()
    ended = {row.run_id: row.ended_at.date() for row in page}
    out = {
        run: (ended[run], first, last, seq)
        for run, (first, last, seq, end_seq, agent_hit) in found.items()
        if end_seq is not None and last < cutoff and seq <= top and run not in gapped and not agent_hit
    }
    for run in _undecided(conn, list(out)) if out else ():
        del out[run]
    return out


def _conditions(runs: dict[str, Any]) -> dict[str, Any]:
    """Each table's rows of ``runs`` (its ``_eligible`` answer): the condition that selects them."""
    ids = sorted(runs)
    first = min(r[1] for r in runs.values())
    last = max(r[2] for r in runs.values())
    top = max(r[3] for r in runs.values())
    c = schema.agent_calls.c
    return {
        "baton_events": and_(schema.events.c.run_id.in_(ids), schema.events.c.seq <= top),
        "baton_context": schema.context_versions.c.run_id.in_(ids),
        "baton_task_state": schema.task_state.c.run_id.in_(ids),
        "baton_agent_calls": and_(c.run_id.in_(ids), c.ts >= first, c.ts <= last),
        "baton_budget_ledger": schema.budget_ledger.c.window.in_([f"run:{run}" for run in ids]),
        "baton_run_summary": schema.run_summary.c.run_id.in_(ids),
    }


def _run_of(table: str, row: dict[str, Any]) -> str:
    return row["window"].removeprefix("run:") if table == "baton_budget_ledger" else row["run_id"]


def _archive(conn: Connection, runs: dict[str, Any], where: dict[str, Any], root: Path) -> list[Path]:
    """Write the rows of ``runs`` to ``root``, one file per table and day of the runs' end."""
    files = []
    for name, condition in where.items():
        table = schema.metadata.tables[name]
        order = list(table.primary_key.columns)
        by_day: dict[date, list[dict[str, Any]]] = {}
        for row in conn.execute(select(table).where(condition).order_by(*order)).mappings():
            by_day.setdefault(runs[_run_of(name, row)][0], []).append(dict(row))
        files += [retention_archive.write(root, name, day, rows) for day, rows in sorted(by_day.items())]
    retention_archive.sync(files)  # durable before the batch's transaction deletes their rows
    return files


def _batch(
    conn: Connection, runs: dict[str, Any], archive: Path | None, dry_run: bool, done: Cleaned
) -> None:
    where = _conditions(runs)
    if archive is not None and not dry_run:
        done.files += _archive(conn, runs, where, archive)
    for name, condition in where.items():
        table = schema.metadata.tables[name]
        if dry_run:
            done.rows[name] += conn.scalar(select(func.count()).select_from(table).where(condition))
        else:
            done.rows[name] += conn.execute(delete(table).where(condition)).rowcount
    done.runs += len(runs)


def clean(
    store: EventStore, cutoff: datetime, archive: Path | None = None, dry_run: bool = False,
    progress: Callable[[Cleaned], None] | None = None,
) -> Cleaned:  # fmt: skip
    """Archive (to ``archive``) then delete the rows of the runs that ended before ``cutoff`` (see the
    module's docstring), ``BATCH`` runs a transaction; with ``dry_run``, count them and change nothing.
    Raises :class:`CleanBusy` when another clean runs."""
    done = Cleaned()
    with clean_lock(store.engine):
        for _ in range(MAX_CATCH_UP):
            if not store.catch_up():
                break
        for state in ("success", "failed"):
            after = None
            while True:
                with store.engine.begin() as conn:
                    page = _page(conn, state, cutoff, after)
                    if not page:
                        break
                    after = (page[-1].started_at, page[-1].run_id)
                    runs = _eligible(conn, page, cutoff, kept_by_incidents(conn))
                    if runs:
                        _batch(conn, runs, archive, dry_run, done)
                if progress is not None:
                    progress(done)
    return done
