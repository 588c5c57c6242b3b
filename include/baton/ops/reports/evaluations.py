"""Each workflow's evaluations over time (``GET /baton/api/evaluations``, the Management page): what every
``baton eval --record`` recorded, newest first, with the cases that regressed against the stable version.
The workflows are those with a dataset in the dags folder (``evals/``) and those named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from baton.coordination.tasks import EVAL_STEP
from baton.events.store import EventStore
from baton.spec.evals import dataset_files

MAX_EVALUATIONS = 50  # the latest evaluations of a workflow a report lists
MAX_WORKFLOWS = 200  # the most workflows' evaluations one report reads


def report(store: EventStore, dags_folder: Path, workflow: str | None = None) -> list[dict[str, Any]]:
    """One document per workflow with a dataset (only ``workflow``'s if given): its evaluations, newest first."""
    names = [workflow] if workflow is not None else [path.stem for path in dataset_files(dags_folder)]
    found = []
    for name in names[:MAX_WORKFLOWS]:
        rows = store.step_history(name, EVAL_STEP, ["evaluation.completed"], MAX_EVALUATIONS)
        evaluations = []
        for _, run_id, _, _, _, payload in reversed(rows):
            checks = payload.get("checks") or 0
            held_stable = payload.get("held_stable")
            evaluations.append(
                {
                    "id": run_id,
                    **{
                        key: payload.get(key)
                        for key in ("at", "version", "digest", "variant", "passed", "against")
                    },
                    "cases": payload.get("cases"),
                    "share": payload.get("held", 0) / checks if checks else None,
                    "share_stable": held_stable / checks if checks and held_stable is not None else None,
                    "mean_difference": payload.get("mean_difference"),
                    "interval": payload.get("interval"),
                    "regressed": payload.get("regressed") or {},
                }
            )
        found.append({"workflow": name, "evaluations": evaluations})
    return found


__all__ = ["MAX_EVALUATIONS", "report"]
