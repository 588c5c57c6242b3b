"""The ``airflow standalone`` that the integration tests and the benchmarks' smoke runs share.

Starting one costs about a minute of this two-core machine's CPU; every test module that needs a running
LocalExecutor Airflow uses this one: tests/integration/test_airflow.py, tests/integration/test_triggers.py,
and the budget, fault, latency, fan-out and priorities benchmarks' smoke runs (tests/bench/test_smoke_airflow.py).
tests/conftest.py puts every test that uses it in one xdist group, so they run one after another in the one
test process that started it, in the order of its SLOW_FIRST: test_airflow's before test_triggers' (which add rows to
the business database that test_airflow's lead_qualification runs read).

What it holds: the bundled dags folder, plus test_airflow's workflows, agents and broken templates (below),
test_triggers' queue-triggered workflow, and the benchmarks' DAGs, written by ``bench/<name>.py
--write-dags`` (the benchmarks run with ``--attach``), with the settings each printed: the fault
benchmark's ``BATON_FAULTS`` is scoped to its campaign's workflow, so no other run here sees a fault.
Its business database is PostgreSQL (the sensors wait on it). Every DAG stays paused until the tests that
run it unpause it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo.business import create as create_business
from demo.http_service import PartnerService
from sqlalchemy import make_url

from bench import hostile
from devtools.standalone import Standalone, scratch_database
from tests.agents.openai_server import OpenAICompatibleServer
from tests.otlp_receiver import OtlpReceiver
from tests.slack_recorder import SlackRecorder

ROOT = Path(__file__).resolve().parents[2]
BROKEN = Path(__file__).parents[1] / "spec" / "broken"
HOSTILE = Path(__file__).parents[1] / "spec" / "hostile"
HOSTILE_FILES = sorted(path.name for path in HOSTILE.iterdir())
HOSTILE_COST = [case for case in hostile.CASES if case.klass == "1 cost" and case.expect is not None]
SAGA_WORKFLOW = Path(__file__).parents[1] / "fixtures" / "saga" / "workflows" / "order_saga.yaml"
HEALTHY = [
    "canary_release",
    "pages_fanout",
    "pages_reassign",
    "pages_stop",
    "compliance_monitoring",
    "content_marketing",
    "crash_recovery",
    "customer_onboarding",
    "daily_operations",
    "deadline_overrun",
    "escalation",
    "failing_step",
    "gated_release",
    "hr_recruiting",
    "invoice_processing",
    "lead_followup",
    "lead_qualification",
    "market_research",
    "monitor_probe",
    "order_events",
    "order_saga",
    "parallel_feature_delivery",
    "revenue_milestone",
    "supply_chain",
    "support_triage",
    "upper_extension",
]
# Baton's own DAGs, next to the templates' (not templates): the compensator, the monitor, the incident
# escalation, and the sensors.
OPERATIONS = [
    "baton_compensate",
    "baton_incident_escalation",
    "baton_monitor",
    "compliance_monitoring__sensor",
    "lead_qualification__sensor",
    "revenue_milestone__sensor",
]
CRASH_AGENT = """
  - name: crash_test_analyst
    description: Its first model call hangs until the test kills the task process.
    llm_conn_id: crash_llm
"""
GHOST_AGENTS = """
  - name: ghost_writer_a
    description: Never gives a valid output (its server answers with invalid JSON).
    capabilities: [ghostwriting]
    llm_conn_id: invalid_llm
  - name: ghost_writer_b
    description: Never gives a valid output either.
    capabilities: [ghostwriting]
    llm_conn_id: invalid_llm
"""
ESCALATION_WORKFLOW = """workflow: escalation
version: 1
description: Every capable agent fails, so a person writes the output (tests/integration/test_airflow.py).
owner: tests
defaults: {retries: 1, retry_delay: 1s, retry_exponential_backoff: false}
steps:
  - id: draft
    route: {capabilities: [ghostwriting]}
    instruction: Draft the launch headline.
    output: {headline: string}
    output_retries: 0
    escalate: {when: failure, timeout: 10m}
  - id: publish
    needs: [draft]
    agent: strategy_strategic_planner
    instruction: "Publish {{ steps.draft.headline }}"
  - id: sign_off
    needs: [publish]
    agent: strategy_strategic_planner
    instruction: "Sign off the launch of {{ steps.draft.headline }}"
    output: {decision: {type: string, enum: [ship, wait]}}
    escalate: human
