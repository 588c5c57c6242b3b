"""Routing under concurrency (issue 17): simultaneous items of a fan-out see the slots the items before
them took, on SQLite and PostgreSQL; the router of before (rank, then take) is the baseline."""

from __future__ import annotations

from sqlalchemy import select

from baton.events import schema
from devtools import spread


def test_twenty_simultaneous_items_spread_over_three_equal_agents_from_the_first_call(store):
    split = spread.run(store, "spread_now", atomic=True)
    assert sum(split.values()) == 20
    assert max(split.values()) <= 8, split  # 40 %: the ideal is 7/7/6
    # The first six choices, stored with the slots they took in one transaction: two per agent.
    assert sorted(spread.first_wave(store, "spread_now").values()) == [2, 2, 2]
    selected = list(store.read("spread_now", types=["agent.selected"]))
    assert {e.agent for e in selected[:6]} == {"spread_0", "spread_1", "spread_2"}
    assert "load 0/2" in selected[0].payload["reason"] and "load" in selected[5].payload["reason"]
    with store.engine.connect() as conn:  # every slot was given back
        slots = schema.agent_slots.c
        assert conn.scalars(select(slots.agent).where(slots.agent.like("spread_%"))).all() == []


def test_no_agent_ever_runs_more_than_its_max_concurrency(store):
    spread.run(store, "spread_bounded", atomic=True, items=30)
    events = [e for e in store.read("spread_bounded") if e.type in ("subtask.started", "subtask.succeeded")]
    running: dict[str, int] = {}
    most: dict[str, int] = {}
    for event in events:  # in the order the store committed them
        running[event.agent] = running.get(event.agent, 0) + (1 if event.type == "subtask.started" else -1)
        most[event.agent] = max(most.get(event.agent, 0), running[event.agent])
    assert most == {"spread_0": 2, "spread_1": 2, "spread_2": 2}


def test_the_router_of_before_piles_simultaneous_items_on_one_agent(store):
    """The baseline the benchmark compares with: the same fan-out, ranked then taken in two steps."""
    split = spread.run(store, "spread_before", atomic=False)
    assert sum(split.values()) == 20
    assert max(split.values()) > 8, split
