"""The agents' board: the last hour's calls, failures and latency, slots in use, circuits, the last day's
spend and the budgets' headroom, per agent seen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from baton.coordination.load import HALF_OPEN
from baton.events import schema
from baton.ops.dashboard.agents import board
from baton.spec.budgets import Budget
from tests.ops.dashboard.scenario import Run

NOW = datetime.now(UTC).replace(microsecond=0)


def _health(store, agent: str, failures: int, until: datetime | None, cap: int | None = None) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            schema.agent_health.insert().values(
                agent=agent,
                consecutive_failures=failures,
                opened_until=until,
                updated_at=NOW,
                concurrency_cap=cap,
            )
        )


def _calls(store) -> None:
    """reader: 10 successful calls (1 to 10 s) and 2 failed ones in the last hour, 5 more two hours ago;
    its model spend: 0.5 in the last day, 7.0 two days ago."""
    recent = Run(store, "recent", at=NOW - timedelta(minutes=50))
    for i in range(10):
        recent.start(f"s{i}", 60 * i, agent="reader")
        recent.succeed(f"s{i}", 60 * i + i + 1, float(i + 1), agent="reader")
    for i in range(2):
        recent.start(f"f{i}", 60 * i, agent="reader")
        recent.fail(f"f{i}", 60 * i + 5, agent="reader", retry=False)
    recent.model("s0", 10, "reader", 0.5)
    old = Run(store, "old", at=NOW - timedelta(hours=2))
    for i in range(5):
        old.start(f"s{i}", i, agent="reader")
        old.succeed(f"s{i}", i + 100, 100.0, agent="reader")
    Run(store, "older", at=NOW - timedelta(days=2)).model("s0", 0, "reader", 7.0)


def test_an_agents_last_hour_spend_and_load(store):
    _calls(store)
    with store.engine.begin() as conn:
        for slot, expires in enumerate(
            (NOW + timedelta(minutes=5), NOW + timedelta(minutes=5), NOW - timedelta(1))
        ):
            conn.execute(
                schema.agent_slots.insert().values(
                    agent="reader", slot=slot, holder="h", acquired_at=NOW, expires_at=expires
                )
            )
    (reader,) = board(store, now=NOW)["agents"]
    assert (reader["calls_1h"], reader["failures_1h"]) == (12, 2)
    assert reader["p50_latency_s"] == 5.5 and reader["p95_latency_s"] == 9.55
    assert reader["slots_in_use"] == 2, "an expired slot is free"
    assert (reader["waiting"], reader["next_waiting"]) == (0, None)
    assert reader["spend_24h"] == 0.5
    assert reader["circuit"] == {
        "state": "closed",
        "opened_until": None,
        "consecutive_failures": 0,
        "concurrency_cap": None,
    }
    assert reader["budget_headroom"] is None


def _waiter(store, agent: str, waiter: str, start_by: datetime, expires: datetime) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            schema.slot_waiters.insert().values(
                agent=agent, waiter=waiter, start_by=start_by, since=NOW, expires_at=expires
            )
        )


def test_the_tasks_waiting_for_an_agents_slots_and_the_one_that_gets_the_next(store):
    """Live waiters only (a killed caller's expired row is not counted), the earliest start-by first; an agent
    seen only because tasks wait for it is on the board."""
    later, soon = NOW + timedelta(minutes=30), NOW + timedelta(minutes=1)
    _waiter(store, "reader", "bulk_run/read/-1", later, NOW + timedelta(seconds=5))
    _waiter(store, "reader", "urgent_run/read/3", soon, NOW + timedelta(seconds=5))
    _waiter(store, "reader", "killed_run/read/-1", NOW - timedelta(hours=1), NOW - timedelta(seconds=1))
    _waiter(store, "writer", "w_run/write/-1", later, NOW + timedelta(seconds=5))
    agents = {a["agent"]: a for a in board(store, now=NOW)["agents"]}
    assert agents["reader"]["waiting"] == 2
    assert agents["reader"]["next_waiting"] == {"task": "urgent_run/read/3", "start_by": soon.isoformat()}
    assert (agents["writer"]["waiting"], agents["writer"]["slots_in_use"]) == (1, 0)


def test_the_waiters_read_are_bounded_and_an_agent_beyond_the_bound_still_counts_its_own(store, monkeypatch):
    """However many tasks wait, the board reads the first ``MAX_WAITERS`` by start-by: an agent whose waiters
    all come later keeps its count, without a next."""
    monkeypatch.setattr("baton.ops.dashboard.agents.MAX_WAITERS", 3)
    for i in range(5):
        _waiter(store, "busy", f"r{i}/s/-1", NOW + timedelta(minutes=i), NOW + timedelta(seconds=5))
    _waiter(store, "idle", "late/s/-1", NOW + timedelta(days=1), NOW + timedelta(seconds=5))
    agents = {a["agent"]: a for a in board(store, now=NOW)["agents"]}
    assert (agents["busy"]["waiting"], agents["busy"]["next_waiting"]["task"]) == (5, "r0/s/-1")
    assert (agents["idle"]["waiting"], agents["idle"]["next_waiting"]) == (1, None)


def test_circuits_open_half_open_and_closed(store):
    _health(store, "opened", 5, NOW + timedelta(minutes=3), cap=2)
    _health(store, "held", HALF_OPEN, None)
    _health(store, "cooled", 5, NOW - timedelta(minutes=1))
    _health(store, "failing", 2, None)
    circuits = {a["agent"]: a["circuit"] for a in board(store, now=NOW)["agents"]}
    assert circuits["opened"] == {
        "state": "open",
        "opened_until": (NOW + timedelta(minutes=3)).isoformat(),
        "consecutive_failures": 5,
        "concurrency_cap": 2,
    }
    assert circuits["held"]["state"] == "half-open" and circuits["held"]["consecutive_failures"] is None
    assert circuits["cooled"]["state"] == "half-open", "its cool-down is over: its next call is a trial"
    assert circuits["failing"] == {
        "state": "closed",
        "opened_until": None,
        "consecutive_failures": 2,
        "concurrency_cap": None,
    }


def test_the_headroom_is_the_tightest_day_or_month_budget_that_applies_to_all_its_calls(store):
    Run(store, "r", at=NOW - timedelta(minutes=5)).start("s", 0, agent="reader")
    budgets = [
        Budget(name="all", scope="global", per="month", cost=100.0),
        Budget(name="readers", scope="agent:reader", per="day", cost=10.0),
        Budget(name="per-run", scope="agent:reader", per="run", cost=1.0),
        Budget(name="wf", scope="workflow:lead_scoring", per="day", cost=1.0),
    ]
    with store.engine.begin() as conn:
        for budget, window, cost in (("readers", f"{NOW:%Y-%m-%d}", 7.5), ("all", f"{NOW:%Y-%m}", 10.0)):
            conn.execute(
                schema.budget_ledger.insert().values(
                    budget=budget,
                    window=window,
                    holder="h",
                    state="settled",
                    cost=cost,
                    tokens=0,
                    expires_at=NOW + timedelta(days=1),
                    updated_at=NOW,
                )
            )
    (reader,) = board(store, budgets, now=NOW)["agents"]
    assert reader["budget_headroom"]["budget"] == "readers"
    assert reader["budget_headroom"]["left"] == 0.25
    assert reader["budget_headroom"]["window"] == f"{NOW:%Y-%m-%d}"
