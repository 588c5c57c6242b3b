"""Benchmark: retention (issue 56) — ``baton db clean`` of 90 % of a store of 10,000,000 events spread over a
year of runs, and the pages' routes before and after it.

One throwaway PostgreSQL database (``--server``, default ``$BATON_TEST_PG`` or 127.0.0.1:5432, dropped at the
end) is filled as bench/dashboard.py fills its big store (COPY of a synthetic history: ``--events`` events
over ``--runs`` runs, default 10,000,000 over 100,000, started over the last 365 days; the dashboard's
projections rebuilt from the events once; ANALYZE). Then:

1. each of the pages' routes (bench/dashboard.py's: the runs' pages, the agents' board, a run's Gantt chart,
   analytics) is called ``--calls`` times (default 50) through Baton's FastAPI app in-process: the baseline,
   on the full store;
2. ``baton.ops.retention.clean`` removes the runs that ended more than ``--keep-days`` ago (default 36.5: a
   tenth of the year stays), with ``--archive`` (default: a temporary folder, removed at the end) as
   ``baton db clean --older-than ... --archive DIR`` does; its time and what it removed are printed;
3. VACUUM ANALYZE, the database's size before and after (PostgreSQL reuses the freed pages; the files
   shrink only with VACUUM FULL, which is not run), and the routes again on what is left.

Run from the repository root:

    .venv/bin/python bench/retention.py [--events 10000000] [--runs 100000] [--calls 50]

Last line: ``clean: N s for N M events; slowest endpoint p95 N ms`` (the clean's wall time, the millions of
events in the store before it, the slowest route's p95 after it; goal < 300 ms). Always exits 0 once the
figures are printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cli_types import SEED_MAX, bounded_int
from dashboard import ENDPOINTS, Caller, fill, measure, p
from harness import Databases, server_argument
from sqlalchemy import func, select, text

from baton.events import schema
from baton.events.store import EventStore, engine_for
from baton.ops.retention import clean

DAYS = 365


def _size(store: EventStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(text("SELECT pg_database_size(current_database())")))


def _count(store: EventStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(schema.events)))


def _routes(client, store: EventStore, calls: int, seed: int) -> dict[str, list[float]]:
    with store.engine.connect() as conn:
        sample = list(conn.scalars(select(schema.run_summary.c.run_id)))
    return measure({"store": Caller(client, store, sample, seed)}, calls)["store"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=bounded_int(1_000, 20_000_000), default=10_000_000)
    parser.add_argument("--runs", type=bounded_int(10, 1_000_000), default=100_000)
    parser.add_argument("--calls", type=bounded_int(1, 10_000), default=50, help="measured calls per route")
    parser.add_argument(
        "--keep-days", type=float, default=DAYS / 10, help="the clean keeps runs that ended this recently"
    )
    parser.add_argument("--archive", type=Path, help="the clean's archive folder (default: a temporary one)")
    parser.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=56)
    server_argument(parser)
    return parser


def main() -> int:
    parser = _parser()
    args = parser.parse_args()
    if args.runs > args.events:
        parser.error("--runs is at most --events (a run has at least one event)")
    if not 0 < args.keep_days < DAYS:
        parser.error(f"--keep-days is between 0 and {DAYS} (the runs start over the last {DAYS} days)")
    if args.archive is not None and not args.archive.is_dir():
        parser.error(f"--archive {str(args.archive)[:200]}: not a folder (create it first)")
    from fastapi.testclient import TestClient

    from baton.plugin import dashboard_api
    from baton.plugin.api import app

    for name in ("httpx", "httpx2", "baton.ops.retention"):  # a line per call or batch would bury the figures
        logging.getLogger(name).setLevel(logging.WARNING)
    now = datetime.now(UTC)
    with ExitStack() as stack:
        url = Databases(parser, stack, args.server, "baton_bench_retention", ("store",)).url("store")
        archive = args.archive or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="baton-archive-"))
        )
        history, took = fill(url, args.events, args.runs, DAYS, args.seed, now)
        store = EventStore(engine_for(url))
        stack.callback(store.engine.dispose)
        print(f"filled: {history.count:,} events over {args.runs:,} runs over {DAYS} days")
        print("  " + ", ".join(f"{k} in {v:.1f} s" for k, v in took.items()))
        app.dependency_overrides[dashboard_api.READ_RUNS] = lambda: None
        client = TestClient(app)
        before = _routes(client, store, args.calls, args.seed)
        size_before, events_before = _size(store), _count(store)
        began = time.perf_counter()
        done = clean(store, now - timedelta(days=args.keep_days), archive)
        seconds = time.perf_counter() - began
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        size_after, events_after = _size(store), _count(store)
        after = _routes(client, store, args.calls, args.seed)
        _report(done, seconds, (events_before, events_after), (size_before, size_after), before, after)
    slowest = round(max(p(after[e], 95) for e in ENDPOINTS))
    print(f"clean: {seconds:.0f} s for {events_before / 1e6:.2f} M events; slowest endpoint p95 {slowest} ms")
    return 0


def _report(done, seconds, events, sizes, before, after) -> None:
    removed = events[0] - events[1]
    print(f"clean: {seconds:.1f} s, {removed:,} of {events[0]:,} events removed ({removed / events[0]:.0%}), "
          f"{removed / max(seconds, 1e-9):,.0f} events/s; {done.runs:,} runs archived and deleted")  # fmt: skip
    print(
        f"database size: {sizes[0] / 2**20:,.0f} MB before, {sizes[1] / 2**20:,.0f} MB after (VACUUM, not FULL)"
    )
    print(
        f"\n{'route':<10} {'calls':>5}  {'p50 before':>10} {'p95 before':>10}   {'p50 after':>9} {'p95 after':>9}"
    )
    for endpoint in ENDPOINTS:
        b, a = before[endpoint], after[endpoint]
        print(
            f"{endpoint:<10} {len(a):>5}  {p(b, 50):>10.1f} {p(b, 95):>10.1f}   {p(a, 50):>9.1f} {p(a, 95):>9.1f}"
        )


if __name__ == "__main__":
    sys.exit(main())
