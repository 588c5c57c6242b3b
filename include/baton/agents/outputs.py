"""Step output schemas: the pydantic model a step's output must fit."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from baton.skills import get_output_model

_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "object": dict[str, Any],
}


class TextOutput(BaseModel):
    """The output of a step that declares no fields: the agent's text."""

    text: str


def _annotation(spec: dict[str, Any]) -> Any:
    kind = spec.get("type", "string")
    if spec.get("enum"):
        return Literal[tuple(spec["enum"])]
    if kind == "array":
        item = _TYPES[spec.get("items") or "string"]
        return list[item]
    return _TYPES[kind]


def output_model(step_id: str, output: dict[str, Any] | str | None) -> type[BaseModel] | None:
    """The model of a step's declared output; None when the step declares none."""
    if output is None:
        return None
    if isinstance(output, str):
        model = get_output_model(output)
        if model is None:
            raise LookupError(f"unknown output model '{output}'")
        return model
    fields: dict[str, Any] = {}
    for name, spec in output.items():
        constraints = {k: spec[k] for k in ("minimum", "maximum") if spec.get(k) is not None}
        field = Field(
            ... if spec.get("required", True) else None,
            description=spec.get("description") or None,
            ge=constraints.get("minimum"),
            le=constraints.get("maximum"),
        )
        annotation = _annotation(spec)
        fields[name] = (annotation if spec.get("required", True) else annotation | None, field)
    title = "".join(part.title() for part in step_id.split("_")) + "Output"
    return create_model(title, __config__=ConfigDict(extra="forbid"), **fields)
