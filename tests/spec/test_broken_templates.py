"""The corpus of broken templates: each gives its own specific, located message; none is dropped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from baton.cli import main as baton
from baton.errors import TemplateError
from baton.registry import skill_names
from baton.spec import load_roster, load_workflow

BROKEN = Path(__file__).parent / "broken"

# file -> the exact issue text expected (a regex), including the line where it is known.
EXPECTED = {
    "yaml_syntax.yaml": r"yaml_syntax\.yaml:8: YAML syntax error: did not find expected ',' or '\]' while parsing "
    r"a flow sequence that starts here \(noticed at line 9\) \(fix: close or fix what opens at this line\)",
    "unknown_key.yaml": r"unknown_key\.yaml:7: steps\[0\]\.skil: unknown key 'skil' \(fix: did you mean 'skill'\?",
    "wrong_type.yaml": r"wrong_type\.yaml:2: version: Input should be a valid integer.*\(fix: use a whole number\)",
    "unknown_agent.yaml": r"unknown_agent\.yaml:9: steps\[1\]\.agent: unknown agent 'sales_bot' "
    r"\(fix: add it to dags/agents\.yaml or use a roster name; known: .*marketing_lead_generator",
    "unknown_skill.yaml": r"unknown_skill\.yaml:7: steps\[0\]\.skill: unknown skill 'score_lead' "
    r"\(fix: register it with @skill in an extension module \(BATON_EXTENSIONS\); did you mean 'score_leads'\?",
    "dependency_cycle.yaml": r"dependency_cycle\.yaml:8: steps\[0\]\.needs: dependency cycle: a -> c -> b -> a",
    "missing_need.yaml": r"missing_need\.yaml:10: steps\[1\]\.needs\[0\]: needs unknown step 'scoring' "
    r"\(fix: known: a, b\)",
    "duplicate_step.yaml": r"duplicate_step\.yaml:8: steps\[1\]\.id: duplicate step id 'score' "
    r"\(first at steps\[0\]\)",
    "empty_steps.yaml": r"empty_steps\.yaml:5: steps: List should have at least 1 item.*\(fix: add at least one",
    "invalid_cron.yaml": r"invalid_cron\.yaml:5: schedule: invalid cron expression '0 25 \* \* \*' "
    r"\(fix: use five fields",
    "bad_input_default.yaml": r"bad_input_default\.yaml:8: inputs\.min_score\.default: default 'high' does not "
    r"fit the input: 'high' is not of type 'integer' \(fix: use a default that is a valid integer\)",
    "jinja_unknown_step.yaml": r"jinja_unknown_step\.yaml:11: steps\[1\]\.instruction: references unknown step "
    r"'scoring'",
    "jinja_not_upstream.yaml": r"steps\[1\]\.instruction: references step 'a', which is not upstream of 'b' "
    r"\(fix: add 'a' to needs of 'b'\)",
    "agent_and_skill.yaml": r"agent_and_skill\.yaml:6: steps\[0\]: a step names exactly one of 'agent' "
    r"\(a roster name\), 'skill' \(a registered skill\) or 'route' .*; it names agent and skill",
    "for_each_not_a_list.yaml": r"for_each_not_a_list\.yaml:10: steps\[1\]\.for_each: step 'plan' returns text, "
    r"not a list \(fix: declare an array field in the output of 'plan' \(e\.g\. output: Subtasks\)\)",
    "for_each_field_not_list.yaml": r"for_each_field_not_list\.yaml:11: steps\[1\]\.for_each: field 'summary' of "
    r"step 'plan' is not a list \(fix: use one of its array fields: tasks\)",
    "unknown_capability.yaml": r"unknown_capability\.yaml:8: steps\[0\]\.route\.capabilities\[0\]: no agent in the "
    r"roster has capability 'lead_scorin' \(fix: add it to an agent's capabilities in dags/agents\.yaml; did "
    r"you mean 'lead_scoring'\?",
    "name_mismatch.yaml": r"name_mismatch\.yaml:1: workflow: workflow id 'other_name' differs from the file name "
    r"'name_mismatch\.yaml' \(fix: rename the file to other_name\.yaml or set workflow: name_mismatch\)",
    "jinja_syntax.yaml": r"jinja_syntax\.yaml:8: steps\[0\]\.instruction: Jinja syntax error: ",
    "unknown_input.yaml": r"unknown_input\.yaml:10: steps\[0\]\.instruction: references unknown input 'regoin' "
    r"\(fix: did you mean 'region'\?",
    "missing_owner.yaml": r"missing_owner\.yaml: owner: missing required key 'owner' \(fix: add this key\)",
    "bad_timezone.yaml": r"bad_timezone\.yaml:5: schedule\.timezone: unknown timezone 'Mars/Olympus'",
    "bad_duration.yaml": r"bad_duration\.yaml:6: defaults\.retry_delay: .*\(fix: use seconds \(300\) or a "
    r"duration like '30s', '5m', '1h30m'\)",
    "not_a_mapping.yaml": r"not_a_mapping\.yaml: expected a mapping at the top, got list",
    "output_bad_pattern.yaml": r"output_bad_pattern\.yaml:13: steps\[0\]\.output\.lines\.items\.sku: the pattern "
    r"'\^\(\?!X\)\[A-Z\]\{3\}\$' cannot be checked: error: look-around, including look-ahead and look-behind, "
    r"is not supported \(write it without look-around or backreferences\)",
    "output_min_above_max.yaml": r"output_min_above_max\.yaml:10: steps\[0\]\.output\.code: min_length \(12\) is "
    r"above max_length \(4\): swap them",
    "with_unknown_step.yaml": r"with_unknown_step\.yaml:12: steps\[1\]\.with\.json\.lead: references unknown step "
    r"'scoring' \(fix: known: a, b\)",
    "unknown_compensation.yaml": r"unknown_compensation\.yaml:9: steps\[0\]\.compensate\.skill: unknown skill "
    r"'refund_paymnet' to compensate step 'a' \(fix: register it with @skill in an extension module "
    r"\(BATON_EXTENSIONS\); known: ",
    "negative_retry_delay.yaml": r"negative_retry_delay\.yaml:8: steps\[0\]\.retry_delay: a duration cannot be "
    r"negative \(got -30 seconds\) \(fix: use 0 or more",
    "bad_deadline.yaml": r"bad_deadline\.yaml:5: deadline: Input should be a valid timedelta.*\(fix: use seconds "
    r"\(300\) or a duration like '30s', '5m', '1h30m'\)",
    "unknown_strategy.yaml": r"unknown_strategy\.yaml:6: context\.plan\.strategy: Input should be 'reject', "
    r"'last_writer_wins', 'merge', 'three_way_merge' or 'escalate' \(fix: use one of the allowed values\)",
    "unknown_context_write.yaml": r"unknown_context_write\.yaml:10: steps\[0\]\.writes\.plann: unknown context key "
    r"'plann' \(fix: declare it under context: \(with a strategy\); did you mean 'plan'\?",
    "unknown_context_read.yaml": r"unknown_context_read\.yaml:10: steps\[0\]\.instruction: reads unknown context "
    r"key 'budget' \(fix: declare it under context:; known: plan\)",
    "browser_unknown_action.yaml": r"browser_unknown_action\.yaml:10: steps\[0\]\.browser\[1\]: unknown browser "
    r"action 'hover'; use one of goto, fill, select, check, click, wait_for, extract, screenshot, download(\n|$)",
    "browser_no_access.yaml": r"browser_no_access\.yaml:8: steps\[0\]\.browser: agent 'marketing_lead_generator' "
    r"has no browser access \(fix: give 'marketing_lead_generator' `browser: \{allow: \[<hosts>\]\}` in "
    r"dags/agents\.yaml, or name an agent that has it\)",
    "sensor_unknown_kind.yaml": r"sensor_unknown_kind\.yaml:6: trigger\.sensor: unknown sensor 'new_row'; use one "
    r"of new_rows, rule_match, sql_threshold(\n|$)",
    "trigger_without_trigger.yaml": r"trigger_without_trigger\.yaml:8: steps\[0\]\.instruction: reads 'trigger', "
    r"but the workflow has no trigger \(its runs start by hand or on schedule\) \(fix: add a trigger: \(a "
    r"sensor, an asset or a queue\), or read inputs instead\)",
    "sensor_query_jinja.yaml": r"sensor_query_jinja\.yaml:11: trigger\.sensor\.sql_threshold\.query: the query is "
    r"SQL text, not Jinja: write :name placeholders and give their values in params(\n|$)",
    "sensor_query_writes.yaml": r"sensor_query_writes\.yaml:10: trigger\.sensor\.sql_threshold\.query: the query "
    r"contains a DELETE in a WITH clause \(fix: a sensor only reads: select what the workflow needs, and let its "
    r"steps change data\)(\n|$)",
    "sensor_query_two_statements.yaml": r"sensor_query_two_statements\.yaml:9: trigger\.sensor\.sql_threshold\.query: "
    r"the query holds 2 statements \(a SELECT, then a DELETE\); a sensor runs exactly one \(fix: keep the one "
    r"SELECT; whatever follows a ';' is another statement, even after a comment\)(\n|$)",
    "sensor_query_malformed.yaml": r"sensor_query_malformed\.yaml:9: trigger\.sensor\.sql_threshold\.query: the "
    r"query is not valid SQL: Expecting \) at line 1, column 20 of the query \('AS'\) \(fix: correct the SQL; it "
    r"is read as PostgreSQL\)(\n|$)",
    "sensor_query_select_into.yaml": r"sensor_query_select_into\.yaml:9: trigger\.sensor\.sql_threshold\.query: the "
    r"query contains SELECT \.\.\. INTO payments_copy, which creates a table \(fix: remove the INTO clause: the "
    r"sensor reads the row\)(\n|$)",
    "sensor_query_for_update.yaml": r"sensor_query_for_update\.yaml:9: trigger\.sensor\.sql_threshold\.query: the "
    r"query contains a FOR UPDATE clause, which locks rows \(fix: remove it: a sensor reads without locking "
    r"rows\)(\n|$)",
    # What a run always refuses, reported statically from the same policy (issue 56).
    "sensor_query_jinja_comment.yaml": r"sensor_query_jinja_comment\.yaml:9: trigger\.sensor\.sql_threshold\.query: "
    r"the query is SQL text, not Jinja: write :name placeholders and give their values in params(\n|$)",
    "jinja_include.yaml": r"jinja_include\.yaml:8: steps\[0\]\.instruction: unsafe Jinja: it loads the template "
    r"'prompts/score\.txt': a template field is one text: Baton loads no other template into it \(fix: write the "
    r"text in the field itself, or pass it in through inputs or a step's output\)(\n|$)",
    "jinja_format_escape.yaml": r"jinja_format_escape\.yaml:10: steps\[0\]\.instruction: unsafe Jinja: it formats "
    r"the private attribute '__class__' \('\{0\.__class__\.__mro__\}'\) \(fix: templates read values; they never "
    r"reach Python internals or change data\)(\n|$)",
    "browser_goto_metadata.yaml": r"browser_goto_metadata\.yaml:11: steps\[0\]\.browser\[0\]\.goto: "
    r"::ffff:a9fe:a9fe is a link-local address \(where cloud metadata services answer\): never allowed, even "
    r"when listed \(fix: go elsewhere: no entry of browser\.allow can open it\)(\n|$)",
}


@pytest.fixture(scope="module")
def roster(dags_folder):
    return load_roster(dags_folder / "agents.yaml")


def test_corpus_is_complete():
    assert sorted([*EXPECTED, "two_errors.yaml"]) == sorted(p.name for p in BROKEN.glob("*.yaml"))
    assert len(EXPECTED) >= 12


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_broken_template_names_file_line_key_and_fix(name, roster):
    with pytest.raises(TemplateError) as caught:
        load_workflow(BROKEN / name, roster, root=BROKEN)
    messages = [str(issue) for issue in caught.value.issues]
    assert any(re.search(EXPECTED[name], message) for message in messages), messages


def test_every_error_of_a_file_is_reported_not_only_the_first(roster):
    with pytest.raises(TemplateError) as caught:
        load_workflow(BROKEN / "two_errors.yaml", roster, root=BROKEN)
    assert [str(issue) for issue in caught.value.issues] == [
        "two_errors.yaml:7: steps[0].agent: unknown agent 'sales_bot' (fix: add it to dags/agents.yaml or use "
        "a roster name; known: " + ", ".join(roster.names) + ")",
        "two_errors.yaml:9: steps[1].skill: unknown skill 'nope' (fix: register it with @skill in an extension "
        "module (BATON_EXTENSIONS); known: " + ", ".join(skill_names()) + ")",
    ]


def test_baton_validate_lists_every_error_of_the_corpus_and_exits_1(capsys, dags_folder):
    status = baton(["validate", str(BROKEN), "--agents", str(dags_folder / "agents.yaml")])
    out = capsys.readouterr().out
    assert status == 1
    for pattern in EXPECTED.values():
        assert re.search(pattern, out), pattern
    assert "two_errors.yaml:9: steps[1].skill: unknown skill 'nope'" in out
    assert out.strip().endswith(
        f"{len(EXPECTED) + 1} template(s) checked, {len(EXPECTED) + 1} with errors, "
        f"{len(EXPECTED) + 4} error(s) in all"  # two_errors.yaml has 2, with_unknown_step.yaml 3
    )


def test_baton_validate_of_the_bundled_templates_exits_0(capsys, dags_folder):
    assert (
        baton(["validate", str(dags_folder / "workflows"), "--agents", str(dags_folder / "agents.yaml")]) == 0
    )
    assert "0 with errors, 0 error(s) in all" in capsys.readouterr().out


def test_the_jinja_of_with_and_of_compensate_is_checked_like_an_instruction(roster):
    with pytest.raises(TemplateError) as caught:
        load_workflow(BROKEN / "with_unknown_step.yaml", roster, root=BROKEN)
    assert [str(issue) for issue in caught.value.issues] == [
        "with_unknown_step.yaml:11: steps[1].with.url: references unknown input 'nope' (fix: known: (none))",
        "with_unknown_step.yaml:12: steps[1].with.json.lead: references unknown step 'scoring' (fix: known: a, b)",
        "with_unknown_step.yaml:15: steps[1].compensate.with.url: a compensation reads the step's own output, "
        "not steps.a (fix: use output.<field> (and item / index for a for_each step), inputs or run)",
    ]


def _sensor_template(name: str, query: str) -> str:
    """A template like the corpus's sensor_query_* files, for a query too large to commit."""
    return (
        (BROKEN / "sensor_query_malformed.yaml")
        .read_text()
        .replace("workflow: sensor_query_malformed", f"workflow: {name}")
        .replace('"SELECT sum(amount AS value FROM payments"', json.dumps(query))
    )


@pytest.mark.parametrize(
    ("name", "query", "message"),
    [
        (
            "sensor_query_oversized",
            "SELECT sum(amount) AS value FROM payments WHERE " + " OR ".join(["amount > 0"] * 2000),
            "the query is 28,044 characters, more than the 20,000 a sensor's query may have (fix: move the logic "
            "into a view in the database and select from it)",
        ),
        (
            "sensor_query_nested",
            "SELECT value FROM " + "(SELECT value FROM " * 400 + "revenue" + ") AS s" * 400,
            "the query nests too deeply to be checked (fix: flatten the nested subqueries into WITH ... AS steps, "
            "or move them into a view)",
        ),
    ],
)
def test_a_hostile_sensor_query_is_refused_without_crashing_the_check(tmp_path, roster, name, query, message):
    """Generated here, not committed: an oversized query (20,000 characters at most) and subqueries
    nested deeper than sqlglot's recursion allows (a RecursionError, turned into a refusal)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(_sensor_template(name, query))
    with pytest.raises(TemplateError) as caught:
        load_workflow(path, roster, root=tmp_path)
    assert [str(issue) for issue in caught.value.issues] == [
        f"{name}.yaml:9: trigger.sensor.sql_threshold.query: {message}"
    ]
