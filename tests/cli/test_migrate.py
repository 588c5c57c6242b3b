"""`baton migrate`: old forms rewritten in place to today's language, comments and layout kept; hostile
files refused with their exact message and left untouched."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from baton.cli import main as baton
from baton.spec import read_workflow
from baton.spec.loading import load_roster
from tests.conftest import ROOT

LEGACY = ROOT / "tests" / "spec" / "legacy"
OLD = LEGACY / "workflows" / "fan_out_options.yaml"

MIGRATED = """\
# Template language 0.1 (Baton 0.1.0, until 2026-11-23): a fan-out's options sat on the step, beside
# 'for_each: <step>.<list>'. Language 0.2 writes them under for_each; Baton 0.3 refuses this form.
workflow: fan_out_options
version: 1
description: Each task of the plan, by the planner, three at a time.
owner: platform
steps:
  - id: plan
    agent: strategy_strategic_planner
    instruction: List the tasks.
    output:
      tasks: {type: array, items: string}

  - id: do_each
    agent: strategy_strategic_planner
    for_each:              # one call per task
      over: plan.tasks
      concurrency: 2 # calls at once
      batch_size: 50
      partial_failure: continue
    instruction: "Do {{ item }}."
"""


@pytest.fixture
def old(tmp_path) -> Path:
    path = tmp_path / "fan_out_options.yaml"
    shutil.copy(OLD, path)
    return path


def test_migrate_rewrites_old_forms_keeping_comments_order_and_quoting(old, capsys):
    assert baton(["migrate", str(old)]) == 0
    assert old.read_text() == MIGRATED
    assert capsys.readouterr().out.splitlines() == [
        f"{old}: migrated 3 form(s): steps[1].concurrency, steps[1].batch_size, steps[1].partial_failure",
        "1 file(s): 1 migrated, 0 already current, 0 with errors",
    ]
    workflow, notices = read_workflow(old, load_roster(ROOT / "dags" / "agents.yaml"))
    assert notices == [] and workflow.steps[1].for_each.concurrency == 2


def test_a_second_run_changes_nothing(old, capsys):
    baton(["migrate", str(old)])
    capsys.readouterr()
    before = old.stat()
    assert baton(["migrate", str(old)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{old}: already current",
        "1 file(s): 0 migrated, 1 already current, 0 with errors",
    ]
    assert (old.stat().st_ino, old.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_check_changes_nothing_and_exits_1_when_a_file_would_change(old, capsys):
    text = old.read_text()
    assert baton(["migrate", "--check", "--diff", str(old)]) == 1
    out = capsys.readouterr().out
    assert old.read_text() == text
    assert "-    concurrency: 2  # calls at once\n" in out and "+      over: plan.tasks\n" in out
    assert out.splitlines()[-2:] == [
        f"{old}: would migrate 3 form(s): steps[1].concurrency, steps[1].batch_size, steps[1].partial_failure",
        "1 file(s): 1 to migrate, 0 already current, 0 with errors",
    ]
    baton(["migrate", str(old)])
    assert baton(["migrate", "--check", str(old)]) == 0


def test_only_the_changed_lines_change_in_a_real_old_template(tmp_path):
    """The demo's parallel_feature_delivery as it was: its long folded strings, flow mappings and comments
    are not laid out again."""
    path = tmp_path / "parallel_feature_delivery.yaml"
    shutil.copy(LEGACY / "workflows" / path.name, path)
    before = path.read_text().splitlines()
    assert baton(["migrate", str(path)]) == 0
    after = path.read_text().splitlines()
    removed = [line for line in before if line not in after]
    added = [line for line in after if line not in before]
    assert removed == [
        "    for_each: decompose.subtasks",
        "    concurrency: 3",
        "    partial_failure: escalate",
    ]
    assert added == [
        "    for_each:",
        "      over: decompose.subtasks",
        "      concurrency: 3",
        "      partial_failure: escalate",
    ]


def test_a_folder_migrates_its_templates_and_roster_and_keeps_the_mode(tmp_path, capsys):
    shutil.copytree(LEGACY, tmp_path / "dags")
    target = tmp_path / "dags" / "workflows" / "partial_failure_default.yaml"
    target.chmod(0o640)
    assert baton(["migrate", str(tmp_path / "dags")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "4 file(s): 3 migrated, 1 already current, 0 with errors"
    assert f"{tmp_path / 'dags' / 'agents.yaml'}: already current" in out
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert "    partial_failure: fail" not in target.read_text()
    assert not [p for p in (tmp_path / "dags").rglob("*") if p.name.startswith(".")]  # no temporary left


def test_a_file_over_the_size_limit_is_refused_naming_the_limit(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    path.write_text("workflow: huge\nsteps: []\n" + "# filler\n" * 650_000)  # ~5 MB
    size = path.stat().st_size
    assert baton(["migrate", str(path)]) == 2
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{path}: the file is {size:,} bytes, over the limit of 1,000,000 bytes for one template (fix: split "
        "it into smaller workflows, or raise the limit: BATON_MAX_TEMPLATE_BYTES=2000000)"
    )
    assert path.stat().st_size == size


def test_an_alias_bomb_is_refused_before_anything_expands_it(tmp_path, capsys):
    lines = ["workflow: bomb", 'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nsteps: *a9\n")
    text = path.read_text()
    assert baton(["migrate", str(path)]) == 2
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{path}:7: more than 200,000 values once its aliases (*name) are expanded (fix: write the data out "
        "instead of repeating aliases of aliases, or raise the limit: BATON_MAX_YAML_NODES=400000)"
    )
    assert path.read_text() == text


def test_a_link_out_of_the_folder_is_refused_and_not_followed(tmp_path, capsys):
    outside = tmp_path / "outside.yaml"
    shutil.copy(OLD, outside)
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "sneaky.yaml").symlink_to(outside)
    assert baton(["migrate", str(tmp_path / "dags")]) == 2
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{tmp_path / 'dags' / 'sneaky.yaml'}: a link to {outside}, outside the folder {tmp_path / 'dags'}: not "
        "migrated (fix: migrate that file by naming it, or replace the link with the file)"
    )
    assert outside.read_text() == OLD.read_text()


def test_a_file_named_through_a_link_is_migrated_where_it_is(tmp_path):
    target = tmp_path / "real.yaml"
    shutil.copy(OLD, target)
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    assert baton(["migrate", str(link)]) == 0
    assert link.is_symlink() and target.read_text() == MIGRATED


def test_a_read_only_file_is_refused_and_untouched(old, capsys):
    old.chmod(0o444)
    assert baton(["migrate", str(old)]) == 2
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{old}: the file is read-only (mode 0444): not migrated (fix: make it writable (chmod u+w {old}) and "
        "run baton migrate again)"
    )
    assert old.read_text() == OLD.read_text() and stat.S_IMODE(old.stat().st_mode) == 0o444


def test_a_yaml_file_that_is_not_a_template_is_refused(tmp_path, capsys):
    path = tmp_path / "budgets.yaml"
    path.write_text("budgets:\n  - name: a\n")
    assert baton(["migrate", str(path)]) == 2
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{path}: not a Baton template (no 'workflow' or 'steps') nor a roster (no 'agents'): not migrated "
        "(fix: name a workflow template or an agents roster)"
    )


def test_malformed_yaml_is_refused_with_its_line_and_untouched(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("workflow: bad\nsteps:\n  - id: a\n    for_each: [plan\n    concurrency: 2\n")
    text = path.read_text()
    assert baton(["migrate", str(path)]) == 2
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{path}:4: YAML syntax error: did not find expected ',' or ']' while parsing a flow sequence that "
        "starts here (noticed at line 5) (fix: close or fix what opens at this line)"
    )
    assert path.read_text() == text


def test_a_missing_path_is_an_error(tmp_path, capsys):
    assert baton(["migrate", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{tmp_path / 'nope.yaml'}: no such file or folder (fix: name a template file or a folder of them)"
    )


def test_two_migrations_of_one_file_at_once_make_one_change(tmp_path):
    """Two real processes migrate the same file at the same time: the lock makes one of them migrate it
    and the other find it current; the file is whole and migrated."""
    path = tmp_path / "fan_out_options.yaml"
    for _ in range(3):
        shutil.copy(OLD, path)
        runs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; from baton.cli import main; sys.exit(main())",
                    "migrate",
                    str(path),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ},
            )
            for _ in range(2)
        ]
        results = [run.communicate(timeout=120) + (run.returncode,) for run in runs]
        assert [code for _, _, code in results] == [0, 0], results
        lines = sorted(out.splitlines()[0] for out, _, _ in results)
        assert lines == [
            f"{path}: already current",
            f"{path}: migrated 3 form(s): steps[1].concurrency, "
            "steps[1].batch_size, steps[1].partial_failure",
        ], results
        assert path.read_text() == MIGRATED


def test_in_a_folder_a_yaml_file_that_is_not_a_template_is_skipped(tmp_path, capsys):
    shutil.copytree(LEGACY / "workflows", tmp_path / "dags")
    (tmp_path / "dags" / "budgets.yaml").write_text("budgets:\n  - name: a\n")
    assert baton(["migrate", "--check", str(tmp_path / "dags")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{tmp_path / 'dags' / 'budgets.yaml'}: skipped: not a template" in out
    assert out[-1] == "4 file(s): 3 to migrate, 0 already current, 0 with errors, 1 skipped"


def test_a_workflows_folder_linked_out_of_the_folder_is_refused(tmp_path, capsys):
    shutil.copytree(LEGACY / "workflows", tmp_path / "elsewhere")
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "workflows").symlink_to(tmp_path / "elsewhere")
    assert baton(["migrate", str(tmp_path / "dags")]) == 2
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path / 'dags' / 'workflows'}: a link to {tmp_path / 'elsewhere'}, outside the folder "
        f"{tmp_path / 'dags'}: not migrated (fix: migrate that file by naming it, or replace the link with the file)",
        "1 file(s): 0 migrated, 0 already current, 1 with errors",
    ]
    assert (tmp_path / "elsewhere" / OLD.name).read_text() == OLD.read_text()


def test_a_fifo_named_like_a_template_is_refused_without_blocking(tmp_path, capsys):
    (tmp_path / "dags").mkdir()
    os.mkfifo(tmp_path / "dags" / "pipe.yaml")
    assert baton(["migrate", str(tmp_path / "dags")]) == 2
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{tmp_path / 'dags' / 'pipe.yaml'}: not a regular file: not migrated (fix: name a template file)"
    )


def test_line_endings_and_a_byte_order_mark_are_kept(tmp_path):
    path = tmp_path / "windows.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + OLD.read_bytes().replace(b"\n", b"\r\n"))
    assert baton(["migrate", str(path)]) == 0
    assert path.read_bytes() == b"\xef\xbb\xbf" + MIGRATED.encode().replace(b"\n", b"\r\n")


def test_deep_nesting_is_refused_with_its_line(tmp_path, capsys):
    path = tmp_path / "deep.yaml"
    path.write_text("workflow: deep\nsteps:\n" + "".join("  " * i + "- \n" for i in range(1, 80)))
    text = path.read_text()
    assert baton(["migrate", str(path)]) == 2
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{path}:52: steps{'[0]' * 49}: nesting deeper than 50 levels of mappings and lists (fix: flatten this "
        "part of the file, or raise the limit: BATON_MAX_YAML_DEPTH=100)"
    )
    assert path.read_text() == text


def test_the_upgrading_pages_example_migrates_as_the_page_shows(tmp_path):
    """docs/upgrading.md shows a template of language 0.1 and what baton migrate makes of it."""
    page = (ROOT / "docs" / "upgrading.md").read_text()
    old, new = (
        block.split("```yaml\n", 1)[1].split("```", 1)[0]
        for block in page.split("<!-- check: workflow -->")[1:3]
    )
    path = tmp_path / "weekly_tasks.yaml"
    path.write_text(old)
    assert baton(["migrate", str(path)]) == 0
    assert path.read_text() == new


def test_a_flow_mapping_step_stays_a_flow_mapping(tmp_path):
    path = tmp_path / "flow.yaml"
    head = "workflow: flow\nversion: 1\ndescription: d\nowner: o\nsteps:\n"
    plan = (
        "  - {id: plan, agent: strategy_strategic_planner, output: {tasks: {type: array, items: string}}}\n"
    )
    each = '  - {id: each, agent: strategy_strategic_planner, for_each: %s, instruction: "x"}\n'
    path.write_text(head + plan + each % "plan.tasks, concurrency: 2")
    assert baton(["migrate", str(path)]) == 0
    assert path.read_text() == head + plan + each % "{over: plan.tasks, concurrency: 2}"


def test_an_old_form_shared_through_a_merge_key_is_refused_with_the_fix_by_hand(tmp_path, capsys):
    path = tmp_path / "merge.yaml"
    path.write_text(
        "workflow: merge\nversion: 1\ndescription: d\nowner: o\nsteps:\n"
        "  - id: plan\n    agent: strategy_strategic_planner\n    output: {tasks: {type: array, items: string}}\n"
        "  - &each\n    id: each\n    agent: strategy_strategic_planner\n    for_each: plan.tasks\n"
        "    concurrency: 2\n  - <<: *each\n    id: each_again\n"
    )
    text = path.read_text()
    assert baton(["migrate", str(path)]) == 2
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{path}: its old forms are in YAML it shares through anchors (&name, *name, <<): not migrated (fix: write "
        "the step out without them, or by hand: steps[1].concurrency: write for_each: {over: plan.tasks, "
        "concurrency: 2}; steps[2].concurrency: write for_each: {over: plan.tasks, concurrency: 2})"
    )
    assert path.read_text() == text
