"""The cases of a dataset run through versions of a workflow: each case a ``dag.test()`` of the version's
compiled DAG (the real operators, runtime, store and model), run by one process (:mod:`baton.evaluate.worker`)
that forks a child per share of a version's cases, each child with a throwaway Airflow: its own SQLite
metadata database, Baton store, dag bundle and artifacts folder in a temporary folder. Nothing of an
evaluation reaches the deployment's databases or files: no run in its Airflow's UI, no asset event that would
trigger a workflow there, no call in the statistics its router learns from, no browser file or skill state in
its artifacts, no alert (the evaluated DAG has no failure callback; ``baton_slack`` is not passed).

The model connections the roster's agents name are passed on as ``AIRFLOW_CONN_*`` (read here from wherever
this Airflow defines them), so a case calls the model the deployment calls. ``workers`` children run at once;
the process's start (Airflow's imports, its in-process Execution API, one migrated database) is paid once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton.alerts import SLACK_CONN_ID
from baton.coordination.judging import Judge
from baton.evaluate.bundle import BUNDLE, DAG_FILE, DAG_FILE_TEXT, ROSTER_ENV, TEMPLATE_ENV
from baton.evaluate.score import CaseScore, score_case
from baton.events.engine import STORE_CONN_ID
from baton.spec.evals import Dataset
from baton.spec.loading import read_roster, read_workflow

#: What one case may take, on average, before the evaluation stops its process (a hung model, a hung step).
CASE_TIMEOUT_S = 300.0
#: What the evaluation's process may take to start (imports, its Execution API, migrating a database).
START_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Version:
    """One version of a workflow an evaluation runs: its label in the report and its template file."""

    label: str
    template: Path
    number: int = 0  # the template's version
    digest: str = ""  # baton.spec.evals.version_digest of its validated template
    arms: dict[str, str] = field(default_factory=dict)  # step id -> the arm of its variants to run


def _connections(roster_path: Path) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` for each model connection the roster's agents name that this process can read
    and that the environment does not already hold (a worker has no other way to see one kept in this
    Airflow's metadata database)."""
    roster = read_roster(roster_path)[0] if roster_path.is_file() else None
    found = {}
    for conn_id in sorted({a.llm_conn_id for a in (roster.agents if roster else []) if a.llm_conn_id}):
        name = f"AIRFLOW_CONN_{conn_id.upper()}"
        if name in os.environ:
            continue
        try:
            from airflow.sdk import BaseHook  # deferred: Airflow's connection lookup, only when one is needed

            found[name] = BaseHook.get_connection(conn_id).as_json()
        except Exception:  # not defined here: the case fails as a run of the deployment would, naming it
            continue
    return found


def _environment(home: Path, bundle: Path, template: Path, roster: Path, connections: dict[str, str]) -> dict:
    """A worker's environment: this one's, with a throwaway Airflow database, store and dag bundle."""
    env = {key: value for key, value in os.environ.items() if key != f"AIRFLOW_CONN_{SLACK_CONN_ID.upper()}"}
    bundles = [
        {
            "name": BUNDLE,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(bundle)},
        }
    ]
    return (
        env
        | connections
        | {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            f"AIRFLOW_CONN_{STORE_CONN_ID.upper()}": f"sqlite:///{home / 'baton_store.db'}",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
            "AIRFLOW__CORE__DAGS_FOLDER": str(bundle),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "BATON_ARTIFACTS": str(
                home / "artifacts"
            ),  # a browser's files, a skill's state: not the deployment's
            TEMPLATE_ENV: str(template.resolve()),
            ROSTER_ENV: str(roster.resolve()),
        }
    )


@dataclass
class _Job:
    """One version's share of the cases, run by one child of the evaluation's process."""

    version: Version
    cases: list[Any]
    out: Path
    log: Path


