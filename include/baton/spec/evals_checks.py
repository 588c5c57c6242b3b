"""An evaluation dataset (``evals/<workflow>.yaml``, :mod:`baton.spec.evals`) against its workflow's template:
what can be known from the two files alone. A case naming a step the workflow does not have, an input it
does not take, or leaving out one it requires could never run; a check on a field the step's output does
not have, or one its type can never pass (``range`` on a text, ``equals: "3"`` on an integer, a value
outside the field's ``enum``), could never pass. Each is an issue with the dataset's file, key and line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema

from baton.errors import Issue, TemplateError
from baton.registry import is_pure
from baton.spec.evals import Dataset, dataset_files, load_dataset
from baton.spec.expect import FieldType, field_issues, judge_problem, output_types
from baton.spec.loading import template_path
from baton.spec.located import Located
from baton.spec.step import PersonStep


def dataset_issues(dataset: Dataset, source: Located, workflow: Any) -> list[Issue]:
    """Every problem of ``dataset`` (read from ``source``) against ``workflow``, the template it names."""
    if dataset.dataset != workflow.workflow:
        return [
            source.issue(
                ("dataset",),
                f"the dataset names workflow '{dataset.dataset}', not '{workflow.workflow}'",
                f"write 'dataset: {workflow.workflow}'",
            )
        ]
    template = _Template(workflow)  # what every case is checked against, made once (10,000 cases may come)
    return [
        source.issue(loc, message, fix)
        for index, case in enumerate(dataset.cases)
        for loc, message, fix in _case(("cases", index), case, template)
    ]


class _Template:
    """A workflow's steps, their outputs' fields and a validator of each input, made once per dataset: a
    JSON Schema validator checks its schema when made (9 CPU-s for 10,000 cases when made per value)."""

    def __init__(self, workflow: Any):
        self.steps = {step.id: step for step in workflow.steps}
        self.outputs = {step_id: output_types(step) for step_id, step in self.steps.items()}
        self.inputs = workflow.inputs
        self.triggered = workflow.trigger is not None
        self.validators = {
            name: jsonschema.validators.validator_for(schema := field.json_schema())(schema)
            for name, field in workflow.inputs.items()
        }


def outside_model(step: Any, roster: Any = None) -> str:
    """What a step does besides asking a language model, which an evaluation must not do (a business
    system's read or write, a browser, a person), in words; '' for a step a model's answer makes, or a
    skill registered as pure (it only computes: ``@skill(..., pure=True)``)."""
    if getattr(step, "skill", None):
        return "" if is_pure(step.skill) else f"runs skill '{step.skill}'"
    if isinstance(step, PersonStep):
        return "asks a person"
    if getattr(step, "browser", None):
        return "drives a browser"
    agents = {agent.name: agent for agent in (roster.agents if roster is not None else [])}
    agent = agents.get(getattr(step, "agent", None) or "")
    if agent is not None and agent.skill and not is_pure(agent.skill):
        return f"is done by agent '{agent.name}', which runs skill '{agent.skill}'"
    return ""


def unrecorded(dataset: Dataset, workflow: Any, roster: Any = None) -> list[str]:
    """A warning for each step that does more than ask a model (:func:`outside_model`) and that some cases
    do not record: an evaluation runs it for real there (a skill that posts, posts)."""
    found = []
    for step in workflow.steps:
        why = outside_model(step, roster)
        missing = sum(step.id not in case.recorded for case in dataset.cases)
        if why and missing:
            found.append(
                f"step '{step.id}' {why} and {missing} of the {len(dataset.cases)} cases do not record its output: "
                f"an evaluation runs it for real in them (fix: if it reaches a business system or a person, record "
                f"the output it gives in each case, `recorded: {{{step.id}: ...}}`)"
            )
    return found


Found = Iterator[tuple[tuple[Any, ...], str, str]]


def _case(at: tuple[Any, ...], case: Any, template: _Template) -> Found:
    yield from _inputs((*at, "inputs"), case.inputs, template)
    if case.trigger is not None and not template.triggered:
        yield (
            (*at, "trigger"),
            "the workflow has no trigger: nothing gives its runs a payload",
            "remove 'trigger'",
        )
    steps = template.steps
    known = ", ".join(steps)
    for step_id in case.recorded:
        if step_id not in steps:
            yield (*at, "recorded", step_id), f"the workflow has no step '{step_id}'", f"use one of: {known}"
    for step_id, fields in case.expect.items():
        where = (*at, "expect", step_id)
        if step_id not in steps:
            yield where, f"the workflow has no step '{step_id}'", f"use one of: {known}"
        elif step_id in case.recorded:
            yield where, f"step '{step_id}' is recorded in this case, not run", "check a step the case runs"
        else:
            yield from field_issues(where, fields, template.outputs[step_id])


def _inputs(at: tuple[Any, ...], given: dict[str, Any], template: _Template) -> Found:
    declared = template.inputs
    names = ", ".join(declared) or "none"
    for name, value in given.items():
        if name not in declared:
            yield (*at, name), f"the workflow takes no input '{name}'", f"use its inputs: {names}"
            continue
        error = jsonschema.exceptions.best_match(template.validators[name].iter_errors(value))
        if error is not None:  # the error jsonschema.validate would raise
            yield (
                (*at, name),
                f"input '{name}': {error.message[:300]}",
                "give a value the template's input takes",
            )
    for name, field in declared.items():
        if field.required and field.default is None and name not in given:
            yield at, f"the workflow requires input '{name}'", f"give '{name}' a value in this case's inputs"


def folder_datasets(
    folder: Path, workflows: dict[str, Any], roster: Any = None, warnings: list[str] | None = None
) -> list[tuple[Path, list[Issue]]]:
    """Each dataset of the dags folder ``folder`` (``evals/*.yaml``) with its problems, checked against its
    workflow among ``workflows`` (by id: the templates just checked). A dataset of a workflow not among them
    is checked alone, and named as an orphan unless ``workflows/<name>.yaml`` (or ``.yml``, any case) exists
    (a broken template's, or one not asked for)."""
    found = []
    for path in dataset_files(folder):
        try:
            dataset, source = load_dataset(path)
        except TemplateError as error:
            found.append((path, error.issues))
            continue
        issues = []
        if path.stem != dataset.dataset:
            fix = f"rename the file {dataset.dataset}.yaml, or write 'dataset: {path.stem}'"
            issues.append(
                source.issue(("dataset",), f"the file is {path.name}, the dataset '{dataset.dataset}'", fix)
            )
        if dataset.judge is not None and (problem := judge_problem(dataset.judge, roster)):
            issues.append(source.issue(("judge",), *problem))
        workflow = workflows.get(dataset.dataset)
        if workflow is not None:
            issues += dataset_issues(dataset, source, workflow)
            if warnings is not None:
                warnings += [
                    f"{path}: cases: warning: {line}" for line in unrecorded(dataset, workflow, roster)
                ]
        elif template_path(folder / "workflows", dataset.dataset) is None:
            fix = f"name one of the workflows: {', '.join(sorted(workflows)) or 'none'}"
            issues.append(source.issue(("dataset",), f"there is no workflow '{dataset.dataset}' here", fix))
        if issues:
            found.append((path, issues))
    return found


__all__ = [
    "FieldType",
    "dataset_issues",
    "folder_datasets",
    "outside_model",
    "output_types",
    "unrecorded",
]
