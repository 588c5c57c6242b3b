"""Benchmark: Baton beside what an Airflow team would use instead, every figure a ratio against a baseline
measured in the same run.

(a) **Parse.** The same small workflow (three LLM agent steps in a chain, each prompt reading the one
before) is written ``--templates`` times (10, 100 and 1,000 copies by default) four ways, each in a dags
folder of its own:

- Baton: one template per copy in ``workflows/`` beside Baton's DAG file and a roster of one LLM agent;
- dag-factory: one YAML file per copy (common-ai's ``AgentOperator`` as each task's ``operator``) and
  the loader file dag-factory documents (``load_yaml_dags``);
- blueprint (airflow-blueprint): one ``*.dag.yaml`` per copy composing an ``agent_step`` blueprint (a
  ``Blueprint`` rendering common-ai's ``AgentOperator``) and its loader (``build_all_airflow_dags``);
- hand-written: one Python DAG file per copy with three ``AgentOperator`` tasks (the baseline).

A folder is parsed as Airflow's dag processor parses it: each DAG file through ``BundleDagBag`` (the
processor's bag for one file), each DAG it yields serialized (``DagSerialization.to_dict``), in a fresh
process started with the throwaway environment's Python. As the processor's parent does before it forks a
file's process, the ``airflow.*`` modules each file imports are imported first, untimed
(``parsing_pre_import_modules``: common-ai's operator, which the peers' DAGs name, is imported once per
dag processor, not per parse); what is timed is the rest, from the first file's bag to the last DAG
serialized: that process's CPU seconds (the ratios: this machine is shared, and CPU time is what its
neighbours disturb least) and its wall time. Unlike the processor, one process parses every file of a
folder (the processor forks one per file) and nothing is written to a database: the per-file fork and the
database writes, which the hand-written folder pays per file, are not counted. "Cold" is the first
process after every cache of that folder is emptied (Baton's validation cache, the DAG files' ``.pyc``),
"warm" the next one. The folders are parsed in turn, ``--repeats`` times (the median is shown).

(b) **Trigger to success** and (c) **fan-out** need a running Airflow: ``devtools.standalone`` starts one
(LocalExecutor, the settings of ``make run``; its metadata in a throwaway database on the PostgreSQL server
of ``$BATON_TEST_PG`` or 127.0.0.1:5432, as bench/latency.py's, which scripts/test.sh starts), beside an
OpenAI-compatible model server on 127.0.0.1 (this file starts it, tests/agents/openai_server.py) that
every side of (b) calls through the same connection: three agent steps in a chain, Baton's template vs
three common-ai ``AgentOperator`` tasks vs three plain ``@task``s each posting the same chat completion
with httpx (the baseline). (c): ``--calls`` agent calls, each answered by the model server after 200 ms,
every side the same calls through one connection: Baton's ``for_each`` (16 at once, in one task, after the
``items`` skill step it iterates over) vs as many mapped ``@task``s (one pydantic-ai agent call each, the
agent made by common-ai's hook) vs one ``@task`` gathering the same agent calls with ``asyncio.gather``, 16
at once (the baseline); beside them the floor, one ``@task`` gathering as many 200 ms sleeps
(bench/fanout.py's bare DAG: no agent library, no HTTP). A run's time is from just before ``POST /dagRuns``
until polling sees it succeed; runs alternate, ``--runs`` of each after ``--warmups`` (one by default) not
measured; the median is shown.

The peers are their released versions, installed from the package index into a throwaway environment
made by this run (a venv layered over the running one, removed at the end): dag-factory 1.1.0,
airflow-blueprint 0.5.0. Baton, Airflow and common-ai are those of the running environment.

Run from the repository root of a clean checkout, after ``make run`` or ``make test`` made ``.venv``:

    .venv/bin/python bench/peers.py [--templates 10,100,1000] [--repeats 3] [--runs 5] [--warmups 1]
                                    [--calls 100] [--skip-airflow] [--quick] [--keep DIR]

``--quick`` is the suite's smoke run (3 templates, 1 repeat, 1 run and no warm-up, 10 calls). It prints a table and the
headline last, and exits 0 whatever the ratios (1 when a parse or a run fails).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from cli_types import bounded_int

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("dag-factory==1.1.0", "airflow-blueprint==0.5.0")
KINDS = ("baton", "dagfactory", "blueprint", "handwritten")
LABELS = {
    "baton": "Baton",
    "dagfactory": "dag-factory",
    "blueprint": "blueprint",
    "handwritten": "hand-written",
}
IMPORT_TIMEOUT = 30.0  # Airflow's default [core] dagbag_import_timeout
STEPS = ("first", "second", "third")
PROMPTS = {
    "first": "Draft a one-line plan for run {run}.",
    "second": "Refine this plan: {prev}",
    "third": "Sign off this plan: {prev}",
}
CONN = "bench_model"

# --- (a) the four folders --------------------------------------------------------------------------------

ROSTER = f"""\
agents:
  - name: bench_agent
    description: The benchmark's LLM agent.
    capabilities: [bench]
    llm_conn_id: {CONN}
    max_concurrency: 16
