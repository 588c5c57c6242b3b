"""The fan-out's group commit and the one-statement slot take, on SQLite and PostgreSQL: the writes of a
group and their events commit together, a write that fails fails alone (the group goes again with a
savepoint per write), and processes racing for an agent's last slots never hold more than it has."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from baton.coordination.commits import GroupCommit
from baton.coordination.load import Slots, SlotTaken, cap
from baton.events import schema
from baton.events.event import Event
from baton.events.store import EventStore, engine_for
from baton.spec.roster import Agent

TTL = timedelta(minutes=5)
AGENT = Agent(name="busy", capabilities=["x"], skill="score_leads", max_concurrency=3)


def _event(n: int) -> Event:
    return Event(
        type="step.started", run_id="g", workflow="w", step=f"s{n}", try_number=1, payload={"pid": n}
    )


def _group(store, writes: list) -> list:
    """``writes`` asked for at once from coroutines: the outcome of each (its result or its exception)."""

    async def run() -> list:
        group = GroupCommit(store)
        return await asyncio.gather(*(group.run(write) for write in writes), return_exceptions=True)

    return asyncio.run(run())


def _stored(store) -> list[int]:
    return [e.payload["pid"] for e in store.read("g")]


def test_a_groups_writes_take_slots_and_store_their_events_in_one_transaction_in_order(store):
    slots = Slots(store)
    writes = [lambda conn, n=n: slots.acquire_in(conn, AGENT, f"h{n}", TTL, [_event(n)]) for n in range(5)]
    assert _group(store, writes) == [0, 1, 2, None, None]  # the last two find every slot taken
    assert _stored(store) == [0, 1, 2]  # only the events of the slots taken, in the order asked
    assert slots.load(["busy"]) == {"busy": 3}


def test_a_write_that_fails_fails_alone_and_its_events_are_not_stored(store):
    slots = Slots(store)

    def broken(conn):
        store.append_in(conn, [_event(99)])
        raise ValueError("this write's own failure")

    writes = [
        lambda conn: slots.acquire_in(conn, AGENT, "first", TTL, [_event(0)]),
        broken,
        lambda conn: store.append_in(conn, [_event(2)]),
        lambda conn: slots.acquire_in(conn, AGENT, "last", TTL, [_event(3)]),
    ]
    outcomes = _group(store, writes)
    assert outcomes[0] == 0 and outcomes[3] == 1  # the others went again, each in its savepoint, and commit
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "this write's own failure"
    assert _stored(store) == [0, 2, 3]
    assert slots.load(["busy"]) == {"busy": 2}


def _expire(store, *numbers: int) -> None:
    """The slots ``numbers`` of the agent expired (their holders killed)."""
    s = schema.agent_slots.c
    with store.engine.begin() as conn:
        conn.execute(
            update(schema.agent_slots)
            .where(s.agent == "busy", s.slot.in_(numbers))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def test_an_expired_slot_is_taken_over_and_a_release_clears_the_agents_expired_ones(store):
    slots = Slots(store)
    assert [slots.acquire(AGENT, f"killed {n}", TTL) for n in range(3)] == [0, 1, 2]
    _expire(store, 0, 2)
    assert slots.load(["busy"]) == {"busy": 1}
    assert slots.acquire(AGENT, "next", TTL) == 0  # the lowest free number, its expired row taken over
    _expire(store, 1)
    slots.release("busy", 0)  # its own slot, and the agent's expired ones
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(schema.agent_slots.c.slot).where(schema.agent_slots.c.agent == "busy")
        ).all()
    assert rows == []
    assert [slots.acquire(AGENT, f"h{n}", TTL) for n in range(4)] == [0, 1, 2, None]


def test_a_holder_whose_lease_ran_out_releases_nothing_another_took_over(store):
    """A slow holder (alive, its lease expired) and the caller that took its slot number over, each its own
    Slots as two processes have: the slow one's release leaves the new holder's slot held."""
    slow, other = Slots(store), Slots(store)
    assert slow.acquire(AGENT, "slow", TTL) == 0
    _expire(store, 0)
    assert other.acquire(AGENT, "other", TTL) == 0  # taken over
    slow.release("busy", 0)
    assert slow.load(["busy"]) == {"busy": 1}, "the new holder still holds it"
    with store.engine.connect() as conn:
        (holder,) = conn.execute(select(schema.agent_slots.c.holder)).scalars()
    assert holder.startswith("other pid ")
    other.release("busy", 0)
    assert slow.load(["busy"]) == {"busy": 0}


def test_a_cap_lower_than_the_slots_held_takes_none_until_the_load_is_under_it(store):
    slots = Slots(store)
    assert [slots.acquire(AGENT, f"h{n}", TTL) for n in range(2)] == [0, 1]
    cap(store, "busy", 1)
    assert slots.acquire(AGENT, "over the cap", TTL) is None
    slots.release("busy", 0)
    assert slots.acquire(AGENT, "still at the cap", TTL) is None  # slot 1 still runs: 1 of 1
    slots.release("busy", 1)
    assert slots.acquire(AGENT, "under it", TTL) == 0


PROCESSES, ROUNDS, SPACING = 4, 30, 0.25


def _contend(url: str, racer: int, start: float, found) -> None:
    """One process: each round, at the same moment as the others, one group transaction takes a slot for
    each of two items; each slot is held a while, then goes back. Each hold as (slot, from, to): from once
    its transaction committed, to before its release began (inside the true hold, whatever the clock)."""
    store = EventStore(engine_for(url))
    slots = Slots(store)
    holds: list[tuple[int, float, float]] = []
    for round_ in range(ROUNDS):
        time.sleep(max(0.0, start + round_ * SPACING - time.time()))

        async def take(round_: int = round_) -> list:
            group = GroupCommit(store)
            return await asyncio.gather(
                *(
                    group.run(lambda conn, n=n: slots.acquire_in(conn, AGENT, f"p{racer}r{round_}i{n}", TTL))
                    for n in range(2)
                )
            )

        taken = [slot for slot in asyncio.run(take()) if slot is not None]
        since = time.time()
        time.sleep(0.1)
        for slot in taken:
            holds.append((slot, since, time.time()))
            slots.release("busy", slot)
    found.put(holds)


@pytest.mark.timeout(120)
def test_processes_racing_for_an_agents_slots_never_hold_more_than_it_has(store):
    """Four processes, two items each, race 30 times for the 3 slots of one agent: no slot number is ever
    held by two at once, and no more than 3 are held at any moment (on PostgreSQL the loser of a number
    waits for the winner's commit, finds the number taken, and asks again: ``SlotTaken``)."""
    url = store.engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    found = context.Queue()
    start = time.time() + 8  # every process imported and connected by then
    racers = [context.Process(target=_contend, args=(url, r, start, found)) for r in range(PROCESSES)]
    for process in racers:
        process.start()
    holds = [hold for _ in racers for hold in found.get(timeout=100)]
    for process in racers:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert len(holds) >= ROUNDS * 3 // 2  # the slots were taken, round after round
    for slot, since, until in holds:
        # the most held at once is reached as some hold begins: count those held at that instant (a count over
        # this hold's whole window would also count two holds of one slot, one after the other, within it)
        at_start = [h for h in holds if h[1] <= since < h[2]]
        assert len(at_start) <= 3, at_start
        during = [h for h in holds if h[1] < until and since < h[2]]  # the holds at the same time as this one
        assert [h[0] for h in during].count(slot) == 1, (slot, during)
    assert Slots(store).load(["busy"]) == {"busy": 0}


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_the_loser_of_a_race_for_a_slot_number_waits_for_the_winner_and_asks_again(store):
    """Two transactions read the same free number: the second's INSERT waits for the first's commit, then
    finds the number taken and says so (SlotTaken, an IntegrityError: a group's write gets None and asks
    again), as a slot is still free; ``acquire`` asks again at once and takes the next."""
    import threading

    from sqlalchemy import text

    slots, outcome = Slots(store), {}

    def second() -> None:
        try:
            with store.engine.begin() as conn:
                outcome["slot"] = slots.acquire_in(conn, AGENT, "second", TTL)
        except SlotTaken as error:
            outcome["error"] = error
        outcome["then"] = slots.acquire(AGENT, "second, again", TTL)

    with store.engine.connect() as first, first.begin():
        assert slots.acquire_in(first, AGENT, "first", TTL) == 0
        thread = threading.Thread(target=second)
        thread.start()
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        with store.engine.connect() as watch:
            while not watch.execute(text(waiting)).scalar():
                time.sleep(0.01)  # until the second INSERT waits on the first's row
    thread.join(timeout=30)
    assert "slot" not in outcome and isinstance(outcome["error"], SlotTaken)
    assert outcome["then"] == 1
    assert slots.load(["busy"]) == {"busy": 2}
