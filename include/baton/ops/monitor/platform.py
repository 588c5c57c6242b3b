"""Faults of the platform itself, seen by the monitor's minute: each becomes an anomaly of kind ``platform``,
one incident per component (``platform@postgres``), which resolves once the component has stayed up for the
incidents' ``resolve_after``.

A restart that began and ended between two ticks leaves no gap to see at the next one, so the probe reads
what outlives it, comparing with what it saw at the tick before (its state ``platform``):

- ``postgres``: the start time of the store's PostgreSQL server (``pg_postmaster_start_time()``) changed: it
  restarted (a minor upgrade, a failover, a crash). SQLite has no server: nothing to watch.
- ``scheduler``, ``triggerer``, ``dag-processor``, ``worker``: a ``platform.started`` of a component (by
  host and worker name) whose start before it has no ``platform.stopped`` since: the one before died without
  stopping (SIGKILL, out of memory, an evicted pod). See :mod:`baton.events.lifecycle`.
- ``broker``: the Celery broker's ``run_id`` (Redis's ``INFO server``) changed: it restarted, and a broker
  that keeps nothing on disk lost the queued tasks with it (Airflow queues them again after
  ``scheduler.task_queued_timeout``). Other brokers are not watched.

For the server and the broker, the first tick records what it sees and finds nothing: a change is only
ever against a tick before. Lifecycle events are read from the first on, a batch a tick.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text

from baton.events import schema
from baton.events.store import EventStore
from baton.ops.incidents import Anomaly
from baton.ops.monitor.state import load_state, save_state

log = logging.getLogger(__name__)

STATE = "platform"
BATCH = 1000  # lifecycle events read per tick at most: a backlog is caught up over a few ticks
BROKER_TIMEOUT_S = 2.0
MAX_KEYS = 10_000  # components remembered (host and worker name): a fleet far larger than any here


def _postgres_started(conn: Connection) -> str | None:
    if conn.dialect.name != "postgresql":
        return None
    return conn.scalar(text("SELECT pg_postmaster_start_time()")).isoformat()


def broker_run_id(broker_url: str | None) -> str | None:
    """The Redis broker's ``run_id`` (a new one at every start), or None: no broker, another kind, or not
    answering now (then nothing is compared this tick)."""
    if not broker_url or not broker_url.startswith(("redis://", "rediss://")):
        return None
    import redis  # deferred: only where the executor's broker is Redis (the Celery provider brings it)

    try:
        client = redis.Redis.from_url(
            broker_url, socket_timeout=BROKER_TIMEOUT_S, socket_connect_timeout=BROKER_TIMEOUT_S
        )
        try:
            return str(client.info("server")["run_id"])
        finally:
            client.close()
    except (redis.RedisError, OSError, KeyError) as error:
        log.warning(
            "The Celery broker did not answer the monitor (%s): not compared this tick", type(error).__name__
        )
        return None


def _lifecycle(conn: Connection, after: int) -> list[Any]:
    e = schema.events.c
    query = (
        select(e.seq, e.type, e.ts, e.payload)
        .where(e.seq > after, e.type.in_(["platform.started", "platform.stopped"]))
        .order_by(e.seq)
        .limit(BATCH)
    )
    return list(conn.execute(query))


def _crashes(rows: list[Any], last: dict[str, str]) -> list[Anomaly]:
    """The components that started again with no clean stop since their start before; ``last`` (component
    key -> ``started``/``stopped``) is brought up to date."""
    found = []
    for _, kind, ts, payload in rows:
        component = str(payload.get("component", "?"))
        key = f"{component}|{payload.get('hostname', '')}|{payload.get('name', '')}"
        if kind == "platform.started" and last.get(key) == "started":
            evidence = {
                "component": component,
                "hostname": str(payload.get("hostname", ""))[:255],
                "name": str(payload.get("name", ""))[:200],
                "started_again_at": ts.isoformat() if hasattr(ts, "isoformat") else str(ts),
                "reason": "started again without a clean stop since its start before: it died",
            }
            found.append(Anomaly(kind="platform", where=component, evidence=evidence))
        last[key] = "started" if kind == "platform.started" else "stopped"
    if len(last) > MAX_KEYS:  # the oldest remembered first out (dicts keep their insertion order)
        for key in list(last)[: len(last) - MAX_KEYS]:
            del last[key]
    return found


def probe(store: EventStore, now: datetime, broker_url: str | None = None) -> list[Anomaly]:
    """This tick's platform anomalies (see the module's docstring); what it saw is saved for the next."""
    broker = broker_run_id(broker_url)  # before the transaction: a broker that hangs holds no lock
    with store.engine.begin() as conn:
        state = load_state(conn, STATE, lock=True) or {}
        found: list[Anomaly] = []
        pg = _postgres_started(conn)
        if pg is not None and state.get("postgres_started") not in (None, pg):
            evidence = {"started_at": pg, "started_before": state["postgres_started"], "reason": "the store's "
                        "PostgreSQL server restarted: every connection was cut"}  # fmt: skip
            found.append(Anomaly(kind="platform", where="postgres", evidence=evidence))
        rows = _lifecycle(conn, int(state.get("seq", 0)))
        last = dict(state.get("last", {}))
        found += _crashes(rows, last)
        if broker is not None and state.get("broker_run_id") not in (None, broker):
            evidence = {
                "reason": "the Celery broker restarted (a new run id): the tasks it queued may be lost"
            }
            found.append(Anomaly(kind="platform", where="broker", evidence=evidence))
        saved = {
            "postgres_started": pg or state.get("postgres_started"),
            "broker_run_id": broker or state.get("broker_run_id"),
            "seq": rows[-1][0] if rows else int(state.get("seq", 0)),
            "last": last,
        }
        save_state(conn, STATE, saved, now)
    return found
