"""content_marketing in real ``dag.test()`` runs, offline on the demo content data: the pieces go to a
demo CMS (a PartnerService), the performance record lives under a temporary artifacts root, a person
answers on the Required Actions page (here: the HITL response written as the REST API writes it).

Runs (one each, shared by the tests): the spring launch (the CMS fails one post: the retry posts it
once), the flash sale (its sms piece cannot be made to fit: a person continues without it), and a
brief missing its audience.
"""

from __future__ import annotations

import json

import pytest
from demo.http_service import PartnerService

from baton.events import EventStore
from tests.conftest import DAGS, run_dag_test_in_subprocess
from tests.hitl import Person

DAG_ID = "content_marketing"
STEPS = ("load_brief", "write", "approve", "publish", "track_performance")
ALL_SUCCESS = dict.fromkeys(STEPS, "success")
KEY = "Notes sync across every device in under a second"
DISCLAIMER = "Free for teams of up to five; paid plans from $6 per user a month."
LIMITS = {"blog": 3000, "x": 280, "linkedin": 700, "email": 1500}
PREVIOUS = {  # what "the last run" recorded, seeded before the spring launch runs
    "run_id": "manual__last_spring",
    "brief": "spring-launch",
    "best_channel": "linkedin",
    "channels": {
        "blog": {"ctr_pct": 4.5},
        "x": {"ctr_pct": 2.4},
        "linkedin": {"ctr_pct": 4.1},
        "email": {"ctr_pct": 11.25},
    },
}
X_DRAFT = (
    "The REVOLUTIONARY notebook for remote teams is here! Notes sync across every device in under a "
    "second. Shared notebooks keep the whole team on the same page. Meeting notes turn into tasks with "
    "one click. Start free at tidewater.example/notes. " + DISCLAIMER
)
X_FINAL = (
    "The new notebook for remote teams is here. Notes sync across every device in under a second. "
    "Shared notebooks keep the whole team on the same page. Start free at tidewater.example/notes. "
    + DISCLAIMER
)
MISSING_AUDIENCE = (
    "brief 'autumn-teaser' is missing the required field(s) audience: a brief needs product, audience, "
    "key_messages, channels, so no content is written and nothing is published"
)


@pytest.fixture(scope="module")
def cms():
    with PartnerService() as service:
        yield service


def _run(slack, artifacts, conf: dict, answer: tuple[list[str], dict] | None = None):
    """One dag.test() run with its own artifacts root; with ``answer``, a person answers the write
    step's question. (run, results, output, asked)."""
    variables = {"AIRFLOW_CONN_BATON_SLACK": slack.connection, "BATON_ARTIFACTS": str(artifacts)}
    person = Person(DAG_ID, "write", *answer, user="Mia Editor") if answer is not None else None
    run, results, output = run_dag_test_in_subprocess(
        DAGS, "dags-folder", DAG_ID, conf, env=variables, person=person
    )
    assert person is None or person.asked is not None, (
        f"the write step never asked a person:\n{output[-4000:]}"
    )
    return run, results, output, person and person.asked


