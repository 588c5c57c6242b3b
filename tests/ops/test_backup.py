"""Backup and restore of Baton's store (issue 56), the way docs/production.md says: ``pg_dump`` of the store's
database, ``pg_restore`` into a new database, the connection pointed at it. After a real ``dag.test()`` run
and its database dropped, the restored store holds every row it held, ``baton verify`` finds nothing amiss
with its runs, before and after, the run replays to the same text and the store goes on appending. A dump
taken while batches are appended restores each batch whole or not at all; a truncated dump restores
nothing; a restore over a live store is refused and leaves it as it was. Real PostgreSQL, real ``pg_dump``
and ``pg_restore``."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, select, text

from baton.cli import main as baton
from baton.events import EventStore, schema
from baton.events.event import Event
from baton.events.migrations import upgrade
from baton.events.store import engine_for
from tests.conftest import FIXTURE_DAGS, PG_SERVER, pg_database, run_dag_test_in_subprocess

EVENTS = schema.events.name
RUN_ID = list(schema.events.columns.keys()).index("run_id")  # in a snapshot's rows
RUN_DAG = "shared_context"  # a fixture workflow: three steps sharing context, on the offline model


def _libpq(url: str) -> str:
    """The URL as libpq (pg_dump, pg_restore) and an Airflow connection read it: no SQLAlchemy driver."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# The commands docs/production.md gives ("Backup and restore"; tests/test_docs.py checks its options are these):
# the custom format, which pg_restore reads table by table; a restore in one transaction, stopped by its first
# error, so that a broken dump leaves nothing behind.
DUMP = ["pg_dump", "--format=custom", "--no-owner"]
RESTORE = ["pg_restore", "--no-owner", "--exit-on-error", "--single-transaction"]


def _tool(command: list[str]) -> list[str]:
    if shutil.which(command[0]) is None:  # these tests must run: say what is missing instead of skipping
        pytest.fail(
            f"{command[0]} is needed: PostgreSQL's client programs, beside the server scripts/test.sh uses"
        )
    return command


