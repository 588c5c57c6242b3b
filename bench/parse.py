"""Benchmark: DAG parse time of Baton YAML templates vs. the same DAGs written by hand in Python.

It generates 100 workflow templates (5 steps each, chains and diamonds, skill-backed agents and
skill steps, Jinja instructions, inputs, some schedules) with Baton's two DAG files, and the same
100 DAGs written by hand as plain Airflow Python files (same dag_id, params, default_args, tags,
schedule, doc_md, and each StepOperator's compiled step written out as a dict literal, with
the hand-written baton_compensate DAG beside them); the DAGs of both are checked to be the same
(serialized DAGs and every StepOperator attribute). Each file is parsed with Airflow's
``BundleDagBag`` (a fresh bag per parse, Baton's in-process caches emptied first, as in the DAG
processor's fresh process per file), alternating for ``--rounds`` rounds. Generated = both DAG
files, timed apart and added: "cold" from an empty validation cache (the first parse after a
template changed), "warm" with it (every parse after that). No database is needed. The ratios of
the medians are the cost of Baton's template machinery over writing the DAGs by hand; the goal is
<= 1.3. Run it with and without PYTHONDONTWRITEBYTECODE: Airflow writes .pyc files for DAG files
where it may, which makes hand-written parses faster.

Run from the repository root:

    .venv/bin/python bench/parse.py [--rounds 5] [--keep DIR]

It prints the medians and the ratios, and exits 0 whatever they are (1 when a folder fails to parse).
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from pprint import pformat
from typing import Any

from cli_types import bounded_int

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = 100
STEPS = 5
BUNDLE = "bench"

LEADS, VALUE, METRICS = "marketing_lead_generator", "finance_revenue_tracker", "finance_financial_analyst"

# Defaults of Baton's template language (baton.spec.models), applied by hand to the hand-written DAGs.
DEFAULTS = {
    "retries": 2,
    "retry_delay": 30,
    "retry_exponential_backoff": True,
    "max_retry_delay": 600,
    "execution_timeout": 1800,
}
RETRY_KEYS = tuple(DEFAULTS)
START = "datetime(2025, 1, 1, tzinfo=ZoneInfo({tz!r}))"

INPUT_SETS: list[dict[str, dict[str, Any]]] = [
    {
        "region": {
            "type": "string",
            "enum": ["all", "emea", "na", "apac"],
            "default": "all",
            "description": "Only score leads of this region.",
        },
        "min_score": {
            "type": "integer",
            "default": 50,
            "minimum": 0,
            "maximum": 100,
            "description": "Leads scoring at least this are qualified.",
        },
    },
    {
        "month": {
            "type": "string",
            "default": "latest",
            "description": "The month to check, YYYY-MM, or 'latest' for the newest month.",
        },
    },
    {
        "month": {"type": "string", "default": "latest", "description": "The month to check, YYYY-MM."},
        "target": {
            "type": "number",
            "default": 4167,
            "minimum": 1,
            "title": "Monthly target",
            "description": "Monthly revenue target in USD.",
        },
    },
]
FIRST_INSTRUCTIONS = [
    "Score the leads of region {{ inputs.region }}; qualify those scoring {{ inputs.min_score }} or more.",
    "Score the leads that came in during {{ inputs.month }}.",
    "Score the leads of {{ inputs.month }} against a monthly target of {{ inputs.target }}.",
]
SCHEDULES: list[Any] = [
    "0 9 * * *",
    {"cron": "30 6 * * 1-5", "timezone": "Europe/Paris"},
    "@daily",
    None,
    None,
]


# --- the 100 workflows, as a template author writes them -------------------------------------------


def _duration(seconds: int) -> str:
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _step(
    id_: str, worker: tuple[str, str], instruction: str, needs: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    step: dict[str, Any] = {"id": id_, worker[0]: worker[1]}
    if needs:
        step["needs"] = needs
    step.update({k: v for k, v in extra.items() if v is not None})
    step["instruction"] = instruction
    return step


def _score_step(i: int) -> dict[str, Any]:
    """The first step of every generated workflow (chain or diamond)."""
    return _step(
        "score_leads", ("agent", LEADS), FIRST_INSTRUCTIONS[i % 3], description="Score and tier the leads."
    )


def _chain_steps(i: int) -> list[dict[str, Any]]:
    return [
        _score_step(i),
        _step(
            "value_leads",
            ("agent", VALUE),
            "Value the {{ steps.score_leads.qualified }} qualified leads of {{ steps.score_leads.total }}.",
            ["score_leads"],
        ),
        _step(
            "compute_metrics",
            ("agent", METRICS),
            "Compute revenue metrics given an expected pipeline of "
            "${{ steps.value_leads.expected_revenue }} from {{ steps.score_leads.qualified }} leads.",
            ["value_leads"],
            output="RevenueMetrics",
            retries=3 if i % 7 == 0 else None,
        ),
        _step(
            "collect_status",
            ("skill", "ops_snapshot"),
            "Collect the status of every system after the metrics of {{ steps.compute_metrics.month }}.",
            ["compute_metrics"],
        ),
        _step(
            "announce",
            ("skill", "milestone_announcement"),
            "Announce {{ steps.compute_metrics.month }}: {{ steps.compute_metrics.attainment_pct }}% of "
            "target, {{ steps.collect_status.healthy }} systems healthy.",
            ["collect_status"],
            when="steps.compute_metrics.milestone_reached",
            description="Runs only when the month reached its target.",
            execution_timeout=_duration(300) if i % 3 == 0 else None,
        ),
    ]


def _diamond_steps(i: int) -> list[dict[str, Any]]:
    return [
        _score_step(i),
        _step(
            "value_leads",
            ("agent", VALUE),
            "Value the {{ steps.score_leads.qualified }} qualified leads.",
            ["score_leads"],
        ),
        _step(
            "compute_metrics",
            ("agent", METRICS),
            "Compute revenue metrics for the {{ steps.score_leads.qualified }} qualified leads.",
            ["score_leads"],
            when="steps.score_leads.qualified > 0",
            retries=3 if i % 7 == 0 else None,
        ),
        _step(
            "summarize",
            ("skill", "lead_value"),
            "Pipeline: ${{ steps.value_leads.expected_revenue }} expected.\n"
            "Month to date: {{ steps.compute_metrics.mtd_revenue | default('n/a') }}.\n"
            "Summarise both and pick a priority.\n",
            ["value_leads", "compute_metrics"],
            trigger_rule="none_failed_min_one_success",
            output={
                "summary": "string",
                "priority": {"type": "string", "enum": ["low", "medium", "high"]},
                "total": {"type": "number", "minimum": 0, "description": "Expected revenue in USD."},
                "actions": {"type": "array", "items": "string"},
            },
        ),
        _step(
            "announce",
            ("skill", "milestone_announcement"),
            "Announce: {{ steps.summarize.summary }}",
            ["summarize"],
            when="steps.summarize.priority == 'high'",
        ),
    ]


def workflow_spec(i: int) -> dict[str, Any]:
    """Workflow ``i`` as the mapping its YAML file holds."""
    shape = "chain" if i % 2 == 0 else "diamond"
    spec: dict[str, Any] = {
        "workflow": f"bench_{i:03d}",
        "version": 1 + i % 3,
        "description": f"Bench workflow {i:03d}: qualify leads, value the pipeline and report ({shape}).\n\n"
        f"Generated by bench/parse.py; handwritten/bench_{i:03d}.py is the same DAG.\n",
        "owner": ("marketing", "finance", "operations")[i % 3],
        "category": ("sales", "finance", "operations", "general")[i % 4],
        "tags": ["bench", shape],
    }
    if SCHEDULES[i % 5] is not None:
        spec["schedule"] = SCHEDULES[i % 5]
    spec["inputs"] = INPUT_SETS[i % 3]
    if i % 3 == 0:
        spec["defaults"] = {"retries": 1, "retry_delay": _duration(60), "execution_timeout": _duration(600)}
    if i % 6 == 0:
        spec["max_active_runs"] = 4
    spec["steps"] = _chain_steps(i) if shape == "chain" else _diamond_steps(i)
    for step in spec["steps"]:  # no two workflows share an instruction: a cache must not flatter Baton
        text, tag = step["instruction"], f"({spec['workflow']})"
        step["instruction"] = f"{text}{tag}\n" if text.endswith("\n") else f"{text} {tag}"
    return spec


def to_yaml(spec: dict[str, Any]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    def seq(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:  # [a, b] for lists of scalars
        flat = all(isinstance(item, str | int | float) for item in value)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flat)

    Dumper.add_representer(str, text)
    Dumper.add_representer(list, seq)
    return yaml.dump(
        spec, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=110, allow_unicode=True
    )


# --- the same workflows, written by hand as Airflow DAGs --------------------------------------------


def _seconds(value: str | int) -> int:
    if isinstance(value, int):
        return value
    return int(value[:-1]) * (60 if value.endswith("m") else 1)


def _td(seconds: int) -> str:
    return f"timedelta(minutes={seconds // 60})" if seconds % 60 == 0 else f"timedelta(seconds={seconds})"


def _py_text(value: str, indent: str) -> str:
    """A string literal, one source line per line of ``value``."""
    lines = value.splitlines(keepends=True)
    if len(lines) <= 1:
        return repr(value)
    body = "".join(f"{indent}    {line!r}\n" for line in lines)
    return f"(\n{body}{indent})"


def _param(field: dict[str, Any]) -> str:
    args = [repr(field["default"]), f"type={field['type']!r}"]
    args += [f"{key}={field[key]!r}" for key in ("enum", "minimum", "maximum") if key in field]
    args += [f"{key}={field[key]!r}" for key in ("description", "title") if field.get(key)]
    return f"Param({', '.join(args)})"


def _output_spec(output: Any) -> Any:
    """Output fields as the operator takes them: only what differs from a field's defaults."""
    if not isinstance(output, dict):
        return output
    defaults = {"type": "string", "description": "", "required": True}
    fields = {name: {"type": f} if isinstance(f, str) else f for name, f in output.items()}
    return {name: {k: v for k, v in f.items() if defaults.get(k) != v} for name, f in fields.items()}


