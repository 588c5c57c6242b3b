"""``baton capacity`` on a real store: each agent's calls of the last days forecast and sized, as lines and
as JSON; an empty history and bad arguments refused with their reason."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from baton.cli import main as baton
from baton.events.event import Event

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def cli_store(store, monkeypatch):
    url = store.engine.url.set(drivername=store.engine.url.drivername.split("+")[0])
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", url.render_as_string(hide_password=False))
    return store


def _history(store) -> None:
    """Four days of two agents' calls: scout busy by day (12 an hour at noon), writer steady (3 an hour)."""
    rng, events = random.Random(5), []
    for hour in range(4 * 24, 0, -1):
        start = NOW - timedelta(hours=hour)
        daytime = 12 if 8 <= start.hour < 18 else 2
        for agent, n, seconds in (("scout", daytime, 30.0), ("writer", 3, 120.0)):
            for i in range(n):
                events.append(
                    Event(type="step.succeeded", run_id=f"{agent}-{hour}-{i}", workflow="w", step="s", agent=agent,
                          try_number=1, ts=start + timedelta(minutes=rng.randrange(60)),
                          payload={"duration_s": rng.uniform(0.5, 1.5) * seconds})
                )  # fmt: skip
    store.append(events)


def test_each_agent_is_forecast_and_sized_from_its_history(cli_store, capsys):
    _history(cli_store)
    assert baton(["capacity", "--days", "4", "--target-wait", "2", "--horizon", "24"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("agent calls from ") and out[0].endswith("UTC, forecast 24 h ahead:")
    scout, writer = out[1].split(), out[2].split()
    assert scout[:2] == ["scout", "max_concurrency"] and writer[:2] == ["writer", "max_concurrency"]
    assert "MAPE" in out[1] and out[3].startswith("Celery workers: ")
    assert baton(["capacity", "--days", "4", "--horizon", "24", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert sorted(document["agents"]) == ["scout", "writer"] and sorted(document["forecasts"]) == [
        "scout",
        "writer",
    ]
    for plan in document["agents"].values():  # the smallest concurrency that meets the default 5 s
        assert plan["target_wait_s"] == 5.0 and plan["predicted_wait_s"] <= 5.0
        below = plan["predicted_wait_below_s"]
        assert plan["max_concurrency"] == 1 or below is None or below > 5.0, plan


def test_an_empty_history_and_bad_arguments_are_refused(cli_store, capsys):
    assert baton(["capacity"]) == 1
    assert capsys.readouterr().out.startswith("no capacity plan: no records: the history is empty")
    for argv, message in (
        (["capacity", "--target-wait", "0"], "argument --target-wait: 0 is not between 0.1 and 3600 seconds"),
        (
            ["capacity", "--target-wait", "x" * 10_000],
            f"argument --target-wait: '{'x' * 40}' is not a number",
        ),
        (["capacity", "--days", "0"], "argument --days: invalid choice: 0"),
        (["capacity", "--horizon", "5000"], "argument --horizon: invalid choice: 5000"),
    ):
        with pytest.raises(SystemExit) as exit:
            baton(argv)
        assert exit.value.code == 2
        assert message in capsys.readouterr().err
