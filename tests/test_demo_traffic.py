"""The demo's traffic in ``make run`` (issue 54): support_triage every two minutes, with a variant, a
rollout and budgets, and a planned outage of the partner helpdesk that the monitor must see, open an
incident for, and resolve once the helpdesk is back.

The outage is checked without waiting on a clock: the runs' events are written as support_triage writes
them (tests/workflows/test_support_triage.py checks those in real runs), at the times its schedule and
retries give, against a real demo partner service with run.sh's outage on a clock of the test's; the
monitor's tick then runs minute by minute over them with the bundled monitoring.yaml, as tests/ops do."""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from croniter import croniter
from demo.http_service import Outage, PartnerService

from baton.cli import main as baton
from baton.compile.loader import healthy_workflows, rollouts
from baton.coordination.load import Breakers
from baton.events.event import Event
from baton.events.migrations import upgrade
from baton.events.store import EventStore, engine_for
from baton.ops.monitor import loop
from baton.ops.reports import experiments as experiment_report
from baton.ops.reports import rollouts as rollout_report
from baton.spec.budgets import load_budgets
from baton.spec.loading import load_roster, load_workflow
from baton.spec.monitoring import load_config
from tests.conftest import DAGS, ROOT

WORKFLOW = "support_triage"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # the first scheduled run (a Monday, on the schedule)


@pytest.fixture
def store(tmp_path) -> EventStore:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(engine_for(url))
    return EventStore(engine_for(url))


def _outage() -> Outage:
    """The helpdesk's outage as scripts/run.sh starts the demo partner service."""
    script = (ROOT / "scripts" / "run.sh").read_text()
    command = re.search(r"python -m demo\.http_service(.*?)>", script, re.S)
    assert command, "run.sh no longer starts the demo partner service"
    words = shlex.split(command.group(1).replace("\\\n", " "))
    (outage,) = [Outage.parse(words[i + 1]) for i, word in enumerate(words) if word == "--outage"]
    return outage


def test_the_bundled_budgets_validate_and_name_real_agents_and_workflows(capsys):
    budgets = load_budgets(DAGS / "budgets.yaml", DAGS)
    roster = {agent.name for agent in load_roster(DAGS / "agents.yaml").agents}
    workflows = {path.stem for path in (DAGS / "workflows").glob("*.yaml")}
    assert [(b.name, b.scope, b.per) for b in budgets] == [
        ("triage-run", f"workflow:{WORKFLOW}", "run"),
        ("triager-day", "agent:support_triager", "day"),
    ]
    for budget in budgets:
        kind, _, name = budget.scope.partition(":")
        assert name in {"workflow": workflows, "agent": roster}[kind], budget.scope
    # the triager is an LLM agent of the workflow the run budget covers: the traffic spends against both
    template = load_workflow(DAGS / "workflows" / f"{WORKFLOW}.yaml", load_roster(DAGS / "agents.yaml"))
    assert "support_triager" in [step.agent_name for step in template.steps]
    assert baton(["validate"]) == 0
    out = capsys.readouterr().out
    # one warning: compliance_monitoring's dataset runs its notify step (Slack, withheld in an evaluation: it logs)
    assert out.splitlines()[-1] == "13 template(s) checked, 0 with errors, 0 error(s) in all, 1 warning(s)"


def test_the_variant_and_the_rollout_validate_compile_and_are_reported(store, dagbag):
    ((current, new),) = [(c, n) for c, n in rollouts(DAGS) if c.workflow == WORKFLOW]
    assert (current.version, new.version, current.rollout.to) == (1, 2, "support_triage.v2.yaml")
    dag = dagbag.dags[WORKFLOW]
    assert {"v1", "v2", "rollout"} <= set(dag.tags)
    assert sorted(dag.task_ids) == sorted(
        ["baton_version", "load_tickets", "triage", "file_tickets"]
        + ["v2.load_tickets", "v2.triage", "v2.file_tickets"]
        + (["_compensate"] if "_compensate" in dag.task_ids else [])
    )
    assert WORKFLOW in [flow.workflow for flow in healthy_workflows(DAGS)]

    (experiment,) = [e for e in experiment_report.report(store, DAGS) if e["workflow"] == WORKFLOW]
    assert (experiment["experiment"], experiment["control"], experiment["status"]) == (
        "support_triage.triage",
        "as_written",
        "running",
    )
    assert experiment["arms"] == {
        "as_written": {"weight": 1.0, "changes": []},
        "brief": {"weight": 1.0, "changes": ["its instruction"]},
    }
    (rollout,) = rollout_report.report(store, DAGS, WORKFLOW)
    assert (rollout["from_version"], rollout["to_version"], rollout["share"]) == (1, 2, 0.0)  # no run yet
    assert (rollout["settings"]["start"], rollout["guardrails"]) == (50.0, "no run has ended yet")
    assert rollout["file"] == "versions/support_triage.v2.yaml"


