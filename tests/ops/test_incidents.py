"""The incident state machine: a storm is one incident with a count, acknowledgement and maintenance
suppress, quiet resolves, runbook steps run once each and a person's stop halts them; all of it pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from baton.ops.incidents import (
    Anomaly,
    Book,
    IncidentError,
    acknowledge,
    evaluate,
    stop,
)
from baton.spec.monitoring import load_monitoring

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # a Tuesday
DEFAULTS = load_monitoring({})
FAILING = Anomaly(kind="failure_rate", where="agent:writer", evidence={"bad": 6, "calls": 20})


def minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def run(book: Book, schedule: dict[float, list[Anomaly]], until: float, config=DEFAULTS):
    """Evaluate every minute from 0 to ``until`` with the anomalies of ``schedule``; all outputs, in order."""
    transitions, actions = [], []
    for n in range(int(until) + 1):
        outcome = evaluate(book, schedule.get(n, []), minute(n), config)
        book = outcome.book
        transitions += outcome.transitions
        actions += outcome.actions
    return book, transitions, actions


def test_a_storm_of_50_failures_is_one_incident_with_a_count_of_50():
    book, transitions, _ = run(Book(), {n: [FAILING] * 10 for n in range(5)}, until=4)
    (incident,) = book.incidents.values()
    assert (incident.count, incident.kind, incident.where, incident.severity) == (
        50,
        "failure_rate",
        "agent:writer",
        "critical",
    )
    opened = [t for t in transitions if t.type == "incident.opened"]
    updated = [t for t in transitions if t.type == "incident.updated"]
    assert len(opened) == 1 and opened[0].notify and opened[0].count == 10
    assert [t.count for t in updated] == [20, 30, 40, 50] and not any(t.notify for t in updated)
    assert incident.id == opened[0].incident_id and incident.id.startswith("inc-") and len(incident.id) == 16


def test_the_machine_is_pure_and_its_book_round_trips_through_json():
    schedule = {0: [FAILING], 1: [FAILING, Anomaly(kind="latency", where="agent:reader")]}
    first = run(Book(), schedule, until=20)
    second = run(Book(), schedule, until=20)
    assert first == second
    book = first[0]
    text = json.dumps(book.model_dump(mode="json"), allow_nan=False)
    assert Book.model_validate(json.loads(text)) == book
    outcome = evaluate(book, [FAILING], minute(21), DEFAULTS)
    again = evaluate(Book.model_validate(json.loads(text)), [FAILING], minute(21), DEFAULTS)
    assert outcome == again


NO_TRIALS = load_monitoring(
    {
        "monitoring": {
            "runbooks": {
                "failure_rate": [
                    {"do": "open_circuit", "probe_after": None},
                    {"do": "escalate", "to": "on-call", "after": "15m"},
                    "retry_failed_runs",
                ]
            }
        }
    }
)


def test_an_incident_resolves_once_healthy_for_resolve_after_and_undoes_its_actions():
    """Without trials (``probe_after: null``) the circuit is held until the quiet resolution closes it."""
    book, transitions, actions = run(Book(), {0: [FAILING], 3: [FAILING]}, until=12, config=NO_TRIALS)
    assert [a.do for a in actions] == ["open_circuit"]
    assert "failure_rate@agent:writer" in book.incidents  # last seen at minute 3: 10 minutes end at 13
    assert next(iter(book.incidents.values())).trial is None
    outcome = evaluate(book, [], minute(13), NO_TRIALS)
    assert book.incidents and not outcome.book.incidents
    resolved = outcome.transitions[0]
    assert (resolved.type, resolved.notify, resolved.detail) == (
        "incident.resolved",
        True,
        {"healthy_for_s": 600.0},
    )
    incident_id = resolved.incident_id
    assert [(a.id, a.do, a.target, a.params) for a in outcome.actions] == [
        (f"{incident_id}/undo/0", "close_circuit", "agent:writer", {}),
        (
            f"{incident_id}/2",
            "retry_failed_runs",
            "agent:writer",
            {"max_runs": 20, "failed_since": T0.isoformat()},
        ),
    ]
    assert [t.detail["action_id"] for t in outcome.transitions[1:]] == [a.id for a in outcome.actions]
    later = evaluate(outcome.book, [FAILING], minute(30), NO_TRIALS)  # the same fault again: a new incident
    assert later.transitions[0].type == "incident.opened" and later.transitions[0].incident_id != incident_id


# --- trials of the circuit a runbook opened --------------------------------------------------------


def tick(book: Book, n: float, seen: str | None = None, anomalies=(), config=DEFAULTS):
    """One minute, the writer's half-open circuit having seen ``seen`` (None: nothing said: pending)."""
    return evaluate(book, list(anomalies), minute(n), config, {"writer": seen} if seen else None)


