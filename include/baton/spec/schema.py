"""JSON Schema of templates, the roster and evaluation datasets, generated from the pydantic models (never by
hand)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from baton.spec.evals import Dataset
from baton.spec.models import Workflow
from baton.spec.roster import Roster

SCHEMA_FILES = {
    "workflow.schema.json": Workflow,
    "agents.schema.json": Roster,
    "dataset.schema.json": Dataset,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema, for editors (``# yaml-language-server: $schema=...``) and ``baton schema``."""
    schemas = {}
    for name, model in SCHEMA_FILES.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = f"Baton {model.__name__.lower()}"
        schemas[name] = schema
    return schemas


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = folder / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


# Keywords that only document a schema: a change to them changes no template's meaning.
_ANNOTATIONS = frozenset({"description", "title", "examples", "$schema"})
_NAMES = frozenset({"properties", "$defs", "patternProperties", "mapping"})  # their keys are names


def _language(node: Any, names: bool = False) -> Any:
    if isinstance(node, dict):
        return {
            key: _language(value, key in _NAMES and not names)
            for key, value in node.items()
            if names or key not in _ANNOTATIONS
        }
    return [_language(value) for value in node] if isinstance(node, list) else node


def language_fingerprint(schemas: dict[str, dict[str, Any]] | None = None) -> str:
    """The template language's fingerprint: a hash of the workflow, roster and dataset JSON Schemas without their
    descriptions (what a template may say, and its defaults). CHANGELOG.md names it beside the release that
    introduced it (tests/spec/test_changelog.py)."""
    language = _language(schemas or json_schemas())
    text = json.dumps(language, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
