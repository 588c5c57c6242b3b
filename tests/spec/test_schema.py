"""The JSON Schemas are generated from the models, committed, and referenced by every bundled file."""

from __future__ import annotations

import json

from baton.spec.schema import json_schemas
from tests.conftest import ROOT

SCHEMA_DIR = ROOT / "include" / "baton" / "spec" / "schemas"  # the committed ones (the wheel carries copies)


def test_committed_schemas_match_the_models():
    for name, schema in json_schemas().items():
        committed = json.loads((SCHEMA_DIR / name).read_text())
        assert committed == json.loads(json.dumps(schema)), (
            f"{name} is stale: run `baton schema --out include/baton/spec/schemas`"
        )


def test_workflow_schema_forbids_unknown_keys():
    schema = json_schemas()["workflow.schema.json"]
    assert schema["additionalProperties"] is False
    kinds = ["AgentStep", "SkillStep", "RoutedStep", "PersonStep"]
    assert schema["properties"]["steps"]["items"] == {
        "oneOf": [{"$ref": f"#/$defs/{kind}"} for kind in kinds]
    }
    for kind, key in zip(kinds, ["agent", "skill", "route", "escalate"], strict=True):
        assert schema["$defs"][kind]["additionalProperties"] is False
        assert key in schema["$defs"][kind]["required"], kind  # who does the step is the step's shape
    assert "with" in schema["$defs"]["SkillStep"]["properties"]
    assert "with" not in schema["$defs"]["AgentStep"]["properties"]  # only a skill takes arguments
    assert {"concurrency", "batch_size", "partial_failure"} <= set(schema["$defs"]["ForEach"]["properties"])
    assert "concurrency" not in schema["$defs"]["AgentStep"]["properties"]  # only a fan-out has it
    assert {"workflow", "version", "description", "owner", "steps"} <= set(schema["required"])


def test_every_bundled_template_points_at_the_schema(dags_folder):
    files = [dags_folder / "agents.yaml", *sorted((dags_folder / "workflows").glob("*.yaml"))]
    for path in files:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        target = (path.parent / first.split("=", 1)[1]).resolve()
        assert target.parent == SCHEMA_DIR and target.exists(), (path, target)