def _level(priority: Any) -> int:
    """A template's priority level as its tasks' priority_weight (normal, 50, without one)."""
    from baton.spec.priority import Priority  # deferred: the benchmark's imports are timed per round

    return Priority.model_validate(priority).level if priority is not None else 50


def handwritten(spec: dict[str, Any], agents: dict[str, dict[str, Any]]) -> str:
    """The DAG of ``spec`` as a DAG author writes it without Baton."""
    wid, steps = spec["workflow"], spec["steps"]
    schedule = spec.get("schedule")
    cron, tz = (schedule["cron"], schedule["timezone"]) if isinstance(schedule, dict) else (schedule, "UTC")
    timetable = cron is not None and cron not in ("@once", "@continuous")
    defaults = {
        **DEFAULTS,
        **{
            k: _seconds(v) if k in ("retry_delay", "max_retry_delay", "execution_timeout") else v
            for k, v in spec.get("defaults", {}).items()
        },
    }
    used = sorted({s["agent"] for s in steps if "agent" in s})
    consts = {name: name.upper() for name in used}

    rows = "".join(
        f"| `{s['id']}` | {'agent ' + s['agent'] if 'agent' in s else 'skill ' + s['skill']} "
        f"| {', '.join(s.get('needs', [])) or '-'} |\n"
        for s in steps
    )
    doc_md = (
        f"{spec['description'].strip()}\n\n**Template** `workflows/{wid}.yaml`, "
        f"version {spec['version']} · **category** {spec['category']} · **owner** {spec['owner']}\n\n"
        f"| step | runs | needs |\n|---|---|---|\n{rows}"
    )
    tags = sorted({"baton", spec["category"], f"v{spec['version']}", *spec["tags"]})

    out = [f'"""{wid}, written by hand as an Airflow DAG: what workflows/{wid}.yaml compiles to."""', ""]
    out.append("from datetime import datetime, timedelta")
    out.append("from zoneinfo import ZoneInfo")
    out.append("")
    out.append("from airflow.sdk import DAG, Param")
    out.append("")
    out.append("from baton.alerts import on_task_failure")
    if timetable:  # Airflow's cron trigger, its runs' ids unique across DAGs (baton.compile.timetables)
        out.append("from baton.compile.timetables import UniqueCronTrigger")
    out.append("from baton.operators.step import StepOperator")
    out.append("")
    for name in used:
        text = pformat(agents[name], width=100, sort_dicts=False)
        out.append(f"{consts[name]} = {text.replace(chr(10), chr(10) + ' ' * (len(consts[name]) + 3))}")
    out.append("")
    out.append("with DAG(")
    out.append(f"    dag_id={wid!r},")
    out.append(f"    description={spec['description'].strip().splitlines()[0][:200]!r},")
    out.append(f"    doc_md={_py_text(doc_md, '    ')},")
    if timetable:
        out.append(f"    schedule=UniqueCronTrigger({cron!r}, timezone={tz!r}),")
    else:
        out.append(f"    schedule={cron!r},")
    out.append(f"    start_date={START.format(tz=tz)},")
    out.append("    catchup=False,")
    out.append(f"    tags={tags!r},")
    out.append("    params={")
    for name, field in spec["inputs"].items():
        out.append(f"        {name!r}: {_param(field)},")
    out.append("    },")
    out.append("    default_args={")
    out.append(f"        'owner': {spec['owner']!r},")
    out.append("        'on_failure_callback': on_task_failure,")
    out.append(
        "        'weight_rule': 'baton.queue.BatonPriority',"
    )  # Airflow's queue by what a run is worth
    out.append(f"        'priority_weight': {_level(spec.get('priority'))},")
    for key in RETRY_KEYS:
        value = defaults[key]
        literal = repr(value) if key in ("retries", "retry_exponential_backoff") else _td(value)
        out.append(f"        {key!r}: {literal},")
    out.append("    },")
    out.append(f"    max_active_runs={spec.get('max_active_runs', 16)},")
    out.append(") as dag:")
    for s in steps:
        sources = s["instruction"] + " " + s.get("when", "")
        reads = sorted(set(re.findall(r"\bsteps\.([a-z][a-z0-9_]*)", sources)) | set(s.get("needs", [])))
        spec_text = pformat(s, width=90, sort_dicts=False).replace(chr(10), chr(10) + " " * 18)
        out.append(f"    {s['id']} = StepOperator(")
        out.append(f"        task_id={s['id']!r},")
        out.append("        step={")
        out.append(f"            'workflow': {wid!r},")
        out.append(f"            'template_version': {spec['version']!r},")
        out.append(f"            'spec': {spec_text},")
        if "agent" in s:
            out.append(f"            'agent': {consts[s['agent']]},")
            out.append(f"            'pool': {'baton_agent_' + s['agent']!r},")
        if reads:
            out.append(f"            'reads': {reads!r},")
        out.append("        },")
        out.append(f"        pool={'baton_agent_' + s['agent'] if 'agent' in s else 'default_pool'!r},")
        out.append(f"        trigger_rule={s.get('trigger_rule', 'all_success')!r},")
        if s.get("description"):
            out.append(f"        doc_md={s['description']!r},")
        if "retries" in s:
            out.append(f"        retries={s['retries']!r},")
        if "execution_timeout" in s:
            out.append(f"        execution_timeout={_td(_seconds(s['execution_timeout']))},")
        out.append("    )")
    out.append("")
    for s in steps:
        for need in s.get("needs", []):
            out.append(f"    {need} >> {s['id']}")
    return "\n".join(out) + "\n"


