"""Shard files and the parse deadline: a template folder that outgrows Airflow's ``dagbag_import_timeout``
loses no DAG and never all of them at once.

``baton_workflows_<k>_of_<n>.py`` loads the templates whose name's CRC-32 modulo n is k - 1; every template
loads from exactly one file, whatever shard files the folder holds (a whole set, part of one, several counts,
names that cannot be a shard's); the compensation DAG from one file. A full parse under Airflow's import
timer stops compiling at 60 % of the timeout and keeps the DAGs compiled so far (``Deadline``)."""

from __future__ import annotations

import logging
import re
import shutil
import time
import zlib
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import BundleDagBag

import baton.compile.loader as loader
import baton.compile.shards as shard_files
from baton.cli.shard import SHARD_TEXT
from baton.compile.build import COMPENSATE_DAG_ID
from baton.compile.loader import load_dags
from baton.compile.shards import (
    LOADER_FILE,
    Loaders,
    Share,
    read_shard_name,
    shard_file,
    shard_of,
    shards_needed,
)
from tests.conftest import DAGS

TEMPLATE = """workflow: {name}
version: 1
description: A generated workflow.
owner: platform
category: examples
steps:
  - id: first
    skill: plan_followups
    instruction: Plan the follow-ups.
  - id: second
    skill: plan_followups
    needs: [first]
    instruction: Plan them again.
"""
NAMES = [f"wf_{i:04d}" for i in range(50)]


def make_folder(root: Path, count: int, *, loader_file: bool = True) -> Path:
    """A dags folder with ``count`` generated templates (wf_0000 ..), the bundled roster and, unless told
    otherwise, the bundled baton_workflows.py."""
    folder = root / "dags"
    (folder / "workflows").mkdir(parents=True)
    shutil.copy(DAGS / "agents.yaml", folder / "agents.yaml")
    if loader_file:
        shutil.copy(DAGS / LOADER_FILE, folder / LOADER_FILE)
    for i in range(count):
        (folder / "workflows" / f"wf_{i:04d}.yaml").write_text(TEMPLATE.format(name=f"wf_{i:04d}"))
    return folder


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BATON_SPEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    shard_files._told.clear()  # each test sees the loader's once-per-process lines
    return make_folder(tmp_path, len(NAMES))


