"""CHANGELOG.md keeps up with the template language: the language's fingerprint (its JSON Schemas without
descriptions) is named beside the release that introduced it, and every version has its section."""

from __future__ import annotations

import json
import re
import tomllib

from baton.spec import LANGUAGE_VERSION
from baton.spec.schema import SCHEMA_FILES, json_schemas, language_fingerprint
from tests.conftest import ROOT

SCHEMA_DIR = ROOT / "include" / "baton" / "spec" / "schemas"  # the committed ones (the wheel carries copies)

CHANGELOG = ROOT / "CHANGELOG.md"


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_language_fingerprint_is_in_the_changelog():
    fingerprint = language_fingerprint()
    assert f"`{fingerprint}`" in CHANGELOG.read_text(), (
        f"The template language's schema changed: its fingerprint is now {fingerprint}, which CHANGELOG.md "
        "does not name. Under '## [Unreleased]' add, in the section that says what changed (### Added, "
        "### Changed, ### Deprecated or ### Removed), a line such as\n"
        f"- <what a template may now write, or no longer>; language fingerprint `{fingerprint}`.\n"
        "A key removed or renamed is a deprecation first: add it to DEPRECATIONS in "
        "include/baton/spec/deprecations.py (accepted with a warning for one minor version)."
    )


def test_only_descriptions_leave_the_fingerprint_as_it_is():
    schemas = json_schemas()
    schemas["workflow.schema.json"]["$defs"]["ForEach"]["properties"]["concurrency"]["description"] = "new"
    assert language_fingerprint(schemas) == language_fingerprint()
    schemas["workflow.schema.json"]["$defs"]["ForEach"]["properties"]["concurrency"]["maximum"] = 512
    assert language_fingerprint(schemas) != language_fingerprint()
    del schemas["workflow.schema.json"]["properties"]["description"]  # a key named like an annotation
    assert language_fingerprint(json_schemas()) != language_fingerprint(schemas)


def test_the_committed_schemas_have_the_fingerprint_of_the_models():
    committed = {name: json.loads((SCHEMA_DIR / name).read_text()) for name in SCHEMA_FILES}
    assert language_fingerprint(committed) == language_fingerprint(), (
        "include/baton/spec/schemas is stale: run `baton schema --out include/baton/spec/schemas`"
    )


def test_the_changelog_has_the_sections_of_keep_a_changelog():
    text = CHANGELOG.read_text()
    headings = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.M)
    assert headings[0] == ("Unreleased", "")
    versions = [version for version, _ in headings[1:]]
    assert _version() in versions, f"CHANGELOG.md has no '## [{_version()}] - YYYY-MM-DD' section"
    assert all(date for _, date in headings[1:]), "each release's heading is '## [X.Y.Z] - YYYY-MM-DD'"
    assert versions == sorted(versions, key=lambda v: tuple(map(int, v.split("."))), reverse=True)
    assert _version().startswith(f"{LANGUAGE_VERSION}.")