COMPENSATE = '''"""baton_compensate, written by hand: the DAG Baton's DAG file adds beside the workflows."""

from datetime import datetime
from zoneinfo import ZoneInfo

from airflow.sdk import DAG, Param

from baton.operators.saga import SagaOperator

with DAG(
    dag_id="baton_compensate",
    description="Compensate a past Baton run: undo its completed steps, newest first",
    doc_md="Trigger with the id of a Baton run (any workflow): the steps it completed that declare "
    "`compensate` are undone newest first, skipping what an earlier saga already undid. The same "
    "as `baton compensate RUN_ID` on the command line.",
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=ZoneInfo("UTC")),
    catchup=False,
    tags=["baton", "operations"],
    params={
        "run_id": Param("", type="string", minLength=1, title="Run id", description="the run to compensate"),
        "reason": Param("", type="string", title="Reason", description="why (kept in the logs)"),
    },
    default_args={"owner": "baton"},
) as dag:
    SagaOperator(task_id="compensate", workflow="baton_compensate", run_id_param="run_id", retries=0)
'''


def write_folders(base: Path) -> tuple[Path, Path]:
    from baton.spec.loading import load_roster

    generated, written = base / "generated", base / "handwritten"
    for folder in (generated, written):
        if folder.exists() and any(folder.iterdir()):
            sys.exit(f"{folder} exists and is not empty; give --keep a new or empty directory")
    (generated / "workflows").mkdir(parents=True, exist_ok=True)
    written.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "dags" / "agents.yaml", generated / "agents.yaml")
    for loader in ("baton_workflows.py", "baton_template_errors.py"):  # both DAG files, as shipped
        shutil.copyfile(ROOT / "dags" / loader, generated / loader)
    roster = load_roster(generated / "agents.yaml")
    agents = {agent.name: agent.model_dump(mode="json") for agent in roster.agents}
    for i in range(WORKFLOWS):
        spec = workflow_spec(i)
        (generated / "workflows" / f"{spec['workflow']}.yaml").write_text(to_yaml(spec), encoding="utf-8")
        (written / f"{spec['workflow']}.py").write_text(handwritten(spec, agents), encoding="utf-8")
    (written / "baton_compensate.py").write_text(COMPENSATE, encoding="utf-8")
    return generated, written


