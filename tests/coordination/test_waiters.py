"""Agents' load slots in the order of what the work is worth (issue 57): the caller whose run must start soonest
gets the next free slot, on SQLite and PostgreSQL, under real concurrency."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import func, select

from baton.coordination import waiters
from baton.coordination.load import Slots
from baton.coordination.waiters import WAIT_TTL, Place, place_of
from baton.events import schema
from baton.events.event import Event
from baton.events.replay import timeline
from baton.spec.priority import default_max_wait
from baton.spec.roster import Agent

TTL = timedelta(minutes=5)
NOW = datetime.now(UTC)


def _agent(slots: int = 1) -> Agent:
    return Agent(name="solo", capabilities=["x"], max_concurrency=slots)


def _place(name: str, start_in: timedelta) -> Place:
    """A task's place whose run must start ``start_in`` from now (its run has no ``priority.assigned``)."""
    return Place(waiter=f"{name}/step/-1", run_id=name, fallback=datetime.now(UTC) + start_in)  # not NOW: the
    # module's time is its collection's, minutes before a test of a suite runs, and a place-less caller is now


def _rows(store) -> dict[str, datetime]:
    w = schema.slot_waiters.c
    with store.engine.connect() as conn:
        return dict(conn.execute(select(w.waiter, w.expires_at).where(w.agent == "solo")).all())


def _both_waiting(
    store, first: tuple[str, timedelta], second: tuple[str, timedelta]
) -> tuple[Agent, Slots, Slots]:
    """An agent of one slot, held, then let go once a caller of ``first`` and one of ``second`` (a name and when its
    run must start) wait for it, ``first`` asking first (``since`` 1.0 and 2.0): the agent and the two callers."""
    agent, holder = _agent(), Slots(store)
    callers = [Slots(store, _place(name, start_in)) for name, start_in in (first, second)]
    assert holder.acquire(agent, "first", TTL) == 0
    for since, (caller, (name, _)) in enumerate(zip(callers, (first, second), strict=True), start=1):
        assert caller.acquire(agent, name, TTL, since=float(since)) is None
    holder.release("solo", 0)
    return agent, callers[0], callers[1]


def test_a_free_slot_goes_to_the_waiting_run_that_must_start_soonest_not_to_the_first_that_asks(store):
    """A bulk run (start-by in an hour) began waiting first; an urgent one (in a minute) after it. When the slot
    is let go, the bulk caller that asks first gets nothing (the urgent one is ahead), the urgent one gets it,
    and the bulk one gets the next."""
    agent, holder = _agent(), Slots(store)
    bulk = Slots(store, _place("bulk", timedelta(hours=1)))
    urgent_place = _place("urgent", timedelta(minutes=1))
    urgent = Slots(store, urgent_place)
    assert holder.acquire(agent, "first", TTL) == 0
    assert bulk.acquire(agent, "bulk", TTL, since=1.0) is None  # every slot held: both wait, bulk first
    urgent_since = (
        time.monotonic() - 2
    )  # when the urgent caller began to wait (its identity among its task's)
    assert urgent.acquire(agent, "urgent", TTL, since=urgent_since) is None
    assert set(_rows(store)) == {"bulk/step/-1", "urgent/step/-1"}

    holder.release("solo", 0)
    assert bulk.acquire(agent, "bulk", TTL, since=1.0) is None  # free, but the urgent run is ahead of it
    selected = Event(type="agent.selected", run_id="urgent", workflow="w", step="step", agent="solo",
                     try_number=1, payload={"agent": "solo", "reason": "named by the template"})  # fmt: skip
    assert urgent.acquire(agent, "urgent", TTL, [selected], since=urgent_since) == 0
    assert set(_rows(store)) == {"bulk/step/-1"}  # the urgent caller was served: its row went with it
    (recorded,) = store.read("urgent")
    start_by = urgent_place.fallback.isoformat(timespec="seconds")
    assert recorded.payload["queue_start_by"] == start_by  # why it was served: replay says so
    assert timeline([recorded])[0].endswith(
        f"solo — named by the template; waited {recorded.payload['queue_wait_s']:g} s for a slot "
        f"(start by {start_by}: the earliest goes first)"
    )
    urgent.release("solo", 0)
    assert bulk.acquire(agent, "bulk", TTL, since=1.0) == 0
    assert _rows(store) == {}


