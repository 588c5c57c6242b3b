"""One process of an evaluation: ``python -m baton.evaluate.worker REQUEST``, started by
:mod:`baton.evaluate.run` with the environment of a throwaway Airflow (its own SQLite metadata database,
Baton store and dag bundle). It migrates both databases, parses the bundle's one DAG (the evaluated
version's), and runs each case of ``REQUEST`` (a JSON file: ``{"dag_id", "cases", "out"}``) as a
``dag.test()`` with the case's inputs as the run's conf and its recorded outputs set
(:mod:`baton.coordination.evaluation`). Each case's run, as soon as it ends, is a line of ``out``:
``{"case", "state", "outputs": {step: XCom value}, "error"}``; what the runs log goes to this process's
output, which the evaluation keeps in a file beside.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from airflow.dag_processing.dagbag import BundleDagBag
from airflow.models.dagrun import DagRun
from airflow.utils.db import initdb
from airflow.utils.session import create_session
from sqlalchemy import select

from baton.coordination import evaluation
from baton.evaluate.bundle import DAG_FILE
from baton.events.migrations import upgrade
from baton.events.store import EventStore

BUNDLE = "baton-eval"


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


def run_case(dag: Any, case: dict[str, Any], arms: dict[str, str] | None = None) -> dict[str, Any]:
    """One case's ``dag.test()`` (``arms``: the arm of each step's variants it runs), and what its run gave."""
    try:
        with evaluation.case(case["id"], case.get("recorded") or {}, arms):
            run = dag.test(run_conf=case.get("inputs") or None)
        state, outputs, failed = _outputs(dag.dag_id, run.run_id)
        error = f"task '{failed}' failed (its log is in the evaluation's log)" if failed else ""
        return {"case": case["id"], "state": state, "outputs": outputs, "error": error}
    except Exception as error:  # the case's run could not be made: this case's result, not the end
        traceback.print_exc()
        return {
            "case": case["id"],
            "state": "error",
            "outputs": {},
            "error": f"{type(error).__name__}: {error}",
        }


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    initdb()
    upgrade(EventStore.from_airflow().engine)
    bundle = Path(request["bundle"])
    bag = BundleDagBag(dag_folder=str(bundle / DAG_FILE), bundle_path=bundle, bundle_name=BUNDLE)
    if bag.import_errors or request["dag_id"] not in bag.dags:
        print(f"the evaluated template did not build: {bag.import_errors}", file=sys.stderr)
        return 3
    dag = bag.dags[request["dag_id"]]
    with open(request["out"], "a", encoding="utf-8") as out:
        for case in request["cases"]:
            out.write(json.dumps(run_case(dag, case, request.get("arms")), default=str) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
