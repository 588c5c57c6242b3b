"""Benchmark: Baton's event store on PostgreSQL (append single and batched, replay) vs. raw SQL baselines.

Everything runs in a throwaway PostgreSQL database, ``baton_bench_<pid>_<random>``, created through
``--server`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``, or ``$BATON_TEST_PG``),
migrated with ``baton.events.migrations.upgrade`` and always dropped at the end (``WITH (FORCE)``).
Both sides of every comparison go through the same driver (psycopg 3) and the same SQLAlchemy engine
(``engine_for(url)``, the store's pool settings, ``pool_pre_ping`` included).

1. Append, single: ``--events`` events (default 2,000; the operator's mix: per run ``run.started``, per
   step ``step.started``, ``agent.selected``, ``model.called``, ``output.recorded`` with a ~200-byte
   output, ``step.succeeded``; every 7th run has a first try that fails and is retried; every 10th run
   fails; runs of 3 to 12 steps over three workflows) appended one per ``EventStore.append`` call,
   vs. the raw baseline: a psycopg cursor on one DBAPI connection of the same engine executing a plain
   ``INSERT INTO baton_events (...) VALUES (%s, ...)`` (no ON CONFLICT, no RETURNING) with bound
   parameters, one row per transaction (``commit()`` after each). For reference (not in the ratio),
   SQLAlchemy Core too: ``engine.begin()`` + ``conn.execute(schema.events.insert(), row)`` per row.
2. Append, batched: the same events in batches of ``--batch`` (default 100) per ``EventStore.append``
   call vs. one raw multi-row ``INSERT ... VALUES (...), (...), ...`` of the same rows per transaction
   (and Core's ``conn.execute(insert, rows)`` executemany, for reference).
   The events are built before the clock starts. Inside the clock the store validates and serializes
   each payload (``Event.row()``) and inserts with ON CONFLICT DO NOTHING RETURNING; every projection is
   enabled (``PROJECTIONS``): the pages' one (``baton_run_summary`` and the others of ``summaries.TABLES``) is
   caught up from the log after the append's transaction (``EventStore.catch_up``, what its readers call),
   timed apart: after each store pass, until it is current (the projection's rows checked against a
   rebuild's once). The raw side's rows are prebuilt tuples (payload dicts wrapped in
   ``psycopg.types.json.Jsonb``, serialized by psycopg at execute). Each measurement starts from
   ``TRUNCATE`` of the events and the projections' rows (and the projection's cursor at 0); the
   sides run in a rotating order in each repetition, after one unmeasured warm-up pass of each.
3. Replay: ``--replay-events`` events (default 100,000) of ONE run over ``--replay-steps`` steps
   (default 2,000; each mapped over ~10 indexes, the same five events per try, every 25th mapped task
   instance fails its first try and is retried) inserted with raw multi-row INSERTs, then ANALYZE.
   Timed, alternating: ``fold(run_id, store.read(run_id))`` vs. the baseline, the store's own query
   (same columns, ``CAST(payload AS TEXT)``, same WHERE, ORDER BY seq) executed through the same
   engine and fetched with ``.all()``; ``list(store.read(run_id))`` (read + parse, no fold) is timed
   too, to split the cost.

Goals: append ratios store/raw >= 0.5; replay <= 2 s. Medians of ``--reps`` repetitions (default 5). The
catch-up's rate says how far behind a page can be: a reader applies at most ``catchup.READ_LIMIT`` events
before it reads, taking that many divided by the rate.
``--profile`` adds a cProfile of one store pass of each measurement (top costs in baton.events).

Run from the repository root:

    .venv/bin/python bench/events.py [--events 2000] [--batch 100] [--reps 5] [--profile]

This is a benchmark, not a test: it prints the figures and exits 0 whatever they are.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import secrets
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cli_types import bounded_int
from psycopg.types.json import Jsonb
from sqlalchemy import Engine, Text, cast, create_engine, select, text

from baton.events import catchup, schema, summaries
from baton.events.event import Event
from baton.events.migrations import upgrade
from baton.events.replay import fold
from baton.events.store import EventStore, engine_for
from baton.events.types import EVENT_TYPES

SERVER = os.environ.get("BATON_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
COLUMNS = (
    "run_id",
    "workflow",
    "template_version",
    "step",
    "map_index",
    "try_number",
    "agent",
    "type",
    "payload",
    "ts",
    "idempotency_key",
)
PAYLOAD = COLUMNS.index("payload")
ROW_SQL = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
INSERT_SQL = f"INSERT INTO baton_events ({', '.join(COLUMNS)}) VALUES "
GOAL_RATIO, GOAL_REPLAY_S = 0.5, 2.0

WORKFLOWS = ("market_brief", "support_triage", "content_pipeline")
STEPS = (
    "research",
    "outline",
    "draft",
    "critique",
    "revise",
    "fact_check",
    "summarize",
    "classify",
    "route",
    "translate",
    "score",
    "publish",
)
AGENTS = (
    "strategy_strategic_planner",
    "research_market_analyst",
    "writing_copy_editor",
    "support_triage_agent",
    "qa_fact_checker",
)
MODELS = ("gpt-4o-mini", "claude-3-5-haiku", "offline")
BASE_TS = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


# --- realistic events -----------------------------------------------------------------------------


def output_of(run: int, step: str, index: int) -> dict[str, Any]:
    """A step's structured output of about 200 bytes of JSON."""
    return {
        "summary": (
            f"Run {run}, step {step}[{index}]: the three strongest signals point to a mid-market "
            "expansion; pricing pressure stays moderate and churn risk is concentrated in two segments."
        ),
        "priority": ("low", "medium", "high")[(run + index) % 3],
        "confidence": round(0.5 + (run * 7 + index) % 50 / 100, 2),
    }


