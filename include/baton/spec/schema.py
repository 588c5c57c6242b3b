"""JSON Schema of templates and the roster, generated from the pydantic models (never by hand)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from baton.spec.models import Workflow
from baton.spec.roster import Roster

SCHEMA_FILES = {"workflow.schema.json": Workflow, "agents.schema.json": Roster}


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
