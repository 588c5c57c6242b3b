"""Benchmark: budgets at several levels hold against concurrent runs on a running Airflow (issue 19).

It writes a temp dags folder holding Baton's loader with one agent, ``budget_worker`` (the offline model,
answering after 20 ms with fixed token counts: 100 in, 20 out, priced 1.0 and 2.0 per 1,000: 0.14 and
120 tokens a call), two templates, ``budget_a`` and ``budget_b``: a skill step ``items`` (``bench_items``,
``--items`` of them) and a step ``work`` with ``for_each`` over them on ``budget_worker`` at concurrency
16 (``usage_limits`` of 100 in and 20 out: each call's bound), ``partial_failure: continue``; and
``budgets.yaml`` with a budget at each level, each sized to bind during the campaign:

- ``a-run``: each run of ``budget_a``, 80 % of its items (in tokens);
- ``b-day``: ``budget_b``'s runs of the day together, 60 % of their items (in money);
- ``worker-day``: the agent's calls of the day, 70 % of all the items (in tokens);
- ``all-day``: everything of the day, 75 % of all the items (in money).

One ``airflow standalone`` (temp AIRFLOW_HOME, ``make run``'s settings; Baton's store is SQLite there, or
a throwaway PostgreSQL database with ``--store postgresql``) runs four runs at once, two of each template
(``--items`` 250 each: 1,000 calls in all). Then it reads Baton's store: per budget and window, what was
settled against its limit, and the calls refused. Every call reserves its bound (its usage_limits) before
it starts, so the in-flight bound of the contract is zero calls: any spend past a limit is an overspend.

``--write-dags DIR`` writes its templates, agent and budgets (without ``all-day``: a global budget would
bind every other workflow of that Airflow) into another dags folder, sized for ``ATTACHED_ITEMS`` items a
run, and prints the settings that Airflow needs as JSON; ``--attach AIRFLOW_HOME`` then runs the four
runs on that Airflow once it runs and leaves it running. The test suite's smoke run does that on the
Airflow its integration tests share.

Run from the repository root:

    .venv/bin/python bench/budget.py [--items 250] [--store sqlite|postgresql] [--keep DIR]

It prints each budget's spend, and last ``overspend beyond in-flight bound: N calls (N.NN% of budget)``
(the sum over the budgets, as a share of their limits; goal 0). Exit 1 when a run fails or times out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

import httpx
from cli_types import bounded_int
from harness import (
    BenchError,
    Databases,
    attach_arguments,
    attached,
    attached_store,
    baton_dags,
    none_exists,
    run_bench,
    server_argument,
    states_text,
    sync_pools,
    workdir,
    write_dags_only,
    write_new,
)

from devtools.standalone import Standalone

CONN = "baton_bench_budget"
AGENT = "budget_worker"
WORKFLOWS = ("budget_a", "budget_b")
RUNS = ("budget_a", "budget_b", "budget_a", "budget_b")  # four at once, two of each
TOKENS_IN, TOKENS_OUT, PRICE_IN, PRICE_OUT = 100, 20, 1.0, 2.0
PER_CALL_COST = TOKENS_IN / 1000 * PRICE_IN + TOKENS_OUT / 1000 * PRICE_OUT
PER_CALL_TOKENS = TOKENS_IN + TOKENS_OUT
RUN_TIMEOUT = 600.0
ATTACHED_ITEMS = 20  # items a run on an attached Airflow (its budgets are written for that many)

AGENTS = f"""\
  # bench/budget.py's agent: fixed token counts, 20 ms an answer (the offline model).
  - name: {AGENT}
    description: Answers after 20 ms, {TOKENS_IN} tokens in and {TOKENS_OUT} out (the offline model).
    capabilities: [bench]
    llm_conn_id: {CONN}
    max_concurrency: 64
    cost: {{input_per_1k: {PRICE_IN}, output_per_1k: {PRICE_OUT}}}
