"""bench/peers.py's (b) trigger to success and (c) fan-out, on an ``airflow standalone`` this module starts
(``devtools.standalone``, metadata on a throwaway PostgreSQL database as bench/latency.py's default) beside
an OpenAI-compatible model server on 127.0.0.1 (tests/agents/openai_server.py) that (b)'s three sides call
through one connection, ``bench_model``. See bench/peers.py's docstring for what each DAG does."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx
from fanout import BARE_DAG
from harness import PG_SERVER, BenchError, Databases, run_bench, run_once, sync_pools

from devtools.standalone import Standalone
from tests.agents.openai_server import OpenAICompatibleServer

CONN, SLOW = "bench_model", "bench_slow"
DELAY = 0.2  # seconds the model server takes to answer a fanned-out agent call (a sleep in the floor's)
CONCURRENCY = 16
B = {"baton": "peers_b_baton", "commonai": "peers_b_commonai", "plain": "peers_b_plain"}
C = {
    "fanout": "peers_c_baton",
    "mapped": "peers_c_mapped",
    "gather": "peers_c_gather",
    "sleeps": "peers_c_sleeps",
}

ROSTER = f"""\
agents:
  - name: bench_agent
    description: The benchmark's LLM agent (the model server of bench/peers.py).
    capabilities: [bench]
    llm_conn_id: {CONN}
    max_concurrency: 16
  - name: bench_worker
    description: Answers after {DELAY * 1000:.0f} ms (the model server of bench/peers.py, delayed).
    capabilities: [bench]
    llm_conn_id: {SLOW}
    max_concurrency: {CONCURRENCY}
"""

B_BATON = """\
workflow: peers_b_baton
version: 1
description: Peers benchmark (bench/peers.py), three agent steps.
owner: bench
category: bench
tags: [bench]
steps:
  - id: first
    agent: bench_agent
    instruction: Draft a one-line plan for run {{ run.id }}.
    output: {summary: string}
  - id: second
    agent: bench_agent
    needs: [first]
    instruction: "Refine this plan: {{ steps.first.summary }}"
    output: {summary: string}
  - id: third
    agent: bench_agent
    needs: [second]
    instruction: "Sign off this plan: {{ steps.second.summary }}"
    output: {summary: string}
"""

B_COMMONAI = f'''\
"""Peers benchmark (bench/peers.py): three common-ai AgentOperator tasks in a chain (airflow DAG)."""

from airflow.providers.common.ai.operators.agent import AgentOperator
from airflow.sdk import DAG

with DAG(dag_id="peers_b_commonai", schedule=None, tags=["bench"]):
    first = AgentOperator(
        task_id="first", llm_conn_id="{CONN}", prompt="Draft a one-line plan for run {{{{ run_id }}}}."
    )
    second = AgentOperator(
        task_id="second", llm_conn_id="{CONN}", prompt="Refine this plan: {{{{ ti.xcom_pull(task_ids='first') }}}}"
    )
    third = AgentOperator(
        task_id="third", llm_conn_id="{CONN}", prompt="Sign off this plan: {{{{ ti.xcom_pull(task_ids='second') }}}}"
    )
    first >> second >> third
'''

B_PLAIN = f'''\
"""Peers benchmark (bench/peers.py): three plain @tasks in a chain, each posting one chat completion to the
model server of the connection {CONN} with httpx (airflow DAG)."""

import json
import os

import httpx
from airflow.sdk import dag, task


def complete(prompt: str) -> str:
    conn = json.loads(os.environ["AIRFLOW_CONN_{CONN.upper()}"])
    body = {{"model": "gpt-bench", "messages": [{{"role": "user", "content": prompt}}]}}
    response = httpx.post(conn["host"] + "/chat/completions", json=body, timeout=30)
    response.raise_for_status()
    return response.json()["choices"][0]["message"]["content"]


@dag(dag_id="peers_b_plain", schedule=None, tags=["bench"])
def peers_b_plain():
    @task
    def first(run_id=None) -> str:
        return complete(f"Draft a one-line plan for run {{run_id}}.")

    @task
    def second(plan: str) -> str:
        return complete(f"Refine this plan: {{plan}}")

    @task
    def third(plan: str) -> str:
        return complete(f"Sign off this plan: {{plan}}")

    third(second(first()))


peers_b_plain()
'''

C_BATON = """\
workflow: peers_c_baton
version: 1
description: Peers benchmark (bench/peers.py), {calls} agent calls fanned out in one task.
owner: bench
category: bench
tags: [bench]
inputs:
  count: {{type: integer, default: {calls}, description: How many items.}}
steps:
  - id: items
    skill: bench_items
    output: BenchItems
  - id: work
    for_each: {{over: items.items, concurrency: {concurrency}}}
    agent: bench_worker
    instruction: "Process {{{{ item }}}}."
    output: {{summary: string}}
"""

# (c)'s peers make the same agent calls as Baton's fan-out: pydantic-ai agents on the connection SLOW, made
# by common-ai's hook, each call answered by the model server after DELAY seconds.
C_PEER = '''\
"""Peers benchmark (bench/peers.py): {what} (airflow DAG)."""

import asyncio

from airflow.providers.common.ai.hooks.pydantic_ai import PydanticAIHook
from airflow.sdk import dag, task
from pydantic import BaseModel


class Plan(BaseModel):
    summary: str


def agent():
    return PydanticAIHook(llm_conn_id="{conn}").create_agent(Plan, instructions="The benchmark's agent.")


@dag(dag_id="{dag_id}", schedule=None, tags=["bench"])
def {dag_id}():
{body}

{dag_id}()
'''

C_GATHER_BODY = """\
    @task
    def work() -> int:
        async def calls() -> list[Plan]:
            model, gate = agent(), asyncio.Semaphore({concurrency})

            async def one(index: int) -> Plan:
                async with gate:
                    return (await model.run(f"Process {{index}}.")).output

            return await asyncio.gather(*(one(i) for i in range({calls})))

        return len(asyncio.run(calls()))

    work()