def _job(
    index: int, version: Version, dag_id: str, cases: list[Any], roster: Path, workdir: Path, conns
) -> dict:
    """The job's folder (its bundle with the version's DAG file), and what the pool's child is told."""
    home = workdir / f"{version.label.replace(':', '-')}-{index}"
    bundle = home / "bundle"
    bundle.mkdir(parents=True)
    (bundle / DAG_FILE).write_text(DAG_FILE_TEXT, encoding="utf-8")
    request = {
        "dag_id": dag_id,
        "bundle": str(bundle),
        "out": str(home / "results.jsonl"),
        "cases": [case.model_dump(mode="json") for case in cases],
        "arms": version.arms,
    }
    env = _environment(home, bundle, version.template, roster, conns)
    return {"env": env, "request": request, "log": str(home / "worker.log")}


def _read(job: _Job, trouble: str) -> dict[str, dict[str, Any]]:
    """The runs the job finished, by case; a case it did not finish is an error naming why."""
    found = {}
    if job.out.is_file():
        for line in job.out.read_text(encoding="utf-8").splitlines():
            try:
                run = json.loads(line)
            except ValueError:  # the line it was writing when it was stopped
                continue
            found[run["case"]] = run
    why = f"the case did not run: the evaluation's process {trouble or 'did not run it'}; its log: {job.log}"
    return {
        case.id: found.get(case.id) or {"state": "error", "outputs": {}, "error": why} for case in job.cases
    }


def _pool(jobs: list[dict], workers: int, workdir: Path, deadline_s: float) -> str:
    """Run the jobs in one process that forks a child per job (``workers`` at once); what went wrong, or ''."""
    template = workdir / "template"
    template.mkdir()
    pool = {"template_db": str(template / "airflow.db"), "workers": workers, "jobs": jobs}
    (workdir / "pool.json").write_text(json.dumps(pool), encoding="utf-8")
    env = jobs[0]["env"] | {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{template / 'airflow.db'}"}
    with open(workdir / "pool.log", "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "baton.evaluate.worker", str(workdir / "pool.json")],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopped with every child it forked
        )
    try:
        code = process.wait(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return "stopped after its time ran out"
    return f"ended with exit code {code} (its log: {workdir / 'pool.log'})" if code else ""


def run_versions(
    versions: list[Version],
    dataset: Dataset,
    roster: Path,
    workdir: Path,
    workers: int = 1,
    judge: Judge | None = None,
) -> dict[str, list[CaseScore]]:
    """Every case of ``dataset`` run through each version and scored (label -> scores, in the dataset's
    order); each version's cases in ``workers`` shares, ``workers`` of them at once, and scored ``workers``
    at once (``judge`` reading their rubrics, in this process: the deployment's model connection)."""
    known = read_roster(roster)[0] if roster.is_file() else None
    cases = dataset.cases
    count = max(1, min(workers, len(cases)))
    shares = [cases[index::count] for index in range(count)]
    conns = _connections(roster)
    jobs, specs, fanned = [], [], {}
    for version in versions:
        workflow, _ = read_workflow(version.template, known)
        fanned[version.label] = {step.id for step in workflow.steps if step.for_each}
        for index, share in enumerate(shares):
            spec = _job(index, version, workflow.workflow, share, roster, workdir, conns)
            specs.append(spec)
            jobs.append(_Job(version, share, Path(spec["request"]["out"]), Path(spec["log"])))
    rounds = -(-len(jobs) // count)  # the jobs run `count` at a time
    trouble = _pool(specs, count, workdir, START_TIMEOUT_S + CASE_TIMEOUT_S * len(shares[0]) * rounds)
    scores: dict[str, list[CaseScore]] = {}
    with ThreadPoolExecutor(count, thread_name_prefix="baton-eval-score") as scoring:
        for version in versions:
            runs: dict[str, dict[str, Any]] = {}
            for job in jobs:
                if job.version is version:
                    runs |= _read(job, trouble)
            scores[version.label] = list(scoring.map(
                lambda case, ran=runs, fans=fanned[version.label]: score_case(
                    case, ran[case.id]["state"], ran[case.id]["outputs"], fans, ran[case.id].get("error", ""), judge
                ),
                cases,
            ))  # fmt: skip
    return scores


__all__ = ["CASE_TIMEOUT_S", "START_TIMEOUT_S", "Version", "run_versions"]