"""

TEMPLATE = """\
workflow: {workflow}
version: 1
description: Budget benchmark (bench/budget.py) - {items} model calls of fixed size, 16 at once.
owner: bench
category: bench
tags: [bench]
inputs:
  count:
    type: integer
    default: {items}
    description: How many items to fan out over.
steps:
  - id: items
    skill: bench_items
    output: BenchItems
  - id: work
    for_each: {{over: items.items, concurrency: 16, partial_failure: continue}}
    agent: {agent}
    instruction: "Process {{{{ item }}}}."
    usage_limits: {{input_tokens_limit: {tokens_in}, output_tokens_limit: {tokens_out}}}
"""


def budgets(items: int, everything: bool = True) -> list[dict]:
    """The budgets, each sized to bind (see the module's docstring); ``everything``: with the global one."""
    total = items * len(RUNS)
    found = [
        {"name": "a-run", "scope": "workflow:budget_a", "per": "run", "tokens": int(0.8 * items) * PER_CALL_TOKENS},
        {"name": "b-day", "scope": "workflow:budget_b", "per": "day",
         "cost": round(int(0.6 * 2 * items) * PER_CALL_COST, 6)},
        {"name": "worker-day", "scope": f"agent:{AGENT}", "per": "day",
         "tokens": int(0.7 * total) * PER_CALL_TOKENS},
        {"name": "all-day", "scope": "global", "per": "day", "cost": round(int(0.75 * total) * PER_CALL_COST, 6)},
    ]  # fmt: skip
    return found if everything else found[:-1]


def write_dags(dags: Path, items: int = ATTACHED_ITEMS, everything: bool = False) -> dict[str, str]:
    """The templates, the agent and ``budgets.yaml`` in ``dags`` (with Baton's loader and a roster); the
    settings they need."""
    none_exists(*(dags / "workflows" / f"{w}.yaml" for w in WORKFLOWS), dags / "budgets.yaml")
    baton_dags(dags, AGENTS, (AGENT,))
    for workflow in WORKFLOWS:
        text = TEMPLATE.format(
            workflow=workflow, items=items, agent=AGENT, tokens_in=TOKENS_IN, tokens_out=TOKENS_OUT
        )
        write_new(dags / "workflows" / f"{workflow}.yaml", text)
    write_new(dags / "budgets.yaml", json.dumps({"budgets": budgets(items, everything)}, indent=2))  # YAML
    usage = {"input_tokens": TOKENS_IN, "output_tokens": TOKENS_OUT}
    extra = {"model": "baton:offline", "offline_delay_s": 0.02, "offline_usage": usage}
    return {
        "BATON_EXTENSIONS": "devtools.bench_skills",
        f"AIRFLOW_CONN_{CONN.upper()}": json.dumps({"conn_type": "pydanticai", "extra": extra}),
    }


def run_all(client: httpx.Client) -> list[tuple[str, str]]:
    """Trigger the four runs at once and wait for all: (workflow, run id) of each."""
    runs = []
    for workflow in RUNS:
        response = client.post(f"/dags/{workflow}/dagRuns", json={"logical_date": None, "conf": {}})
        if response.status_code != 200:
            raise BenchError(f"triggering {workflow} gave {response.status_code}: {response.text}")
        runs.append((workflow, response.json()["dag_run_id"]))
    deadline, pending = time.monotonic() + RUN_TIMEOUT, list(runs)
    while pending:
        for workflow, run_id in list(pending):
            state = client.get(f"/dags/{workflow}/dagRuns/{run_id}").json()["state"]
            if state == "failed":
                raise BenchError(
                    f"run {run_id} of {workflow} failed: {states_text(client, workflow, run_id)}"
                )
            if state == "success":
                pending.remove((workflow, run_id))
        if pending and time.monotonic() > deadline:
            raise BenchError(f"runs not finished after {RUN_TIMEOUT:.0f} s: {pending}")
        time.sleep(0.5)
    return runs


def account(store_url: str, items: int, declared: list[dict]) -> int:
    """Each of the ``declared`` budgets' spend against its limit, from Baton's store; the headline last."""
    from baton.events.store import EventStore, engine_for

    store = EventStore(engine_for(store_url))
    spent: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    calls = refused = 0
    for event in store.read(types=["budget.settled", "budget.refused", "model.called"]):
        if event.workflow not in WORKFLOWS:  # an attached Airflow's other work
            continue
        if event.type == "model.called":
            calls += 1
        elif event.type == "budget.refused":
            refused += 1
        else:
            for name, window in event.payload["budgets"]:
                spent[(name, window)][0] += event.payload["cost"]
                spent[(name, window)][1] += event.payload["tokens"]
    print(f"\n{calls:,} model calls, {refused:,} refused by a budget, of {items * len(RUNS):,} items")
    over_calls, over_share = 0, []
    for budget in declared:
        windows = sorted(w for (n, w) in spent if n == budget["name"])
        for window in windows:
            cost, tokens = spent[(budget["name"], window)]
            if "cost" in budget:
                limit, used, per = budget["cost"], cost, PER_CALL_COST
            else:
                limit, used, per = budget["tokens"], tokens, PER_CALL_TOKENS
            over = max(0.0, used - limit)
            over_calls += math.ceil(over / per - 1e-9)
            over_share.append(over / limit)
            unit = "cost" if "cost" in budget else "tokens"
            print(
                f"  {budget['name']:<11} {window:<40} {unit:<6} {used:>12,.2f} of {limit:>12,.2f} ({used / limit:.1%})"
            )
    share = 100 * sum(over_share) / len(over_share) if over_share else 0.0
    print(f"overspend beyond in-flight bound: {over_calls} calls ({share:.2f}% of budget)")
    return 0


def bench(airflow: Standalone, items: int, store_url: str) -> int:
    declared = json.loads((airflow.dags_folder / "budgets.yaml").read_text(encoding="utf-8"))["budgets"]
    airflow.start()
    if not sync_pools(airflow):  # the agent's pool: its tasks wait for it
        return 1
    headers = {"Authorization": f"Bearer {airflow.token()}"}
    with httpx.Client(base_url=f"{airflow.url}/api/v2", headers=headers, timeout=30) as client:
        for workflow in WORKFLOWS:
            if airflow.wait_for_dag(workflow)["is_paused"]:
                client.patch(f"/dags/{workflow}", json={"is_paused": False}).raise_for_status()
        began = time.monotonic()
        runs = run_all(client)
        print(f"4 runs at once ({', '.join(r for _, r in runs)}): {time.monotonic() - began:.1f} s")
    return account(store_url, items, declared)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--items", type=bounded_int(10, 2500), default=250, help="items per run (default 250)"
    )
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite", help="Baton's store")
    parser.add_argument("--keep", type=Path, help="use this (new or empty) directory instead of a temp dir")
    server_argument(parser)
    attach_arguments(parser)
    args = parser.parse_args()
    if args.write_dags:
        return write_dags_only(parser, write_dags, args.write_dags)
    if args.attach:
        if args.keep or args.store != "sqlite" or args.items != 250:
            parser.error("--attach runs on that Airflow as it is: no --keep, --store or --items with it")
        airflow = attached(parser, args.attach)
        store = attached_store(parser, airflow)
        return run_bench(airflow, lambda: bench(airflow, ATTACHED_ITEMS, store))
    with ExitStack() as stack:
        base = workdir(stack, args.keep, "baton-budget-")
        settings = write_dags(base / "dags", args.items, everything=True)
        home = base / "home"
        store_url = connection = f"sqlite:///{home / 'baton_store.db'}"
        if args.store == "postgresql":
            dbs = Databases(parser, stack, args.server, "baton_bench_budget", ("store",))
            store_url, connection = dbs.url("store"), dbs.url("store", "postgresql")
        settings["AIRFLOW_CONN_BATON_STORE"] = connection
        airflow = Standalone(home, dags_folder=base / "dags", settings=settings)
        if args.keep:
            print(f"dags folder and AIRFLOW_HOME kept in {base}")
        return run_bench(airflow, lambda: bench(airflow, args.items, store_url))


if __name__ == "__main__":
    sys.exit(main())