def test_a_caller_with_nobody_ahead_takes_a_slot_at_once_and_writes_no_row(store):
    """The common case costs no write of a waiter: a free slot and no earlier caller waiting."""
    slots = Slots(store, _place("bulk", timedelta(hours=1)))
    assert slots.acquire(_agent(), "bulk", TTL, since=1.0) == 0
    assert _rows(store) == {}


def test_a_low_priority_run_past_its_age_bound_goes_before_urgent_work_that_arrived_later(store):
    """Never starved: a bulk run queued long ago has a start-by (its age bound) in the past; an urgent run
    that arrives now must start within a minute: the bulk run is ahead."""
    agent, urgent, aged = _both_waiting(
        store, ("urgent", timedelta(minutes=1)), ("aged", -timedelta(minutes=5))
    )
    assert urgent.acquire(agent, "urgent", TTL, since=1.0) is None
    assert aged.acquire(agent, "aged", TTL, since=2.0) == 0


def test_a_later_caller_takes_the_free_slots_beyond_those_the_callers_ahead_wait_for(store):
    """Two slots free and one earlier caller waiting: one is left for a later caller (the earlier one needs
    only one), not both."""
    agent, holder = _agent(slots=2), Slots(store)
    urgent = Slots(store, _place("urgent", timedelta(minutes=1)))
    bulk = [Slots(store, _place(f"bulk{i}", timedelta(hours=1))) for i in range(2)]
    assert [holder.acquire(agent, f"h{i}", TTL) for i in range(2)] == [0, 1]
    assert urgent.acquire(agent, "urgent", TTL, since=1.0) is None
    holder.release("solo", 0)
    holder.release("solo", 1)
    assert bulk[0].acquire(agent, "bulk0", TTL, since=2.0) == 0
    assert bulk[1].acquire(agent, "bulk1", TTL, since=3.0) is None  # the last free slot is the urgent one's
    assert urgent.acquire(agent, "urgent", TTL, since=1.0) == 1


def test_the_items_of_one_task_do_not_wait_for_each_other_and_its_row_goes_with_the_last_served(store):
    """A fan-out's items share their task's place: one waiting does not hold back another of the same task,
    and the task's row stays while any of its items still waits."""
    agent, holder, place = _agent(slots=2), Slots(store), _place("fan", timedelta(minutes=1))
    fan = Slots(store, place)
    assert [holder.acquire(agent, f"h{i}", TTL) for i in range(2)] == [0, 1]
    assert fan.acquire(agent, "fan[0]", TTL, since=1.0) is None
    assert fan.acquire(agent, "fan[1]", TTL, since=2.0) is None
    holder.release("solo", 0)
    assert fan.acquire(agent, "fan[1]", TTL, since=2.0) == 0  # item 0 waits too: not ahead of its sibling
    assert set(_rows(store)) == {"fan/step/-1"}  # item 0 still waits
    holder.release("solo", 1)
    assert fan.acquire(agent, "fan[0]", TTL, since=1.0) == 1
    assert _rows(store) == {}


def test_a_killed_waiters_row_holds_nobody_up_once_it_expired_and_goes_at_the_next_wait(store):
    """A caller killed while it waited leaves its row: it counts ``WAIT_TTL`` after its last ask, no longer."""
    agent = _agent()
    w = schema.slot_waiters
    with store.engine.begin() as conn:
        conn.execute(
            w.insert().values(
                agent="solo",
                waiter="killed/step/-1",
                start_by=NOW - timedelta(days=1),
                since=NOW,
                expires_at=datetime.now(UTC) - timedelta(seconds=1),
            )  # fmt: skip
        )
    bulk = Slots(store, _place("bulk", timedelta(hours=1)))
    assert bulk.acquire(agent, "bulk", TTL, since=1.0) == 0  # the dead caller is not ahead of it
    assert Slots(store, _place("next", timedelta(hours=1))).acquire(agent, "next", TTL, since=2.0) is None
    rows = _rows(store)
    assert set(rows) == {"next/step/-1"}  # the expired row went as the next caller began to wait
    assert rows["next/step/-1"] > datetime.now(UTC) + WAIT_TTL - timedelta(seconds=5)


