"""``baton eval``: a bundled workflow's dataset runs through its compiled steps (``dag.test()`` of its DAG in a
throwaway Airflow, the offline model answering) and passes; a new version with a planted regression is
refused against the stable one, naming the cases and checks it lost; what is wrong before anything runs is
exit 2 with the file and the fix; a case whose process runs out of time is that case's error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from baton.cli import main
from baton.evaluate import run
from tests.conftest import DAGS

DATASET_CASES = 10


def _eval(capsys, *args: str) -> tuple[int, str]:
    status = main(["eval", *args])
    return status, capsys.readouterr().out


@pytest.fixture
def bundled(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS))


def test_a_bundled_dataset_passes_on_its_workflow(bundled, capsys):
    status, out = _eval(capsys, "daily_operations", "--workers", "2")
    lines = out.splitlines()
    assert lines[0] == "daily_operations: 10 case(s), stable"
    assert lines[-1] == "stable: 40/40 checks held (100.0 %)"
    at = lines.index("by check: stable held/checked")  # per check, the cases it held in of those it ran in
    assert lines[at + 1 : at + 5] == [
        "  coordinate.status one_of: 10/10",
        "  coordinate.summary contains: 10/10",
        "  coordinate.summary max_length: 10/10",
        "  coordinate.follow_ups max_length: 10/10",
    ]
    assert (
        sum(line.startswith("  stable ") and line.endswith("4/4 (success)") for line in lines)
        == DATASET_CASES
    )
    assert status == 0


def test_a_planted_regression_is_refused_against_the_stable_version(bundled, capsys, tmp_path):
    # Version 2 of support_triage, its instruction no longer naming the tickets' customers: a summary of the
    # batch no longer can (the offline model's answers follow the instruction, as a real model's would).
    text = (DAGS / "versions" / "support_triage.v2.yaml").read_text()
    planted = text.replace(
        "{{ t.id }} from {{ t.customer }} ({{ t.channel }}): {{ t.subject }}", "{{ t.subject }}"
    )
    assert planted != text
    planted_file = tmp_path / "versions" / "support_triage.v2.yaml"  # where a version's file is named so
    planted_file.parent.mkdir()
    planted_file.write_text(planted)
    status, out = _eval(capsys, "support_triage", "--file", str(planted_file), "--format", "json")
    report = json.loads(out)
    comparison = report["comparison"]
    assert status == 1 and report["passed"] is False and comparison["regression"] is True
    # Every run succeeded: file_tickets gave its recorded answers (run, it would have posted to a helpdesk
    # that is not there, and failed).
    assert {case["state"] for version in report["versions"].values() for case in version} == {"success"}
    assert comparison["share_stable"] == 1.0
    assert comparison["share_new"] == pytest.approx(0.75)  # one check of four lost in every case
    assert sorted(comparison["regressed"]) == sorted(case["case"] for case in report["versions"]["stable"])
    assert set(map(tuple, comparison["regressed"].values())) == {("triage.summary contains",)}
    assert comparison["mean_difference"] == pytest.approx(-0.25)
    failed = report["versions"]["new"][0]["results"][1]
    assert failed["check"] == "contains" and failed["reason"].startswith("does not contain ")


def test_an_arm_of_a_steps_variants_is_evaluated_against_the_template_as_written(bundled, capsys):
    # support_triage's "brief" arm, one line per ticket: its summaries still name the first customer.
    status, out = _eval(
        capsys, "support_triage", "--variant", "triage:brief", "--format", "json", "--workers", "2"
    )
    report = json.loads(out)
    assert status == 0 and sorted(report["versions"]) == ["stable", "triage:brief"]
    comparison = report["comparison"]
    assert (comparison["share_new"], comparison["share_stable"], comparison["regressed"]) == (1.0, 1.0, {})
    assert comparison["rule"]["decided_after"] is None
    brief = report["versions"]["triage:brief"][0]["outputs"]["triage"]["summary"]
    stable = report["versions"]["stable"][0]["outputs"]["triage"]["summary"]
    assert "One line per ticket" in brief and "One line per ticket" not in stable  # each ran its instruction


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["support_triage", "--variant", "file_tickets:brief"],
            "--variant file_tickets:brief: no step 'file_tickets' with variants (fix: name one of: triage)",
        ),
        (
            ["support_triage", "--variant", "triage:longer"],
            "--variant triage:longer: step 'triage' has no arm 'longer' (fix: name one of: as_written, brief)",
        ),
        (["daily_operations", "--workers", "0"], "--workers 0: give 1 to 8"),
        (["daily_operations", "--workers", "10000"], "--workers 10000: give 1 to 8"),
        (
            ["daily_operations", "--version", "9"],
            "daily_operations.v9.yaml: no such file (fix: put version 9 there, or pass --file)",
        ),
        (
            ["daily_operations", "--file", "/nonexistent/x.yaml"],
            "/nonexistent/x.yaml: no such file (fix: name the new version's template file)",
        ),
        (
            ["nothing_here"],
            "nothing_here.yaml: no such dataset (fix: write the cases of 'nothing_here' there, and check them "
            "with `baton validate`)",
        ),
    ],
)
def test_what_is_wrong_before_anything_runs_is_exit_2_naming_the_fix(bundled, capsys, args, message):
    status, out = _eval(capsys, *args)
    assert status == 2
    assert message in out


def _copy_dags(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "dags"
    for name in ("workflows", "evals"):
        (folder / name).mkdir(parents=True)
    (folder / "agents.yaml").write_text((DAGS / "agents.yaml").read_text())
    (folder / "workflows" / "daily_operations.yaml").write_text(
        (DAGS / "workflows" / "daily_operations.yaml").read_text()
    )
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    return folder


def test_a_dataset_naming_a_step_the_workflow_lacks_is_refused_with_its_line(capsys, tmp_path, monkeypatch):
    folder = _copy_dags(tmp_path, monkeypatch)
    text = (
        (DAGS / "evals" / "daily_operations.yaml").read_text().replace("    coordinate:", "    coordinat:", 1)
    )
    (folder / "evals" / "daily_operations.yaml").write_text(text)
    status, out = _eval(capsys, "daily_operations")
    assert status == 2
    assert (
        "cases[0].expect.coordinat: the workflow has no step 'coordinat' (fix: use one of: collect_status, coordinate)"
        in out
    )


def test_a_case_whose_process_runs_out_of_time_is_that_cases_error(capsys, tmp_path, monkeypatch):
    # A hung model or step: the evaluation stops its process when the time it allows has passed (here none).
    folder = _copy_dags(tmp_path, monkeypatch)
    (folder / "evals" / "daily_operations.yaml").write_text(
        (DAGS / "evals" / "daily_operations.yaml").read_text()
    )
    monkeypatch.setattr(run, "START_TIMEOUT_S", 0.0)
    monkeypatch.setattr(run, "CASE_TIMEOUT_S", 0.0)
    status, out = _eval(capsys, "daily_operations", "--format", "json")
    cases = json.loads(out)["versions"]["stable"]
    assert status == 1
    assert len(cases) == DATASET_CASES
    assert {case["state"] for case in cases} == {"error"}
    assert all(
        case["error"].startswith(
            "the case did not run: the evaluation's process stopped after its time ran out"
        )
        for case in cases
    )
    assert all(case["passed"] == 0 for case in cases)


REGIONS = """\
workflow: regions
version: 1
description: One model call over a region, which has a default.
owner: tests
inputs:
  region: {type: string, default: all}
  judged: {type: string, default: nobody}