def shards(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_text(SHARD_TEXT)


def loaded(folder: Path) -> dict[str, list[str]]:
    """Each loader file of the folder -> the DAG ids it defines in a full parse."""
    files = sorted(p.name for p in folder.glob("baton_workflows*.py"))
    return {name: sorted(load_dags(folder / name)) for name in files}


def templates_of(dags: dict[str, list[str]]) -> list[str]:
    return sorted(dag for ids in dags.values() for dag in ids if dag != COMPENSATE_DAG_ID)


def test_shards_partition_the_templates_exactly():
    for count in range(1, 9):
        for name in NAMES:
            holders = [k for k in range(1, count + 1) if Share(frozenset({k}), count).holds(name)]
            assert holders == [zlib.crc32(name.encode()) % count + 1]
    # stable across processes and Pythons (a CRC, not the salted hash()): these are fixed numbers
    assert [shard_of(name, 4) for name in ("lead_qualification", "support_triage", "wf_0000")] == [1, 3, 1]
    # and none is empty over 50 names for these counts, so the loads below exercise every file
    assert all({shard_of(name, count) for name in NAMES} == set(range(1, count + 1)) for count in range(1, 9))


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_every_template_loads_from_exactly_one_shard_file(folder, count, caplog):
    shards(folder, *(shard_file(k, count) for k in range(1, count + 1)))
    with caplog.at_level(logging.INFO, logger="baton.compile.loader"):
        dags = loaded(folder)
    assert dags.pop(LOADER_FILE) == []  # it steps aside, and says why, once
    assert templates_of(dags) == NAMES  # each once: no name twice in the sorted list, none missing
    for k in range(1, count + 1):
        ids = dags[shard_file(k, count)]
        assert [d for d in ids if d != COMPENSATE_DAG_ID] == [n for n in NAMES if shard_of(n, count) == k]
    assert [name for name, ids in dags.items() if COMPENSATE_DAG_ID in ids] == [shard_file(1, count)]
    files = ", ".join(shard_file(k, count) for k in range(1, count + 1))
    assert [r.getMessage() for r in caplog.records] == [
        f"{LOADER_FILE} leaves the templates of the shard files {files} to them "
        "(`baton shard 1` goes back to this file alone)"
    ]
    load_dags(folder / LOADER_FILE)
    assert len(caplog.records) == 1  # once per process, not once per parse


def test_without_shard_files_the_loader_loads_every_template_as_before(folder):
    whole = sorted([*NAMES, COMPENSATE_DAG_ID])
    assert sorted(load_dags(folder / LOADER_FILE)) == whole
    assert sorted(load_dags(folder)) == whole  # 0.2's call: the folder (Path(__file__).resolve().parent)
    # a copy of 0.2's baton_workflows.py, which passes the folder, steps aside for shard files too
    shards(folder, shard_file(1, 2), shard_file(2, 2))
    assert load_dags(folder) == {}


def test_the_real_dag_processor_parse_sees_each_dag_once(folder):
    shards(folder, *(shard_file(k, 3) for k in range(1, 4)))
    bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="test")
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted([*NAMES, COMPENSATE_DAG_ID])
    by_file = {}
    for dag in bag.dags.values():
        by_file.setdefault(Path(dag.fileloc).name, []).append(dag.dag_id)
    assert sorted(by_file) == [shard_file(k, 3) for k in range(1, 4)]  # none from baton_workflows.py
    assert COMPENSATE_DAG_ID in by_file[shard_file(1, 3)]


def test_a_missing_shard_loads_from_the_single_file(folder):
    shards(folder, shard_file(1, 4), shard_file(3, 4))  # 2 and 4 deleted by hand, or being written
    dags = loaded(folder)
    assert templates_of(dags) == NAMES
    assert [d for d in dags[LOADER_FILE]] == [n for n in NAMES if shard_of(n, 4) in (2, 4)]
    assert [name for name, ids in dags.items() if COMPENSATE_DAG_ID in ids] == [shard_file(1, 4)]
    (folder / shard_file(1, 4)).unlink()  # now the single file holds shard 1, and the compensator
    dags = loaded(folder)
    assert templates_of(dags) == NAMES
    assert [name for name, ids in dags.items() if COMPENSATE_DAG_ID in ids] == [LOADER_FILE]