"""


def baton_template(dag_id: str) -> str:
    steps = []
    for i, step in enumerate(STEPS):
        prev = STEPS[i - 1] if i else ""
        prompt = PROMPTS[step].format(run="{{ run.id }}", prev=f"{{{{ steps.{prev}.summary }}}}")
        needs = f"\n    needs: [{prev}]" if prev else ""
        steps.append(
            f"  - id: {step}\n    agent: bench_agent{needs}\n    instruction: {json.dumps(prompt)}\n"
            "    output:\n      summary: string\n"
        )
    return (
        f"workflow: {dag_id}\nversion: 1\ndescription: Peers benchmark (bench/peers.py), three agent steps.\n"
        f"owner: bench\ncategory: bench\ntags: [bench]\nsteps:\n{''.join(steps)}"
    )


def peer_prompt(step: str, i: int) -> str:
    prev = STEPS[i - 1] if i else ""
    return PROMPTS[step].format(run="{{ run_id }}", prev=f"{{{{ ti.xcom_pull(task_ids='{prev}') }}}}")


def handwritten_dag(dag_id: str) -> str:
    tasks = "".join(
        f"    {step} = AgentOperator(task_id={step!r}, llm_conn_id={CONN!r}, prompt={peer_prompt(step, i)!r})\n"
        for i, step in enumerate(STEPS)
    )
    return (
        f'"""{dag_id}: three agent steps, written by hand (bench/peers.py)."""\n\n'
        "from datetime import datetime\n\n"
        "from airflow.providers.common.ai.operators.agent import AgentOperator\n"
        "from airflow.sdk import DAG\n\n"
        f"with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime(2025, 1, 1), tags=['bench'],\n"
        "         description='Peers benchmark (bench/peers.py), three agent steps.'):\n"
        f"{tasks}    {' >> '.join(STEPS)}\n"
    )


def dagfactory_yaml(dag_id: str) -> str:
    tasks = []
    for i, step in enumerate(STEPS):
        deps = f"\n      dependencies: [{STEPS[i - 1]}]" if i else ""
        tasks.append(
            f"    - task_id: {step}\n      operator: airflow.providers.common.ai.operators.agent.AgentOperator\n"
            f"      llm_conn_id: {CONN}\n      prompt: {json.dumps(peer_prompt(step, i))}{deps}\n"
        )
    return (
        f"{dag_id}:\n  default_args:\n    start_date: 2025-01-01\n  schedule: null\n  tags: [bench]\n"
        f"  description: Peers benchmark (bench/peers.py), three agent steps.\n  tasks:\n{''.join(tasks)}"
    )


DAGFACTORY_LOADER = '''\
"""dag-factory's loader (the DAG file of its docs): every YAML file of this folder (airflow DAG)."""

from pathlib import Path

from dagfactory import load_yaml_dags

