"""Where each step's experiment stands (``variants:``; the Management page, ``GET /baton/api/experiments``):
its arms with their weights and what they change, each arm's runs, successes, failures and latency from the
event store, and the decision once there is one (with its reason) or what it still waits for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from baton.compile.loader import healthy_workflows
from baton.coordination import variants
from baton.events.store import EventStore

MAX_EXPERIMENTS = 200


def report(store: EventStore, dags_folder: Path, workflow: str | None = None) -> list[dict[str, Any]]:
    """One document per step with ``variants`` of the healthy templates of ``dags_folder``."""
    found: list[dict[str, Any]] = []
    for flow in healthy_workflows(dags_folder):
        if workflow is not None and flow.workflow != workflow:
            continue
        for step in flow.steps:
            spec = step.variants
            if spec is None or len(found) >= MAX_EXPERIMENTS:
                continue
            test = variants.replayed(store, flow.workflow, step.id, spec)
            decided = variants.decided(store, flow.workflow, step.id)
            proposal = variants.proposed(store, flow.workflow, step.id) if decided is None else None
            verdict = test.decide()
            found.append(
                {
                    "experiment": test.name,
                    "workflow": flow.workflow,
                    "step": step.id,
                    "control": test.control,
                    "arms": {
                        arm: {"weight": v.weight, "changes": _changes(v)} for arm, v in spec.arms.items()
                    },
                    "counts": test.counts(),
                    "status": decided["status"] if decided else "proposed" if proposal else "running",
                    "winner": decided["variant"] if decided else None,
                    "decided_by": (decided or {}).get("by") or None,
                    "approve": spec.approve,
                    "proposal": {k: proposal[k] for k in ("status", "variant", "reason")}
                    if proposal
                    else None,
                    "reason": (decided or proposal or {}).get("reason")
                    or str(verdict.why.get("reason", ""))[:2000],
                    "min_runs": spec.min_runs,
                    "alpha": spec.alpha,
                }
            )
    return found


def _changes(variant: Any) -> list[str]:
    changes = ["its instruction"] if variant.instruction is not None else []
    return changes + ([f"agent {variant.agent}"] if variant.agent else [])
