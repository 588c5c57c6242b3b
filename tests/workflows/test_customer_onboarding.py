"""customer_onboarding, the bundled template, in two ``dag.test()`` runs against the demo site in
Debian's Chromium and a Slack webhook recorder on 127.0.0.1: an enterprise customer set up end to end,
and a customer whose email the CRM refuses."""

from __future__ import annotations

import json

import pytest
from demo.web import DemoWeb

from baton.events import EventStore
from tests.conftest import DAGS, run_dag_test_in_subprocess
from tests.slack_recorder import SlackRecorder

pytestmark = pytest.mark.integration

ENTERPRISE = {
    "company": "Babbage Engines",
    "contact": "Charles Babbage",
    "email": "cb@engines.example",
    "segment": "enterprise",
    "plan": "enterprise",
}


@pytest.fixture(scope="module")
def runs(airflow_db, tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("artifacts")
    with DemoWeb() as web, SlackRecorder() as slack:
        env = {"AIRFLOW_CONN_BATON_SLACK": slack.connection, "BATON_ARTIFACTS": str(artifacts)}
        done = run_dag_test_in_subprocess(
            DAGS, "dags-folder", "customer_onboarding", {**ENTERPRISE, "site": web.url}, env=env
        )
        refused = run_dag_test_in_subprocess(
            DAGS,
            "dags-folder",
            "customer_onboarding",
            {**ENTERPRISE, "email": "charles at engines", "site": web.url},
            env=env,
        )
        submissions = {p: web.submissions(p) for p in ("crm", "billing", "support")}
        posts = list(slack.posts)
    store = EventStore.from_airflow()
    return {
        "done": (*done, list(store.read(done[0].run_id))),
        "refused": (*refused, list(store.read(refused[0].run_id))),
        "submissions": submissions,
        "posts": posts,
        "artifacts": artifacts,
    }


def test_an_enterprise_customer_is_set_up_on_the_three_platforms(runs):
    run, results, output, _ = runs["done"]
    states = {task: state for task, (state, _) in results.items()}
    assert set(states.values()) == {"success"}, output[-3000:]
    crm, billing, support = (runs["submissions"][p] for p in ("crm", "billing", "support"))
    assert [len(crm), len(billing), len(support)] == [1, 1, 1]  # the refused run submitted nothing valid
    assert (crm[0]["name"], crm[0]["email"], crm[0]["plan"], crm[0]["terms"]) == (
        "Charles Babbage",
        "cb@engines.example",
        "enterprise",
        True,
    )
    assert billing[0]["company"] == f"Babbage Engines ({crm[0]['id']})"
    assert (support[0]["role"], support[0]["notify"]) == ("admin", True)
    materials = results["materials"][1]
    assert (materials["tone"], materials["kickoff_minutes"]) == ("formal", 60)
    assert materials["plan_terms"] == ["dedicated success manager", "99.9% uptime SLA", "unlimited users"]


def test_the_welcome_pack_has_the_segments_sections_the_plans_terms_and_every_account(runs):
    _, results, _, _ = runs["done"]
    crm, billing, support = (runs["submissions"][p][0]["id"] for p in ("crm", "billing", "support"))
    pack = results["welcome_pack"][1]
    assert pack["title"] == "Welcome to Baton, Babbage Engines"
    assert [line for line in pack["markdown"].splitlines() if line.startswith("## ")] == [
        "## Getting started",
        "## Your accounts",
        "## Your plan",
        "## Rolling out to teams",
        "## Security and compliance",
        "## Getting help",
    ]
    assert f"- crm: `{crm}`\n- billing: `{billing}`\n- support: `{support}`" in pack["markdown"]
    assert "Write to your dedicated success manager" in pack["markdown"]
    assert results["check_pack"][1] == {"valid": True, "rules_checked": 9, "sections": pack["sections"]}


def test_progress_is_kept_in_the_shared_context_and_slack_hears_when_it_is_done(runs):
    run, results, _, events = runs["done"]
    crm, billing, support = (runs["submissions"][p][0]["id"] for p in ("crm", "billing", "support"))
    writes = [e.payload for e in events if e.type == "context.written" and e.payload.get("key") == "progress"]
    assert len(writes) == 3, writes
    (post,) = [p for p in runs["posts"] if "customer onboarded" in p["text"]]
    assert post["text"].startswith(":white_check_mark: *Baton: customer onboarded*")
    assert (
        f"Babbage Engines is set up (enterprise, enterprise): CRM {crm}, billing {billing}, support {support}."
        in post["text"]
    )
    assert results["announce"][1]["delivered"] is True
    saved = {e.payload["name"]: e.payload for e in events if e.type == "artifact.saved"}
    assert sorted(saved) == ["crm_account", "welcome_csv"]
    csv = (runs["artifacts"] / saved["welcome_csv"]["path"]).read_text().splitlines()
    assert csv[0] == "account_id,company,billing_email,currency,auto_pay"
    assert csv[1] == f"{billing},Babbage Engines ({crm}),cb@engines.example,USD,yes"


def test_an_email_the_crm_refuses_fails_the_run_with_an_alert_and_nothing_after_it_runs(runs):
    run, results, output, events = runs["refused"]
    states = {task: state for task, (state, _) in results.items()}
    assert states == {
        "materials": "success",
        "crm": "failed",
        "billing": "upstream_failed",
        "support": "upstream_failed",
        "welcome_pack": "upstream_failed",
        "check_pack": "upstream_failed",
        "announce": "upstream_failed",
    }, output[-3000:]
    failed = [e.payload for e in events if e.type == "step.failed" and e.step == "crm"]
    assert [f["error_class"] for f in failed] == ["BrowserError", "BrowserError"]  # both tries
    assert "browser[7] (wait_for '#confirmation')" in failed[-1]["error"]
    assert "charles at engines" not in json.dumps([e.payload for e in events])  # typed values never
    (alert,) = [p for p in runs["posts"] if "step failed" in p["text"] and run.run_id in p["text"]]
    assert "*Step:* `crm`" in alert["text"]
