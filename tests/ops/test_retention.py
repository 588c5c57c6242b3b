"""``baton db clean`` on a real store (SQLite and PostgreSQL): which runs go and which stay (open, in an open
incident, recent, of an undecided rollout), the rows of each table, the archive read back equal to the rows
deleted, the dry run changing nothing, a second clean refused while one holds the lock, and each hostile
option refused with its message (exit 2)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, insert, select

from baton.cli import main as baton
from baton.events import schema
from baton.events.event import Event
from baton.ops import retention_archive
from baton.ops.monitor.state import save_state
from baton.ops.retention import clean_lock

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
TABLES = ("baton_events", "baton_context", "baton_task_state", "baton_agent_calls", "baton_budget_ledger",
          "baton_run_summary")  # fmt: skip


def _run(run: str, workflow: str, at: datetime, end: str | None, agent: str = "scout") -> list[Event]:
    """A run started at ``at``: a step's try, a model call, and its end (``end``: None leaves it open)."""
    step = {"run_id": run, "workflow": workflow, "step": "s", "try_number": 1, "agent": agent}
    events = [
        Event(type="run.started", run_id=run, workflow=workflow, ts=at),
        Event(type="step.started", **step, ts=at + timedelta(seconds=1)),
        Event(
            type="model.called",
            **step,
            ts=at + timedelta(seconds=2),
            discriminator=run,
            payload={
                "model": "m",
                "input_tokens": 5,
                "output_tokens": 5,
                "cost": 0.1,
                "prompt_sha256": "0" * 64,
                "prompt_chars": 5,
            },
        ),  # fmt: skip
        Event(type="step.succeeded", **step, ts=at + timedelta(seconds=3)),
    ]
    if end:
        events.append(Event(type=end, run_id=run, workflow=workflow, ts=at + timedelta(seconds=4)))
    return events


def _seed(store) -> None:
    events = [
        *_run("old_ok", "leads", OLD, "run.succeeded"),
        *_run("old_failed", "leads", OLD + timedelta(hours=25), "run.failed"),
        *_run("old_open", "leads", OLD, None),
        *_run("old_incident", "report", OLD, "run.succeeded", agent="writer"),
        *_run("recent", "leads", NOW - timedelta(days=1), "run.succeeded"),
        *_run("old_rollout", "pricing", OLD, "run.succeeded"),
        Event(type="version.assigned", run_id="old_rollout", workflow="pricing", step="baton_version", ts=OLD,
              payload={"rollout": "pricing.v1-v2", "arm": "canary", "share": 5.0, "version": 2}),
    ]  # fmt: skip
    store.append(events)
    with store.engine.begin() as conn:
        for run in ("old_ok", "old_open", "recent"):
            conn.execute(insert(schema.context_versions).values(
                run_id=run, key="k", version=1, value={"v": run}, writer="s", ts=OLD))  # fmt: skip
            conn.execute(insert(schema.budget_ledger).values(
                budget="per-run", window=f"run:{run}", holder=f"{run}/s#1 pid 1@h", state="settled",
                cost=0.1, tokens=10, expires_at=OLD, updated_at=OLD))  # fmt: skip
        conn.execute(insert(schema.budget_ledger).values(
            budget="daily", window=OLD.strftime("%Y-%m-%d"), holder="old_ok/s#1 pid 1@h", state="settled",
            cost=0.1, tokens=10, expires_at=OLD, updated_at=OLD))  # fmt: skip
        conn.execute(delete(schema.monitor_state).where(schema.monitor_state.c.name == "book"))
        save_state(conn, "book", {"incidents": {"error_rate@agent:writer": {
            "id": "i1", "where": "agent:writer", "status": "open"}}}, NOW)  # fmt: skip
    store.catch_up()


def _rows(store) -> dict[str, list[dict]]:
    out = {}
    with store.engine.connect() as conn:
        for name in TABLES:
            table = schema.metadata.tables[name]
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).mappings()
            out[name] = [retention_archive.as_json(dict(row)) for row in rows]
    return out


def _runs(store) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.scalars(select(schema.events.c.run_id).distinct()))


@pytest.fixture
def seeded(store, tmp_path, monkeypatch):
    url = store.engine.url.set(drivername=store.engine.url.drivername.split("+")[0])
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", url.render_as_string(hide_password=False))
    _seed(store)
    yield store
    with store.engine.begin() as conn:
        conn.execute(delete(schema.monitor_state).where(schema.monitor_state.c.name == "book"))


def _key(row: dict) -> str:
    return json.dumps(row, sort_keys=True)


def _of(rows: list[dict], *runs: str) -> list[dict]:
    return [r for r in rows if r.get("run_id", (r.get("window") or "").removeprefix("run:")) in runs]


