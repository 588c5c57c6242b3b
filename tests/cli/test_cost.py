"""``baton cost`` on a real store (SQLite and PostgreSQL): spend by workflow, agent, model and day, each
budget against its limit with its forecast, and the refusals of bad arguments and a broken budgets file."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import pytest

from baton.budgets.ledger import Ledger, Spend
from baton.budgets.report import budget_status
from baton.cli import main as baton
from baton.events.event import Event
from baton.spec.budgets import Budget

NOW = datetime.now(UTC)  # set again by the fixture: a suite that passes midnight collected the day before


def _call(run: str, workflow: str, agent: str, model: str, cost: float, tokens: int, ago: timedelta) -> Event:
    return Event(
        type="model.called", run_id=run, workflow=workflow, step="s", try_number=1, agent=agent, ts=NOW - ago,
        discriminator=run,
        payload={"model": model, "input_tokens": tokens - 10, "output_tokens": 10, "cost": cost,
                 "prompt_sha256": "0" * 64, "prompt_chars": 5},
    )  # fmt: skip


@pytest.fixture
def costs(store, tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "NOW", datetime.now(UTC))
    url = store.engine.url.set(drivername=store.engine.url.drivername.split("+")[0])
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", url.render_as_string(hide_password=False))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    (tmp_path / "budgets.yaml").write_text(
        "budgets:\n  - {name: leads-day, scope: workflow:leads, per: day, cost: 10}\n"
        "  - {name: all-month, per: month, tokens: 100000}\n"
    )
    store.append(
        [
            _call("r1", "leads", "scout", "gpt-x", 1.5, 1000, timedelta(hours=1)),
            _call("r2", "leads", "scout", "gpt-x", 0.5, 400, timedelta(hours=2)),
            _call("r3", "report", "writer", "claude-y", 3.0, 2000, timedelta(days=2)),
            _call("r4", "report", "writer", "claude-y", 9.0, 9000, timedelta(days=30)),  # outside 7 days
        ]
    )
    ledger = Ledger(store)
    day = Budget(name="leads-day", scope="workflow:leads", per="day", cost=10)
    held = ledger.reserve(
        [day], [day.window("", NOW)], Spend(2.0, 1400), "r1/s[-1]#1 pid 1@x", timedelta(hours=1)
    )
    ledger.settle(held, Spend(2.0, 1400))
    return store


def test_spend_by_each_grouping_and_the_budgets_with_their_forecast(costs, capsys):
    assert baton(["cost"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "model spend of the last 7 day(s), by workflow:"
    assert out[1].split() == ["report", "1", "call(s)", "3.0000", "2,000", "tokens"]
    assert out[2].split() == ["leads", "2", "call(s)", "2.0000", "1,400", "tokens"]
    assert out[3] == "budgets (dags/budgets.yaml):"
    assert out[4].split()[:6] == ["leads-day", "workflow:leads", f"{NOW:%Y-%m-%d}", "2.0000", "of", "10.0000"]
    assert "(20% used, forecast" in out[4]
    assert out[5].split()[:3] == ["all-month", "global", f"{NOW:%Y-%m}"]  # no spend in its ledger yet
    for by, first in (
        ("agent", "writer"),
        ("model", "claude-y"),
        ("day", f"{NOW - timedelta(days=2):%Y-%m-%d}"),
    ):
        assert baton(["cost", "--by", by, "--days", "3"]) == 0
        assert capsys.readouterr().out.splitlines()[1].split()[0] == first
    assert baton(["cost", "--days", "31", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [(s["key"], s["calls"]) for s in document["spend"]] == [("report", 2), ("leads", 2)]
    assert document["budgets"][0]["used"] == 0.2 and document["budgets"][0]["forecast"] is not None
    day = Budget(name="leads-day", scope="workflow:leads", per="day", cost=10)
    assert Ledger(costs).raise_once(day, day.window("", NOW), Spend(10.0, 0), "finance")  # at_limit: ask
    assert baton(["cost"]) == 0
    line = capsys.readouterr().out.splitlines()[4]
    assert line.split()[3:6] == ["2.0000", "of", "20.0000"] and "(10% used" in line
    assert line.endswith(", raised once by a person)")


def test_bad_arguments_and_a_broken_budgets_file_are_refused(costs, capsys, tmp_path):
    for argv in (["cost", "--days", "0"], ["cost", "--days", "9" * 50], ["cost", "--by", "team"]):
        with pytest.raises(SystemExit) as exit:
            baton(argv)
        assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "argument --days: invalid choice" in err and "argument --by: invalid choice: 'team'" in err
    (tmp_path / "budgets.yaml").write_text("budgets:\n  - {name: x, per: day}\n")
    assert baton(["cost"]) == 1
    assert capsys.readouterr().out == (
        "the budgets cannot be read, so none is shown:\n"
        "budgets.yaml:2: budgets[0]: a budget needs a limit: 'cost' (money), 'tokens', or both\n"
    )


def test_a_per_run_budget_shows_its_latest_runs(store):
    run_budget = Budget(name="per-run", scope="global", per="run", tokens=1000)
    ledger = Ledger(store)
    for n in range(7):
        held = ledger.reserve(
            [run_budget], [f"run:r{n}"], Spend(0.0, 100 + n), f"r{n} pid 1@x", timedelta(hours=1)
        )
        ledger.settle(held, Spend(0.0, 100 + n))
    rows = budget_status(store, [run_budget])
    assert [r["window"] for r in rows] == ["run:r6", "run:r5", "run:r4", "run:r3", "run:r2"]
    assert rows[0]["tokens"] == 106 and rows[0]["forecast"] is None
