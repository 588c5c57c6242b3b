"""The Management page's template routes: the library (healthy templates with their settings, a broken one
with its exact errors), a template's text, and the editor's live validation (errors with line and fix before
anything is saved; the plan as a graph; the change against the deployed version); hostile texts refused or
bounded, and many checks at once answered alike."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest


def test_the_library_lists_every_template_and_the_exact_errors_of_a_broken_one(client, as_role, dags):
    answer = client.get("/api/templates", **as_role("viewer", action=False))
    assert answer.status_code == 200
    rows = {t["workflow"]: t for t in answer.json()["templates"]}
    assert len(rows) == len(list((dags / "workflows").glob("*.yaml")))
    good = rows["customer_onboarding"]
    assert (good["ok"], good["file"], good["version"]) == (True, "workflows/customer_onboarding.yaml", 1)
    assert good["owner"] and good["steps"] >= 3 and "inputs" in good
    broken = rows["broken_one"]
    assert broken["ok"] is False
    assert any(
        "workflows/broken_one.yaml:" in e and "unknown agent 'nobody_" in e for e in broken["errors"]
    ), broken


def test_a_templates_text_is_served_and_an_unknown_one_is_404(client, as_role, dags):
    text = client.get("/api/templates/lead_followup/source", **as_role("viewer", action=False)).json()
    assert text["file"] == "lead_followup.yaml"
    assert text["text"] == (dags / "workflows" / "lead_followup.yaml").read_text()
    assert client.get("/api/templates/nope/source", **as_role("viewer", action=False)).status_code == 404
    assert client.get("/api/templates/..%2Fagents/source", **as_role("viewer", action=False)).status_code in (
        404,
        422,
    )


def _validate(client, as_role, file: str, text: str):
    return client.post(
        "/api/templates/validate", json={"file": file, "text": text}, **as_role("viewer", action=False)
    )


def test_the_editor_sees_an_error_with_its_line_and_fix_before_saving(client, as_role, dags):
    text = (dags / "workflows" / "customer_onboarding.yaml").read_text()
    answer = _validate(
        client, as_role, "customer_onboarding.yaml", text.replace("agent: ", "agent: ghost_", 1)
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is False
    (issue,) = [i for i in body["issues"] if "unknown agent" in i["message"]]
    assert issue["text"].startswith("workflows/customer_onboarding.yaml:") and issue["line"] > 1
    assert "unknown agent 'ghost_" in issue["text"] and issue["fix"]


def test_a_valid_draft_shows_its_plan_as_a_graph_and_its_change_against_the_deployed_one(
    client, as_role, dags
):
    text = (dags / "workflows" / "lead_followup.yaml").read_text()
    body = _validate(client, as_role, "lead_followup.yaml", text.replace("version: 1", "version: 2")).json()
    assert body["ok"] is True and body["version"] == 2
    nodes = {n["id"]: n for n in body["graph"]["nodes"]}
    assert nodes and all({"x", "y", "who"} <= set(n) for n in nodes.values())
    for edge in body["graph"]["edges"]:
        assert nodes[edge["source"]]["x"] < nodes[edge["target"]]["x"]  # needs before the step, left to right
    assert body["diff"]["version"] == [1, 2] and body["diff"]["breaking"] == 0
    assert (
        _validate(
            client, as_role, "brand_new.yaml", text.replace("workflow: lead_followup", "workflow: brand_new")
        ).json()["diff"]
        is None
    )


# a billion laughs: each line's list holds the previous line's twice (2^40 values once the aliases unfold)
BOMB = "a0: &a0 [x, x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 40))


@pytest.mark.parametrize(
    ("file", "text", "status", "said"),
    [
        ("../agents.yaml", "a: 1", 422, "String should match pattern"),
        ("x.txt", "a: 1", 422, "String should match pattern"),
        ("x.yaml", "a" * 1_000_001, 422, "String should have at most 1000000 characters"),
        ("x.yaml", "a: [" * 5_000, 200, "x.yaml"),
        ("x.yaml", BOMB, 200, "x.yaml"),
        ("x.yaml", "{{ 7 * 7 }}: !!python/object/apply:os.system [echo]", 200, "x.yaml"),
        ("x.yaml", "\x00\x01", 200, "x.yaml"),
    ],
    ids=["traversal", "not yaml", "huge", "deeply nested", "alias bomb", "malicious tag", "binary"],
)  # fmt: skip
def test_a_hostile_draft_is_refused_or_named_without_harm(client, as_role, dags, file, text, status, said):
    answer = _validate(client, as_role, file, text)
    assert answer.status_code == status, answer.text[:500]
    assert said in answer.text
    if status == 200:
        assert answer.json()["ok"] is False and answer.json()["issues"]


def test_many_drafts_checked_at_once_are_answered_alike(client, as_role, dags):
    text = (
        (dags / "workflows" / "customer_onboarding.yaml").read_text().replace("agent: ", "agent: ghost_", 1)
    )
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda _: _validate(client, as_role, "customer_onboarding.yaml", text).json(), range(32))
        )
    assert all(a == answers[0] for a in answers) and answers[0]["ok"] is False


def test_the_graph_of_a_deployed_workflow_holds_both_versions_while_it_rolls_out(client, as_role, dags):
    import shutil

    from tests.conftest import FIXTURES

    shutil.copytree(FIXTURES / "rollout", dags, dirs_exist_ok=True)
    shutil.copy(FIXTURES / "agent_paths" / "agents.yaml", dags / "agents.yaml")
    graph = client.get("/api/templates/release_notes/graph", **as_role("viewer", action=False)).json()
    assert sorted(n["id"] for n in graph["nodes"]) == ["draft", "review", "v2.draft", "v2.polish"]
    assert {"source": "v2.draft", "target": "v2.polish"} in graph["edges"]
    assert client.get("/api/templates/nope/graph", **as_role("viewer", action=False)).status_code == 404


def test_experiments_show_each_arm_its_counts_and_the_decision(client, as_role, dags, monkeypatch, tmp_path):
    import shutil

    from baton.coordination import variants
    from baton.events.event import Event
    from baton.events.store import EventStore
    from tests.conftest import FIXTURES

    shutil.copytree(FIXTURES / "agent_paths", dags, dirs_exist_ok=True)  # routing.yaml's brief has variants
    store = EventStore.from_airflow()

    def current() -> dict:
        found = client.get(
            "/api/experiments", params={"workflow": "routing"}, **as_role("viewer", action=False)
        )
        return next(x for x in found.json()["experiments"] if x["step"] == "brief")

    before = current()["counts"]  # this worker's store may hold runs of routing.brief from other tests
    events = []
    for n in range(6):
        run = f"exp-run-{n}"
        arm = "concise" if n % 2 else "plain"
        events += [
            Event(type="variant.assigned", run_id=run, workflow="routing", step="brief", try_number=1,
                  payload={"experiment": "routing.brief", "variant": arm}),
            Event(type="step.succeeded" if n != 3 else "step.failed", run_id=run, workflow="routing", step="brief",
                  try_number=1, payload={"duration_s": 1.0} if n != 3 else {"error": "x", "will_retry": False}),
        ]  # fmt: skip
    store.append(events)
    brief = current()
    assert brief["status"] == "running" and brief["winner"] is None
    assert "waiting for the minimum sample" in brief["reason"]
    assert brief["counts"]["plain"]["runs"] - before["plain"]["runs"] == 3
    assert brief["counts"]["concise"]["failures"] - before["concise"]["failures"] == 1
    assert set(brief["arms"]) == {"plain", "concise"} and brief["arms"]["concise"]["changes"] == [
        "its instruction"
    ]
    assert variants.decided(store, "routing", "brief") is None
    long = client.get("/api/experiments", params={"workflow": "x" * 251}, **as_role("viewer", action=False))
    assert long.status_code == 422


def test_the_library_says_a_broken_rollout_and_the_roster_s_errors_beside_the_templates(
    client, as_role, dags
):
    import shutil

    from tests.conftest import FIXTURES

    shutil.copytree(FIXTURES / "rollout", dags, dirs_exist_ok=True)
    shutil.copy(FIXTURES / "agent_paths" / "agents.yaml", dags / "agents.yaml")
    version = dags / "versions" / "release_notes.v2.yaml"
    version.write_text(version.read_text().replace("agent: offline_analyst", "agent: nobody", 1))
    found = client.get("/api/templates", **as_role("viewer", action=False)).json()
    notes = next(t for t in found["templates"] if t["workflow"] == "release_notes")
    assert notes["ok"] is True and notes["rollout"]["to"] == "release_notes.v2.yaml"  # its DAG loads alone
    (issue,) = found["other_errors"]["versions/release_notes.v2.yaml"]
    assert "steps[0].agent: unknown agent 'nobody'" in issue


@pytest.mark.parametrize(
    ("workflow", "status"),
    [
        ("x" * 251, 422),
        ("x" * 250, 200),
        ("../../etc/passwd", 200),
        ("support_triage'; DROP TABLE x;--", 200),
    ],
    ids=["too-long", "longest", "a-path", "sql"],
)
def test_the_evaluations_of_a_hostile_workflow_name_are_bounded_or_none(
    client, as_role, dags, workflow, status
):
    answer = client.get("/api/evaluations", params={"workflow": workflow}, **as_role("viewer", action=False))
    assert answer.status_code == status
    if status == 422:
        assert [e["loc"] for e in answer.json()["detail"]] == [["query", "workflow"]]
    else:  # a name is only a key of the store's query: nothing recorded to show, no file read by it
        assert answer.json() == {"evaluations": [{"workflow": workflow, "evaluations": []}]}
