"""Benchmark: routing under concurrency (issue 17) — does a fan-out of simultaneous items spread by load
from the first call?

A ``for_each`` of 20 items, all at once, routed over three equally capable agents with ``max_concurrency``
2 each (``devtools.spread``: each call sleeps 50 ms), on a real store in a temporary SQLite file (or the
PostgreSQL of ``--pg URL``). Each run is done twice, alternating:

- **before**: the router of before this change: rank the candidates (reading the load), then take the
  winner's slot in a second transaction. Simultaneous items all read a load of 0 and pick the same agent,
  then queue for its two slots.
- **now**: the choice and its slot in one transaction (``Router.take_best``): each item sees the slots
  the items before it took.

It prints each run's split of the items over the agents and the wall time, then the largest share any
agent got over all runs, last in the words of the issue: ``max share N % (ideal 33 %)`` (goal <= 40 %).

Run from the repository root::

    .venv/bin/python bench/routing_spread.py [--runs 10] [--items 20] [--pg URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from baton.events.migrations import upgrade
from baton.events.store import EventStore, engine_for
from devtools import spread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--pg", help="a PostgreSQL SQLAlchemy URL to use instead of a temporary SQLite file")
    args = parser.parse_args(argv)
    # the SQLite store in a folder of its own, removed at the end
    with tempfile.TemporaryDirectory(prefix="baton-spread-") as folder:
        return _measure(args, args.pg or f"sqlite:///{Path(folder) / 'store.db'}")


def _measure(args: argparse.Namespace, url: str) -> int:
    upgrade(engine_for(url))
    store = EventStore(engine_for(url))
    backend = url.split(":")[0]
    print(
        f"{args.items} simultaneous items over 3 equal agents (max 2 at once each), {args.runs} runs; {backend}"
    )
    worst = {"before": 0.0, "now": 0.0}
    for run in range(args.runs):
        for label, atomic in (("before", False), ("now", True)):
            began = time.monotonic()
            split = spread.run(
                store, f"spread_{label}_{run}_{time.time_ns()}", atomic=atomic, items=args.items
            )
            took = time.monotonic() - began
            share = max(split.values()) / args.items
            worst[label] = max(worst[label], share)
            shown = "/".join(str(split.get(a.name, 0)) for a in spread.agents())
            print(f"  run {run + 1:>2} {label:<6}  {shown:<10} max share {share:.0%}  {took:.2f} s")
    print(f"before (rank, then take): max share {worst['before']:.0%}")
    print(f"max share {worst['now'] * 100:.0f} % (ideal 33 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
