"""Runs a skill step: call the registered function, check its output against the step's schema."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from baton.agents.outputs import output_model
from baton.errors import SkillError
from baton.skills import SkillRequest, get_skill


def run_skill_step(step: Any, name: str, instruction: str, scope: dict[str, Any], context: Any) -> dict:
    """Run skill ``name`` for ``step`` (an AgentOperator) and return its validated, JSON-ready output."""
    skill = get_skill(name)
    request = SkillRequest(
        workflow=step.workflow,
        step=step.task_id,
        instruction=instruction,
        inputs=scope["inputs"],
        steps=scope["steps"],
        run_id=scope["run"]["id"],
    )
    result = skill.func(request)
    model = output_model(step.task_id, step.output_spec) or skill.output
    if model is None:
        return result
    try:
        return model.model_validate(result).model_dump(mode="json")
    except ValidationError as error:
        raise SkillError(
            f"Skill '{name}' returned an output that step '{step.task_id}' does not accept: "
            f"{error.error_count()} error(s), first: {error.errors()[0]['loc']}: {error.errors()[0]['msg']}. "
            "Make the skill return the step's output fields, or change the step's output."
        ) from None
