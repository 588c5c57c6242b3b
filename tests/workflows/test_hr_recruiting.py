"""hr_recruiting in real ``dag.test()`` runs, offline on the demo recruiting data: the posting goes to
a demo job board (a PartnerService), the candidates are screened in a fan-out, a person answers the
review on the Required Actions page (here: the HITL response written as the REST API writes it).

Runs (one each, shared by the tests): approved, edited, and a role nobody applied for.
"""

from __future__ import annotations

import json

import pytest
from demo.http_service import PartnerService

from baton.events import EventStore
from tests.conftest import DAGS, run_dag_test_in_subprocess
from tests.hitl import Person

DAG_ID = "hr_recruiting"
ALL_SUCCESS = {
    "load_role": "success",
    "load_candidates": "success",
    "write_posting": "success",
    "publish_posting": "success",
    "screen": "success",
    "shortlist": "success",
    "review": "success",
    "plan_interviews": "success",
}
RANKED = [  # (id, name, score): the demo candidates, best first
    ("c01", "Ada Brightwater", 90),
    ("c05", "Esme Quarry", 87),
    ("c10", "Jonas Pike", 80),
    ("c06", "Farid Nolan", 75),
    ("c08", "Hiro Tanaka-Bell", 71),  # ties with c02 at 71: no must-have missing, so first
    ("c02", "Bruno Okafor-Lind", 71),
    ("c03", "Chiara Vessel", 60),
]
REQUIREMENTS = [
    "5+ years of professional experience",
    "Python",
    "PostgreSQL",
    "REST APIs",
    "Docker",
    "Testing",
]


@pytest.fixture(scope="module")
def board():
    with PartnerService() as service:
        yield service


def _run(slack, conf: dict, answer: tuple[list[str], dict] | None = None, user: str = "Hana Reviewer"):
    """One dag.test() run; with ``answer``, a person answers its review. (run, results, output, asked)."""
    person = Person(DAG_ID, "review", *answer, user=user) if answer is not None else None
    run, results, output = run_dag_test_in_subprocess(
        DAGS, "dags-folder", DAG_ID, conf, env={"AIRFLOW_CONN_BATON_SLACK": slack.connection}, person=person
    )
    assert person is None or person.asked is not None, f"the review never asked a person:\n{output[-4000:]}"
    return run, results, output, person and person.asked


@pytest.fixture(scope="module")
def approved(slack, board, airflow_db):
    conf = {"board_url": board.url("/approved"), "min_score": 60, "interview_slots": 3}
    return _run(slack, conf, (["Approve"], {}))


@pytest.fixture(scope="module")
def edited(slack, board, airflow_db):
    conf = {"board_url": board.url("/edited"), "min_score": 70}
    answer = {"invite": ["c10", "c03"], "notes": "c03 for the infrastructure side"}
    return _run(slack, conf, (["Use the output below"], answer))


@pytest.fixture(scope="module")
def nobody_applied(slack, board, airflow_db):
    return _run(slack, {"board_url": board.url("/empty"), "role_id": "site-reliability-engineer"})


def _events(run_id: str, *types: str) -> list:
    return list(EventStore.from_airflow().read(run_id, types=list(types) or None))


# --- approved ------------------------------------------------------------------------------------


def test_the_posting_is_written_from_the_requirements_and_published_once(approved, board):
    run, results, output, _ = approved
    assert run.state == "success", output[-4000:]
    assert run.task_states == ALL_SUCCESS
    posting = results["write_posting"][1]
    assert (posting["reference"], posting["title"], posting["team"]) == (
        "backend-engineer",
        "Senior Backend Engineer",
        "Platform",
    )
    assert posting["requirements"] == REQUIREMENTS
    assert posting["nice_to_have"] == ["Kubernetes", "Airflow", "Kafka", "Terraform"]
    assert posting["text"].splitlines()[:2] == [
        "# Senior Backend Engineer",
        "Platform team · Berlin or Remote (EU)",
    ]
    assert "## What you bring\n- 5+ years of professional experience\n- Python\n" in posting["text"]

    (post,) = board.posts("/approved/postings")
    assert post["status"] == 201 and post["body"] == posting
    (done,) = [e for e in _events(run.run_id, "effect.done") if e.step == "publish_posting"]
    assert post["idempotency_key"] == done.payload["effect_key"]
    assert results["publish_posting"][1] == {
        "status": 201,
        "body": {"received": 1, "path": "/approved/postings", "duplicate": False},
    }