def test_mixed_shard_counts_resolve_to_one_set(folder, caplog):
    # a whole set of 2 and part of one of 4 (a `baton shard 4` being written): the whole set loads
    shards(folder, shard_file(1, 2), shard_file(2, 2), shard_file(1, 4), shard_file(3, 4))
    state = Loaders.of(folder)
    assert (state.count, sorted(state.present), state.others) == (
        2,
        [1, 2],
        ("baton_workflows_1_of_4.py", "baton_workflows_3_of_4.py"),
    )
    with caplog.at_level(logging.INFO, logger="baton.compile.loader"):
        dags = loaded(folder)
    assert dags[shard_file(1, 4)] == dags[shard_file(3, 4)] == dags[LOADER_FILE] == []
    assert templates_of(dags) == NAMES
    assert (
        "baton_workflows_1_of_4.py loads no template: the folder has shard files of 2 too, which load them "
        "(the largest complete set, else the largest count; so no DAG comes from two files); fix: "
        "`baton shard 2` (or the count you want) writes one set and removes the others"
    ) in [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    # no whole set: the largest count, its missing shards from the single file
    (folder / shard_file(2, 2)).unlink()
    dags = loaded(folder)
    assert Loaders.of(folder).count == 4
    assert dags[shard_file(1, 2)] == []
    assert dags[LOADER_FILE] == [n for n in NAMES if shard_of(n, 4) in (2, 4)]
    assert templates_of(dags) == NAMES
    assert sum(COMPENSATE_DAG_ID in ids for ids in dags.values()) == 1


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("baton_workflows_3_of_2.py", "shard 3 of 2: a shard is from 1 to 2"),
        ("baton_workflows_0_of_2.py", "shard 0 of 2: a shard is from 1 to 2"),
        ("baton_workflows_01_of_2.py", "a leading zero: shard 1 of 2 is baton_workflows_1_of_2.py"),
        ("baton_workflows_1_of_02.py", "a leading zero: shard 1 of 2 is baton_workflows_1_of_2.py"),
        ("baton_workflows_1_of_65.py", "65 shards: a count is from 1 to 64"),
        ("baton_workflows_1_of_0.py", "0 shards: a count is from 1 to 64"),
        ("baton_workflows_1_of_" + "9" * 200 + ".py", "999999999999 shards: a count is from 1 to 64"),
    ],
)
def test_a_name_that_cannot_be_a_shard_loads_nothing_and_says_why(folder, caplog, name, why):
    assert read_shard_name(name) == why
    shards(folder, name)
    with caplog.at_level(logging.INFO, logger="baton.compile.loader"):
        assert load_dags(folder / name) == {}
        assert sorted(load_dags(folder / LOADER_FILE)) == sorted([*NAMES, COMPENSATE_DAG_ID])  # unchanged
    assert [r.getMessage() for r in caplog.records] == [
        f"{name} loads no template: not a shard file's name ({why}); fix: remove it, or name it "
        "baton_workflows_<k>_of_<n>.py, 1 <= k <= n <= 64 (`baton shard N`)"
    ]


def test_names_that_are_no_shards_are_left_alone():
    for name in (
        "baton_workflows.py",
        "baton_workflows_1_of_2.pyc",
        "baton_workflows_a_of_2.py",
        "x_1_of_2.py",
    ):
        assert read_shard_name(name) is None
    assert read_shard_name("baton_workflows_64_of_64.py") == (64, 64)
    assert read_shard_name("baton_workflows_1_of_1.py") == (1, 1)


def test_a_task_parse_of_another_shards_dag_compiles_nothing(folder, monkeypatch):
    shards(folder, shard_file(1, 2), shard_file(2, 2))
    name = next(n for n in NAMES if shard_of(n, 2) == 2)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", name)
    assert list(load_dags(folder / shard_file(2, 2))) == [name]
    compiled = []
    monkeypatch.setattr(loader, "compile_folder", lambda *a, **k: compiled.append(a) or ({}, []))
    assert load_dags(folder / shard_file(1, 2)) == {}
    assert load_dags(folder / LOADER_FILE) == {}
    assert compiled == []  # neither read the roster nor any template
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", f"{name}__sensor")  # a sensor: its template's shard
    assert load_dags(folder / shard_file(1, 2)) == {}
    # the compensator's task: from the one file that defines it
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", COMPENSATE_DAG_ID)
    found = {
        name: list(load_dags(folder / name)) for name in (LOADER_FILE, shard_file(1, 2), shard_file(2, 2))
    }
    assert found == {LOADER_FILE: [], shard_file(1, 2): [COMPENSATE_DAG_ID], shard_file(2, 2): []}
    assert compiled == []


def test_a_shard_with_no_template_still_gives_the_compensator_once(tmp_path, monkeypatch):
    monkeypatch.setenv("BATON_SPEC_CACHE", "off")
    folder = make_folder(tmp_path, 1)
    assert shard_of("wf_0000", 5) == 5
    shards(folder, *(shard_file(k, 5) for k in range(1, 6)))
    dags = loaded(folder)
    assert dags[shard_file(1, 5)] == [COMPENSATE_DAG_ID]
    assert dags[shard_file(5, 5)] == ["wf_0000"]
    (folder / "workflows" / "wf_0000.yaml").unlink()
    assert loaded(folder)[shard_file(1, 5)] == []  # no template, no compensator (as baton_workflows.py alone)


