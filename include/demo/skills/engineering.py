"""Engineering skills for a feature delivered in parallel: decompose a feature, review its integration."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from baton.errors import FinalSkillError
from baton.registry import SkillRequest, output_model, skill


@output_model
class Subtask(BaseModel):
    """One atomic piece of a larger task (an atomic task): who can do it and what it waits for."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    capabilities: list[str] = Field(default_factory=list, description="what the agent doing it must have")
    depends_on: list[str] = Field(default_factory=list, description="subtask ids that must finish first")
    estimate_hours: float | None = None


@output_model
class Subtasks(BaseModel):
    """A decomposition: the subtasks a for_each step fans out over."""

    task: str
    subtasks: list[Subtask]


# The components of a feature and the specialist skills each needs.
COMPONENTS = {
    "backend": (
        "backend_api",
        "Backend API for {feature}: endpoints, data model and checks",
        ["api", "server"],
        2.0,
    ),
    "frontend": (
        "frontend_ui",
        "Frontend UI for {feature}: screens, forms and client state",
        ["ui", "react"],
        1.5,
    ),
    "tests": (
        "integration_tests",
        "Integration tests for {feature}: the API and the UI end to end",
        ["testing", "integration"],
        2.0,
    ),
    "database": ("data_model", "Database migration for {feature}", ["database"], 1.0),
}


@skill("decompose_feature", output=Subtasks)
def decompose_feature(request: SkillRequest) -> dict:
    """Break a feature into atomic, parallel subtasks with the capabilities each needs."""
    feature = str(request.inputs.get("feature") or "feature").strip()
    wanted = request.inputs.get("components") or ["backend", "frontend", "tests"]
    unknown = [c for c in wanted if c not in COMPONENTS]
    if unknown:
        raise FinalSkillError(f"unknown components {unknown}; known: {', '.join(COMPONENTS)}")
    subtasks = []
    for component in wanted:
        sid, description, capabilities, hours = COMPONENTS[component]
        subtasks.append(
            Subtask(
                id=sid,
                description=description.format(feature=feature),
                capabilities=capabilities,
                estimate_hours=hours,
            )
        )
    return Subtasks(task=feature, subtasks=subtasks).model_dump()


class Review(BaseModel):
    passed: bool
    findings: list[str]
    subtasks_done: int
    subtasks_failed: int


@skill("review_integration", output=Review)
def review_integration(request: SkillRequest) -> dict:
    """Check an integration: every subtask delivered, its changes merged, no section left pending."""
    implemented = request.steps.get("implement") or {}
    results, failures = implemented.get("results", []), implemented.get("failures", [])
    changes = request.context.get("changes") or {}
    notes = request.context.get("release_notes") or ""
    findings = [f"subtask {f['id']} failed: {f['error']}" for f in failures]
    findings += [f"changes of {r['id']} were not merged" for r in results if r["id"] not in changes]
    findings += [
        f"release notes still pending: {line.strip()}"
        for line in notes.splitlines()
        if re.search(r"pending", line)
    ]
    if not results:
        findings.append("nothing was implemented")
    return Review(
        passed=not findings, findings=findings, subtasks_done=len(results), subtasks_failed=len(failures)
    ).model_dump()