def pg_dump(url: str, to: Path) -> None:
    done = subprocess.run(
        [*_tool(DUMP), f"--file={to}", _libpq(url)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def pg_restore(dump: Path, url: str) -> subprocess.CompletedProcess:
    """``dump`` restored into ``url``'s database."""
    return subprocess.run(
        [*_tool(RESTORE), f"--dbname={_libpq(url)}", str(dump)], capture_output=True, text=True, timeout=120
    )


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table of the store, in primary-key order."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table.name: [tuple(row) for row in conn.execute(select(table).order_by(*table.primary_key))]
                for table in schema.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def _use(monkeypatch, url: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", _libpq(url))


def _said(capsys, code: int, *args: str) -> str:
    assert baton(list(args)) == code
    return capsys.readouterr().out


def _verified(capsys, runs: set[str]) -> list[dict]:
    """What ``baton verify --dry-run`` finds about ``runs`` (it exits 1 on any finding, of any run)."""
    assert baton(["verify", "--dry-run", "--format", "json"]) in (0, 1)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and "summary" in rows[-1], rows
    return [row for row in rows if row.get("run_id") in runs]


@pytest.fixture(scope="module")
def backed_up(airflow_db, tmp_path_factory):
    """A store on PostgreSQL with a real run in it, its snapshot, and its dump."""
    with pg_database("baton_backup") as url:
        upgrade(engine_for(url))
        run, _, output = run_dag_test_in_subprocess(
            FIXTURE_DAGS, "baton-test-fixtures", RUN_DAG, env={"AIRFLOW_CONN_BATON_STORE": _libpq(url)}
        )
        assert run.state == "success", output[-3000:]
        dump = tmp_path_factory.mktemp("backup") / "store.dump"
        pg_dump(url, dump)
        yield url, run.run_id, snapshot(url), dump


def test_a_dropped_store_restored_from_its_dump_holds_every_row_and_replays_the_same(
    backed_up, monkeypatch, capsys
):
    url, run_id, rows, dump = backed_up
    assert len(rows[EVENTS]) > 10 and rows[schema.context_versions.name], "the run wrote its history"
    _use(monkeypatch, url)
    replayed = _said(capsys, 0, "replay", run_id, "--full")
    stored = {row[RUN_ID] for row in rows[EVENTS]}  # (Airflow's record has other tests' runs too, which
    assert run_id in replayed and run_id in stored  # another process may add to while this one runs)
    assert _verified(capsys, stored) == []  # the store agrees with Airflow's record

    engine = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:  # the disaster: the store's database is gone
        conn.execute(text(f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)'))
    engine.dispose()
    with pg_database("baton_restored") as restored:
        done = pg_restore(dump, restored)
        assert done.returncode == 0, done.stderr
        assert snapshot(restored) == rows
        _use(monkeypatch, restored)
        assert _said(capsys, 0, "replay", run_id, "--full") == replayed
        assert _verified(capsys, stored) == []

        # ... and it goes on: the next event is numbered after every restored one
        store = EventStore(engine_for(restored))
        store.append([Event(type="run.started", run_id="after_restore", workflow=RUN_DAG)])
        (after,) = store.read("after_restore")
        assert after.seq > max(row[0] for row in rows[EVENTS])


def test_a_dump_taken_while_batches_are_appended_restores_each_batch_whole_or_not_at_all(tmp_path):
    batch, failures = 40, []
    with pg_database("baton_busy") as url, pg_database("baton_busy_restored") as restored:
        upgrade(engine_for(url))
        store, stop, first = EventStore(engine_for(url)), threading.Event(), threading.Event()

        def append() -> None:
            try:
                n = 0
                while not stop.is_set() or n < 3:  # at least three batches, whatever the timing
                    run = f"busy_{n}"
                    store.append(
                        [
                            Event(type="step.started", run_id=run, workflow="w", step=f"s{i}")
                            for i in range(batch)
                        ]
                    )
                    n += 1
                    first.set()
            except Exception as error:  # fails the test below
                failures.append(error)

        writer = threading.Thread(target=append)
        writer.start()
        try:
            assert first.wait(timeout=60), failures  # the dump starts with at least one batch in
            pg_dump(url, tmp_path / "busy.dump")
        finally:
            stop.set()
            writer.join(timeout=60)
        assert not writer.is_alive() and failures == []
        done = pg_restore(tmp_path / "busy.dump", restored)
        assert done.returncode == 0, done.stderr
        engine = create_engine(restored)
        with engine.connect() as conn:
            counts = conn.execute(
                text(f"SELECT run_id, count(*) FROM {EVENTS} WHERE run_id LIKE 'busy_%' GROUP BY run_id")
            ).all()
        engine.dispose()
        assert counts and {count for _, count in counts} == {batch}, counts


def test_a_truncated_dump_restores_nothing_and_says_why(backed_up, tmp_path):
    _, _, _, dump = backed_up
    cut = tmp_path / "cut.dump"
    cut.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    with pg_database("baton_cut") as restored:
        done = pg_restore(cut, restored)
        assert done.returncode == 1
        assert "pg_restore: error:" in done.stderr, done.stderr
        engine = create_engine(restored)
        with engine.connect() as conn:
            tables = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar()
        engine.dispose()
        assert tables == 0  # one transaction: nothing of it is left behind


def test_a_restore_over_a_live_store_is_refused_and_changes_nothing(backed_up):
    _, _, rows, dump = backed_up
    with pg_database("baton_live") as live:
        assert pg_restore(dump, live).returncode == 0
        EventStore(engine_for(live)).append([Event(type="run.started", run_id="live_only", workflow="w")])
        before = snapshot(live)
        done = pg_restore(dump, live)
        assert done.returncode == 1
        assert "already exists" in done.stderr, done.stderr
        assert snapshot(live) == before and len(before[EVENTS]) == len(rows[EVENTS]) + 1
