"""Runs a skill step: call the registered function, check its output against the step's schema."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from baton import templating
from baton.agents.outputs import output_model
from baton.errors import SkillError
from baton.skills import SkillRequest, get_skill


def run_skill(
    name: str,
    *,
    workflow: str,
    step_id: str,
    output_spec: Any,
    instruction: str,
    scope: dict[str, Any],
    args: dict[str, Any] | None = None,
) -> dict:
    """Run skill ``name`` for a step and return its output, validated against the step's output fields
    (or the skill's own output model) and JSON-ready.

    :param args: the step's ``with``, rendered (``baton.templating.arguments``).
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
        args=dict(args or {}),
    )
    result = skill.func(request)
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


def run_skill_step(step: Any, name: str, instruction: str, scope: dict[str, Any], context: Any) -> dict:
    """Run skill ``name`` for ``step`` (an AgentOperator); its arguments are ``step.skill_args`` (the
    template's ``with``) rendered over ``scope``."""
    with_ = getattr(step, "skill_args", None)
    return run_skill(
        name,
        workflow=step.workflow,
        step_id=step.task_id,
        output_spec=step.output_spec,
        instruction=instruction,
        scope=scope,
        args=templating.arguments(with_, scope) if with_ else None,
    )