"""
# The monitor's test (issue 18): a fan-out routed over an agent whose model server refuses calls while the
# test says so, and one that always answers. Its own breaker would need 1,000 failures in a row: here only
# the monitor's runbook opens its circuit.
PROBE_AGENTS = """
  - name: flaky_prober
    description: Its model server refuses every call while the test has it down.
    capabilities: [probing]
    llm_conn_id: flaky_llm
    circuit_breaker: {failures: 1000}
  - name: steady_prober
    description: Always answers (the offline model), two calls at once.
    capabilities: [probing]
    llm_conn_id: baton_test_offline
    max_concurrency: 2
"""
# steady_prober holds two calls at once, so that monitor_probe's four at once give flaky_prober the others
# whatever its track record: by score alone it is passed over for good once one of its calls failed (its
# reliability then weighs less than steady_prober's free slots), and whether it failed the four calls
# test_monitor_airflow waits for came down to how busy steady_prober was in the first run.
PROBE_WORKFLOW = """workflow: monitor_probe
version: 1
description: A fan-out routed over a flaky and a steady agent (tests/integration/test_airflow.py, the monitor).
owner: tests
defaults: {retries: 0}
steps:
  - id: leads
    skill: score_leads
  - id: assess
    for_each: {over: leads.leads, concurrency: 4}
    route: {capabilities: [probing]}
    instruction: Assess lead {{ item.id }}.
    output:
      verdict: {type: string, enum: [go, hold]}
"""
# A tick of 15 s, the shortest window (a minute: signals are counted per minute) and 20 s of quiet and of
# probe, not the defaults' minute, hour, ten minutes and five, so that the incident opens, its circuit's
# trial passes and it resolves within test_monitor_airflow's two minutes.
MONITORING = """monitoring:
  tick: 15s
  detectors:
    failure_rate: {rate: {windows: [1m], min_calls: 3, min_bad: 3}}
  incidents: {resolve_after: 20s}
  runbooks:
    failure_rate:
      - {do: open_circuit, probe_after: 20s}
      - {do: escalate, to: on-call, after: 15m}
      - retry_failed_runs
"""
CRASH_WORKFLOW = """workflow: crash_recovery
version: 1
description: A step whose first try is killed with SIGKILL (tests/integration/test_airflow.py).
owner: tests
defaults: {retries: 1, retry_delay: 1s, retry_exponential_backoff: false}
steps:
  - id: assess
    agent: crash_test_analyst
    instruction: Assess the recovery.
    output:
      verdict: {type: string, enum: [go, hold]}
"""
DEADLINE_WORKFLOW = """workflow: deadline_overrun
version: 1
description: A run that overruns its deadlines while a person has not answered (tests/integration/test_airflow.py).
owner: tests
deadline: 5s
steps:
  - id: sign_off
    agent: strategy_strategic_planner
    instruction: Sign off the launch.
    output: {decision: {type: string, enum: [ship, wait]}}
    escalate: human
    deadline: 6s
"""
FAILING_WORKFLOW = """workflow: failing_step
version: 1
description: A step whose agent never gives a valid output, with no retry left (tests/integration/test_airflow.py).
owner: tests
defaults: {retries: 0}
steps:
  - id: draft
    agent: ghost_writer_a
    instruction: Draft the launch headline.
    output: {headline: string}
    output_retries: 0
"""

# A rollout whose new version fails every run (its agent never gives a valid output): it must roll back by
# itself (tests/integration/test_airflow.py). Its guardrails' alpha is 0.5, so that about five pairs of runs
# decide (each run is two task processes on a busy machine; tests/coordination/test_rollout.py decides at
# 0.2); a stage lasts an hour, so the share stays at 50 % meanwhile.
CANARY_WORKFLOW = """workflow: canary_release
version: 1
description: Rolls out a version that fails (tests/integration/test_airflow.py).
owner: tests
defaults: {retries: 0}
steps:
  - id: announce
    agent: strategy_strategic_planner
    instruction: Announce the release.
    output: {decision: {type: string, enum: [ship, wait]}}