def test_a_caller_without_a_place_stands_as_one_that_must_start_now(store):
    """Outside a step's task (a compensation, a tool): behind callers whose start-by has passed, ahead of the
    others."""
    agent, late, _ = _both_waiting(store, ("late", -timedelta(minutes=1)), ("later", timedelta(minutes=10)))
    assert Slots(store).acquire(agent, "placeless", TTL) is None  # the late run is ahead of it
    assert late.acquire(agent, "late", TTL, since=1.0) == 0
    late.release("solo", 0)
    assert Slots(store).acquire(agent, "placeless", TTL) == 0  # ahead of the run that may start in 10 minutes


def test_the_start_by_time_is_the_runs_priority_assigned_and_a_broken_one_falls_back(store, caplog):
    """The place reads its run's standing once; a payload without a readable start-by (hostile, written behind
    the store's back: not a time, a number, none, a huge string, not an object) counts its level's bound
    instead and says so."""
    start_by = NOW.replace(microsecond=0) + timedelta(minutes=3)
    standing = {"level": 75, "max_wait_s": 276.0, "queued_at": NOW.isoformat(), "start_by": start_by.isoformat(),
                "weight": 1, "reason": "level 75"}  # fmt: skip
    broken = {"naive": {**standing, "start_by": start_by.replace(tzinfo=None).isoformat()},
              "text": {**standing, "start_by": "soon"}, "number": {**standing, "start_by": 17},
              "huge": {**standing, "start_by": "9" * 100_000}, "none": {"level": 50}, "list": [1, 2]}  # fmt: skip
    runs = ["good", *broken]
    store.append(
        [Event(type="priority.assigned", run_id=run, workflow="w", payload=standing) for run in runs]
    )
    e = schema.events.c
    with store.engine.begin() as conn:
        for run, payload in broken.items():
            conn.execute(schema.events.update().where(e.run_id == run).values(payload=payload))
    fallback = NOW + timedelta(hours=2)
    with store.engine.connect() as conn:
        found = {run: Place(f"{run}/s/-1", run, fallback).start_by(conn) for run in [*runs, "missing"]}
    assert found["good"] == found["naive"] == start_by
    assert {run for run, at in found.items() if at == fallback} == {
        "text",
        "number",
        "huge",
        "none",
        "list",
        "missing",
    }
    assert "has no readable start_by" in caplog.text


def test_a_tasks_place_comes_from_airflows_context_and_hostile_levels_count_as_normal():
    """Without a standing, a run stands at its template level's age bound from its start (the task's
    ``priority_weight``); a weight outside 0..100 (another rule's, a bool) counts as normal."""
    started = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)

    def place(weight: object) -> Place:
        recorder = SimpleNamespace(
            common={"run_id": "r" * 400, "step": "s", "map_index": 3},
            context={
                "task": SimpleNamespace(priority_weight=weight),
                "dag_run": SimpleNamespace(start_date=started),
            },
        )
        return place_of(recorder)

    urgent = place(100)
    assert urgent.fallback == started + default_max_wait(100) == started + timedelta(minutes=1)
    assert len(urgent.waiter) == 250 and urgent.run_id == "r" * 400
    for hostile in (-1, 101, 2**31, True, "high", None, 1.5):
        assert place(hostile).fallback == started + default_max_wait(50), hostile
    bare = place_of(SimpleNamespace(common={"run_id": "r", "step": "s", "map_index": -1}))
    assert datetime.now(UTC) < bare.fallback <= datetime.now(UTC) + default_max_wait(50)