def test_a_quiet_incident_whose_circuit_is_held_waits_for_a_trial_that_passes_before_it_resolves():
    """Quiet is no proof while the circuit keeps the agent's work away: probe_after (5 minutes) the
    opening the circuit goes half-open; the incident resolves once the trial passed and it is quiet."""
    book, transitions, actions = run(Book(), {0: [FAILING]}, until=4)
    incident = next(iter(book.incidents.values()))
    assert (incident.trial, incident.trial_since, incident.trials) == ("held", minute(0), 0)
    assert [a.do for a in actions] == ["open_circuit"]

    half = tick(book, 5)
    assert [(a.id, a.do, a.target) for a in half.actions] == [
        (f"{incident.id}/trial/1", "probe_circuit", "agent:writer")
    ]
    assert [(t.type, t.detail["do"]) for t in half.transitions] == [("incident.action", "probe_circuit")]
    assert half.book.incidents[incident.fingerprint].trial == "half_open"

    # quiet for resolve_after (minute 10) and beyond, but no call has tried the agent yet: still open
    book = half.book
    for n in range(6, 15):
        waiting = tick(book, n)
        assert waiting.transitions == [] and waiting.actions == [], n
        book = waiting.book
    passed = tick(book, 15, "passed")
    assert [(t.type, t.notify) for t in passed.transitions] == [
        ("incident.updated", False),
        ("incident.resolved", True),
        ("incident.action", False),
    ]
    assert passed.transitions[0].detail == {
        "trial": 1,
        "trial_outcome": "passed: the agent's trial call succeeded and closed its circuit",
    }
    assert passed.transitions[1].detail == {
        "healthy_for_s": 900.0,
        "circuit": "closed by a trial call that succeeded",
    }
    # the trial's success closed the circuit: nothing to close again; the failed runs are retried
    assert [a.do for a in passed.actions] == ["retry_failed_runs"]
    assert not passed.book.incidents


def test_a_failed_trial_holds_the_circuit_again_and_the_next_one_comes_probe_after_later():
    book, _, _ = run(Book(), {0: [FAILING]}, until=5)  # half-open at minute 5
    incident = next(iter(book.incidents.values()))
    failed = tick(book, 6, "failed")
    assert [(t.type, t.detail.get("trial_outcome", t.detail.get("do"))) for t in failed.transitions] == [
        ("incident.updated", "failed: the agent's trial call failed; its circuit is held open again"),
        ("incident.action", "open_circuit"),
    ]
    assert [(a.id, a.do) for a in failed.actions] == [(f"{incident.id}/trial/1/hold", "open_circuit")]
    held = failed.book.incidents[incident.fingerprint]
    assert (held.trial, held.trial_since, held.trials) == ("held", minute(6), 1)

    book, ids = failed.book, [a.id for a in failed.actions]
    for n in range(7, 40):  # the agent stays down: a trial every probe_after, each failing
        outcome = tick(
            book, n, "failed" if book.incidents[incident.fingerprint].trial == "half_open" else None
        )
        ids += [a.id for a in outcome.actions]
        assert not any(t.type == "incident.resolved" for t in outcome.transitions), n
        book = outcome.book
    ids = [i for i in ids if "/trial/" in i]  # the escalation (step 1, at 15 minutes) comes between
    assert ids[:4] == [
        f"{incident.id}/trial/1/hold",
        f"{incident.id}/trial/2",
        f"{incident.id}/trial/2/hold",
        f"{incident.id}/trial/3",
    ]
    assert len(ids) == len(set(ids))  # each action id once, however many trials
    assert book.incidents[incident.fingerprint].severity == "critical"  # it is still open (and counted)