rollout: {to: canary_release.v2.yaml, start: 50, step: 25, every: 1h, min_runs: 3, alpha: 0.5}
"""
CANARY_VERSION = """workflow: canary_release
version: 2
description: The new version, whose agent never gives a valid output.
owner: tests
defaults: {retries: 0}
steps:
  - id: announce
    agent: ghost_writer_a
    instruction: Announce the release, shorter.
    output: {decision: {type: string, enum: [ship, wait]}}
    output_retries: 0
"""

# A rollout gated on an evaluation dataset (test_airflow): version 2's instruction no longer names the topic,
# which every case's headline must hold (the offline model's answers follow the instruction).
GATED_WORKFLOW = """workflow: gated_release
version: 1
description: Rolls out a version that regresses on the dataset (tests/integration/test_airflow.py).
owner: tests
inputs:
  topic: {type: string, default: pricing}
defaults: {retries: 0}
steps:
  - id: announce
    agent: strategy_strategic_planner
    instruction: "Announce {{ inputs.topic }}."
    output: {headline: string}
rollout: {to: gated_release.v2.yaml, start: 100, step: 25, every: 1h, min_runs: 3}
"""
GATED_VERSION = (
    GATED_WORKFLOW.replace("version: 1", "version: 2")
    .replace('instruction: "Announce {{ inputs.topic }}."', "instruction: Announce the release.")
    .replace("rollout: {to: gated_release.v2.yaml, start: 100, step: 25, every: 1h, min_runs: 3}\n", "")
)
GATED_DATASET = "dataset: gated_release\ntolerance: 0.05\ncases:\n" + "".join(
    f"  - {{id: case_{topic}, inputs: {{topic: {topic}}}, expect: {{announce: {{headline: {{contains: {topic}}}}}}}}}\n"
    for topic in (
        "pricing",
        "billing",
        "exports",
        "webhooks",
        "reports",
        "seats",
        "sso",
        "audit",
        "search",
        "api",
    )
)

# test_pages' part (the Coordination and Management pages in a browser): agents of a routed step of which two
# never answer validly; an agent that answers after a second (a fan-out to watch) and one that takes two
# minutes (a run to stop); the workflows they do.
PAGES_AGENTS = """
  - name: relay_a
    description: Never gives a valid output (tests/integration/test_pages.py).
    capabilities: [relaying]
    llm_conn_id: invalid_llm
  - name: relay_b
    description: Never gives a valid output either.
    capabilities: [relaying]
    llm_conn_id: invalid_llm
  - name: relay_c
    description: Answers (the offline model).
    capabilities: [relaying]
    llm_conn_id: baton_test_offline
  - name: paced_scorer
    description: Answers after a second (the offline model with a delay).
    capabilities: [pacing]
    llm_conn_id: paced_offline
    max_concurrency: 2
  - name: stuck_scorer
    description: Answers after two minutes.
    capabilities: [stalling]
    llm_conn_id: stuck_offline
"""
PAGES_WORKFLOWS = {
    "pages_fanout": """workflow: pages_fanout
version: 1
description: A fan-out of fourteen calls of a second each, two at a time (tests/integration/test_pages.py).
owner: tests
defaults: {retries: 0}
steps:
  - id: leads
    skill: score_leads
  - id: assess
    for_each: {over: leads.leads, concurrency: 2}
    agent: paced_scorer
    instruction: Assess lead {{ item.id }}.
""",
    "pages_reassign": """workflow: pages_reassign
version: 1
description: A routed step whose first try fails; a person gives the next one to another agent.
owner: tests
steps:
  - id: answer
    route: {capabilities: [relaying]}
    instruction: Answer the customer.
    output: {verdict: {type: string, enum: [go, hold]}}
    output_retries: 0
    retries: 2
    retry_delay: 10m
""",
    "pages_stop": """workflow: pages_stop
version: 1
description: A planned order whose next step takes two minutes while a person is asked to approve the plan
  and a routed step scores it (done in seconds), stopped by a person and compensated (its open question
  closed by the stop).
owner: tests
inputs:
  service: {{type: string, default: "{service}"}}
