"""Runs a skill step: call the registered function, check its output against the step's schema."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import ValidationError

import baton.skills  # noqa: F401  (registers Baton's own skills, which run_skill runs)
from baton import templating
from baton.agents.outputs import output_model
from baton.errors import BatonError, FinalSkillError, SkillError
from baton.hooks import http as http_hook
from baton.registry import SkillRequest, get_skill


def run_skill(
    name: str,
    *,
    workflow: str,
    step_id: str,
    output_spec: Any,
    instruction: str,
    scope: dict[str, Any],
    with_: dict[str, Any] | None = None,
) -> dict:
    """Run skill ``name`` for a step and return its output, validated against the step's output fields
    (or the skill's own output model) and JSON-ready.

    :param with_: the step's ``with`` as the template writes it: rendered here over ``scope``.
    """
    skill = get_skill(name)
    request = SkillRequest(
        workflow=workflow,
        step=step_id,
        instruction=instruction,
        inputs=scope["inputs"],
        steps=scope["steps"],
        run_id=scope["run"]["id"],
        context=scope.get("context") or {},
        args=templating.arguments(with_, scope) if with_ else {},
        trigger=scope.get("trigger") or {},
    )
    try:
        with http_hook.acting(name):  # what it reaches is judged by its egress policy in the roster
            result = skill.func(request)
    except FinalSkillError as error:
        raise final(type(error))(*error.args) from error.__cause__

    model = output_model(step_id, output_spec) or skill.output
    if model is None:
        return result
    try:
        return model.model_validate(result).model_dump(mode="json")
    except ValidationError as error:
        first = error.errors()[0]
        raise SkillError(
            f"Skill '{name}' returned an output that step '{step_id}' does not accept: "
            f"{error.error_count()} error(s), first: {first['loc']}: {first['msg']}. "
            "Make the skill return the step's output fields, or change the step's output."
        ) from None


@cache
def final(cls: type[BatonError]) -> type[Exception]:
    """``cls`` that Airflow also fails without a retry (an ``AirflowFailException``), under its own name
    (the events and alerts say ``InvalidInvoice``, not a generic class)."""
    from airflow.sdk.exceptions import AirflowFailException

    return type(cls.__name__, (cls, AirflowFailException), {"__module__": cls.__module__})