def test_a_half_open_circuit_no_call_tries_resolves_after_probe_for_and_is_left_half_open():
    config = load_monitoring(
        {
            "monitoring": {
                "runbooks": {
                    "failure_rate": [{"do": "open_circuit", "probe_after": "2m", "probe_for": "20m"}]
                }
            }
        }
    )
    book, _, actions = run(Book(), {0: [FAILING]}, until=21, config=config)
    assert [a.do for a in actions] == ["open_circuit", "probe_circuit"]  # half-open at minute 2
    assert book.incidents  # quiet since minute 10, waiting for a call until minute 22
    outcome = tick(book, 22, config=config)
    (resolved,) = outcome.transitions
    assert resolved.type == "incident.resolved"
    assert resolved.detail["circuit"] == (
        "half-open: no call came to try the agent (its next failure opens it, a success closes it)"
    )
    assert outcome.actions == []  # not closed: a failure of its next call opens it at once


def test_a_stopped_runbook_tries_nothing_and_an_anomaly_during_a_trial_keeps_it_open():
    book, _, _ = run(Book(), {0: [FAILING]}, until=1)
    incident = next(iter(book.incidents.values()))
    stopped = stop(book, incident.id, "ann", minute(2)).book
    for n in range(3, 11):
        outcome = tick(stopped, n)
        assert outcome.actions == [], n
        stopped = outcome.book
    # quiet since minute 0: resolves at 10 with nothing undone (the person has taken over)
    assert [t.type for t in outcome.transitions] == ["incident.resolved"] and not stopped.incidents

    book, _, _ = run(Book(), {0: [FAILING]}, until=5)  # half-open at minute 5
    still = tick(book, 6, "passed", anomalies=[FAILING])  # passed, but the signal is bad this minute
    assert not any(t.type == "incident.resolved" for t in still.transitions)
    assert still.book.incidents[incident.fingerprint].trial == "passed"
    assert any(t.type == "incident.resolved" for t in tick(still.book, 16).transitions)  # quiet 10 min


def test_runbook_steps_run_in_order_once_each_at_their_time():
    config = load_monitoring(
        {
            "monitoring": {
                "runbooks": {
                    "failure_rate": [
                        {"do": "open_circuit", "probe_after": None},  # trials: tested below
                        {"do": "lower_concurrency", "to": 1, "after": "2m"},
                        {"do": "escalate", "to": "ann", "after": "15m"},
                        {"do": "pause_workflow"},  # waits for the escalation before it
                    ]
                },
                "incidents": {"resolve_after": "1h"},
            }
        }
    )
    book, transitions, actions = run(Book(), {n: [FAILING] for n in range(30)}, until=30, config=config)
    incident = next(iter(book.incidents.values()))
    assert [(a.id.rsplit("/", 1)[1], a.do) for a in actions] == [
        ("0", "open_circuit"),
        ("1", "lower_concurrency"),
        ("2", "escalate"),
    ]
    issued_at = [t.at for t in transitions if t.type == "incident.action"]
    assert issued_at == [minute(0), minute(2), minute(15), minute(15)]
    skipped = [t.detail for t in transitions if t.type == "incident.action"][3]
    assert skipped == {
        "action_id": f"{incident.id}/3",
        "do": "pause_workflow",
        "skipped": "pause_workflow acts on a workflow; this incident is on agent:writer",
    }
    escalation = [t.detail for t in transitions if t.type == "incident.action"][2]
    assert escalation["to"] == "ann" and escalation["incident"]["first_evidence"] == {"bad": 6, "calls": 20}
    assert [step.outcome for step in incident.steps] == ["issued", "issued", "issued", "skipped"]
    assert len({step.id for step in incident.steps}) == 4  # each step once, however many minutes pass


