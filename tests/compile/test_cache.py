"""The validation cache: a hit gives exactly what validating gives; any change that matters is a miss."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from contextlib import closing
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
# the versions the bundled templates roll out to (dags/versions/): cached beside them
VERSIONS = sorted(p.name for p in (Path(__file__).parents[2] / "dags" / "versions").glob("*.yaml"))
SENSOR_DAGS = ["compliance_monitoring__sensor", "lead_qualification__sensor", "revenue_milestone__sensor"]


def _cache_files(folder: Path) -> int:
    with closing(sqlite3.connect(folder.parent / "cache" / "cache.sqlite3")) as db:
        return db.execute("SELECT count(*) FROM entries_v2").fetchone()[0]


def test_a_hit_builds_exactly_the_dags_validation_builds(folder, monkeypatch):
    fresh, _ = compile_folder(folder)
    assert _cache_files(folder) == len(BUNDLED) + len(VERSIONS)
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
    cache = SpecCache(folder.parent / "cache")  # each parse's process has a cache of its own
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

    planned = loader.plan_workflow

    def unplanned(*args, group: str = "", **kwargs):
        if not group:  # a rollout's new version is planned to check it can take the current one's runs
            raise AssertionError("a template known healthy was read again")
        return planned(*args, group=group, **kwargs)

    monkeypatch.setattr(loader, "read_workflow", unread)
    monkeypatch.setattr(loader, "plan_workflow", unplanned)
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
    # what no module lives in is not walked: the pages' npm packages, bytecode, hidden folders
    for folder in ("plugin/ui/node_modules/echarts", "spec/__pycache__", ".git"):
        (package / folder).mkdir(parents=True)
        (package / folder / "setup.py").write_text("")
    cache_module.code_fingerprint.cache_clear()
    beside = cache_module.code_fingerprint()
    (package / "plugin" / "ui" / "views.py").write_text("")  # a module beside node_modules is one
    cache_module.code_fingerprint.cache_clear()
    ui = cache_module.code_fingerprint()
    cache_module.code_fingerprint.cache_clear()  # the real package's, for the tests after this one
    assert len({first, edited, added, ui}) == 4 and beside == added


@pytest.fixture
def settled(monkeypatch):
    """Files count as settled at once (RACY: a file younger than two seconds is keyed by its bytes)."""
    monkeypatch.setattr(cache_module, "RACY", 0.0)


def test_a_template_the_cache_knows_is_not_read_again(folder, settled, monkeypatch):
    import baton.compile.loader as loader

    fresh, _ = compile_folder(folder)

    def unread(path, name, *args):
        if name.startswith("workflows/"):
            raise AssertionError(f"{name} was read again")
        return read_bytes(path, name, *args)

    read_bytes = loader.read_bytes
    monkeypatch.setattr(loader, "read_bytes", unread)
    hit, errors = compile_folder(folder)
    assert (errors, _serialized(hit)) == ([], _serialized(fresh))


def test_a_same_size_edit_with_its_old_modification_time_put_back_is_a_miss(folder, settled):
    path = folder / "workflows" / "lead_qualification.yaml"
    old = path.stat()
    compile_folder(folder)
    text = path.read_text()
    edited = text.replace("agent: marketing_lead_generator", "agent: marketing_lead_generatos")
    assert len(edited) == len(text) and edited != text
    path.write_text(edited)
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))  # as `cp -p` or an unpacked archive would
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    dags, errors = compile_folder(folder)  # the change time moved: a miss, validated again
    assert "lead_qualification" not in dags
    assert "unknown agent 'marketing_lead_generatos'" in str(errors[0])


def test_a_file_written_a_moment_ago_is_keyed_by_its_bytes(folder):
    cache = SpecCache(folder.parent / "cache")
    path = folder / "workflows" / "lead_qualification.yaml"
    assert cache.stat_key("workflows/lead_qualification.yaml", path.stat(), b"") is None  # just copied
    old = time.time() - 60
    os.utime(path, (old, old))
    assert cache.stat_key("workflows/lead_qualification.yaml", path.stat(), b"") is None  # ctime: now


def test_a_changed_limit_is_a_miss(folder, settled, monkeypatch):
    assert compile_folder(folder)[1] == []
    monkeypatch.setenv("BATON_MAX_YAML_DEPTH", "3")  # the cached verdicts were reached under 64
    dags, errors = compile_folder(folder)
    assert all("nesting deeper than 3 levels of mappings and lists" in str(e) for e in errors)
    files = sorted(issue.file for error in errors for issue in error.issues)
    templates = [f"workflows/{name}.yaml" for name in BUNDLED if name != "lead_followup"]
    assert files == sorted(["agents.yaml", *templates])  # lead_followup nests no deeper than 3
    assert sorted(dags) == ["lead_followup"]


def test_a_damaged_cache_file_is_started_again(folder, caplog):
    (folder.parent / "cache").mkdir()
    (folder.parent / "cache" / "cache.sqlite3").write_bytes(b"not a database " * 1000)
    dags, errors = compile_folder(folder)
    assert (sorted(dags), errors) == (sorted(BUNDLED + SENSOR_DAGS), [])
    assert "is damaged (file is not a database); starting it again" in caplog.text
    assert _cache_files(folder) == len(BUNDLED) + len(VERSIONS)


WRITER = """
import sys
from pathlib import Path
from baton.compile.cache import Entry, SpecCache