load_yaml_dags(globals_dict=globals(), dags_folder=str(Path(__file__).parent / "yaml"))
'''


def blueprint_yaml(dag_id: str) -> str:
    steps = []
    for i, step in enumerate(STEPS):
        deps = f"\n    depends_on: [{STEPS[i - 1]}]" if i else ""
        prompt = "{% raw %}" + peer_prompt(step, i) + "{% endraw %}"  # blueprint renders its YAML with Jinja
        steps.append(f"  {step}:\n    blueprint: agent_step{deps}\n    prompt: {json.dumps(prompt)}\n")
    return (
        f"dag_id: {dag_id}\ndescription: Peers benchmark (bench/peers.py), three agent steps.\n"
        f"steps:\n{''.join(steps)}"
    )


BLUEPRINTS = f'''\
"""The blueprint of an agent step: common-ai's AgentOperator on the benchmark's model."""

from airflow.providers.common.ai.operators.agent import AgentOperator
from blueprint import BaseModel, Blueprint


class AgentStepConfig(BaseModel):
    prompt: str
    llm_conn_id: str = {CONN!r}


class AgentStep(Blueprint[AgentStepConfig]):
    """One agent call."""

    def render(self, config: AgentStepConfig) -> AgentOperator:
        return AgentOperator(task_id=self.step_id, llm_conn_id=config.llm_conn_id, prompt=config.prompt)
'''

BLUEPRINT_LOADER = '''\
"""blueprint's loader (the DAG file of its docs)."""

from pathlib import Path

from blueprint import build_all_airflow_dags

