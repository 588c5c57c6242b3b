"""``baton experiments`` on SQLite and PostgreSQL: each step's experiment with its arms' outcomes, and a
proposed decision approved or declined by a named person (or refused: nothing proposed, a bad name)."""

from __future__ import annotations

import json
import shutil

import pytest

from baton.cli import main as baton
from baton.events.event import Event
from tests.conftest import FIXTURES


@pytest.fixture
def setup(store, tmp_path, monkeypatch):
    dags = tmp_path / "dags"
    shutil.copytree(FIXTURES / "agent_paths", dags)  # routing.yaml's brief has variants plain / concise
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setenv("BATON_SPEC_CACHE", "off")
    url = store.engine.url.set(drivername=store.engine.url.drivername.split("+")[0])
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", url.render_as_string(hide_password=False))
    return store


def test_experiments_are_listed_and_a_proposal_is_settled_by_a_named_person(setup, capsys):
    assert baton(["experiments", "--workflow", "routing"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("routing.brief: running\n  plain (control): 0 run(s), success -\n")
    assert baton(["experiments", "--approve", "routing.brief", "--by", "growth.lead"]) == 1
    assert capsys.readouterr().out == "experiment routing.brief has no decision waiting for a person\n"
    proposal = {"experiment": "routing.brief", "status": "promoted", "variant": "concise", "control": "plain",
                "reason": "concise does better"}  # fmt: skip
    setup.append([Event(type="variant.proposed", run_id="experiment:routing.brief", workflow="routing",
                        step="brief", payload=proposal)])  # fmt: skip
    assert baton(["experiments", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)["experiments"]
    assert (listed["status"], listed["proposal"]["variant"]) == ("proposed", "concise")
    assert baton(["experiments", "--approve", "routing.brief", "--by", "growth.lead"]) == 0
    assert capsys.readouterr().out == "routing.brief: promoted concise (by growth.lead)\n"
    assert baton(["experiments", "--keep-control", "routing.brief", "--by", "late"]) == 0  # settled already
    assert capsys.readouterr().out == "routing.brief: promoted concise (by growth.lead)\n"


@pytest.mark.parametrize(
    "argv", [["--approve", "routing", "--by", "x"], ["--approve", "routing.brief", "--by", " "]]
)
def test_a_bad_name_or_no_person_is_refused(setup, capsys, argv):
    assert baton(["experiments", *argv]) == 2
    assert capsys.readouterr().out.startswith("give the experiment as WORKFLOW.STEP")
