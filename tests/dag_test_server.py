"""A process that runs ``dag.test()`` in forked children, for the tests' ``run_dag_test_in_subprocess``.

Each ``dag.test()`` in a fresh interpreter spends seconds before its first task runs: importing Airflow,
its task runner and its in-process Execution API, and Baton's operator with the model runtime. This
process imports all of that once, then forks a child per run: the child starts from those imports, takes
the environment the test gave, and is otherwise the fresh process it replaces (nothing of a run is
imported, cached or connected before the fork: the database pool is emptied, no DAG is parsed; what is
cached before it, the plugins and listeners, the model price table and the source fingerprint, is the
same for every run, as in the task processes of the LocalExecutor's forkserver). The extensions this
process's environment names are imported, as that forkserver does, but not counted as loaded: each run
loads those its own environment names (the ones imported here at no cost).

Protocol, one JSON object per line: the test writes ``{"folder", "bundle", "dag_id", "conf", "env",
"out"}``; this process answers ``{"pid": N}`` when the child started and ``{"status": N}`` when it ended
(the child's exit status; what it printed is in the file ``out``). ``--once REQUEST`` runs one
``dag.test()`` in this process instead, printing to its own output (a test that needs a fresh process).
"""

from __future__ import annotations

import json
import os
import sys

# What every run imports before its first task: Airflow's DAG bag, task runner and supervisor, the
# in-process Execution API with its routes, Baton's operator, and what the LocalExecutor's forkserver
# preloads for every task process (baton.preload: the plugins and listeners, the agent runtime with
# common-ai and pydantic-ai, Baton's compiler). Without the last, each child imported the agent runtime
# again when its first agent step ran: parallel_feature_delivery's dag.test() took 4.6 s of CPU in a
# child, 2.0 s with it (cProfile, one run each).
import airflow.api_fastapi.execution_api.app
import airflow.api_fastapi.execution_api.routes
import airflow.sdk.execution_time.task_runner  # noqa: F401
from airflow import settings
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.sdk.execution_time import supervisor

import baton.operators.step
import baton.preload  # noqa: F401
from baton import extensions
from baton.evaluate.worker import forked

extensions.reset()  # each run loads what its own environment names (see the docstring)


def dag_test(request: dict) -> None:
    """One ``dag.test()`` of the request's DAG; prints ``BATON_TEST_RUN_ID=<run id>`` when it ends."""
    from pathlib import Path

    folder = request["folder"]
    bag = BundleDagBag(dag_folder=folder, bundle_path=Path(folder), bundle_name=request["bundle"])
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[request["dag_id"]]
    dag.deadline = None  # Airflow 3.3.2's dag.test() cannot finish a run with deadlines (conftest)
    run = dag.test(run_conf=request["conf"] or None)
    print("BATON_TEST_RUN_ID=" + run.run_id, flush=True)


def run(request: dict) -> None:
    """The child: the test's environment, its output to the file, one ``dag.test()``; never returns."""

    def test() -> int:
        dag_test(request)
        return 0

    forked(request["out"], request["env"], test, replace_env=True)


def main() -> None:
    # dag.test() talks to an in-process Execution API that the supervisor builds once per process; it
    # is built here, before the fork (its event-loop thread starts in the child, on first use). Its
    # versioned routes too: Cadwyn generates them on the app's first request, about 7 s of CPU on this
    # machine, which every child would otherwise spend again (most of a small workflow's dag.test()).
    app = supervisor.in_process_api_server().app
    if not getattr(app, "_cadwyn_initialized", True):
        app._cadwyn_initialize()
    settings.engine.dispose()  # no pooled connection is shared with a child
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--once"]:
        dag_test(json.loads(sys.argv[2]))
    else:
        main()