defaults: {{retries: 0}}
steps:
  - id: plan
    skill: decompose_feature
    compensate:
      skill: http_post
      with: {{url: "{{{{ inputs.service }}}}/plan/cancel", json: {{task: "{{{{ output.task }}}}"}}}}
  - id: wait
    needs: [plan]
    agent: stuck_scorer
    instruction: Take your time.
  - id: approve
    needs: [plan]
    skill: decompose_feature
    escalate: {{when: always, timeout: 3d, default: fail, subject: "Go ahead with the plan?"}}
  - id: score
    needs: [plan]
    route: {{capabilities: [pacing]}}
    instruction: Score the plan.
""",
}


# test_triggers' part: the bundled sensors poke the business database every 2 s (not 15 or 30: less
# waiting), and a workflow started by messages on a Redis channel posts each to the partner service.
SENSOR_WORKFLOWS = ["compliance_monitoring", "lead_qualification", "revenue_milestone"]
QUEUE_WORKFLOW = """workflow: order_events
version: 1
description: Each message on the Redis channel baton.orders starts a run (tests/integration/test_triggers.py).
owner: tests
trigger:
  queue: {{redis_channel: baton.orders, poll_interval: 0.5}}
steps:
  - id: forward
    skill: http_post
    with:
      url: "{url}"
      json: "{{{{ trigger.payload }}}}"
"""
PG_SERVER = os.environ.get("BATON_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# The benchmarks whose smoke runs attach to this Airflow, and the DAGs their --write-dags adds.
BENCHES = ("budget", "fanout", "faults", "latency", "priorities")
# What --write-dags is given besides the folder: the priorities benchmark's smoke sizes (1 s steps).
BENCH_WRITE_ARGS = {"priorities": ["--quick"]}
# Baton templates
BENCH_WORKFLOWS = [
    "budget_a",
    "budget_b",
    "fanout_c16",
    "fanout_c4",
    "fault_campaign",
    "latency_baton",
    "prio_bulk",
    "prio_urgent",
]
# DAG files: hand-written, or (the priorities benchmark's default arm) built from its templates
BENCH_PLAIN = ["fanout_bare", "latency_plain", "prio_bulk_default", "prio_urgent_default"]


@pytest.fixture(scope="session")
def shared_llm_server() -> Iterator[OpenAICompatibleServer]:
    """The OpenAI-compatible model server of the crash, invalid-output and flaky agents."""
    with OpenAICompatibleServer({"verdict": "go"}) as server:
        yield server


@pytest.fixture(scope="session")
def shared_otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def shared_slack() -> Iterator[SlackRecorder]:
    with SlackRecorder() as recorder:
        yield recorder


@contextlib.contextmanager
def _pg_database(prefix: str) -> Iterator[str]:
    """A throwaway PostgreSQL database, or the test's failure saying what is missing (not a skip)."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_database(PG_SERVER, prefix))
        except Exception as error:
            pytest.fail(f"PostgreSQL at {PG_SERVER} is needed (scripts/test.sh starts it): {error}")
        yield url


@pytest.fixture(scope="session")
def shared_business() -> Iterator[str]:
    """The shared Airflow's business database: a throwaway PostgreSQL one seeded with the demo data."""
    with _pg_database("baton_business") as url:
        create_business(url)
        yield url