# --- parsing ------------------------------------------------------------------------------------


def clear_baton_caches() -> int:
    """Empty every ``functools`` cache of Baton's modules; the number of caches emptied.

    Airflow's DAG processor parses each DAG file in a fresh process, so no cache of Baton's outlives
    one parse there. Here all parses share one process: without this, every round after the warm-up
    would find, say, each instruction's parsed Jinja cached by the one before, and flatter Baton.
    """
    cleared = 0
    for name, module in list(sys.modules.items()):
        if name == "baton" or name.startswith("baton."):
            for value in list(vars(module).values()):
                if isinstance(value, functools._lru_cache_wrapper):
                    value.cache_clear()
                    cleared += 1
    return cleared


ERRORS_FILE = "baton_template_errors.py"
DAG_FILE = "baton_workflows.py"


def parse(folder: Path, only: str | None = None) -> tuple[float, Any]:
    """Parse ``folder`` (or just its file ``only``) into a fresh bag; the seconds it took and the bag."""
    from airflow.dag_processing.dagbag import BundleDagBag

    clear_baton_caches()  # as in the DAG processor's fresh process per parse
    gc.collect()  # the garbage of the previous parse is not charged to this one
    start = time.perf_counter()
    bag = BundleDagBag(dag_folder=folder / only if only else folder, bundle_path=folder, bundle_name=BUNDLE)
    elapsed = time.perf_counter() - start
    if only == ERRORS_FILE:  # validates every template, builds no DAG
        assert not bag.dags and not bag.import_errors, f"{only}: {bag.import_errors or bag.dag_ids}"
        return elapsed, bag
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            print(f"import error in {folder.name}/{path}:\n{error}", file=sys.stderr)
        sys.exit(1)
    expected = {f"bench_{i:03d}" for i in range(WORKFLOWS)} | {"baton_compensate"}
    assert set(bag.dags) == expected, f"{folder.name}: DAGs {sorted(set(bag.dags) ^ expected)} differ"
    sizes = {len(dag.tasks) for dag_id, dag in bag.dags.items() if dag_id != "baton_compensate"}
    assert sizes == {STEPS}, f"{folder.name}: a DAG has {sizes - {STEPS}} tasks, not {STEPS}"
    return elapsed, bag


