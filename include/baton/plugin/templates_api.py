"""The Management page's template routes: the library (every template of the dags folder, its version,
owner, schedule, rollout, and the exact errors of a broken one), a template's text, and the editor's live
validation of a text that is not saved anywhere (its errors, the plan it compiles to as a graph, and what
it changes against the template of the same name, as ``baton diff`` says).

Saving is not offered: templates are code, deployed with the DAG bundle; the editor downloads the file for
a pull request, where review, history and the deployment's own checks apply. Nothing here writes a file.
"""

from __future__ import annotations

import graphlib
from pathlib import Path as Folder
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from baton.compile.loader import compile_folder, healthy_workflows, read_roster, steps_of
from baton.errors import TemplateError
from baton.plan import plan_workflow
from baton.spec.diff import diff
from baton.spec.loading import load_workflow, template_files, template_path
from baton.spec.reading import read_bytes

MAX_TEXT = 1_000_000  # characters of a text the editor may send
MAX_LIBRARY = 2_000  # templates listed
ReadDags = Depends(requires_access_dag("GET", DagAccessEntity.RUN))
router = APIRouter(prefix="/api/templates", dependencies=[ReadDags])
FILE = r"^[a-z][a-z0-9_]{0,199}\.ya?ml$"


def _folder() -> Folder:
    from airflow.configuration import conf

    return Folder(conf.get("core", "dags_folder"))


def _roster(folder: Folder) -> Any:
    return read_roster(folder)[0]


@router.get("")
def library() -> dict:
    """Every template of ``dags/workflows``: healthy ones with their settings, broken ones with each error
    (through the validation cache, as the DAG files read them: a poll of the page validates nothing that
    did not change). ``other_errors``: those of the other files (the roster, a version being rolled out)."""
    folder = _folder()
    healthy = {workflow.workflow: workflow for workflow in healthy_workflows(folder)}
    errors: dict[str, list[str]] = {}
    for error in compile_folder(folder, build=False)[1]:  # a Baton bug is a file's error here too
        for issue in error.issues:
            errors.setdefault(issue.file, []).append(str(issue))
    files = template_files(folder / "workflows") if (folder / "workflows").is_dir() else []
    found = []
    for path in files[:MAX_LIBRARY]:
        name = f"workflows/{path.name}"
        if path.stem in healthy:  # its DAG loads; an error of its rollout (the DAG loads without it) is said
            found.append({"file": name, **_summary(healthy[path.stem]), "errors": errors.get(name, [])[:200]})
        else:
            found.append(
                {"file": name, "ok": False, "workflow": path.stem, "errors": errors.get(name, [])[:200]}
            )
    other = {file: issues[:200] for file, issues in errors.items() if not file.startswith("workflows/")}
    return {"templates": found, "truncated": len(files) > MAX_LIBRARY, "other_errors": other}


def _summary(workflow: Any) -> dict[str, Any]:
    return {
        "ok": True,
        "workflow": workflow.workflow,
        "version": workflow.version,
        "owner": workflow.owner,
        "category": workflow.category,
        "description": workflow.description.strip().splitlines()[0][:300],
        "schedule": workflow.schedule.cron,
        "steps": len(workflow.steps),
        "inputs": {
            name: field.json_schema()
            | {
                "default": field.default,
                "required": field.required,
                "description": field.description,
                "title": field.title,
            }
            for name, field in workflow.inputs.items()
        },  # fmt: skip
        "rollout": workflow.rollout.model_dump(mode="json") if workflow.rollout else None,
    }


@router.get("/roster")
def roster() -> dict:
    """The roster's agents (``dags/agents.yaml``): every agent a step may name or be routed to, with its
    capabilities and concurrency, whether or not it has been called yet; and the roster's errors."""
    found, error = read_roster(_folder())
    agents = [{"agent": a.name, "capabilities": list(a.capabilities), "max_concurrency": a.max_concurrency,
               "description": a.description[:300]} for a in (found.agents if found else [])]  # fmt: skip
    return {"agents": agents, "errors": str(error)[:4000] if error else None}


@router.get("/{workflow}/source")
def source(workflow: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,199}$")]) -> dict:
    """The text of ``workflows/<workflow>.yaml`` (what the editor starts from)."""
    folder = _folder()
    path = template_path(folder / "workflows", workflow)
    if path is None:
        raise HTTPException(404, f"no template workflows/{workflow}.yaml")
    return {"file": path.name, "text": read_bytes(path, path.name).decode("utf-8", errors="replace")}


class Draft(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str = Field(pattern=FILE, description="the template's file name, e.g. lead_followup.yaml")
    text: str = Field(max_length=MAX_TEXT)


@router.post("/validate")
def validate(draft: Draft) -> dict:
    """The draft's errors (file, line, key, message, fix: those of ``baton validate``), or the plan it compiles
    to as a graph and what it changes against the template of the same name."""
    folder = _folder()
    roster = _roster(folder)
    path = folder / "workflows" / draft.file
    try:
        workflow = load_workflow(path, roster, root=folder, data=draft.text.encode())
    except TemplateError as error:
        issues = [
            {"path": i.path, "line": i.line, "message": i.message, "fix": i.fix, "text": str(i)}
            for i in error.issues
        ]
        return {"ok": False, "issues": issues[:500]}
    plan = plan_workflow(workflow, roster)
    return {
        "ok": True,
        "issues": [],
        **_summary(workflow),
        "graph": graph(plan.steps),
        "diff": _diff(folder, workflow),
    }


def _diff(folder: Folder, new: Any) -> dict | None:
    path = template_path(folder / "workflows", new.workflow)
    if path is None:
        return None
    try:
        old = load_workflow(path, _roster(folder), root=folder)
    except TemplateError:
        return None
    return diff(old, new).document()


@router.get("/{workflow}/graph")
def workflow_graph(workflow: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,199}$")]) -> dict:
    """The tasks of a healthy template's DAG (both versions' while it rolls out) as a graph."""
    steps = steps_of(_folder(), workflow)
    if not steps:
        raise HTTPException(404, f"no healthy template workflows/{workflow}.yaml")
    return graph(list(steps.values()))


def graph(steps: Any) -> dict:
    """Tasks as nodes placed in columns by depth (a layout for the chart library to draw) and the edges
    between them."""
    steps = {s.task_id: s for s in steps}
    needs = {t: [s.task_of(u) for u in s.upstream] for t, s in steps.items()}
    depth: dict[str, int] = {}
    for task in graphlib.TopologicalSorter(needs).static_order():
        depth[task] = 1 + max((depth[u] for u in needs[task]), default=-1)
    rows: dict[int, int] = {}
    nodes = []
    for task, step in steps.items():
        rows[depth[task]] = rows.get(depth[task], -1) + 1
        # the agents a person may give its next try to (a routed step without for_each), as the server checks
        reassignable = [a.name for a in step.candidates] if step.routed and step.fan_out is None else []
        nodes.append({"id": task, "who": step.who, "group": step.group, "x": depth[task], "y": rows[depth[task]],
                      "candidates": reassignable})  # fmt: skip
    edges = [{"source": u, "target": t} for t in steps for u in needs[t]]
    return {"nodes": nodes, "edges": edges}
