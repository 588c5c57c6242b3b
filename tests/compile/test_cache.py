"""The validation cache: a hit gives exactly what validating gives; any change that matters is a miss."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from airflow.serialization.serialized_objects import DagSerialization

import baton.compile.cache as cache_module
from baton.compile.cache import SpecCache, default_folder
from baton.compile.loader import compile_folder

BROKEN = Path(__file__).parents[1] / "spec" / "broken"


@pytest.fixture
def folder(tmp_path, dags_folder, monkeypatch) -> Path:
    shutil.copytree(dags_folder, tmp_path / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("BATON_SPEC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "dags"


def _serialized(dags):
    ignored = {"fileloc", "relative_fileloc", "last_loaded"}
    return {
        dag_id: {k: v for k, v in DagSerialization.serialize_dag(dag).items() if k not in ignored}
        for dag_id, dag in dags.items()
    }


BUNDLED = sorted(p.stem for p in (Path(__file__).parents[2] / "dags" / "workflows").glob("*.yaml"))
SENSOR_DAGS = ["compliance_monitoring__sensor", "lead_qualification__sensor", "revenue_milestone__sensor"]


def _cache_files(folder: Path) -> int:
    return len(list((folder.parent / "cache").glob("*.json")))


def test_a_hit_builds_exactly_the_dags_validation_builds(folder, monkeypatch):
    fresh, _ = compile_folder(folder)
    assert _cache_files(folder) == len(BUNDLED)
    hit, errors = compile_folder(folder)
    assert errors == []
    assert _serialized(hit) == _serialized(fresh)
    monkeypatch.setenv("BATON_SPEC_CACHE", "off")
    uncached, _ = compile_folder(folder)
    assert _serialized(uncached) == _serialized(fresh)


def test_broken_templates_are_cached_with_their_issues(folder):
    shutil.copy(BROKEN / "unknown_agent.yaml", folder / "workflows")
    _, first = compile_folder(folder)
    _, second = compile_folder(folder)
    assert [str(e) for e in second] == [str(e) for e in first]
    assert "workflows/unknown_agent.yaml:9: steps[1].agent: unknown agent 'sales_bot'" in str(second[0])


def test_editing_a_template_is_a_miss(folder):
    compile_folder(folder)
    path = folder / "workflows" / "lead_qualification.yaml"
    path.write_text(path.read_text().replace("agent: marketing_lead_generator", "agent: sales_bot"))
    dags, errors = compile_folder(folder)
    assert "lead_qualification" not in dags
    assert "steps[0].agent: unknown agent 'sales_bot'" in str(errors[0])


def test_editing_the_roster_is_a_miss(folder):
    compile_folder(folder)
    roster = folder / "agents.yaml"
    roster.write_text(roster.read_text().replace("name: finance_revenue_tracker", "name: revenue_tracker"))
    dags, errors = compile_folder(folder)
    lead = {"lead_qualification", "lead_qualification__sensor"}
    assert sorted(dags) == sorted((set(BUNDLED) | set(SENSOR_DAGS)) - lead)
    assert "steps[1].agent: unknown agent 'finance_revenue_tracker'" in str(errors[0])


def test_a_change_of_batons_code_is_a_miss(folder, monkeypatch):
    cache = SpecCache(folder.parent / "cache")
    before = cache.key("workflows/a.yaml", b"x", b"y")
    monkeypatch.setattr(cache_module, "code_fingerprint", lambda: b"another version of Baton")
    assert cache.key("workflows/a.yaml", b"x", b"y") != before
    assert cache.key("workflows/b.yaml", b"x", b"y") != cache.key("workflows/a.yaml", b"x", b"y")


def test_an_unwritable_cache_is_no_cache(tmp_path, dags_folder, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("BATON_SPEC_CACHE", str(blocker / "cache"))
    dags, errors = compile_folder(dags_folder)
    assert (sorted(dags), errors) == (sorted(BUNDLED + SENSOR_DAGS), [])


def test_default_folder_is_in_airflow_home_and_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.delenv("BATON_SPEC_CACHE", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert default_folder() == tmp_path / "baton" / "spec-cache"
    monkeypatch.setenv("BATON_SPEC_CACHE", "off")
    assert default_folder() is None


def test_the_errors_file_takes_a_cached_healthy_template_as_healthy_without_reading_it(folder, monkeypatch):
    import baton.compile.loader as loader

    compile_folder(folder)  # baton_workflows.py: validates, plans, builds, and caches

    def unread(*args, **kwargs):
        raise AssertionError("a template known healthy was read again")

    monkeypatch.setattr(loader, "load_workflow", unread)
    monkeypatch.setattr(loader, "plan_workflow", unread)
    monkeypatch.setattr(loader.Workflow, "model_validate", unread)
    healthy, errors = compile_folder(folder, build=False)  # baton_template_errors.py
    assert (sorted(healthy), errors) == (BUNDLED, [])
    assert set(healthy.values()) == {None}


def test_touching_a_source_file_of_baton_is_a_miss(tmp_path, monkeypatch):
    package = tmp_path / "baton"
    (package / "spec").mkdir(parents=True)
    (package / "spec" / "models.py").write_text("A = 1\n")
    monkeypatch.setattr(cache_module, "PACKAGE", package)
    cache_module.code_fingerprint.cache_clear()
    first = cache_module.code_fingerprint()
    cache_module.code_fingerprint.cache_clear()
    assert cache_module.code_fingerprint() == first  # nothing changed: the same key
    (package / "spec" / "models.py").write_text("A = 2\n")  # same size, a later modification time
    stat = (package / "spec" / "models.py").stat()

    os.utime(package / "spec" / "models.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000))
    cache_module.code_fingerprint.cache_clear()
    edited = cache_module.code_fingerprint()
    (package / "new_module.py").write_text("")
    cache_module.code_fingerprint.cache_clear()
    added = cache_module.code_fingerprint()
    cache_module.code_fingerprint.cache_clear()  # the real package's, for the tests after this one
    assert len({first, edited, added}) == 3