"""

C_MAPPED_BODY = """\
    @task
    def work(index: int) -> str:
        return agent().run_sync(f"Process {{index}}.").output.summary

    work.expand(index=list(range({calls})))
"""


def peer_dag(dag_id: str, what: str, body: str, **fill: object) -> str:
    return C_PEER.format(dag_id=dag_id, what=what, conn=SLOW, body=body.format(**fill))


def write_dags(dags: Path, calls: int) -> None:
    (dags / "workflows").mkdir(parents=True)
    root = Path(__file__).resolve().parents[1]
    (dags / "baton_workflows.py").write_bytes((root / "dags" / "baton_workflows.py").read_bytes())
    (dags / "agents.yaml").write_text(ROSTER, encoding="utf-8")
    fill = {"calls": calls, "delay": DELAY, "concurrency": CONCURRENCY}
    files = {
        "workflows/peers_b_baton.yaml": B_BATON,
        "peers_b_commonai.py": B_COMMONAI,
        "peers_b_plain.py": B_PLAIN,
        "workflows/peers_c_baton.yaml": C_BATON.format(**fill),
        "peers_c_mapped.py": peer_dag(
            C["mapped"], f"{calls} mapped @tasks, an agent call each", C_MAPPED_BODY, **fill
        ),
        "peers_c_gather.py": peer_dag(
            C["gather"],
            f"one @task gathering {calls} agent calls, {CONCURRENCY} at once",
            C_GATHER_BODY,
            **fill,
        ),
        # the floor: bench/fanout.py's bare DAG, the same file (sleeps in place of the agent calls)
        "peers_c_sleeps.py": BARE_DAG.format(
            dag_id=C["sleeps"], items=calls, delay=DELAY, delay_ms=DELAY * 1000, concurrency=CONCURRENCY
        ),  # fmt: skip
    }
    for name, text in files.items():
        (dags / name).write_text(text, encoding="utf-8")


def settings(model_url: str) -> dict[str, str]:
    model = {
        "conn_type": "pydanticai",
        "host": model_url,
        "password": "sk-bench",
        "extra": {"model": "openai-chat:gpt-bench"},
    }
    slow = {**model, "host": model_url.replace("/valid/", "/delayed/")}  # answers after DELAY s
    return {
        "BATON_EXTENSIONS": "devtools.bench_skills",  # the bench_items skill
        f"AIRFLOW_CONN_{CONN.upper()}": json.dumps(model),
        f"AIRFLOW_CONN_{SLOW.upper()}": json.dumps(slow),
    }


def measure(airflow: Standalone, runs: int, out: dict[str, float], warmups: int = 1) -> int:
    airflow.start()
    if not sync_pools(airflow):
        return 1
    headers = {"Authorization": f"Bearer {airflow.token()}"}
    dags = {**B, **C}
    with httpx.Client(base_url=f"{airflow.url}/api/v2", headers=headers, timeout=30) as client:
        for dag_id in dags.values():
            if airflow.wait_for_dag(dag_id)["is_paused"]:
                client.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        for _ in range(warmups):  # not measured
            for dag_id in dags.values():
                seconds, _, _ = run_once(client, dag_id)
                print(f"warm-up {dag_id}: {seconds:.2f} s", flush=True)
        wall: dict[str, list[float]] = {key: [] for key in dags}
        for i in range(runs):
            for key, dag_id in dags.items():
                wall[key].append(run_once(client, dag_id)[0])
            print(f"run {i + 1}: " + ", ".join(f"{k} {w[-1]:.2f} s" for k, w in wall.items()), flush=True)
    for key, values in wall.items():
        out[key] = statistics.median(values)
    return 0


def bench_runs(
    work: Path, runs: int, calls: int, warmups: int = 1, server: str = PG_SERVER
) -> dict[str, float] | None:
    """Median seconds from trigger to success of each DAG of (b) and (c), by key, after ``warmups`` runs of
    each not measured; None when a run failed."""
    out: dict[str, float] = {}
    with ExitStack() as stack:
        model = stack.enter_context(
            OpenAICompatibleServer({"summary": "a plan, from the model server"}, delay=DELAY)
        )
        dags = work / "airflow-dags"
        write_dags(dags, calls)
        meta = Databases(
            argparse.ArgumentParser(prog="bench/peers.py"), stack, server, "baton_peers", ("meta",)
        )
        config = settings(model.url + "/valid/v1") | {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta.url("meta", "postgresql+psycopg2")
        }
        airflow = Standalone(work / "airflow-standalone", dags_folder=dags, settings=config)
        try:
            status = run_bench(airflow, lambda: measure(airflow, runs, out, warmups))
        except BenchError as error:
            print(f"error: {error}", file=sys.stderr)
            return None
        if status != 0:
            return None
        calls_made = len(model.requests)
        print(f"model server: {calls_made} chat completions answered")
        # each run of (b): 3 steps on each of its 3 sides; of (c): the calls on each of 3 sides (not the floor)
        expected = (runs + warmups) * (3 * len(B) + calls * (len(C) - 1))
        if calls_made != expected:
            print(
                f"error: the model server answered {calls_made} calls, not the {expected} the runs make",
                file=sys.stderr,
            )
            return None
    print(
        "trigger to success (median s): "
        + ", ".join(f"{key} {seconds:.2f}" for key, seconds in out.items())
        + f" ({calls} calls of {DELAY} s fanned out, {CONCURRENCY} at once in Baton's and gather's)"
    )
    return out
