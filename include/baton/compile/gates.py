"""What an evaluation dataset gates in a workflow's DAG: its variants' arms (here) and its rollout (the
``baton_version`` task, :func:`baton.compile.build.build_dag`'s ``gated``), each opened by a passing
``baton eval --record`` of the template as built."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from baton.plan import WorkflowPlan
from baton.spec.evals import dataset_files, version_digest


def gate_variants(plan: WorkflowPlan) -> WorkflowPlan:
    """``plan`` with its steps that have variants holding the template's digest (``CompiledStep.evaluated``):
    their arms get runs once each passed the workflow's evaluation dataset."""
    if not any(step.spec.variants for step in plan.steps):
        return plan
    digest = version_digest(plan.workflow)
    steps = tuple(s.model_copy(update={"evaluated": digest}) if s.spec.variants else s for s in plan.steps)
    return replace(plan, steps=steps)


def evaluated(dags_folder: Path) -> set[str]:
    """The workflows of ``dags_folder`` that have an evaluation dataset (``evals/<workflow>.yaml``)."""
    return {path.stem for path in dataset_files(dags_folder)}


def applied(plan: WorkflowPlan, evaluated: set[str]) -> tuple[WorkflowPlan, bool]:
    """``plan`` with its variants gated, and whether its workflow is gated (has a dataset: its rollout waits
    for the new version to pass it too)."""
    gated = plan.workflow.workflow in evaluated
    return (gate_variants(plan) if gated else plan), gated


__all__ = ["applied", "evaluated", "gate_variants"]
