"""Step output schemas: the pydantic model a step's output must fit."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from baton.registry import get_output_model

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


def _title(path: str) -> str:
    return "".join(part.title() for part in path.replace(".", "_").split("_") if part)


def _annotation(spec: dict[str, Any], path: str) -> Any:
    kind = spec.get("type", "string")
    if spec.get("enum"):
        return Literal[tuple(spec["enum"])]
    if kind == "array":
        items = spec.get("items") or "string"
        item = _fields_model(_title(path) + "Item", items, path) if isinstance(items, dict) else _TYPES[items]
        return list[item]
    if kind == "object" and spec.get("fields"):
        return _fields_model(_title(path), spec["fields"], path)
    return _TYPES[kind]


def _field(spec: dict[str, Any]) -> Any:
    required = spec.get("required", True)
    constraints = {
        "ge": spec.get("minimum"),
        "le": spec.get("maximum"),
        "pattern": spec.get("pattern"),
        "min_length": spec.get("min_length", spec.get("min_items")),
        "max_length": spec.get("max_length", spec.get("max_items")),
    }
    extra = {"format": spec["format"]} if spec.get("format") else None
    return Field(
        ... if required else None,
        description=spec.get("description") or None,
        json_schema_extra=extra,
        **{k: v for k, v in constraints.items() if v is not None},
    )


def _fields_model(title: str, fields: dict[str, Any], path: str) -> type[BaseModel]:
    members: dict[str, Any] = {}
    for name, spec in fields.items():
        annotation = _annotation(spec, f"{path}.{name}")
        members[name] = (annotation if spec.get("required", True) else annotation | None, _field(spec))
    return create_model(title, __config__=ConfigDict(extra="forbid"), **members)


def output_model(step_id: str, output: dict[str, Any] | str | None) -> type[BaseModel] | None:
    """The model of a step's declared output; None when the step declares none."""
    if output is None:
        return None
    if isinstance(output, str):
        model = get_output_model(output)
        if model is None:
            raise LookupError(f"unknown output model '{output}'")
        return model
    return _fields_model(_title(step_id) + "Output", output, step_id)