def test_clean_archives_then_deletes_only_old_finished_runs(seeded, tmp_path, capsys):
    before = _rows(seeded)
    archive = tmp_path / "archive"
    archive.mkdir()
    assert baton(["db", "clean", "--older-than", "30d", "--archive", str(archive)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == (
        "cleaned 2 runs: 10 events, 1 context versions, 2 task states, 4 agent calls, "
        f"1 budget ledger rows, 2 run summaries (archived to {archive})"
    )
    # the open run, the run of the agent an open incident is on, the recent run and the undecided
    # rollout's run are kept; the incident's and the rollout's own records are not runs that end
    assert _runs(seeded) == {"old_open", "old_incident", "recent", "old_rollout"}
    after = _rows(seeded)
    for name in TABLES:
        gone = _of(before[name], "old_ok", "old_failed")
        assert [r for r in before[name] if r not in gone] == after[name], name
        archived = retention_archive.read(archive, name)
        assert sorted(map(_key, archived)) == sorted(map(_key, gone)), name
    # the day window's row (its spend, not the run's) is kept
    assert any(r["window"] == OLD.strftime("%Y-%m-%d") for r in after["baton_budget_ledger"])
    # one file per table and day of the runs' end, complete gzip, no temporary file left
    days = {OLD.date().isoformat(), (OLD + timedelta(hours=25)).date().isoformat()}
    assert {p.name for p in (archive / "baton_events").iterdir()} == {f"{d}.jsonl.gz" for d in days}
    with gzip.open(archive / "baton_events" / f"{OLD.date().isoformat()}.jsonl.gz", "rt") as f:
        assert {json.loads(line)["run_id"] for line in f} == {"old_ok"}
    # a second clean finds nothing more
    assert baton(["db", "clean", "--older-than", "30d"]) == 0
    assert capsys.readouterr().out.startswith("cleaned 0 runs: 0 events,")


def test_resolved_incident_and_decided_rollout_let_their_runs_go(seeded, capsys):
    seeded.append([Event(type="rollout.completed", run_id="rollout:pricing.v1-v2", workflow="pricing",
                         step="baton_version", payload={"rollout": "pricing.v1-v2", "share": 100.0,
                                                        "at": OLD.isoformat()})])  # fmt: skip
    with seeded.engine.begin() as conn:
        save_state(conn, "book", {"incidents": {}}, NOW)
    assert baton(["db", "clean", "--older-than", "30d"]) == 0
    assert capsys.readouterr().out.startswith("cleaned 4 runs:")
    assert _runs(seeded) == {"old_open", "recent", "rollout:pricing.v1-v2"}


def test_dry_run_changes_nothing(seeded, tmp_path, capsys):
    before = _rows(seeded)
    archive = tmp_path / "archive"
    archive.mkdir()
    assert baton(["db", "clean", "--older-than", "30d", "--dry-run", "--archive", str(archive)]) == 0
    assert capsys.readouterr().out.strip() == (
        "would clean 2 runs: 10 events, 1 context versions, 2 task states, 4 agent calls, "
        "1 budget ledger rows, 2 run summaries"
    )
    assert _rows(seeded) == before
    assert list(archive.iterdir()) == []


def test_a_second_clean_is_refused_while_one_runs(seeded, capsys):
    before = _rows(seeded)
    with clean_lock(seeded.engine):
        assert baton(["db", "clean", "--older-than", "30d"]) == 2
    assert capsys.readouterr().err.strip() == (
        "baton db clean: error: another `baton db clean` is running on this store (it holds the clean lock): "
        "wait for it to finish, then run this one again"
    )
    assert _rows(seeded) == before
    assert baton(["db", "clean", "--older-than", "30d"]) == 0  # the lock was let go


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "0s"], "argument --older-than: '0s' is out of range: from 1s to 3660d"),
        (["--older-than=-5d"], "argument --older-than: '-5d' is not a duration: write e.g. 30d, 12h or 90m"),
        (["--older-than", str(10**40)],
         "argument --older-than: '1000000000000000000000000000000000000000' is not a duration: "
         "write e.g. 30d, 12h or 90m"),
        (["--older-than", "99999999d"],
         "argument --older-than: '99999999d' is out of range: from 1s to 3660d"),
        (["--older-than", "ten days"],
         "argument --older-than: 'ten days' is not a duration: write e.g. 30d, 12h or 90m"),
        (["--older-than", "9" * 100_000],
         f"argument --older-than: '{'9' * 40}' is not a duration: write e.g. 30d, 12h or 90m"),
        (["--older-than", "1d", "--archive", "/no/such/folder"],
         "argument --archive: '/no/such/folder' does not exist: create the folder first (mkdir -p)"),
        (["--older-than", "1d", "--archive", "/proc"],
         "argument --archive: '/proc' is not writable (No such file or directory): name a folder this user "
         "can write to"),
        (["--older-than", "1d"], None),  # (the file case: below, with its path)
    ],
)  # fmt: skip
def test_hostile_options_are_refused(seeded, tmp_path, capsys, args, message):
    if message is None:
        (tmp_path / "f").write_text("x")
        path = str(tmp_path / "f")
        args, message = (
            [*args, "--archive", path],
            f"argument --archive: '{path}' is a file, not a folder: name a folder",
        )
    before = _rows(seeded)
    with pytest.raises(SystemExit) as exit:
        baton(["db", "clean", *args])
    assert exit.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"baton db clean: error: {message}"
    assert _rows(seeded) == before


def test_batches_leave_whole_runs(seeded, monkeypatch, capsys):
    """Many runs over several batches: every old finished one goes with all of its rows."""
    monkeypatch.setattr("baton.ops.retention.BATCH", 3)
    seeded.append(
        [e for n in range(8) for e in _run(f"bulk{n}", "bulk", OLD + timedelta(minutes=n), "run.failed")]
    )
    seeded.catch_up()
    assert baton(["db", "clean", "--older-than", "30d"]) == 0
    assert capsys.readouterr().out.startswith("cleaned 10 runs: 50 events,")
    with seeded.engine.connect() as conn:
        left = conn.scalar(
            select(func.count()).select_from(schema.events).where(schema.events.c.workflow == "bulk")
        )
    assert left == 0
