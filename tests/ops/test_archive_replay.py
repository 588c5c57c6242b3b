"""``baton replay RUN --archive DIR``: a run that ``baton db clean --archive`` moved out of the store replays
from the archive exactly as it did from the store (SQLite and PostgreSQL); what it refuses, with its message."""

from __future__ import annotations

import gzip

import pytest

from baton.cli import main as baton
from tests.ops.test_retention import seeded  # noqa: F401 - the fixture: a store with old and recent runs


@pytest.fixture
def archived(seeded, tmp_path, capsys):  # noqa: F811 - the fixture imported above
    """The store's own replay of each old finished run, then the clean that archives and deletes them."""
    replays = {}
    second = str(list(seeded.read("old_ok"))[1].seq)  # (the store's numbers: other tests' events came first)
    for command in (["old_ok"], ["old_failed"], ["old_ok", "--until", second]):
        assert baton(["replay", *command]) == 0
        replays[tuple(command)] = capsys.readouterr().out
    archive = tmp_path / "archive"
    archive.mkdir()
    assert baton(["db", "clean", "--older-than", "30d", "--archive", str(archive)]) == 0
    assert capsys.readouterr().out.startswith("cleaned 2 runs:")
    assert baton(["replay", "old_ok"]) == 1, "gone from the store"
    capsys.readouterr()
    return archive, replays


def test_an_archived_run_replays_as_it_did_from_the_store(archived, capsys):
    archive, replays = archived
    for command, expected in replays.items():
        assert baton(["replay", *command, "--archive", str(archive)]) == 0
        assert capsys.readouterr().out == expected, command
    (until,) = [command for command in replays if "--until" in command]
    assert f"at event {until[-1]}: running" in replays[until]


def test_what_replay_from_an_archive_refuses(archived, tmp_path, capsys):
    archive, _ = archived
    assert baton(["replay", "recent", "--archive", str(archive)]) == 1
    assert capsys.readouterr().err == f"no events for run 'recent' in the archive {archive}\n"
    assert baton(["replay", "old_ok", "--archive", str(archive), "--rerun"]) == 2
    assert "--rerun, --full and --context read what the store keeps" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        baton(["replay", "old_ok", "--archive", str(tmp_path / "nowhere")])
    assert exited.value.code == 2
    assert "is not a folder: name the folder of `baton db clean --archive`" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        baton(["replay", "old_ok", "--archive", str(tmp_path)])
    assert "holds no baton_events/ folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda data: data[: len(data) // 2], "cannot be read after line"),  # truncated
        (lambda data: gzip.compress(b'{"run_id": "old_ok"\n'), ":1: not a JSON row"),
        (lambda data: gzip.compress(b"[1, 2]\n"), ":1: a row is a JSON object, not list"),
        (lambda data: b"not gzip at all", "cannot be read after line 0"),
    ],
)
def test_a_damaged_archive_file_is_named_and_nothing_is_printed_as_if_whole(archived, capsys, damage, words):
    archive, _ = archived
    (first, *_) = sorted((archive / "baton_events").iterdir())
    first.write_bytes(damage(first.read_bytes()))
    assert baton(["replay", "old_failed", "--archive", str(archive)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"baton replay: {first}") and words in captured.err, captured.err
    assert captured.err.rstrip().endswith(
        "(fix: restore the file from its copy, or move it out of the archive)"
    )