def test_acknowledging_stops_notifications_severity_raises_and_escalation():
    book, _, _ = run(Book(), {0: [FAILING]}, until=0)
    incident = next(iter(book.incidents.values()))
    outcome = acknowledge(book, incident.id, "ann", minute(1))
    assert [(t.type, t.notify, t.detail) for t in outcome.transitions] == [
        ("incident.acknowledged", True, {"by": "ann"})
    ]
    assert acknowledge(outcome.book, incident.id, "bob", minute(2)).transitions == []  # twice: nothing new
    book, transitions, actions = run(outcome.book, {n: [FAILING] for n in range(2, 40)}, until=39)
    assert not any(t.notify for t in transitions)
    after = book.incidents["failure_rate@agent:writer"]
    assert after.severity == "critical" and after.status == "acknowledged"
    escalation = [
        t.detail for t in transitions if t.type == "incident.action" and t.detail["do"] == "escalate"
    ]
    assert escalation == [
        {
            "action_id": f"{incident.id}/1",
            "do": "escalate",
            "skipped": "acknowledged by ann: someone is on it",
        }
    ]


def test_an_unacknowledged_incident_goes_one_severity_up_per_escalate_after():
    latency = Anomaly(kind="latency", where="agent:reader")
    book, transitions, _ = run(Book(), {n: [latency] for n in range(65)}, until=64)
    raised = [(t.at, t.detail) for t in transitions if "severity_to" in t.detail]
    assert raised == [(minute(30), {"severity_from": "warning", "severity_to": "critical"})]
    assert book.incidents["latency@agent:reader"].severity == "critical"


def test_a_maintenance_window_suppresses_new_anomalies_and_holds_actions():
    config = load_monitoring(
        {
            "monitoring": {
                "maintenance": [{"name": "deploy", "days": ["tue"], "at": "10:00", "duration": "30m"}]
            }
        }
    )
    book, transitions, actions = run(Book(), {n: [FAILING] for n in range(35)}, until=34, config=config)
    suppressed = [t for t in transitions if t.type == "incident.suppressed"]
    assert [(t.at, t.incident_id, t.notify, t.detail["maintenance"]) for t in suppressed] == [
        (minute(0), None, False, "deploy")  # once per window, however many anomalies
    ]
    opened = [t for t in transitions if t.type == "incident.opened"]
    assert [t.at for t in opened] == [minute(30)]  # the window ends at 10:30
    assert [a.do for a in actions] == ["open_circuit"] and book.suppressed == {}


def test_an_open_incident_gets_no_action_and_no_notification_during_maintenance():
    config = load_monitoring(
        {
            "monitoring": {
                "maintenance": [
                    {
                        "start": "2026-11-24T10:05:00Z",
                        "end": "2026-11-24T10:25:00Z",
                        "scope": ["agent:writer"],
                    }
                ],
                "runbooks": {"failure_rate": [{"do": "escalate", "to": "ann", "after": "10m"}]},
            }
        }
    )
    book, transitions, actions = run(Book(), {n: [FAILING] for n in range(30)}, until=29, config=config)
    during = [t for t in transitions if minute(5) <= t.at < minute(25)]
    assert during and not any(t.notify or t.type == "incident.action" for t in during)
    assert [
        (a.do, t.at)
        for a, t in zip(actions, [t for t in transitions if t.type == "incident.action"], strict=True)
    ] == [("escalate", minute(25))]