@pytest.fixture(scope="module")
def launched(slack, cms, airflow_db, tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("content-artifacts")
    state = artifacts / "content_marketing" / "state" / "performance.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps(PREVIOUS))
    cms.fail("/spring/posts", 1)  # the first post answers 500: that piece is posted by the retry
    run, results, output, _ = _run(slack, artifacts, {"cms_url": cms.url("/spring")})
    return run, results, output, state


@pytest.fixture(scope="module")
def flash_sale(slack, cms, airflow_db, tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("content-flash-artifacts")
    conf = {"cms_url": cms.url("/flash"), "brief": "flash-sale"}
    return _run(slack, artifacts, conf, (["Continue without them"], {}))


@pytest.fixture(scope="module")
def missing_audience(slack, cms, airflow_db, tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("content-missing-artifacts")
    run, results, output, _ = _run(
        slack, artifacts, {"cms_url": cms.url("/autumn"), "brief": "autumn-teaser"}
    )
    return run, results, output, artifacts


def _events(run_id: str, *types: str) -> list:
    return list(EventStore.from_airflow().read(run_id, types=list(types) or None))


# --- the spring launch ---------------------------------------------------------------------------


def test_every_channel_gets_a_piece_within_its_limit_with_the_key_message_and_the_disclaimer(launched):
    run, results, output, _ = launched
    assert run.state == "success", output[-4000:]
    assert run.task_states == ALL_SUCCESS
    written = results["write"][1]
    assert (written["total"], written["failures"]) == (4, [])
    pieces = {r["id"]: r["output"] for r in written["results"]}
    assert sorted(pieces) == sorted(LIMITS)
    for channel, piece in pieces.items():
        assert (piece["channel"], piece["limit"]) == (channel, LIMITS[channel])
        assert piece["length"] == len(piece["text"]) <= LIMITS[channel]
        assert KEY in piece["text"] and piece["text"].endswith(DISCLAIMER) and piece["disclaimer"] is True
        assert "!" not in piece["text"] and "REVOLUTIONARY" not in piece["text"]
    assert {c: p["length"] for c, p in pieces.items()} == {
        "blog": 381,
        "x": 253,
        "linkedin": 352,
        "email": 348,
    }
    assert pieces["blog"]["revisions"] == [] and pieces["email"]["revisions"] == []
    assert pieces["email"]["text"].splitlines()[:3] == [
        "Tidewater Notes for remote product teams",
        "",
        "Your spring upgrade for team notes is ready.",
    ]
    # The four pieces were written at once, in one task.
    (planned,) = [e for e in _events(run.run_id, "fanout.planned") if e.step == "write"]
    assert (planned.payload["subtasks"], planned.payload["concurrency"]) == (
        ["blog", "x", "linkedin", "email"],
        4,
    )


def test_the_off_brand_x_piece_was_revised_once_and_the_linkedin_piece_lost_its_banned_word(launched):
    _, results, _, _ = launched
    pieces = {r["id"]: r["output"] for r in results["write"][1]["results"]}
    x = pieces["x"]
    assert x["draft"] == X_DRAFT and len(X_DRAFT) == 309
    assert x["revisions"] == [
        {
            "round": 1,
            "issues": [
                "banned word 'revolutionary' (use 'new')",
                "tone no_exclamation: an exclamation mark",
                "tone no_shouting: 'REVOLUTIONARY' in capitals",
                "309 characters, over the x limit of 280",
            ],
            "before": X_DRAFT,
            "after": X_FINAL,
        }
    ]
    assert x["text"] == X_FINAL  # the third key message dropped to fit 280
    (linkedin,) = pieces["linkedin"]["revisions"]
    assert linkedin["issues"] == ["banned word 'cheap' (use 'basic')"]
    assert "Your team deserves more than a cheap shared doc." in linkedin["before"]
    assert "Your team deserves more than a basic shared doc." in linkedin["after"]
    assert linkedin["after"] == pieces["linkedin"]["text"]
    approved = results["approve"][1]
    assert approved["revised"] == ["x", "linkedin"] and approved["not_published"] == []
    assert [p["channel"] for p in approved["pieces"]] == ["blog", "x", "linkedin", "email"]


def test_the_cms_got_exactly_one_post_per_piece_even_across_the_retry(launched, cms):
    run, results, _, _ = launched
    posts = cms.posts("/spring/posts")
    assert len(posts) == 5 and [p["status"] for p in posts].count(500) == 1
    ok = [p for p in posts if p["status"] == 201]
    by_channel = {p["body"]["channel"]: p["body"] for p in ok}
    pieces = {r["id"]: r["output"] for r in results["write"][1]["results"]}
    assert by_channel == {
        c: {"campaign": "Spring launch 2026", "channel": c, "text": pieces[c]["text"]} for c in LIMITS
    }
    assert sorted(cms.by_key("/spring/posts").values()) == [1, 1, 1, 1]  # four keys, each posted once
    failed = [p for p in posts if p["status"] == 500][0]
    assert cms.by_key("/spring/posts")[failed["idempotency_key"]] == 1  # the retry reused its key
    publish = results["publish"][1]
    assert (publish["total"], publish["failures"]) == (4, [])
    (retry,) = [e for e in _events(run.run_id, "step.failed") if e.step == "publish"]
    assert retry.try_number == 1 and "answered 500" in retry.payload["error"]


def test_the_performance_is_compared_with_the_last_record_and_recorded_for_the_next_run(launched):
    run, results, _, state = launched
    assert results["load_brief"][1]["previous"] == PREVIOUS  # this run read what the last one left
    performance = results["track_performance"][1]
    assert performance == {
        "brief": "spring-launch",
        "channels": {
            "blog": {"impressions": 12400, "clicks": 620, "conversions": 31, "ctr_pct": 5.0,
                     "conversion_pct": 5.0, "ctr_change_pct": 0.5},
            "x": {"impressions": 48000, "clicks": 912, "conversions": 18, "ctr_pct": 1.9,
                  "conversion_pct": 1.97, "ctr_change_pct": -0.5},
            "linkedin": {"impressions": 21000, "clicks": 798, "conversions": 40, "ctr_pct": 3.8,
                         "conversion_pct": 5.01, "ctr_change_pct": -0.3},
            "email": {"impressions": 9000, "clicks": 1170, "conversions": 117, "ctr_pct": 13.0,
                      "conversion_pct": 10.0, "ctr_change_pct": 1.75},
        },
        "best_channel": "email",
        "previous_run": "manual__last_spring",
        "previous_best_channel": "linkedin",
        "state_file": str(state),
    }  # fmt: skip
    recorded = json.loads(state.read_text())  # what the next run reads
    assert (recorded["run_id"], recorded["brief"], recorded["best_channel"]) == (
        run.run_id,
        "spring-launch",
        "email",
    )
    assert recorded["channels"] == performance["channels"]


# --- a piece no revision can fix: a person decides -------------------------------------------------


def test_a_piece_still_off_brand_after_its_revisions_goes_to_a_person_who_continues_without_it(
    flash_sale, cms
):
    run, results, output, asked = flash_sale
    assert run.state == "success", output[-4000:]
    assert asked["subject"] == "content_marketing.write: 1 of 2 subtasks failed"
    sms_error = (
        "the sms piece still breaks the brand guide after 2 revision(s): 177 characters, over the sms "
        "limit of 160"
    )
    assert f"These subtasks failed:\n\nsms: SubtaskError: {sms_error}\n\n" in asked["body"]
    written = results["write"][1]
    assert [f["id"] for f in written["failures"]] == ["sms"]
    assert [r["id"] for r in written["results"]] == ["email"]
    approved = results["approve"][1]
    assert (approved["not_published"], [p["channel"] for p in approved["pieces"]]) == (["sms"], ["email"])
    (post,) = cms.posts("/flash/posts")
    assert post["body"]["channel"] == "email" and post["status"] == 201
    (answered,) = _events(run.run_id, "approval.answered")
    assert (answered.step, answered.payload["chosen"], answered.payload["by"]) == (
        "write",
        ["Continue without them"],
        "Mia Editor",
    )
    assert results["track_performance"][1]["previous_run"] is None  # its own artifacts root: no record


# --- a brief missing a required field ------------------------------------------------------------


def test_a_brief_missing_its_audience_fails_at_once_with_its_message_and_an_alert(
    missing_audience, cms, slack
):
    run, _, _, artifacts = missing_audience
    assert run.state == "failed"
    assert run.task_states == {"load_brief": "failed", **dict.fromkeys(STEPS[1:], "upstream_failed")}
    (failed,) = _events(run.run_id, "step.failed")
    assert (failed.step, failed.try_number) == ("load_brief", 1)  # bad data: no retry
    assert failed.payload["error"] == MISSING_AUDIENCE
    (alert,) = _events(run.run_id, "alert.raised")
    assert (alert.payload["step"], alert.payload["error_class"]) == ("load_brief", "FinalSkillError")
    assert alert.payload["delivered"] is True
    (posted,) = [p for p in slack.posts if run.run_id in json.dumps(p)]
    assert (
        "*Step:* `load_brief`" in posted["text"]
        and "missing the required field(s) audience" in posted["text"]
    )
    assert cms.posts("/autumn/posts") == []
    assert not (artifacts / "content_marketing").exists()


def test_the_template_declares_owner_tags_retries_deadline_and_a_required_cms(dagbag):
    dag = dagbag.dags[DAG_ID]
    assert dag.owner == "marketing" and {"baton", "v1", "content", "marketing", "hitl"} <= set(dag.tags)
    assert dag.description and "A brief missing a required field" in dag.doc_md
    assert [t.retries for t in dag.tasks] == [2] * 5
    assert dag.deadline
    assert dag.params.get_param("cms_url").schema["minLength"] == 8
