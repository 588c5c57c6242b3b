"""The router, load slots and circuit breakers on SQLite and PostgreSQL, under real concurrency."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from baton.coordination.routing import Breakers, NoCandidate, Router, Slots
from baton.events.event import Event
from baton.spec.roster import Agent

TTL = timedelta(minutes=5)


def _agent(name: str, capabilities: list[str], slots: int = 2, **extra) -> Agent:
    return Agent(name=name, capabilities=capabilities, max_concurrency=slots, **extra)


WRITER = _agent("writer", ["drafting", "editing"])
EDITOR = _agent("editor", ["editing"])
TRANSLATOR = _agent("translator", ["translation", "drafting"])
ROSTER = [WRITER, EDITOR, TRANSLATOR]


def _history(store, agent: str, ok: int, failed: int, latency: float = 1.0) -> None:
    """Past steps of an agent, as the event store records them."""
    events = [
        Event(
            type="step.succeeded" if i < ok else "step.failed",
            run_id=f"past_{agent}_{i}",
            workflow="w",
            step="s",
            try_number=1,
            agent=agent,
            payload={"duration_s": latency} if i < ok else {"error": "boom"},
        )
        for i in range(ok + failed)
    ]
    store.append(events)


def test_routing_picks_the_agents_with_every_capability(store):
    router = Router(store, ROSTER)
    assert router.rank(["drafting"]).ranked == ["translator", "writer"]  # a tie: by name
    choice = router.rank(["drafting", "editing"])
    assert (choice.agent.name, choice.ranked) == ("writer", ["writer"])
    assert choice.reason.startswith("prefer balanced: success 0.50 over 0 step(s), load 0/2")
    with pytest.raises(NoCandidate, match=r"no agent has all of the capabilities \['drafting', 'legal'\]"):
        router.rank(["legal", "drafting"])


def test_track_record_and_preference_order_the_candidates(store):
    _history(store, "writer", ok=9, failed=1, latency=4.0)
    _history(store, "translator", ok=5, failed=5, latency=0.5)
    router = Router(store, ROSTER)
    assert router.rank(["drafting"], "reliable").ranked == ["writer", "translator"]
    fast = router.rank(["drafting"], "fast")
    assert fast.ranked == ["translator", "writer"]
    assert fast.scores["translator"] > fast.scores["writer"]
    assert "success 0.83 over 10 step(s)" in router.rank(["drafting"], "reliable").reason


def test_a_full_agent_loses_to_an_idle_capable_one(store):
    _history(store, "writer", ok=20, failed=0)  # the better record...
    slots = Slots(store)
    held = [slots.acquire(WRITER, f"other run {i}", TTL) for i in range(WRITER.max_concurrency)]
    assert held == [0, 1]
    assert slots.acquire(WRITER, "one more", TTL) is None  # ...but every slot of it is taken
    choice = Router(store, ROSTER).rank(["drafting"], "reliable")
    assert choice.agent.name == "translator"
    assert choice.ranked == ["translator", "writer"]
    assert "load 0/2" in choice.reason
    slots.release("writer", 0)
    assert Router(store, ROSTER).rank(["drafting"], "reliable").agent.name == "writer"


def _race(store, agent: Agent, racers: int) -> list[int | None]:
    """``racers`` threads taking a slot of ``agent`` at the same moment: the slot each got, or None."""
    barrier = threading.Barrier(racers)

    def grab(i: int) -> int | None:
        barrier.wait()
        return Slots(store).acquire(agent, f"racer {i}", TTL)

    with ThreadPoolExecutor(racers) as pool:
        return list(pool.map(grab, range(racers)))


def test_slots_hold_max_concurrency_under_a_race_and_expire(store):
    agent = _agent("busy", ["x"], slots=3)
    got = _race(store, agent, 8)
    assert sorted(s for s in got if s is not None) == [0, 1, 2]
    assert got.count(None) == 5
    assert Slots(store).load(["busy"]) == {"busy": 3}
    short = _agent("short", ["x"], slots=1)
    assert Slots(store).acquire(short, "killed holder", timedelta(milliseconds=1)) == 0
    time.sleep(0.01)
    assert Slots(store).load(["short"]) == {"short": 0}  # a killed holder's slot frees itself
    assert Slots(store).acquire(short, "next", TTL) == 0


class _SlotsClock:
    """The slots' clock, of the test's own: ``sleep`` records each wait and moves the clock on by it; at
    the third wait the holder of the only slot lets it go."""

    def __init__(self, release: Callable[[], None]) -> None:
        self.now, self.waits, self.release = 5000.0, [], release

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        if len(self.waits) == 3:
            self.release()


def test_the_wait_for_a_free_slot_is_stored_in_the_agent_selected_event(store, monkeypatch):
    """What the monitor's queue_wait reads: the seconds a call waited for one of its agent's slots, on a
    clock of the test's own (a free slot is taken without a wait; with every slot held, the call waits,
    ever longer, until the slot is let go, and takes it)."""
    from baton.coordination.waiters import waited
    from baton.events.event import Event

    solo, slots = _agent("solo", ["x"], slots=1), Slots(store)
    clock = _SlotsClock(lambda: slots.release("solo", 0))
    for module in (Slots.__module__, waited.__module__):  # the waits' clock, and the wait's stamp in events
        monkeypatch.setattr(sys.modules[module], "time", clock)

    def selected(run_id: str) -> Event:
        return Event(type="agent.selected", run_id=run_id, workflow="w", step="s", agent="solo",
                     try_number=1, payload={"agent": "solo"})  # fmt: skip

    assert slots.take(solo, "first", TTL, [selected("r-free")]) == 0
    assert clock.waits == []
    assert slots.take(solo, "second", TTL, [selected("r-waited")]) == 0
    assert clock.waits == pytest.approx([0.02, 0.03, 0.045])  # held three times, then let go
    (free,) = store.read("r-free")
    (waited,) = store.read("r-waited")
    assert free.payload["queue_wait_s"] == 0.0
    assert waited.payload["queue_wait_s"] == pytest.approx(0.095)


def test_the_breaker_opens_after_failures_in_a_row_and_closes_on_success(store):
    flaky = _agent("flaky", ["drafting"], circuit_breaker={"failures": 3, "cooldown": 60})
    steady = _agent("steady", ["drafting"])
    breakers = Breakers(store)
    assert breakers.failure(flaky, "E1") == (1, None)
    assert breakers.failure(flaky, "E2") == (2, None)
    assert Router(store, [flaky, steady]).rank(["drafting"]).ranked == ["flaky", "steady"]
    failures, until = breakers.failure(flaky, "E3")
    assert failures == 3 and until is not None
    choice = Router(store, [flaky, steady]).rank(["drafting"])
    assert choice.agent.name == "steady"
    assert choice.excluded["flaky"].startswith("circuit breaker open until ")
    with pytest.raises(NoCandidate, match="every agent with \\['drafting'\\] is left out: flaky: circuit"):
        Router(store, [flaky]).rank(["drafting"])
    assert breakers.success("flaky") is True  # e.g. a half-open trial call succeeded
    assert breakers.open_until(["flaky"]) == {}
    assert breakers.failure(flaky, "E4") == (1, None)  # counting starts again


def test_after_the_cooldown_the_agent_may_be_tried_again_and_a_failure_reopens_it(store):
    flaky = _agent("flaky", ["drafting"], circuit_breaker={"failures": 2, "cooldown": 0.2})
    breakers = Breakers(store)
    breakers.failure(flaky, "E1")
    assert breakers.failure(flaky, "E2")[1] is not None
    assert list(breakers.open_until(["flaky"])) == ["flaky"]
    time.sleep(0.25)
    assert Router(store, [flaky]).rank(["drafting"]).agent.name == "flaky"  # half-open
    assert breakers.failure(flaky, "E3")[1] is not None  # still failing: open again at once


def test_a_runbook_half_opens_a_held_circuit_for_one_trial_and_reads_what_it_saw(store):
    """An incident's runbook holds the circuit (hold_open), then half-opens it (half_open): routing takes
    the agent again, a failure opens it at once whatever its threshold, a success closes it (as a
    closing: the caller records agent.breaker_closed); trials() says which, for the monitor."""
    from datetime import UTC, datetime

    from baton.coordination.breaker import half_open, trials
    from baton.coordination.load import hold_open

    flaky = _agent("flaky", ["drafting"], circuit_breaker={"failures": 5, "cooldown": 60})
    steady = _agent("steady", ["drafting"])
    breakers = Breakers(store)
    assert half_open(store, "flaky") is False  # nothing holds it: nothing to half-open
    hold_open(store, "flaky", datetime.now(UTC) + timedelta(days=7), "held open by incident inc-1")
    assert Router(store, [flaky, steady]).rank(["drafting"]).agent.name == "steady"
    assert trials(store, ["flaky", "nobody"]) == {"flaky": "failed", "nobody": "passed"}

    assert half_open(store, "flaky") is True
    assert trials(store, ["flaky"]) == {"flaky": "pending"}
    assert "flaky" in Router(store, [flaky, steady]).rank(["drafting"]).ranked  # taken again
    failures, until = breakers.failure(flaky, "AgentError: still down")  # one failure, not five
    assert failures == 5 and until is not None and list(breakers.open_until(["flaky"])) == ["flaky"]
    assert trials(store, ["flaky"]) == {"flaky": "failed"}

    hold_open(store, "flaky", datetime.now(UTC) + timedelta(days=7), "held open by incident inc-1")
    assert half_open(store, "flaky") is True
    assert breakers.success("flaky") is True  # the trial passed: a closing
    assert trials(store, ["flaky"]) == {"flaky": "passed"}
    assert breakers.failing(["flaky"]) == set() and breakers.open_until(["flaky"]) == {}
    assert breakers.failure(flaky, "E") == (1, None)  # counting starts again from its own threshold


def test_a_half_open_circuit_gets_exactly_one_trial_call_first_whatever_its_track_record(store):
    """Eight calls routed at once: the agent whose circuit a runbook half-opened, with a worse record
    than the other, gets one of them (its trial, said in the choice's reason) and no more."""
    from datetime import UTC, datetime

    from baton.coordination.breaker import half_open, trials
    from baton.coordination.load import hold_open

    flaky = _agent("flaky", ["drafting"], slots=100)
    steady = _agent("steady", ["drafting"], slots=100)
    _history(store, "flaky", ok=2, failed=8)
    _history(store, "steady", ok=10, failed=0)
    hold_open(store, "flaky", datetime.now(UTC) + timedelta(days=7), "held open by incident inc-1")
    half_open(store, "flaky")
    router = Router(store, [flaky, steady])
    router.stats()
    barrier = threading.Barrier(8)

    def route(i: int) -> tuple[str, str]:
        barrier.wait()
        for _ in range(50):  # as route_and_take: a slot another call took meanwhile: ask again
            try:
                with store.engine.begin() as conn:
                    choice, _ = router.take_best(
                        conn, ["drafting"], "balanced", None, f"h{i}", TTL, lambda c: []
                    )
                return choice.agent.name, choice.reason
            except IntegrityError:
                time.sleep(0.05)
        raise AssertionError("never routed")

    with ThreadPoolExecutor(8) as pool:
        chosen = list(pool.map(route, range(8)))
    assert sorted(name for name, _ in chosen) == ["flaky"] + ["steady"] * 7
    (reason,) = [why for name, why in chosen if name == "flaky"]
    assert reason.startswith("trial call of its half-open circuit; prefer balanced: success ")
    assert trials(store, ["flaky"]) == {"flaky": "pending"}  # claimed, its outcome to come
    with store.engine.begin() as conn:  # claimed once: the next call ranks flaky by its record again
        assert (
            router.take_best(conn, ["drafting"], "balanced", None, "h9", TTL, lambda c: [])[0].agent == steady
        )


def test_breaker_failures_from_many_workers_are_all_counted(store):
    agent = _agent("shared", ["x"], circuit_breaker={"failures": 100, "cooldown": 60})
    barrier = threading.Barrier(8)

    def fail(i: int) -> int:
        barrier.wait()
        return Breakers(store).failure(agent, f"E{i}")[0]

    with ThreadPoolExecutor(8) as pool:
        counts = sorted(pool.map(fail, range(8)))
    assert counts == list(range(1, 9))


def test_a_failed_agent_is_left_out_with_the_reason_given(store):
    choice = Router(store, ROSTER).rank(["drafting"], exclude={"translator": "failed try 1 of this step"})
    assert choice.agent.name == "writer"
    assert choice.excluded == {"translator": "failed try 1 of this step"}
    assert choice.payload(subtask="s1") == {
        "agent": "writer",
        "candidates": ["writer"],
        "scores": choice.scores,
        "excluded": {"translator": "failed try 1 of this step"},
        "reason": choice.reason,
        "subtask": "s1",
    }


def test_a_runbooks_cap_holds_an_agent_to_fewer_slots_under_a_race_and_lifts(store):
    from baton.coordination import load

    agent = _agent("capped", ["x"], slots=4)
    assert load.cap(store, "capped", 1) is None  # no cap before
    got = _race(store, agent, 8)
    assert sorted(s for s in got if s is not None) == [0] and got.count(None) == 7
    assert Slots(store).limits([agent]) == {"capped": 1}
    assert load.cap(store, "capped", 2) == 1  # the cap it replaced
    assert Slots(store).acquire(agent, "second", TTL) == 1
    assert Slots(store).acquire(agent, "third", TTL) is None
    assert load.uncap(store, "capped") == 2
    assert Slots(store).limits([agent]) == {"capped": 4}
    assert [Slots(store).acquire(agent, f"after {i}", TTL) for i in range(3)] == [2, 3, None]
    assert load.uncap(store, "capped") is None  # nothing to lift twice


def test_a_cap_below_the_load_lets_the_running_calls_finish_and_starts_none_until_under_it(store):
    from baton.coordination import load

    slots = Slots(store)
    held = [slots.acquire(WRITER, f"run {i}", TTL) for i in range(2)]
    assert held == [0, 1]
    load.cap(store, "writer", 1)
    slots.release("writer", 0)  # one of the two running calls ends: the load is 1, the cap 1
    assert slots.acquire(WRITER, "new", TTL) is None
    slots.release("writer", 1)
    assert slots.acquire(WRITER, "new", TTL) == 0
    # routing ranks a capped agent by its cap: full at 1 of 1, it comes last despite its better record
    _history(store, "writer", ok=20, failed=0)
    assert Router(store, ROSTER).rank(["drafting"], "reliable").ranked == ["translator", "writer"]
    load.uncap(store, "writer")
    assert Router(store, ROSTER).rank(["drafting"], "reliable").ranked == ["writer", "translator"]


@pytest.mark.parametrize("slots", [0, -1, True, "2", 1.5, None])
def test_a_cap_that_is_not_a_number_of_slots_is_refused(store, slots):
    from baton.coordination import load

    with pytest.raises(
        ValueError, match=rf"^a concurrency cap is a number of slots >= 1, not {re.escape(repr(slots))}$"
    ):
        load.cap(store, "writer", slots)
    assert Slots(store).limits([WRITER]) == {"writer": 2}


def test_the_health_a_routed_choice_reads_once_says_what_breakers_and_slots_say(store):
    """One read of the agents' circuits and caps (a routed choice's transaction) gives the open circuits, the
    limits and the half-open circuits awaiting their trial that the separate reads give."""
    from datetime import UTC, datetime

    from baton.coordination import load
    from baton.coordination.breaker import half_open
    from baton.coordination.routing import Health

    agents = [_agent(name, ["x"], slots=4) for name in ("open", "trial", "capped", "fine", "unknown")]
    load.hold_open(store, "open", datetime.now(UTC) + timedelta(hours=1), "held open")
    load.hold_open(store, "trial", datetime.now(UTC) + timedelta(hours=1), "held open")
    half_open(store, "trial")
    load.cap(store, "capped", 2)
    Breakers(store).failure(agents[3], "one failure")  # failing, not open
    names = [a.name for a in agents]
    with store.engine.begin() as conn:
        health = Health.read(conn, names)
        assert health.open_until(names) == Breakers(store).open_until(names, conn) and list(
            health.open_until(names)
        ) == ["open"]
        assert health.limits(agents) == Slots(store).limits(agents, conn) == {
            "open": 4, "trial": 4, "capped": 2, "fine": 4, "unknown": 4,
        }  # fmt: skip
        assert health.awaiting_trial(names) == Breakers(store).awaiting_trial(names, conn) == {"trial"}