TASK_ATTRS = (
    "step",  # the whole compiled step (a frozen model: every field compared)
    "pool",
    "pool_slots",
    "on_failure_callback",
    "trigger_rule",
    "doc_md",
    "owner",
    *RETRY_KEYS,
    "upstream_task_ids",
)
IGNORED = {"fileloc", "relative_fileloc", "_processor_dags_folder"}


def assert_same_dags(generated: Any, written: Any) -> None:
    """Both folders give the same DAGs: serialized form (params, schedule, ...) and every operator kwarg."""
    from airflow.serialization.serialized_objects import DagSerialization

    for dag_id, dag in generated.dags.items():
        other = written.dags[dag_id]
        a, b = (
            {k: v for k, v in DagSerialization.serialize_dag(d).items() if k not in IGNORED}
            for d in (dag, other)
        )
        differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        assert not differ, f"{dag_id}: the DAGs differ in {differ}: {[(a.get(k), b.get(k)) for k in differ]}"
        for task in dag.tasks:
            twin = other.get_task(task.task_id)
            assert type(task) is type(twin), f"{dag_id}.{task.task_id}: {type(task)} != {type(twin)}"
            for attr in TASK_ATTRS:
                mine, theirs = getattr(task, attr, None), getattr(twin, attr, None)
                assert mine == theirs, f"{dag_id}.{task.task_id}.{attr}: {mine!r} != {theirs!r}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=bounded_int(1, 1000), default=5, help="timed parses of each folder (default 5)"
    )
    parser.add_argument("--keep", type=Path, help="write the two DAG folders here instead of a temp dir")
    parser.add_argument(
        "--workflows", type=bounded_int(1, 10_000), default=WORKFLOWS, help="templates (default 100)"
    )
    args = parser.parse_args()
    globals()["WORKFLOWS"] = args.workflows  # the folders' size (a smoke run of the suite uses a few)

    with tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp:
        os.environ.setdefault("AIRFLOW_HOME", str(Path(tmp) / "airflow"))
        os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # no "Filling up the DagBag"
        spec_cache = Path(tmp) / "spec-cache"
        os.environ["BATON_SPEC_CACHE"] = str(spec_cache)
        # The templates name the bundled roster's skill agents (score_leads, ...): the demo's skills must be
        # registered, as scripts/env.sh does, or the roster leaves those agents out.
        extensions = [e for e in os.environ.get("BATON_EXTENSIONS", "").split(",") if e]
        os.environ["BATON_EXTENSIONS"] = ",".join(dict.fromkeys([*extensions, "demo.skills"]))

        for module in ("airflow", "baton.compile", "baton.operators.step"):  # imports are not measured
            importlib.import_module(module)

        generated, written = write_folders(args.keep.resolve() if args.keep else Path(tmp))
        _, warm_generated = parse(generated)
        _, warm_written = parse(written)
        assert_same_dags(warm_generated, warm_written)

        # The DAG processor parses each file in a process of its own: the two files of the generated
        # folder are timed apart, each with empty in-process caches, and their times added. "cold" starts
        # from an empty validation cache (the first parse after templates changed: baton_workflows.py
        # validates and fills it, the errors file then finds it); "warm" is every parse after that.
        times: dict[str, list[float]] = {kind: [] for kind in ("handwritten", "cold", "warm")}
        last = {"handwritten": warm_written, "cold": warm_generated, "warm": warm_generated}
        for round_ in range(args.rounds):
            order = ("handwritten", "generated") if round_ % 2 == 0 else ("generated", "handwritten")
            for kind in order:
                if kind == "handwritten":
                    elapsed, last[kind] = parse(written)
                    times[kind].append(elapsed)
                    continue
                shutil.rmtree(spec_cache, ignore_errors=True)
                for state in ("cold", "warm"):
                    elapsed, bag = parse(generated, only=DAG_FILE)
                    # A fresh bag executes the file again: no DAG object is one of the previous parse.
                    assert all(bag.dags[d] is not last[state].dags[d] for d in bag.dags), "DAGs reused"
                    last[state] = bag
                    times[state].append(elapsed + parse(generated, only=ERRORS_FILE)[0])
            print(
                f"round {round_ + 1}: handwritten {times['handwritten'][-1]:.3f} s, generated cold "
                f"{times['cold'][-1]:.3f} s, warm {times['warm'][-1]:.3f} s"
            )
        assert_same_dags(last["warm"], warm_written)  # what the cache gives is what validation gives

    medians = {kind: statistics.median(values) for kind, values in times.items()}
    print(
        f"{WORKFLOWS} DAGs x {STEPS} tasks, medians over {args.rounds} rounds (generated = both DAG files):"
    )
    print(f"  handwritten:     {medians['handwritten']:.3f} s")
    print(f"  generated, cold: {medians['cold']:.3f} s  (empty validation cache: after templates changed)")
    print(f"  generated, warm: {medians['warm']:.3f} s  (every parse after that)")
    if sys.dont_write_bytecode:
        print(
            "note: no .pyc cache (PYTHONDONTWRITEBYTECODE): every hand-written file is compiled on each parse"
        )
    if args.keep:
        print(f"DAG folders kept in {args.keep.resolve()}")
    for state in ("warm", "cold"):  # the headline, last: the cold ratio
        print(
            f"ratio generated/handwritten, {state}: {medians[state] / medians['handwritten']:.2f} (goal <= 1.3)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