def test_a_persons_stop_halts_every_further_action_and_the_undoing():
    book, _, actions = run(Book(), {0: [FAILING]}, until=0)
    assert [a.do for a in actions] == ["open_circuit"]
    incident = next(iter(book.incidents.values()))
    outcome = stop(book, incident.id, "ann", minute(1))
    assert [(t.type, t.detail) for t in outcome.transitions] == [("incident.updated", {"stopped_by": "ann"})]
    book, transitions, actions = run(outcome.book, {n: [FAILING] for n in range(2, 20)}, until=40)
    assert actions == [] and not any(t.type == "incident.action" for t in transitions)
    assert [t.type for t in transitions if t.type == "incident.resolved"] == ["incident.resolved"]


def test_actions_that_do_not_fit_the_scope_are_skipped_and_a_step_maps_to_its_workflow():
    config = load_monitoring(
        {
            "monitoring": {
                "runbooks": {"latency": ["open_circuit", "pause_workflow"]},
                "incidents": {"resolve_after": "1m"},
            }
        }
    )
    anomaly = Anomaly(kind="latency", where="step:lead_qualification.score_leads")
    book, transitions, actions = run(Book(), {0: [anomaly]}, until=2, config=config)
    assert [(a.do, a.target) for a in actions] == [
        ("pause_workflow", "workflow:lead_qualification"),
        ("resume_workflow", "workflow:lead_qualification"),
    ]
    skipped = [t.detail["skipped"] for t in transitions if "skipped" in t.detail]
    assert skipped == [
        "open_circuit acts on an agent; this incident is on step:lead_qualification.score_leads"
    ]


def test_bad_calls_are_refused_with_their_reason():
    book, _, _ = run(Book(), {0: [FAILING]}, until=5)
    with pytest.raises(
        IncidentError, match=r"^time went backwards: evaluating at 2026-11-24T10:04:00\+00:00 after "
    ):
        evaluate(book, [], minute(4), DEFAULTS)
    with pytest.raises(
        IncidentError, match=r"^'now' must be an aware datetime \(UTC\), got datetime.datetime\(2026"
    ):
        evaluate(book, [], datetime(2026, 11, 24, 11, 0), DEFAULTS)
    incident_id = next(iter(book.incidents.values())).id
    with pytest.raises(IncidentError) as missing:
        acknowledge(book, "inc-000000000000", "ann", minute(6))
    assert (
        str(missing.value)
        == f"no open incident 'inc-000000000000': it may have resolved (open ones: {incident_id})"
    )
    with pytest.raises(IncidentError, match=r"^'by' must name a person \(1 to 200 printable characters\)"):
        stop(book, incident_id, "ann\x00", minute(6))


def test_hostile_anomalies_are_refused():
    with pytest.raises(ValidationError) as huge:
        Anomaly(kind="cost", where="agent:x", evidence={"series": list(range(20_000))})
    assert (
        "evidence of 128,902 bytes is over the limit of 32,768: keep the counts and thresholds, not the raw series"
        in (str(huge.value))
    )
    with pytest.raises(ValidationError, match=r"kind\n  Input should be 'failure_rate'"):
        Anomaly(kind="nonsense", where="agent:x")
    with pytest.raises(ValidationError, match=r"where\n  String should match pattern"):
        Anomaly(kind="cost", where="agent:x\n#injected")
    with pytest.raises(ValidationError, match=r"count\n  Input should be greater than or equal to 1"):
        Anomaly(kind="cost", where="agent:x", count=0)
    storm = [Anomaly(kind="failure_rate", where=f"agent:a{i}") for i in range(2000)]
    outcome = evaluate(Book(), storm, T0, DEFAULTS)  # 2,000 fingerprints at once: one incident each
    assert len(outcome.book.incidents) == 2000 and len(outcome.actions) == 2000
