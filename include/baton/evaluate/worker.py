"""The process of an evaluation: ``python -m baton.evaluate.worker POOL``, started by :mod:`baton.evaluate.run`
with the environment of a throwaway Airflow. It imports Airflow, its in-process Execution API (whose
versioned routes cost about 7 s of CPU to build) and Baton's runtime once, migrates one empty metadata
database, and then forks a child per job of ``POOL`` (a JSON file: ``{"template_db", "workers", "jobs"}``),
at most ``workers`` at once. A job is one version's share of the cases: ``{"env", "request", "log"}``.

A child takes the job's environment (its own SQLite metadata database, a copy of the migrated one; its own
Baton store and dag bundle), connects Airflow's ORM to them, parses the bundle's one DAG (the evaluated
version's), and runs each case of its request (``{"dag_id", "bundle", "cases", "out", "arms"}``) as a
``dag.test()`` with the case's inputs as the run's conf and its recorded outputs set
(:mod:`baton.coordination.evaluation`). Each case's run, as soon as it ends, is a line of ``out``:
``{"case", "state", "outputs": {step: XCom value}, "error"}``; what the runs log goes to the job's log.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import airflow.api_fastapi.execution_api.app
import airflow.sdk.execution_time.task_runner  # noqa: F401  (what every dag.test() imports, once)
import anyio._backends._asyncio  # noqa: F401  (these four, and baton.agents.llm and baton.coordination.step:
import openai.resources.chat.chat  # noqa: F401  what a task imports on first use, imported once for every
import pydantic_ai.models.openai  # noqa: F401  child, as baton.preload does for the forkserver)
from airflow import settings
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.models.dagrun import DagRun
from airflow.sdk.execution_time import supervisor
from airflow.utils.db import initdb
from airflow.utils.session import create_session
from sqlalchemy import select

import baton.agents.llm
import baton.coordination.step  # noqa: F401
from baton.agents.warm import warm_model_path
from baton.coordination import evaluation
from baton.evaluate.bundle import BUNDLE, DAG_FILE
from baton.events.migrations import upgrade
from baton.events.store import EventStore


def _outputs(dag_id: str, run_id: str) -> tuple[str, dict[str, Any], str]:
    """(the run's state, each step that succeeded -> its XCom value, the first failed task's id or '')."""
    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one()
        outputs: dict[str, Any] = {}
        failed = ""
        for ti in sorted(run.get_task_instances(session=session), key=lambda ti: (ti.task_id, ti.map_index)):
            state = str(getattr(ti.state, "value", ti.state))
            if state == "failed" and not failed:
                failed = ti.task_id
            if state != "success":
                continue
            value = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index)
            if ti.map_index >= 0 and isinstance(value, dict):  # a fan-out's batch: its items join the others'
                joined = outputs.setdefault(ti.task_id, {"results": [], "failures": [], "total": 0})
                for key in ("results", "failures"):
                    joined[key] += value.get(key) or []
                joined["total"] += value.get("total") or 0
            else:
                outputs[ti.task_id] = value
        return str(getattr(run.state, "value", run.state)), outputs, failed


def _why(run_id: str, task_id: str) -> str:
    """What the failed task's last try failed with, as its ``step.failed`` event in the case's store says."""
    failures = [
        e for e in EventStore.from_airflow().read(run_id) if e.type == "step.failed" and e.step == task_id
    ]
    if not failures:
        return "it failed before its step started (the task's log is in the evaluation's log)"
    last = failures[-1].payload
    return f"{last.get('error_class', 'Error')}: {str(last.get('error', ''))[:300]}"


def declared(dag: Any) -> dict[str, Any]:
    """The DAG's params with the values the template declares, read before any run: a run's conf is written
    into the DAG's ``Param`` objects when its task's params are resolved, and stays there."""
    return {key: copy.deepcopy(param.value) for key, param in dag.params.items() if param.has_value}


def run_case(
    dag: Any, case: dict[str, Any], arms: dict[str, str] | None = None, defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One case's ``dag.test()`` (``arms``: the arm of each step's variants it runs), and what its run gave.
    Its conf is ``defaults`` (:func:`declared`) and the case's inputs over them, so that a case that leaves an
    input out gets the template's default, not the value of the case that ran before it."""
    try:
        with evaluation.case(case["id"], case.get("recorded") or {}, arms, case.get("trigger")):
            run = dag.test(run_conf={**(defaults or {}), **(case.get("inputs") or {})} or None)
        state, outputs, failed = _outputs(dag.dag_id, run.run_id)
        error = f"task '{failed}' failed: {_why(run.run_id, failed)}" if failed else ""
        return {"case": case["id"], "state": state, "outputs": outputs, "error": error}
    except Exception as error:  # the case's run could not be made: this case's result, not the end
        traceback.print_exc()
        return {
            "case": case["id"],
            "state": "error",
            "outputs": {},
            "error": f"{type(error).__name__}: {error}",
        }


def run_job(request: dict[str, Any]) -> int:
    """A job's cases, in this process (connected to its databases already)."""
    upgrade(EventStore.from_airflow().engine)
    bundle = Path(request["bundle"])
    bag = BundleDagBag(dag_folder=str(bundle / DAG_FILE), bundle_path=bundle, bundle_name=BUNDLE)
    if bag.import_errors or request["dag_id"] not in bag.dags:
        print(f"the evaluated template did not build: {bag.import_errors}", file=sys.stderr)
        return 3
    dag = bag.dags[request["dag_id"]]
    defaults = declared(dag)
    with open(request["out"], "a", encoding="utf-8") as out:
        for case in request["cases"]:
            out.write(json.dumps(run_case(dag, case, request.get("arms"), defaults), default=str) + "\n")
            out.flush()
    return 0


def forked(log: str, env: dict[str, str], work: Callable[[], int], *, replace_env: bool = False) -> NoReturn:
    """In a forked child: its output to the file ``log``, its environment ``env`` (added to the parent's, or
    instead of it), ``work()``; exits with what it returned (1 on an exception, printed to the log)."""
    status = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        if replace_env:
            os.environ.clear()
        os.environ.update(env)
        status = work()
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _job(job: dict[str, Any], template_db: str) -> int:
    """A job in its forked child (its environment set): its databases, then its cases."""
    shutil.copyfile(template_db, job["env"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///"))
    settings.configure_vars()  # the job's metadata database, read from its environment
    settings.configure_orm()
    return run_job(job["request"])


def main(argv: list[str]) -> int:
    pool = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    app = supervisor.in_process_api_server().app  # built once, before the forks (tests/dag_test_server.py)
    if not getattr(app, "_cadwyn_initialized", True):
        app._cadwyn_initialize()
    warm_model_path()  # the first structured-output call's one-time work (baton.agents.warm), once for all
    initdb()  # the empty metadata database every job copies (this process's environment names it)
    settings.dispose_orm()  # no pooled connection is shared with a child
    running: set[int] = set()
    failed = 0
    for job in pool["jobs"]:
        while len(running) >= pool["workers"]:
            failed += _reaped(running)
        pid = os.fork()
        if pid == 0:
            forked(job["log"], job["env"], lambda job=job: _job(job, pool["template_db"]))
        running.add(pid)
    while running:
        failed += _reaped(running)
    return 1 if failed else 0


def _reaped(running: set[int]) -> int:
    """Wait for one child of ``running`` to end; 1 when it failed (its cases it did not finish are errors)."""
    pid, status = os.wait()
    running.discard(pid)
    return int(os.waitstatus_to_exitcode(status) != 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