build_all_airflow_dags(search_path=Path(__file__).parent)
'''


def write_folders(base: Path, count: int) -> dict[str, Path]:
    """The four dags folders of ``count`` copies each."""
    folders = {kind: base / f"{kind}-{count}" for kind in KINDS}
    for folder in folders.values():
        folder.mkdir(parents=True)
    names = [f"peers_{i:04d}" for i in range(count)]
    baton = folders["baton"]
    shutil.copyfile(ROOT / "dags" / "baton_workflows.py", baton / "baton_workflows.py")
    (baton / "agents.yaml").write_text(ROSTER, encoding="utf-8")
    (baton / "workflows").mkdir()
    (folders["dagfactory"] / "yaml").mkdir()
    (folders["dagfactory"] / "dagfactory_dags.py").write_text(DAGFACTORY_LOADER, encoding="utf-8")
    (folders["blueprint"] / "agent_blueprints.py").write_text(BLUEPRINTS, encoding="utf-8")
    (folders["blueprint"] / "blueprint_dags.py").write_text(BLUEPRINT_LOADER, encoding="utf-8")
    for name in names:
        (baton / "workflows" / f"{name}.yaml").write_text(baton_template(name), encoding="utf-8")
        (folders["dagfactory"] / "yaml" / f"{name}.yaml").write_text(dagfactory_yaml(name), encoding="utf-8")
        (folders["blueprint"] / f"{name}.dag.yaml").write_text(blueprint_yaml(name), encoding="utf-8")
        (folders["handwritten"] / f"{name}.py").write_text(handwritten_dag(name), encoding="utf-8")
    return folders


# What the measured process runs: the dag processor's parse of every DAG file of a folder.
PARSE_CHILD = """\
import json, os, sys, time
import airflow
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.serialization.serialized_objects import DagSerialization
from airflow.utils.file import iter_airflow_imports, list_py_file_paths

folder = sys.argv[1]
paths = list_py_file_paths(folder)
for path in paths:  # as the processor's parent does before it forks a file's process (not timed)
    for module in iter_airflow_imports(path):
        try:
            __import__(module)
        except ImportError:
            pass
wall, cpu = time.perf_counter(), time.process_time()
dags, errors = 0, {}
for path in paths:
    bag = BundleDagBag(dag_folder=path, bundle_path=folder, bundle_name="peers", load_op_links=False)
    errors.update(bag.import_errors)
    for dag in bag.dags.values():
        DagSerialization.to_dict(dag)
        dags += 1
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "dags": dags,
                  "errors": {k: v[-800:] for k, v in errors.items()}}))
"""


class ParseError(Exception):
    """A folder did not parse into the DAGs it holds."""


def parse_once(python: Path, folder: Path, env: dict[str, str], expected: int, cold: bool) -> dict:
    if cold:
        for cache in folder.rglob("__pycache__"):
            shutil.rmtree(cache)
        shutil.rmtree(env["BATON_SPEC_CACHE"], ignore_errors=True)
    done = subprocess.run(
        [str(python), "-c", PARSE_CHILD, str(folder)], env=env, capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        raise ParseError(f"{folder.name}: the parse exited {done.returncode}: {done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["errors"] or result["dags"] < expected:
        raise ParseError(f"{folder.name}: {result['dags']} DAGs of {expected}; errors: {result['errors']}")
    return result


def parse_env(work: Path) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ} | {
        "AIRFLOW_HOME": str(work / "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
        # measured whatever it takes (on a loaded machine 30 s kills a slow file's import); compared after
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "1200",
        "BATON_SPEC_CACHE": str(work / "spec-cache"),
        "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",  # dag-factory calls home otherwise
        "DO_NOT_TRACK": "1",
    }


def bench_parse(python: Path, work: Path, sizes: list[int], repeats: int) -> dict[int, dict[str, dict]]:
    """Median wall (and CPU) seconds of each folder, cold and warm: {size: {kind: {"cold": .., ...}}}."""
    env = parse_env(work)
    results: dict[int, dict[str, dict]] = {}
    for size in sizes:
        folders = write_folders(work / "dags", size)
        expected = {kind: size for kind in KINDS}
        times = {kind: {"cold": [], "warm": [], "cold_cpu": [], "warm_cpu": []} for kind in KINDS}
        for repeat in range(repeats):
            order = KINDS if repeat % 2 == 0 else tuple(reversed(KINDS))  # alternated
            for kind in order:
                for state in ("cold", "warm"):
                    got = parse_once(python, folders[kind], env, expected[kind], cold=state == "cold")
                    times[kind][state].append(got["wall"])
                    times[kind][f"{state}_cpu"].append(got["cpu"])
            print(
                f"{size:>5} templates, round {repeat + 1}: "
                + ", ".join(
                    f"{LABELS[k]} {times[k]['cold_cpu'][-1]:.2f}/{times[k]['warm_cpu'][-1]:.2f}"
                    for k in KINDS
                )
                + " CPU s (cold/warm)",
                flush=True,
            )
        results[size] = {k: {s: statistics.median(v) for s, v in t.items()} for k, t in times.items()}
    return results


# --- the throwaway environment ---------------------------------------------------------------------------


def peers_venv(base: Path) -> Path:
    """A venv layered over the running one (its site-packages added by a .pth), with the peers installed
    from the package index by the running environment's pip; its Python."""
    venv = base / "peers-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(site, "running_env.pth").write_text(f"import site; site.addsitedir({ours!r})\n", encoding="utf-8")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", *PEERS],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise ParseError(f"installing {', '.join(PEERS)} failed:\n{done.stderr[-3000:]}")
    versions = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m; print(m.version('dag-factory'), m.version('airflow-blueprint'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    print(
        f"peers installed in a throwaway venv in {time.perf_counter() - started:.0f} s: "
        f"dag-factory {versions[0]}, airflow-blueprint {versions[1]}"
    )
    return python


# --- the table and the headline ---------------------------------------------------------------------------


def parse_table(results: dict[int, dict[str, dict]]) -> list[str]:
    lines = [
        "parse (the dag processor's bag and serialization, one fresh process; CPU seconds cold / warm; "
        "x = CPU / hand-written's)",
        f"  {'templates':>9}" + "".join(f"{LABELS[k]:>28}" for k in KINDS),
    ]
    for size, by_kind in results.items():
        base = by_kind["handwritten"]
        cells = [
            f"{r['cold_cpu']:.2f}/{r['warm_cpu']:.2f} s {r['cold_cpu'] / base['cold_cpu']:.2f}/"
            f"{r['warm_cpu'] / base['warm_cpu']:.2f} x"
            for r in (by_kind[k] for k in KINDS)
        ]
        lines.append(f"  {size:>9}" + "".join(f"{c:>28}" for c in cells))
    return lines


def headline(parse: dict[int, dict[str, dict]], runs: dict[str, float] | None) -> str:
    size = max(parse)
    by_kind = parse[size]

    def x(kind: str) -> str:  # cold: the parse after the templates changed, the one that must fit the timeout
        return f"{by_kind[kind]['cold_cpu'] / by_kind['handwritten']['cold_cpu']:.2f}"

    text = (
        f"parse {size} templates: Baton {x('baton')} x hand-written (dag-factory {x('dagfactory')} x, "
        f"blueprint {x('blueprint')} x)"
    )
    if runs is None:
        return text + "; trigger-to-success not run; fan-out not run"
    return (
        f"{text}; trigger-to-success Baton {runs['baton'] / runs['plain']:.2f} x plain "
        f"(common-ai {runs['commonai'] / runs['plain']:.2f} x); fan-out Baton {runs['fanout'] / runs['gather']:.2f} "
        f"x gather (mapped {runs['mapped'] / runs['gather']:.2f} x)"
    )


def sizes_type(value: str) -> list[int]:
    parse = bounded_int(1, 5000)
    try:
        sizes = [parse(part) for part in value.split(",")]
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"--templates {value[:50]!r}: {error}") from None
    if len(sizes) > 5 or len(set(sizes)) != len(sizes):
        raise argparse.ArgumentTypeError("give at most 5 different sizes, e.g. 10,100,1000")
    return sorted(sizes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--templates", type=sizes_type, default=[10, 100, 1000], help="copies (default 10,100,1000)"
    )
    parser.add_argument(
        "--repeats", type=bounded_int(1, 50), default=3, help="parses of each folder (default 3)"
    )
    parser.add_argument(
        "--runs", type=bounded_int(1, 200), default=5, help="measured runs of each DAG (default 5)"
    )
    parser.add_argument(
        "--warmups", type=bounded_int(0, 10), default=1, help="unmeasured runs of each DAG first (default 1)"
    )
    parser.add_argument(
        "--calls", type=bounded_int(1, 1000), default=100, help="fan-out's calls (default 100)"
    )
    parser.add_argument("--skip-airflow", action="store_true", help="(a) only: no Airflow, no (b) or (c)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the smoke run: 3 templates, 1 repeat, 1 run, no warm-up, 10 calls",
    )
    parser.add_argument("--keep", type=Path, help="work in this (new or empty) directory, and keep it")
    args = parser.parse_args()
    if args.quick:
        args.templates, args.repeats, args.runs, args.warmups, args.calls = [3], 1, 1, 0, 10
    with ExitStack() as stack:
        if args.keep:
            work = args.keep.resolve()
            if work.exists() and any(work.iterdir()):
                parser.error(f"--keep {work}: give a new or empty directory")
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="baton-peers-")))
        try:
            python = peers_venv(work)
            parse = bench_parse(python, work, args.templates, args.repeats)
        except ParseError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        for line in parse_table(parse):  # now, in case (b) or (c) fails
            print(line, flush=True)
        runs = None
        if not args.skip_airflow:
            from peers_airflow import bench_runs  # deferred: (b) and (c) start an Airflow

            runs = bench_runs(work, args.runs, args.calls, args.warmups)
            if runs is None:
                return 1
        print()
        print(
            f"{os.cpu_count()} CPUs; load average at the end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
        )
        for line in parse_table(parse):
            print(line)
        top = parse[max(parse)]["baton"]
        fits = "within" if max(top["cold"], top["warm"]) < IMPORT_TIMEOUT else "NOT within"
        print(
            f"Baton's {max(parse)} templates, wall: cold {top['cold']:.2f} s, warm {top['warm']:.2f} s, {fits} "
            f"dagbag_import_timeout ({IMPORT_TIMEOUT:.0f} s by default; its imports counted)"
        )
        if runs is not None:  # the floor: what no agent library can go under
            print(
                "fan-out against its floor (the gather's calls as bare sleeps): "
                f"Baton {runs['fanout'] / runs['sleeps']:.2f} x, the gather of agent calls "
                f"{runs['gather'] / runs['sleeps']:.2f} x"
            )
        print(headline(parse, runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