steps:
  - id: plan
    agent: operations_workflow_orchestrator
    instruction: "Plan the week of region {{ inputs.region }} for {{ inputs.judged }}."
    output:
      summary: string
"""


def test_each_case_gets_its_own_inputs_a_rubric_is_judged_and_nothing_lands_in_the_deployments_files(
    capsys, tmp_path, monkeypatch
):
    # The first case sets both inputs; the second leaves them out and must get the template's defaults, not the
    # first case's values (one child runs both, one after the other, on the same parsed DAG).
    folder = _copy_dags(tmp_path, monkeypatch)
    (folder / "workflows" / "regions.yaml").write_text(REGIONS)
    (folder / "evals" / "regions.yaml").write_text(
        """\
dataset: regions
judge: operations_workflow_orchestrator
cases:
  - id: emea
    inputs: {region: emea, judged: Ada}
    expect:
      plan:
        summary: {contains: region emea, rubric: 'Names "Ada"', evaluator: no_contact_details}
  - id: defaults
    expect:
      plan:
        summary: {contains: region all for nobody, rubric: 'Names "Ada"'}
"""
    )
    deployment = tmp_path / "artifacts"
    monkeypatch.setenv("BATON_ARTIFACTS", str(deployment))
    status, out = _eval(capsys, "regions", "--workers", "1", "--format", "json")
    report = json.loads(out)
    cases = {case["case"]: case for case in report["versions"]["stable"]}
    held = {name: [(r["check"], r["passed"]) for r in case["results"]] for name, case in cases.items()}
    assert held == {
        "emea": [("contains", True), ("evaluator", True), ("rubric", True)],
        "defaults": [("contains", True), ("rubric", False)],
    }
    assert cases["defaults"]["results"][1]["reason"] == (
        "judge 'operations_workflow_orchestrator': offline judge: the field does not say 'Ada'"
    )
    assert status == 1 and report["judge"]["calls"] == 2 and report["judge"]["tokens"] > 0
    assert not deployment.exists()  # the cases' artifacts went to the evaluation's own folder
    env = run._environment(tmp_path / "home", tmp_path / "b", tmp_path / "t.yaml", tmp_path / "a.yaml", {})
    assert env["BATON_ARTIFACTS"] == str(tmp_path / "home" / "artifacts")


def test_the_command_registers_batons_own_skills_as_validate_does():
    # content_marketing and hr_recruiting post with http_post, Baton's own skill: a process that imported only
    # the eval command refused their templates (exit 2, "unknown skill 'http_post'")
    code = "import baton.cli.evaluate, baton.registry as r; print('http_post' in r.skill_names())"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "True", done.stderr[-2000:]


def test_a_case_whose_step_fails_names_the_steps_error(capsys, tmp_path, monkeypatch):
    # lead_followup's plan_followups needs the qualified_leads message's top leads; this case's trigger has none
    folder = _copy_dags(tmp_path, monkeypatch)
    (folder / "workflows" / "lead_followup.yaml").write_text(
        (DAGS / "workflows" / "lead_followup.yaml").read_text()
    )
    (folder / "evals" / "lead_followup.yaml").write_text(
        "dataset: lead_followup\ncases:\n  - id: no_leads\n    trigger: {qualified_leads: 2}\n"
        "    expect:\n      plan_followups:\n        qualified_leads: {equals: 2}\n"
    )
    status, out = _eval(capsys, "lead_followup", "--format", "json")
    (case,) = json.loads(out)["versions"]["stable"]
    assert status == 1 and case["state"] == "failed"
    assert case["error"] == (
        "task 'plan_followups' failed: FinalSkillError: plan_followups needs the qualified_leads message of a "
        "lead_qualification run (trigger.payload with top_leads); this run got ['qualified_leads']"
    )
