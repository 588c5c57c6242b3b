"""``baton feedback`` on a real store (SQLite and PostgreSQL): a score for a step of a run is recorded as
its ``feedback.recorded`` event; what cannot be recorded is refused, naming what is wrong, and nothing is
written; many people scoring at once lose none."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from baton.cli import main as baton
from baton.events.event import Event
from baton.events.feedback import FeedbackError, record


@pytest.fixture
def run(store, monkeypatch):
    url = store.engine.url.set(drivername=store.engine.url.drivername.split("+")[0])
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", url.render_as_string(hide_password=False))
    store.append([
        Event(type="step.succeeded", run_id="r1", workflow="leads", step="score", try_number=1, agent="scout"),
        Event(type="step.succeeded", run_id="r2", workflow="report", step="write", try_number=1, agent="writer"),
    ])  # fmt: skip
    return store


def _recorded(store, run_id: str = "r1") -> list[dict]:
    return [e.payload for e in store.read(run_id, types=["feedback.recorded"])]


def test_a_score_is_recorded_for_the_step(run, capsys):
    assert baton(["feedback", "r1", "score", "--score", "0.25", "--by", "Carla Customer"]) == 0
    assert capsys.readouterr().out == "recorded: 0.25 for leads.score of run r1\n"
    assert _recorded(run) == [{"score": 0.25, "verdict": "score", "source": "cli", "by": "Carla Customer"}]
    assert baton(["feedback", "r1", "score", "--score", "1"]) == 0  # a second verdict is kept too
    assert [p["score"] for p in _recorded(run)] == [0.25, 1.0]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["r1", "score", "--score", "1.5"], "baton feedback: score: 1.5 is outside 0 .. 1 (fix: map the grade"),
        (["r1", "score", "--score=nan"], "baton feedback: score: must be a number from 0 to 1, got 'nan' (fix: 0"),
        (["r1", "score", "--score=-inf"], "baton feedback: score: must be a number from 0 to 1, got '-inf'"),
        (["r9", "score", "--score", "0.5"], "baton feedback: no run 'r9'"),
        (["r1", "write", "--score", "0.5"], "baton feedback: run 'r1' has no step 'write' (fix: use a step id of"),
        (["r1", "s" * 5000, "--score", "0.5"], "baton feedback: step: at most 250 printable characters"),
        (["r1", "score\nINJECTED", "--score", "0.5"], "baton feedback: step: at most 250 printable characters"),
        (["r1", "score", "--score", "0.5", "--by", "x" * 300], "baton feedback: by: at most 250 printable characters"),
    ],
)  # fmt: skip
def test_what_cannot_be_recorded_is_refused_and_nothing_is_written(run, capsys, argv, said):
    assert baton(["feedback", *argv]) == 1
    assert capsys.readouterr().out.startswith(said)
    assert _recorded(run) == [] and _recorded(run, "r2") == []


def test_a_score_that_is_not_a_number_is_refused_by_the_parser(run, capsys):
    with pytest.raises(SystemExit) as exit:
        baton(["feedback", "r1", "score", "--score", "good"])
    assert exit.value.code == 2
    assert "argument --score: 'good' is not a number from 0 to 1" in capsys.readouterr().err


def test_a_run_of_another_workflow_is_not_reached_when_the_caller_names_its_own(run):
    with pytest.raises(FeedbackError, match=r"^no run 'r2' of 'leads'$"):
        record(run, "r2", "write", 0.5, "api user", "api", workflow="leads")


def test_many_people_scoring_at_once_lose_none(run):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: record(run, "r1", "score", i / 40, f"person {i}", "api"), range(40)))
    assert sorted(p["by"] for p in _recorded(run)) == sorted(f"person {i}" for i in range(40))