def run_started(logical_date: datetime, conf: dict[str, Any]) -> dict[str, Any]:
    """A ``run.started`` payload: the conf itself (``inputs``) or its keys and digest, as the type has it."""
    payload: dict[str, Any] = {"run_type": "manual", "logical_date": logical_date.isoformat()}
    if "inputs" in EVENT_TYPES["run.started"].model_fields:
        return {**payload, "inputs": conf}
    digest = hashlib.sha256(json.dumps(conf, sort_keys=True).encode()).hexdigest()
    return {**payload, "conf_keys": sorted(conf), "conf_sha256": digest}


class Clock:
    """Event timestamps, 37 ms apart: monotonic, as an operator's would be."""

    def __init__(self) -> None:
        self.ts = BASE_TS

    def __call__(self) -> datetime:
        self.ts += timedelta(milliseconds=37)
        return self.ts


def try_events(
    store: EventStore,
    clock: Clock,
    common: dict[str, Any],
    run: int,
    index: int,
    *,
    fails: bool,
    will_retry: bool,
) -> list[Event]:
    """The events the operator writes for one try of one step (or mapped task instance)."""
    step, agent = common["step"], common["agent"]
    n = run * 1000 + index * 10 + common["try_number"]
    prompt_chars = 1800 + n % 900
    events = [
        Event(
            type="step.started",
            payload={"pid": 20_000 + n % 9000, "hostname": f"worker-{n % 4}", "pool": f"baton_{agent}"},
            ts=clock(),
            **common,
        ),
        Event(
            type="agent.selected",
            payload={"agent": agent, "candidates": [agent], "reason": "named by the template"},
            ts=clock(),
            **common,
        ),
        Event(
            type="model.called",
            payload={
                "model": MODELS[n % len(MODELS)],
                "requests": 1,
                "input_tokens": prompt_chars // 4,
                "output_tokens": 120 + n % 80,
                "cost": round((prompt_chars // 4) / 1000 * 0.00015 + (120 + n % 80) / 1000 * 0.0006, 8),
                "latency_s": round(0.8 + n % 1300 / 1000, 3),
                "prompt_sha256": hashlib.sha256(f"{step}|{n}".encode()).hexdigest(),
                "prompt_chars": prompt_chars,
            },
            ts=clock(),
            **common,
        ),
    ]
    if fails:
        events.append(
            Event(
                type="step.failed",
                payload={
                    "error_class": "RateLimitError",
                    "error": "Error code: 429 - rate limit reached for requests; retry after 2s",
                    "will_retry": will_retry,
                },
                ts=clock(),
                **common,
            )
        )
        if will_retry:
            events.append(
                Event(
                    type="step.retried",
                    payload={"next_try": common["try_number"] + 1},
                    ts=clock(),
                    **common,
                )
            )
        return events
    events.append(
        Event(
            type="output.recorded",
            payload=store.output_payload(output_of(run, step, index)),
            ts=clock(),
            **common,
        )
    )
    events.append(
        Event(
            type="step.succeeded",
            payload={"duration_s": round(1.0 + n % 2500 / 1000, 3)},
            ts=clock(),
            **common,
        )
    )
    return events


def append_events(store: EventStore, n: int) -> list[Event]:
    """``n`` events of many runs (3 to 12 steps each, over three workflows), in the order written."""
    clock, events, run = Clock(), [], 0
    while len(events) < n:
        run_id = f"manual__2025-06-01T09:{run // 60 % 60:02d}:{run % 60:02d}.{run:06d}+00:00"
        workflow, version = WORKFLOWS[run % len(WORKFLOWS)], 1 + run % 3
        base = {"run_id": run_id, "workflow": workflow, "template_version": version}
        events.append(
            Event(
                type="run.started",
                payload=run_started(
                    clock(), {"topic": f"topic {run}", "audience": "executives", "max_words": 300}
                ),
                ts=clock(),
                **base,
            )
        )
        steps = 3 + run % 10
        run_fails = run % 10 == 9
        for s in range(steps):
            agent = AGENTS[(run + s) % len(AGENTS)]
            common = {**base, "step": STEPS[s], "map_index": -1, "agent": agent}
            last = s == steps - 1
            if run % 7 == 3 and s == 1:  # a retried step: try 1 fails, try 2 succeeds
                events += try_events(
                    store, clock, {**common, "try_number": 1}, run, s, fails=True, will_retry=True
                )
                events += try_events(
                    store, clock, {**common, "try_number": 2}, run, s, fails=False, will_retry=False
                )
            else:
                events += try_events(
                    store,
                    clock,
                    {**common, "try_number": 1},
                    run,
                    s,
                    fails=run_fails and last,
                    will_retry=False,
                )
        kind = "run.failed" if run_fails else "run.succeeded"
        payload = {"duration_s": round(steps * 2.5, 3)}
        if run_fails:
            payload["reason"] = f"step {STEPS[steps - 1]} failed"
        events.append(Event(type=kind, payload=payload, ts=clock(), **base))
        run += 1
    return events[:n]


def replay_events(store: EventStore, n: int, steps: int) -> tuple[str, list[Event]]:
    """``n`` events of ONE run over ``steps`` steps, each mapped over about ten indexes."""
    clock = Clock()
    run_id = "manual__2025-06-01T12:00:00+00:00"
    base = {"run_id": run_id, "workflow": "fanout_bench", "template_version": 4}
    events = [
        Event(
            type="run.started",
            payload=run_started(clock(), {"items": 20_000}),
            ts=clock(),
            **base,
        )
    ]
    # five events per try, 4 % of the mapped task instances twice (10 events): ~5.2 events each
    instances = -(-(n - 2) * 25 // 130)
    unit = 0
    for s in range(steps):
        fan_out = (s + 1) * instances // steps - s * instances // steps
        for index in range(fan_out):
            common = {**base, "step": f"step_{s:04d}", "map_index": index, "agent": AGENTS[s % len(AGENTS)]}
            if unit % 25 == 12:
                events += try_events(
                    store, clock, {**common, "try_number": 1}, s, index, fails=True, will_retry=True
                )
                events += try_events(
                    store, clock, {**common, "try_number": 2}, s, index, fails=False, will_retry=False
                )
            else:
                events += try_events(
                    store, clock, {**common, "try_number": 1}, s, index, fails=False, will_retry=False
                )
            unit += 1
    events = events[: n - 1]
    events.append(Event(type="run.succeeded", payload={"duration_s": 5400.0}, ts=clock(), **base))
    return run_id, events


def raw_rows(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    """The rows the store would write, as psycopg parameters (payload wrapped in Jsonb)."""
    rows = []
    for event in events:
        row = event.row()
        values = [row[c] for c in COLUMNS]
        values[PAYLOAD] = Jsonb(values[PAYLOAD])
        rows.append(tuple(values))
    return rows


def mix(events: Sequence[Event]) -> str:
    counts = Counter(e.type for e in events)
    runs = len({e.run_id for e in events})
    kinds = ", ".join(f"{kind} {count:,} ({count / len(events):.1%})" for kind, count in counts.most_common())
    return f"{len(events):,} events of {runs} run(s): {kinds}"


# --- the measured sides ---------------------------------------------------------------------------


def reset(engine: Engine) -> None:
    with engine.begin() as conn:
        tables = ", ".join(table.name for table in summaries.TABLES if table is not schema.agents_seen)
        conn.execute(text(f"TRUNCATE baton_events, {tables} RESTART IDENTITY"))
        conn.execute(schema.projection_cursors.update().values(seq=0, gaps=[]))


def caught_up(store: EventStore) -> tuple[float, int]:
    """The pages' projection caught up with what the appends left (as its readers do, ``READ_LIMIT`` at a
    time): seconds, events applied."""
    started, applied = time.perf_counter(), 0
    while n := store.catch_up():
        applied += n
    return time.perf_counter() - started, applied


def projection_rows(engine: Engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            t.name: sorted(tuple(r) for r in conn.execute(select(*[c for c in t.c if c.name != "id"])))
            for t in summaries.TABLES
        }


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


CATCH_UP: list[tuple[float, int]] = []  # each store pass's catch-up after it (seconds, events)


def store_single(store: EventStore, events: Sequence[Event]) -> float:
    started = time.perf_counter()
    for event in events:
        store.append([event])
    elapsed = time.perf_counter() - started
    CATCH_UP.append(caught_up(store))
    return elapsed


def store_batched(store: EventStore, chunks: Sequence[Sequence[Event]]) -> float:
    started = time.perf_counter()
    for chunk in chunks:
        store.append(chunk)
    elapsed = time.perf_counter() - started
    CATCH_UP.append(caught_up(store))
    return elapsed


def raw_single(engine: Engine, rows: Sequence[tuple[Any, ...]]) -> float:
    """One DBAPI connection of the engine; a plain INSERT with bound parameters and a commit per row."""
    sql = INSERT_SQL + ROW_SQL
    conn = engine.raw_connection()
    try:
        cursor = conn.cursor()
        started = time.perf_counter()
        for row in rows:
            cursor.execute(sql, row)
            conn.commit()
        elapsed = time.perf_counter() - started
        cursor.close()
    finally:
        conn.close()  # back to the pool
    return elapsed


def raw_batched(engine: Engine, chunks: Sequence[Sequence[tuple[Any, ...]]]) -> float:
    """One multi-row INSERT per chunk, one transaction each; the flat parameter lists are prebuilt."""
    statements = [(INSERT_SQL + ", ".join([ROW_SQL] * len(c)), [v for row in c for v in row]) for c in chunks]
    conn = engine.raw_connection()
    try:
        cursor = conn.cursor()
        started = time.perf_counter()
        for sql, params in statements:
            cursor.execute(sql, params)
            conn.commit()
        elapsed = time.perf_counter() - started
        cursor.close()
    finally:
        conn.close()
    return elapsed


def core_single(engine: Engine, rows: Sequence[dict[str, Any]]) -> float:
    insert = schema.events.insert()
    started = time.perf_counter()
    for row in rows:
        with engine.begin() as conn:
            conn.execute(insert, row)
    return time.perf_counter() - started


def core_batched(engine: Engine, chunks: Sequence[Sequence[dict[str, Any]]]) -> float:
    insert = schema.events.insert()
    started = time.perf_counter()
    for chunk in chunks:
        with engine.begin() as conn:
            conn.execute(insert, list(chunk))
    return time.perf_counter() - started


def read_query(run_id: str):
    """The query ``EventStore.read(run_id)`` runs, as a plain SELECT."""
    e = schema.events.c
    columns = (e.seq, e.run_id, e.workflow, e.template_version, e.step, e.map_index, e.try_number)
    return (
        select(*columns, e.agent, e.type, cast(e.payload, Text), e.ts, e.idempotency_key)
        .where(e.seq > 0, e.run_id == run_id)
        .order_by(e.seq)
    )


def raw_read(engine: Engine, run_id: str) -> tuple[float, int]:
    query = read_query(run_id)
    started = time.perf_counter()
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return time.perf_counter() - started, len(rows)


def store_read(store: EventStore, run_id: str) -> tuple[float, int]:
    started = time.perf_counter()
    events = list(store.read(run_id))
    return time.perf_counter() - started, len(events)


def replay(store: EventStore, run_id: str) -> tuple[float, int]:
    started = time.perf_counter()
    state = fold(run_id, store.read(run_id))
    elapsed = time.perf_counter() - started
    assert state.state == "success" and not state.corrupt, (state.state, state.corrupt[:3])
    return elapsed, state.events


# --- running and reporting ------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def show(label: str, values: Sequence[float], unit: str, fmt: str = "{:,.0f}") -> None:
    each = "  ".join(fmt.format(v) for v in values)
    print(f"  {label:<22} median {fmt.format(median(values))} {unit}   (each: {each})", flush=True)


def interleaved(
    engine: Engine, sides: dict[str, Callable[[], float]], reps: int, count: int
) -> dict[str, list[float]]:
    """Each side once per repetition, in a rotating order, each from an empty table; events/s."""
    names = list(sides)
    for name in names:  # warm-up: compile caches, prepared statements, pydantic, the pool
        reset(engine)
        sides[name]()
    rates: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            reset(engine)
            rates[name].append(count / sides[name]())
    reset(engine)
    return rates


def profile(label: str, fn: Callable[[], Any], top: int = 12) -> None:
    """cProfile one call: the cost of baton.events' functions and of what they call, then all code."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    fn()
    profiler.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler)

    def ours(file: str) -> bool:
        return f"baton{os.sep}events" in file

    def short(func: tuple[str, int, str]) -> str:
        file, line, name = func
        return f"{os.sep.join(file.split(os.sep)[-2:])}:{line} {name}" if line else name

    print(f"\n--- profile: {label} ({wall:.2f} s wall time under the profiler) ---")
    print(f"  {'cumulative s':>12} {'own s':>8} {'calls':>9}  function in include/baton/events")
    rows = [(cum, tt, nc, f) for f, (_cc, nc, tt, cum, _callers) in stats.stats.items() if ours(f[0])]
    for cum, tt, nc, func in sorted(rows, reverse=True)[:top]:
        print(f"  {cum:>12.3f} {tt:>8.3f} {nc:>9,}  {short(func)}  ({cum / wall:.0%})")
    print(f"  {'cumulative s':>12} {'':>8} {'calls':>9}  call from include/baton/events -> callee")
    edges = [
        (cum, nc, f"{short(caller)} -> {short(func)}")
        for func, (*_, callers) in stats.stats.items()
        for caller, (nc, _cc, _tt, cum) in callers.items()
        if ours(caller[0]) and not ours(func[0])
    ]
    for cum, nc, edge in sorted(edges, reverse=True)[:top]:
        print(f"  {cum:>12.3f} {'':>8} {nc:>9,}  {edge}  ({cum / wall:.0%})")
    notable = {
        "SQL compilation (sqlalchemy _compile_w_cache)": ("elements.py", "_compile_w_cache"),
        "waiting for PostgreSQL (psycopg wait)": ("connection.py", "wait"),
        "query parsing (psycopg _split_query)": ("_queries.py", "_split_query"),
    }
    for what, (file, name) in notable.items():
        cum = sum(v[3] for f, v in stats.stats.items() if f[0].endswith(file) and f[2] == name)
        print(f"  of which {what}: {cum:.3f} s ({cum / wall:.0%})")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    print("  top by own time (all code):")
    for line in lines[start : start + top + 1]:
        print("   " + line)


def run(url: str, args: argparse.Namespace) -> dict[str, float]:
    engine = engine_for(url)
    upgrade(engine)
    store = EventStore(engine)
    results: dict[str, float] = {}

    events = append_events(store, args.events)
    print(f"append mix: {mix(events)}")
    rows = raw_rows(events)
    dicts = [e.row() for e in events]
    chunks, row_chunks, dict_chunks = (batches(x, args.batch) for x in (events, rows, dicts))

    reset(engine)
    store_batched(store, chunks)
    applied = projection_rows(engine)
    store.rebuild()
    assert projection_rows(engine) == applied, "the caught-up projection differs from a rebuild's"
    CATCH_UP.clear()

    print(f"\n1. append single: {len(events):,} events, one per transaction, {args.reps} reps")
    single = interleaved(
        engine,
        {
            "store": lambda: store_single(store, events),
            "raw": lambda: raw_single(engine, rows),
            "core": lambda: core_single(engine, dicts),
        },
        args.reps,
        len(events),
    )
    for name, label in (
        ("store", "EventStore.append"),
        ("raw", "raw psycopg INSERT"),
        ("core", "SQLAlchemy Core"),
    ):
        show(label, single[name], "ev/s")
    results |= {f"single_{k}": median(v) for k, v in single.items()}
    results["single_paired"] = median([s / r for s, r in zip(single["store"], single["raw"], strict=True)])

    print(f"\n2. append batched: {len(events):,} events in batches of {args.batch}, {args.reps} reps")
    batched = interleaved(
        engine,
        {
            "store": lambda: store_batched(store, chunks),
            "raw": lambda: raw_batched(engine, row_chunks),
            "core": lambda: core_batched(engine, dict_chunks),
        },
        args.reps,
        len(events),
    )
    for name, label in (
        ("store", "EventStore.append"),
        ("raw", "raw multi-row INSERT"),
        ("core", "Core executemany"),
    ):
        show(label, batched[name], "ev/s")
    results |= {f"batched_{k}": median(v) for k, v in batched.items()}
    results["batched_paired"] = median([s / r for s, r in zip(batched["store"], batched["raw"], strict=True)])
    rates = [n / s for s, n in CATCH_UP if n]
    show("catch-up after them", rates, "ev/s")
    results["catch_up"] = median(rates)

    if args.profile:
        reset(engine)
        profile(f"store single, {len(events):,} appends", lambda: store_single(store, events))
        reset(engine)
        profile(f"store batched, {len(chunks)} appends", lambda: store_batched(store, chunks))
        reset(engine)

    print(f"\n3. replay: setting up {args.replay_events:,} events of one run ...", flush=True)
    started = time.perf_counter()
    run_id, big = replay_events(store, args.replay_events, args.replay_steps)
    steps = len({e.step for e in big if e.step})
    instances = len({(e.step, e.map_index) for e in big if e.step})
    print(f"  replay mix: {mix(big)}; {steps:,} steps, {instances:,} mapped task instances")
    raw_batched(engine, batches(raw_rows(big), 1000))
    del big
    with engine.begin() as conn:
        conn.execute(text("ANALYZE baton_events"))
    print(f"  set up in {time.perf_counter() - started:.1f} s (raw multi-row INSERTs of 1,000, ANALYZE)")

    raw_read(engine, run_id)  # warm-up
    replay(store, run_id)
    timings: dict[str, list[float]] = {"read": [], "store_read": [], "replay": []}
    for rep in range(args.reps):
        sides = ["read", "replay", "store_read"] if rep % 2 == 0 else ["replay", "store_read", "read"]
        for side in sides:
            if side == "read":
                elapsed, count = raw_read(engine, run_id)
            elif side == "store_read":
                elapsed, count = store_read(store, run_id)
            else:
                elapsed, count = replay(store, run_id)
            assert count == args.replay_events, (side, count)
            timings[side].append(elapsed)
    show("SELECT ... .all()", timings["read"], "s", "{:.3f}")
    show("list(store.read())", timings["store_read"], "s", "{:.3f}")
    show("fold(store.read())", timings["replay"], "s", "{:.3f}")
    results |= {f"replay_{k}": median(v) for k, v in timings.items()}

    if args.profile:
        profile(f"replay of {args.replay_events:,} events", lambda: replay(store, run_id))
    return results


def summary(r: dict[str, float], args: argparse.Namespace) -> None:
    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    single, batched = r["single_store"] / r["single_raw"], r["batched_store"] / r["batched_raw"]
    replay_s, read_s = r["replay_replay"], r["replay_read"]
    print("\n=== summary (medians) " + "=" * 70)
    print(
        f"append single:  store {r['single_store']:,.0f} ev/s, raw {r['single_raw']:,.0f} ev/s, "
        f"ratio {single:.2f} (goal >= {GOAL_RATIO}: {verdict(single >= GOAL_RATIO)}; "
        f"median of per-rep ratios {r['single_paired']:.2f})"
        f"   [Core {r['single_core']:,.0f} ev/s]"
    )
    print(
        f"append batched: store {r['batched_store']:,.0f} ev/s, raw {r['batched_raw']:,.0f} ev/s, "
        f"ratio {batched:.2f} (goal >= {GOAL_RATIO}: {verdict(batched >= GOAL_RATIO)}; "
        f"median of per-rep ratios {r['batched_paired']:.2f})"
        f"   [Core {r['batched_core']:,.0f} ev/s; batches of {args.batch}]"
    )
    print(
        f"catch-up:       {r['catch_up']:,.0f} ev/s (the pages' projection, after the appends' transactions): "
        f"a reader applies at most {catchup.READ_LIMIT:,} events, "
        f"{catchup.READ_LIMIT / r['catch_up']:.2f} s, before it reads"
    )
    print(
        f"replay:         fold(store.read) {replay_s:.2f} s for {args.replay_events:,} events "
        f"(goal <= {GOAL_REPLAY_S:.0f} s: {verdict(replay_s <= GOAL_REPLAY_S)})"
    )
    print(
        f"replay/read:    read {read_s:.2f} s, ratio {replay_s / read_s:.1f}"
        f"   [store.read alone {r['replay_store_read']:.2f} s]"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=bounded_int(1, 10_000_000), default=2000, help="events appended (default 2,000)"
    )
    parser.add_argument(
        "--batch", type=bounded_int(1, 100_000), default=100, help="events per batched append (default 100)"
    )
    parser.add_argument(
        "--reps", type=bounded_int(1, 1000), default=5, help="repetitions of each measurement (default 5)"
    )
    parser.add_argument(
        "--replay-events",
        type=bounded_int(100, 10_000_000),
        default=100_000,
        help="events of the replayed run",
    )
    parser.add_argument(
        "--replay-steps", type=bounded_int(1, 100_000), default=2000, help="steps of the replayed run"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one store pass of each measurement")
    parser.add_argument("--server", default=SERVER, help="a database on the server, to create ours from")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the database is dropped
    admin = create_engine(args.server, isolation_level="AUTOCOMMIT")
    name = f"baton_bench_{os.getpid()}_{secrets.token_hex(4)}"
    url = args.server.rsplit("/", 1)[0] + f"/{name}"
    print(f"database {name} on {admin.url.render_as_string()}", flush=True)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            server = conn.scalar(text("SELECT version()"))
            settings = {
                s: conn.scalar(text(f"SHOW {s}")) for s in ("synchronous_commit", "fsync", "shared_buffers")
            }
        print(f"{server.split(' on ')[0]}; {', '.join(f'{k}={v}' for k, v in settings.items())}")
        results = run(url, args)
    finally:
        engine_for(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    summary(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