def test_under_contention_every_urgent_caller_is_served_before_any_bulk_caller(store):
    """12 callers, each its own task, wait in threads for an agent's one slot (half urgent, half bulk, the bulk
    ones asking first); once all wait, the slot is let go. The 6 urgent callers get it first, one after the
    other, then the 6 bulk ones (each records its turn while it holds the slot: the order is exact)."""
    agent, holder = _agent(), Slots(store)
    assert holder.acquire(agent, "first", TTL) == 0
    order: list[str] = []

    def call(name: str, start_in: timedelta) -> None:
        slots = Slots(store, _place(name, start_in))
        slot = slots.take(agent, name, TTL)
        order.append(name)  # while holding the only slot: no other caller is between take and here
        time.sleep(0.02)  # the call's work
        slots.release("solo", slot)

    names = [(f"bulk{i}", timedelta(hours=1)) for i in range(6)]
    names += [(f"urgent{i}", timedelta(minutes=1)) for i in range(6)]
    with ThreadPoolExecutor(len(names)) as pool:
        futures = [pool.submit(call, name, start_in) for name, start_in in names]
        deadline = time.monotonic() + 60
        while len(_rows(store)) < len(names):  # every caller waits (a positive condition, bounded)
            assert time.monotonic() < deadline, f"only {len(_rows(store))} of {len(names)} callers wait"
            assert not any(f.done() for f in futures), [f.exception() for f in futures if f.done()]
            time.sleep(0.02)
        holder.release("solo", 0)
        for future in futures:
            future.result(timeout=120)  # a thread's failure fails the test
    assert [name[:-1] for name in order] == ["urgent"] * 6 + ["bulk"] * 6, order
    assert _rows(store) == {}
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(schema.agent_slots)) == 0


def test_a_waiting_caller_keeps_its_row_alive_between_asks_and_takes_the_slot_when_it_is_free(
    store, monkeypatch
):
    """A caller of ``Slots.take`` asks again at most every 0.5 s and rewrites its row each time: with rows
    living 1 s, its row stays live for 3 s of waiting (never expired between two asks), then the caller
    takes the slot let go and its row goes."""
    monkeypatch.setattr(waiters, "WAIT_TTL", timedelta(seconds=1))
    agent, holder = _agent(), Slots(store)
    assert holder.acquire(agent, "first", TTL) == 0
    slots = Slots(store, _place("waits", timedelta(minutes=1)))
    with ThreadPoolExecutor(1) as pool:
        taken = pool.submit(slots.take, agent, "waits", TTL)
        deadline = time.monotonic() + 30
        while not _rows(store):  # its first ask (a positive condition, bounded)
            assert time.monotonic() < deadline and not taken.done(), "the caller never began to wait"
            time.sleep(0.02)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # from then on, every look finds its row live
            rows = _rows(store)
            assert rows.get("waits/step/-1", NOW) > datetime.now(UTC), (
                "the row expired while its caller waited"
            )
            assert not taken.done(), taken.exception()
            time.sleep(0.1)
        holder.release("solo", 0)
        assert taken.result(timeout=30) == 0
    assert _rows(store) == {}


def test_a_fan_outs_items_wait_as_their_task_and_the_urgent_tasks_items_all_go_first(store):
    """Two fan-out tasks (each its own event loop and group commit, as two task processes have), 4 items each,
    on an agent with one slot: the bulk task's items begin to wait first. Once both tasks wait, every item of
    the urgent task is served before any of the bulk task's (its row stays while any of its items waits)."""
    import asyncio

    from baton.coordination.commits import GroupCommit

    agent, holder = _agent(), Slots(store)
    assert holder.acquire(agent, "first", TTL) == 0
    order: list[str] = []

    def task(name: str, start_in: timedelta) -> None:
        slots = Slots(store, _place(name, start_in))

        async def item(i: int, writes: GroupCommit) -> None:
            slot = await slots.atake(agent, f"{name}[{i}]", TTL, [], writes)
            order.append(name)  # holding the only slot
            await asyncio.sleep(0.02)
            await writes.run(lambda conn: slots.release_in(conn, "solo", slot))

        async def run() -> None:
            writes = GroupCommit(store)  # made in the loop it serves
            await asyncio.gather(*(item(i, writes) for i in range(4)))

        asyncio.run(run())

    with ThreadPoolExecutor(2) as pool:
        bulk = pool.submit(task, "bulk", timedelta(hours=1))
        deadline = time.monotonic() + 60
        while "bulk/step/-1" not in _rows(store):
            assert time.monotonic() < deadline and not bulk.done(), "the bulk task never began to wait"
            time.sleep(0.02)
        urgent = pool.submit(task, "urgent", timedelta(minutes=1))
        while "urgent/step/-1" not in _rows(store):
            assert time.monotonic() < deadline and not urgent.done(), "the urgent task never began to wait"
            time.sleep(0.02)
        holder.release("solo", 0)
        bulk.result(timeout=120), urgent.result(timeout=120)  # a thread's failure fails the test
    assert order == ["urgent"] * 4 + ["bulk"] * 4
    assert _rows(store) == {}