def test_every_candidate_is_screened_with_a_score_and_its_reasons(approved):
    run, results, _, _ = approved
    screened = results["screen"][1]
    assert screened["total"] == 10 and screened["failures"] == []
    by_id = {r["id"]: r["output"] for r in screened["results"]}
    assert sorted(by_id) == [f"c{n:02d}" for n in range(1, 11)]
    assert {i: o["score"] for i, o in by_id.items()} == {
        "c01": 90,
        "c02": 71,
        "c03": 60,
        "c04": 55,
        "c05": 87,
        "c06": 75,
        "c07": 28,
        "c08": 71,
        "c09": 34,
        "c10": 80,
    }
    assert by_id["c01"]["reasons"] == [
        "must-have 5/5: Python, PostgreSQL, REST APIs, Docker, Testing (+50)",
        "nice-to-have 2/4: Kubernetes, Airflow (+10)",
        "7 years of experience, 5 required (+20)",
        "location Berlin accepted (+10)",
    ]
    assert by_id["c02"]["reasons"] == [
        "must-have 4/5: Python, PostgreSQL, REST APIs, Docker (+40)",
        "missing must-have: Testing",
        "nice-to-have 1/4: Kafka (+5)",
        "4 years of experience, 5 required (+16)",
        "location Remote (EU) accepted (+10)",
    ]
    assert by_id["c07"] == {
        "id": "c07",
        "name": "Greta Holm",
        "score": 28,
        "must_have_missing": ["Python", "PostgreSQL", "Docker"],
        "reasons": [
            "must-have 2/5: REST APIs, Testing (+20)",
            "missing must-have: Python, PostgreSQL, Docker",
            "nice-to-have 0/4: none (+0)",
            "2 years of experience, 5 required (+8)",
            "location Hamburg not in Berlin, Remote (EU) (+0)",
        ],
    }
    # One subtask per candidate, four at once, in the one task of the step.
    (planned,) = _events(run.run_id, "fanout.planned")
    assert (planned.payload["total"], planned.payload["concurrency"]) == (10, 4)
    assert planned.payload["subtasks"] == [f"c{n:02d}" for n in range(1, 11)]
    assert len(_events(run.run_id, "subtask.succeeded")) == 10


def test_the_shortlist_is_ordered_by_score_with_ties_broken_deterministically(approved):
    _, results, _, _ = approved
    listed = results["shortlist"][1]
    assert (listed["role_id"], listed["min_score"], listed["screened"]) == ("backend-engineer", 60, 10)
    assert [(e["rank"], e["id"], e["name"], e["score"]) for e in listed["shortlisted"]] == [
        (rank, *entry) for rank, entry in enumerate(RANKED, 1)
    ]
    assert listed["below_minimum"] == ["c04", "c09", "c07"]


def test_a_person_is_asked_to_review_the_invitations_and_approves_them(approved):
    run, results, _, asked = approved
    assert asked["subject"] == "hr_recruiting: review the interview shortlist"
    assert asked["options"] == ["Approve", "Use the output below", "Reject"]
    shortlist = "; ".join(f"{rank}. {i} {name} ({score})" for rank, (i, name, score) in enumerate(RANKED, 1))
    assert (
        f"7 of 10 candidates for backend-engineer scored 60 or more. Shortlist: {shortlist}." in asked["body"]
    )
    draft = {
        "invite": ["c01", "c05", "c10"],
        "notes": "Top 3 of 7 shortlisted: c01 Ada Brightwater (90), c05 Esme Quarry (87), c10 Jonas Pike (80).",
    }
    assert asked["params"]["invite"]["value"] == draft["invite"]  # the draft, filled into the form
    assert results["review"][1] == draft
    assert results["plan_interviews"][1] == {
        "role_id": "backend-engineer",
        "title": "Senior Backend Engineer",
        "interviews": [
            {"id": "c01", "name": "Ada Brightwater", "score": 90},
            {"id": "c05", "name": "Esme Quarry", "score": 87},
            {"id": "c10", "name": "Jonas Pike", "score": 80},
        ],
        "not_invited": ["c06", "c08", "c02", "c03"],
        "notes": draft["notes"],
    }
    (answered,) = _events(run.run_id, "approval.answered")
    assert (answered.step, answered.payload["chosen"], answered.payload["by"]) == (
        "review",
        ["Approve"],
        "Hana Reviewer",
    )
    (verdict,) = _events(run.run_id, "feedback.recorded")  # what learned routing learns of the draft
    assert (verdict.step, verdict.payload) == (
        "review",
        {"score": 1.0, "verdict": "approve", "source": "review", "by": "Hana Reviewer"},
    )