# The deadline: Airflow's own parse of a folder whose templates take longer than the timeout allows.

STOPPED = re.compile(
    r"baton_workflows\.py: (?P<left>\d+) of (?P<all>\d+) template\(s\) left out, from (?P<first>wf_\d+\.yaml) on "
    r"\(in file-name order\): the parse had used 60% of \[core\] dagbag_import_timeout \(8 s\) after "
    r"(?P<done>\d+) template\(s\) in (?P<seconds>\d+\.\d) s \((?P<ms>\d+) ms each\), and stopped so that their "
    r"DAGs load rather than none; fix: run `baton shard (?P<shards>\d+)` \(each file then holds what fits with "
    r"room to spare\)"
)


TIMEOUT = 8  # [core] dagbag_import_timeout for the test: 2 s left too little after the deadline under load
MANY = 6000  # templates that a parse with the cache off cannot compile in 60 % of it (~2 ms each when idle)


def test_a_parse_past_the_deadline_keeps_the_first_templates_dags(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("BATON_SPEC_CACHE", "off")  # a cold cache: each template validated (~2 ms or more)
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", str(TIMEOUT))
    # more than fit even on a fast day (600 in 2 s did: all within 1.2 s, no stop, no message)
    folder = make_folder(tmp_path, MANY)
    names = sorted(path.stem for path in (folder / "workflows").iterdir())
    with caplog.at_level(logging.ERROR, logger="baton.compile.loader"):
        started = time.monotonic()
        bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="test")
        took = time.monotonic() - started
    assert bag.import_errors == {}  # the timeout did not strike: the file's DAGs load
    messages = [r.getMessage() for r in caplog.records if r.name == "baton.compile.loader"]
    assert len(messages) == 1, messages
    found = STOPPED.fullmatch(messages[0])
    assert found, messages[0]
    done, left = int(found["done"]), int(found["left"])
    assert (done + left, int(found["all"])) == (MANY, MANY)
    assert 0 < done < MANY and found["first"] == f"{names[done]}.yaml"
    assert sorted(bag.dag_ids) == sorted([*names[:done], COMPENSATE_DAG_ID])  # the first ones, in name order
    # 60 % of the timeout, less what came before (and one template)
    assert 0.25 * TIMEOUT <= float(found["seconds"]) <= 0.95 * TIMEOUT and took < TIMEOUT
    # the count comes from the time measured; the message shows it to a tenth of a second, so the count is one
    # of those the shown time allows (a clean-clone run: 1.2 s shown, 3 shards from the 1.16 s measured, 4
    # from 1.2 s)
    shown = float(found["seconds"])
    allowed = {max(2, shards_needed((shown + d) / done, MANY, TIMEOUT)) for d in (-0.05, 0.0, 0.05)}
    assert int(found["shards"]) in set(range(min(allowed), max(allowed) + 1)), (found["shards"], allowed)
    # the UI shows it among the file's import warnings
    warned = bag.captured_warnings[str(folder / LOADER_FILE)]
    assert len(warned) == 1 and "DeadlineWarning: baton_workflows.py: " in warned[0]


def test_no_deadline_without_a_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv("BATON_SPEC_CACHE", "off")
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "0")  # Airflow sets no timer: nothing to fear
    folder = make_folder(tmp_path, 300)
    bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="test")
    assert len(bag.dag_ids) == 301 and bag.import_errors == {}


def test_shards_needed_leaves_room():
    assert shards_needed(0.01, 1000, 30.0) == 2  # 10 s (12 s with the hash's unevenness) of 9 s per file
    assert shards_needed(0.001, 1000, 30.0) == 1
    assert shards_needed(0.0075, 1000, 30.0) == 1  # 7.5 s: fits, 9 s with the unevenness
    assert shards_needed(0.0076, 1000, 30.0) == 2
    assert shards_needed(0.02, 10_000, 30.0) == 27