folder, me = Path(sys.argv[1]), sys.argv[2]
for round in range(20):
    cache = SpecCache(folder)
    for i in range(40):
        key = f"{me}-{round}-{i}"
        assert cache.get(key) is None
        cache.put(key, Entry(None, '{"workflow": "' + key + '"}', {"a": ["b"]}))
    cache.flush()
    assert cache.folder is not None, "the cache was turned off"
"""


def test_processes_writing_the_cache_at_once_lose_nothing(tmp_path):
    """Six processes (as the DAG processor's and the task processes') each write 800 entries in 20
    parses at the same moment: every entry is there, each whole."""
    import subprocess
    import sys

    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"p{n}"], stderr=subprocess.PIPE)
        for n in range(6)
    ]
    assert [(w.wait(timeout=120), w.stderr.read().decode()[-500:]) for w in writers] == [(0, "")] * 6
    cache = SpecCache(tmp_path)
    assert cache.get("p3-19-39") == cache_module.Entry(None, '{"workflow": "p3-19-39"}', {"a": ["b"]})
    with closing(sqlite3.connect(tmp_path / "cache.sqlite3")) as db:
        assert db.execute("SELECT count(*), count(DISTINCT workflow) FROM entries_v2").fetchone() == (
            4800,
            4800,
        )


def test_another_set_of_extensions_is_a_miss(folder, monkeypatch):
    """The extensions register skills a template may name: with another BATON_EXTENSIONS a template is
    checked again (an extension taken away must not leave a template that names its skill healthy)."""
    monkeypatch.setenv("BATON_EXTENSIONS", "demo.skills")
    before = SpecCache(folder.parent / "cache").key("workflows/a.yaml", b"x", b"y")
    monkeypatch.setenv("BATON_EXTENSIONS", "")
    assert SpecCache(folder.parent / "cache").key("workflows/a.yaml", b"x", b"y") != before


def test_a_template_keyed_by_its_bytes_while_racy_is_found_by_them_once_it_is_not(folder, monkeypatch):
    """A parse within RACY seconds of a template's write keys it by its bytes; the next parse keys it by
    what stat says, and finds it by its bytes instead of validating it again (then by stat)."""
    import baton.compile.cache as cache_module
    import baton.compile.loader as loader

    monkeypatch.setattr(cache_module, "RACY", 1e9)  # every file just written: keyed by its bytes
    compile_folder(folder)

    def unread(*args, **kwargs):
        raise AssertionError("a template known healthy was validated again")

    monkeypatch.setattr(cache_module, "RACY", 0.0)  # ... and now long unchanged: keyed by stat
    monkeypatch.setattr(loader, "read_workflow", unread)
    monkeypatch.setattr(loader.Workflow, "model_validate", unread)
    dags, errors = compile_folder(folder)
    assert (sorted(dags), errors) == (sorted(BUNDLED + SENSOR_DAGS), [])
    read, real = [], loader.read_bytes
    monkeypatch.setattr(loader, "read_bytes", lambda path, name: read.append(name) or real(path, name))
    healthy, errors = compile_folder(folder, build=False)  # known by stat now: not even read
    assert (sorted(healthy), errors) == (BUNDLED, [])
    assert [name for name in read if name.startswith("workflows/")] == []


def test_a_cache_locked_by_another_process_is_used_no_longer_but_not_started_again(tmp_path, monkeypatch):
    """A lock held past LOCK_WAIT turns the cache off for this parse; it is not damage: the file (and
    what the process holding it writes) stays. "database is locked" is a DatabaseError too, and was taken
    for damage: the file was deleted under the process that held it."""
    monkeypatch.setattr(cache_module, "LOCK_WAIT", 0.3)
    holder = sqlite3.connect(tmp_path / "cache.sqlite3", isolation_level=None)  # a rollback journal
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE mine (x)")
    holder.execute("INSERT INTO mine VALUES (1)")
    cache = SpecCache(tmp_path)
    assert cache.get("anything") is None and cache.folder is None  # off for this parse
    holder.execute("COMMIT")
    holder.close()
    with closing(sqlite3.connect(tmp_path / "cache.sqlite3")) as db:
        assert db.execute("SELECT x FROM mine").fetchall() == [(1,)]