# --- edited ----------------------------------------------------------------------------------


def test_a_person_edits_the_invitations_and_the_plan_follows_the_edit(edited, board):
    run, results, output, asked = edited
    assert run.state == "success", output[-4000:]
    assert [e["id"] for e in results["shortlist"][1]["shortlisted"]] == [
        "c01",
        "c05",
        "c10",
        "c06",
        "c08",
        "c02",
    ]
    assert asked["params"]["invite"]["value"] == ["c01", "c05", "c10"]
    assert results["review"][1] == {"invite": ["c10", "c03"], "notes": "c03 for the infrastructure side"}
    plan = results["plan_interviews"][1]
    assert plan["interviews"] == [
        {"id": "c10", "name": "Jonas Pike", "score": 80},
        {"id": "c03", "name": "Chiara Vessel", "score": 60},  # below 70: the person's call
    ]
    assert plan["not_invited"] == ["c01", "c05", "c06", "c08", "c02"]
    assert board.count("/edited/postings") == 1
    (verdict,) = _events(run.run_id, "feedback.recorded")  # an edited draft: half marks
    assert (verdict.payload["verdict"], verdict.payload["score"]) == ("edit", 0.5)


# --- nobody applied ------------------------------------------------------------------------------

NO_CANDIDATES = (
    "no candidates for role 'site-reliability-engineer' (Site Reliability Engineer): there is nobody to "
    "screen, so no posting is published and no shortlist is made"
)


def test_a_role_nobody_applied_for_fails_at_once_with_an_alert_and_posts_nothing(
    nobody_applied, board, slack
):
    run, _, output, _ = nobody_applied
    assert run.state == "failed"
    assert run.task_states == {
        "load_role": "success",
        "load_candidates": "failed",
        "write_posting": "upstream_failed",
        "publish_posting": "upstream_failed",
        "screen": "upstream_failed",
        "shortlist": "upstream_failed",
        "review": "upstream_failed",
        "plan_interviews": "upstream_failed",
    }
    assert board.posts("/empty/postings") == []
    (failed,) = _events(run.run_id, "step.failed")
    assert (failed.step, failed.try_number) == ("load_candidates", 1)  # bad data: no retry
    assert failed.payload["error"] == NO_CANDIDATES
    (alert,) = _events(run.run_id, "alert.raised")
    assert (alert.payload["step"], alert.payload["error_class"]) == (
        "load_candidates",
        "FinalSkillError",
    )
    assert alert.payload["delivered"] is True
    (posted,) = [p for p in slack.posts if run.run_id in json.dumps(p)]
    assert "*Step:* `load_candidates`" in posted["text"] and "no candidates for role" in posted["text"]


def test_the_template_declares_owner_tags_retries_deadline_and_a_required_board(dagbag):
    dag = dagbag.dags[DAG_ID]
    assert dag.owner == "hr" and {"baton", "v1", "recruiting", "hitl"} <= set(dag.tags)
    assert dag.description and "A role nobody applied for fails the run" in dag.doc_md
    assert [t.retries for t in dag.tasks] == [2] * 8
    assert dag.deadline  # the run must finish 2 days after it was queued
    assert dag.params.get_param("board_url").schema["minLength"] == 8