# --- the outage ------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _try_events(run_id: str, at: datetime, try_number: int, statuses: list[int]) -> list[Event]:
    """One try of file_tickets (three tickets, helpdesk_api) as the fan-out records it: each ticket's
    subtask, then the step."""
    common = {"run_id": run_id, "workflow": WORKFLOW, "step": "file_tickets", "agent": "helpdesk_api"}
    events = []
    for i, status in enumerate(statuses):
        ok = status < 300
        ticket = f"T-10{i:02d}"
        payload = (
            {"subtask": ticket, "latency_s": 0.3, "sha256": "0" * 64, "size": 100}
            if ok
            else {"subtask": ticket, "error_class": "SkillError", "error": f"answered {status}"}
        )
        events.append(
            Event(
                type="subtask.succeeded" if ok else "subtask.failed",
                try_number=try_number,
                discriminator=ticket,
                ts=at + timedelta(milliseconds=300 * (i + 1)),
                payload=payload,
                **common,
            )
        )
    failed = any(status >= 300 for status in statuses)
    events.append(
        Event(
            type="step.failed" if failed else "step.succeeded",
            try_number=try_number,
            ts=at + timedelta(seconds=1),
            payload={"error_class": "AgentError"} if failed else {"duration_s": 1.0},
            **common,
        )
    )
    return events


def test_the_helpdesk_outage_opens_an_incident_that_resolves_once_it_is_back(store, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_BATON_SLACK", raising=False)
    config = load_config(DAGS)  # the bundled monitoring.yaml
    outage = _outage()
    assert outage.path == "/helpdesk/tickets"
    template = load_workflow(DAGS / "workflows" / f"{WORKFLOW}.yaml", load_roster(DAGS / "agents.yaml"))
    assert template.defaults.retries == 1
    retry = template.defaults.retry_delay.total_seconds()
    helpdesk = next(a for a in load_roster(DAGS / "agents.yaml").agents if a.name == "helpdesk_api")
    schedule = croniter(template.schedule.cron, START - timedelta(seconds=1))
    runs = [schedule.get_next(datetime) for _ in range(30)]  # an hour of runs
    assert runs[1] - runs[0] == timedelta(minutes=2)

    clock = Clock()
    posted: list[tuple[datetime, int]] = []  # each try: when, and the helpdesk's worst answer
    transitions, resolutions, actions = [], [], []
    with PartnerService(outages=[outage], clock=clock) as partner:
        pending = []  # (when, run, try number)
        for run in runs:
            pending.append((run + timedelta(seconds=6), run, 1))  # load_tickets and triage first
        pending.sort()
        minute = START
        while pending or minute <= runs[-1]:
            minute += timedelta(minutes=1)
            while pending and pending[0][0] < minute - timedelta(seconds=10):  # folded after SETTLE
                at, run, try_number = pending.pop(0)
                clock.now = (at - START).total_seconds()
                statuses = [
                    httpx.post(partner.url(outage.path), json={"ticket": f"T-10{i:02d}"}).status_code
                    for i in range(3)
                ]
                run_id = f"scheduled__{run.isoformat()}"
                store.append(_try_events(run_id, at, try_number, statuses))
                for status in statuses:  # the fan-out tells the agent's circuit breaker of each call
                    if status < 300:
                        Breakers(store).success(helpdesk.name)
                    else:
                        Breakers(store).failure(helpdesk, f"SkillError: answered {status}")
                posted.append((at, max(statuses)))
                if max(statuses) >= 300 and try_number == 1:
                    pending.append((at + timedelta(seconds=retry + 2), run, 2))
                    pending.sort()
            report = loop.tick(store, config, minute)
            transitions += [(minute, t.type, t.where) for t in report.transitions]
            resolutions += [t.detail for t in report.transitions if t.type == "incident.resolved"]
            actions += [(minute, action.do) for action, _ in report.actions]

    first_post = posted[0][0]
    down_from = first_post + timedelta(seconds=outage.after)
    down_until = down_from + timedelta(seconds=outage.lasting)
    failed = [at for at, status in posted if status >= 300]
    assert failed and all(down_from <= at < down_until for at, status in posted if status >= 300)
    assert len(failed) == 4  # two runs in the outage, each try of each
    helpdesk_incident = [(m, kind) for m, kind, where in transitions if where == "agent:helpdesk_api"]
    opened = [m for m, kind in helpdesk_incident if kind == "incident.opened"]
    resolved = [m for m, kind in helpdesk_incident if kind == "incident.resolved"]
    assert len(opened) == 1 and len(resolved) == 1, transitions
    # seen within two minutes of the first failure, resolved within ten of the helpdesk's return
    assert opened[0] - failed[0] <= timedelta(minutes=2), (opened, failed)
    assert resolved[0] - down_until <= timedelta(minutes=10), (resolved, down_until)
    assert resolved[0] - START <= timedelta(minutes=20)
    # the monitor opened nothing else: no other agent, and the workflow's runs are not an incident
    assert {where for _, _, where in transitions} == {"agent:helpdesk_api"}, transitions
    # its runbook opened the helpdesk's circuit at once, half-opened it two minutes later, and the trial
    # call after the outage closed it: only then did the incident resolve
    assert [do for _, do in actions[:2]] == ["open_circuit", "probe_circuit"], actions
    assert actions[0][0] == opened[0] and actions[1][0] - opened[0] == timedelta(minutes=2)
    assert resolutions[0]["circuit"] == "closed by a trial call that succeeded"
    print(f"first failure {failed[0] - START}, opened {opened[0] - START}, resolved {resolved[0] - START}")
