"""``baton show``: the compiled plan with the saga's task, what starts the workflow, the assets it emits
and its shared-context keys (issue 17: a user reading a workflow sees all of it)."""

from __future__ import annotations

import re

from baton.cli import main as baton


def _show(name: str, capsys, dags_folder) -> str:
    assert baton(["show", name, "--dags", str(dags_folder)]) == 0
    return capsys.readouterr().out


def test_show_lists_the_compensation_task_after_the_steps(capsys, dags_folder):
    out = _show("invoice_processing", capsys, dags_folder)
    row = next(line for line in out.splitlines() if line.startswith("_compensate"))
    assert "the saga: undoes post_entry, post_lines (newest first) when a step failed" in row
    assert "['extract', 'validate', 'approve', 'post_entry', 'post_lines']" in row


def test_show_says_what_starts_the_workflow_and_what_it_emits(capsys, dags_folder):
    out = _show("lead_qualification", capsys, dags_folder)
    assert out.splitlines()[-2:] == [
        "started by: sensor new_rows (its DAG lead_qualification__sensor)",
        "emits: asset qualified_leads (step value_leads)",
    ]
    assert "started by: asset(s) qualified_leads" in _show("lead_followup", capsys, dags_folder)


def test_show_lists_the_context_keys_and_who_writes_them(capsys, dags_folder):
    out = _show("supply_chain", capsys, dags_folder)
    assert re.search(
        r"^context: orders \(merge\), written by check_inventory, source_suppliers, adjust_orders, decide_orders$",
        out,
        re.M,
    )


def test_show_of_an_unknown_workflow_names_the_known_ones(capsys, dags_folder):
    assert baton(["show", "lead_qualificatio", "--dags", str(dags_folder)]) == 1
    err = capsys.readouterr().err
    assert "no workflow 'lead_qualificatio' here (fix: known: " in err and "lead_qualification" in err