@pytest.fixture(scope="session")
def shared_metadata() -> Iterator[str]:
    """The shared Airflow's metadata database, on PostgreSQL: on SQLite, with the sensors polling and the
    tests' runs, its scheduler died of 'database is locked' (SQLite has one writer)."""
    with _pg_database("baton_shared_meta") as url:
        yield make_url(url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def shared_partner() -> Iterator[PartnerService]:
    """The partner HTTP service the queue-triggered workflow posts to."""
    with PartnerService() as service:
        yield service


def _write_trigger_dags(dags: Path, partner: PartnerService) -> None:
    """test_triggers' changes: the sensors poke every 2 s (lead_qualification's with a time_column); the
    queue-triggered workflow."""
    for name in SENSOR_WORKFLOWS:
        template = dags / "workflows" / f"{name}.yaml"
        text, found = re.subn(r"poke_interval: \d+s", "poke_interval: 2s", template.read_text())
        assert found == 1, f"{template.name}: no 'poke_interval: <n>s' to shorten"
        if name == "lead_qualification":  # its lag measured too: test_triggers stamps the leads it adds
            text, found = re.subn(r"key: seq\n", "key: seq\n      time_column: created_at\n", text)
            assert found == 1, f"{template.name}: no 'key: seq' to add a time_column after"
        template.write_text(text)
    (dags / "workflows" / "order_events.yaml").write_text(QUEUE_WORKFLOW.format(url=partner.url("/orders")))


def _write_test_dags(dags: Path) -> None:
    """test_airflow's additions to a copy of the bundled dags folder."""
    for name in ("unknown_agent.yaml", "invalid_cron.yaml"):
        shutil.copy(BROKEN / name, dags / "workflows" / name)
    for name in HOSTILE_FILES:  # the hostile corpus beside them (issue 15): none may hide a healthy DAG
        shutil.copy(HOSTILE / name, dags / "workflows" / name)
    for case in HOSTILE_COST:
        (dags / "workflows" / f"{case.name}.yaml").write_text(case.build(1.0))
    (dags / "agents.yaml").write_text(
        (dags / "agents.yaml").read_text() + CRASH_AGENT + GHOST_AGENTS + PROBE_AGENTS + PAGES_AGENTS
    )
    (dags / "workflows" / "monitor_probe.yaml").write_text(PROBE_WORKFLOW)
    (dags / "monitoring.yaml").write_text(MONITORING)
    (dags / "workflows" / "crash_recovery.yaml").write_text(CRASH_WORKFLOW)
    (dags / "workflows" / "escalation.yaml").write_text(ESCALATION_WORKFLOW)
    (dags / "workflows" / "deadline_overrun.yaml").write_text(DEADLINE_WORKFLOW)
    (dags / "workflows" / "failing_step.yaml").write_text(FAILING_WORKFLOW)
    (dags / "workflows" / "canary_release.yaml").write_text(CANARY_WORKFLOW)
    (dags / "versions").mkdir(exist_ok=True)
    (dags / "versions" / "canary_release.v2.yaml").write_text(CANARY_VERSION)
    (dags / "workflows" / "gated_release.yaml").write_text(GATED_WORKFLOW)
    (dags / "versions" / "gated_release.v2.yaml").write_text(GATED_VERSION)
    (dags / "evals" / "gated_release.yaml").write_text(GATED_DATASET)
    shutil.copy(SAGA_WORKFLOW, dags / "workflows" / "order_saga.yaml")


def _write_bench_dags(dags: Path) -> dict[str, str]:
    """Each benchmark's DAGs, written by the benchmark itself; the settings they need (extension modules
    added to the ones already loaded, not instead of them)."""
    settings: dict[str, str] = {}
    extensions = [os.environ.get("BATON_EXTENSIONS", "")]
    for bench in BENCHES:
        done = subprocess.run(
            [
                sys.executable,
                f"bench/{bench}.py",
                "--write-dags",
                str(dags),
                *BENCH_WRITE_ARGS.get(bench, []),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"bench/{bench}.py --write-dags: {done.stderr[-2000:]}"
        wanted = json.loads(done.stdout.strip().splitlines()[-1])
        extensions.append(wanted.pop("BATON_EXTENSIONS", ""))
        settings.update(wanted)
    settings["BATON_EXTENSIONS"] = ",".join(dict.fromkeys(e for e in ",".join(extensions).split(",") if e))
    return settings


def unpause(airflow: Standalone, dag_ids: list[str]) -> Standalone:
    """``airflow`` with ``dag_ids`` unpaused (every other DAG stays paused): a test module's ``running``."""
    for dag_id in dag_ids:
        response = airflow.write("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        assert response.status_code == 200, response.text
    return airflow


def _offline(delay: float) -> dict:
    """The offline model answering after ``delay`` seconds."""
    return {"conn_type": "pydanticai", "extra": {"model": "baton:offline", "offline_delay_s": delay}}


def llm_connection(server: OpenAICompatibleServer, path: str, model: str) -> dict:
    """An Airflow LLM connection to one behaviour of the test model server (``/<path>/v1``)."""
    return {
        "conn_type": "pydanticai",
        "host": f"{server.url}/{path}/v1",
        "password": "sk-crash-test",
        "extra": {"model": f"openai-chat:{model}"},
    }


@pytest.fixture(scope="session")
def shared_airflow(
    tmp_path_factory,
    shared_llm_server,
    shared_slack,
    shared_otlp,
    shared_business,
    shared_partner,
    shared_metadata,
) -> Iterator[Standalone]:
    """The shared Airflow before it starts (``airflow standalone`` creates its metadata tables, as in
    ``make run``); ``shared_running`` starts it."""
    root = tmp_path_factory.mktemp("shared-airflow")
    dags = root / "dags"
    # the demo's budgets stay out: the budget benchmark writes its own budgets.yaml here (--write-dags)
    shutil.copytree(ROOT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__", "budgets.yaml"))
    _write_test_dags(dags)
    _write_trigger_dags(dags, shared_partner)
    for name, text in PAGES_WORKFLOWS.items():  # test_pages' stop compensates at the shared partner service
        text = text.format(service=shared_partner.url("/pages")) if name == "pages_stop" else text
        (dags / "workflows" / f"{name}.yaml").write_text(text)
    bench_settings = _write_bench_dags(dags)
    crash_llm = llm_connection(shared_llm_server, "slow", "gpt-slow")
    invalid_llm = llm_connection(shared_llm_server, "invalid", "gpt-bad")
    flaky_llm = llm_connection(shared_llm_server, "flaky", "gpt-flaky")
    airflow = Standalone(
        root / "home",
        dags_folder=dags,
        settings={
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": shared_metadata,
            "AIRFLOW_CONN_CRASH_LLM": json.dumps(crash_llm),
            "AIRFLOW_CONN_INVALID_LLM": json.dumps(invalid_llm),
            "AIRFLOW_CONN_FLAKY_LLM": json.dumps(flaky_llm),
            "AIRFLOW_CONN_PACED_OFFLINE": json.dumps(_offline(1.0)),
            "AIRFLOW_CONN_STUCK_OFFLINE": json.dumps(_offline(120.0)),  # stopped long before it answers
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            # Airflow's traces, and Baton's spans inside them, to the OTLP receiver on 127.0.0.1
            "AIRFLOW__TRACES__OTEL_ON": "True",
            "OTEL_TRACES_EXPORTER": "otlp_proto_http",
            "OTEL_EXPORTER_OTLP_ENDPOINT": shared_otlp.url,
            "OTEL_SERVICE_NAME": "baton-test",
            "AIRFLOW_CONN_BATON_SLACK": shared_slack.connection,
            # The business database is PostgreSQL: the connection the templates name, as an external URI.
            "AIRFLOW_CONN_BATON_BUSINESS": shared_business.replace("postgresql+psycopg://", "postgres://"),
            "AIRFLOW_CONN_REDIS_DEFAULT": "redis://127.0.0.1:6379/0",
            **bench_settings,
        },
    )
    airflow.env["AIRFLOW__API__BASE_URL"] = airflow.url  # the links in alerts open this Airflow
    _started.append(airflow)
    try:
        yield airflow
    finally:
        _started.remove(airflow)
        airflow.stop()
        assert airflow.leftover_pids() == [], "an Airflow process outlived the tests"


_started: list[Standalone] = []  # the shared Airflow of this process, once its fixture made it


def stop_started() -> None:
    """Stop the shared Airflow now (tests/conftest.py, after its files' last test); the fixture's teardown
    still checks at the session's end that no process of it is left."""
    for airflow in _started:
        airflow.stop()


@pytest.fixture(scope="session")
def shared_running(shared_airflow: Standalone) -> Standalone:
    """The shared Airflow, started, its pools made and every healthy workflow parsed. Every DAG is
    paused (tests/conftest.py): a test unpauses the ones it runs."""
    shared_airflow.start()
    pools = shared_airflow.command("baton", "pools", "sync")
    assert pools.returncode == 0, pools.stderr[-2000:]
    for dag_id in [*HEALTHY, *BENCH_WORKFLOWS, *BENCH_PLAIN]:
        shared_airflow.wait_for_dag(dag_id)
    return shared_airflow
