"""Unit tests of the template models: shorthands, defaults and the rules pydantic enforces."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from baton.spec.models import AgentStep, PersonStep, RoutedStep, SkillStep, Step, Workflow
from baton.spec.roster import DEFAULT_LLM_CONN_ID, Agent, Roster

STEP = TypeAdapter(Step)


def _workflow(**overrides):
    data = {
        "workflow": "w",
        "version": 1,
        "description": "d",
        "owner": "o",
        "steps": [{"id": "a", "skill": "score_leads"}],
        **overrides,
    }
    return Workflow.model_validate(data)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(minutes=90)),
        (300, timedelta(seconds=300)),
        ("PT2M", timedelta(minutes=2)),
        ("7d", timedelta(days=7)),
        ("1d12h", timedelta(days=1, hours=12)),  # days with hours: monitoring.yaml's spelling, one Duration
        ("2d0h0m30s", timedelta(days=2, seconds=30)),
        (" 90s ", timedelta(seconds=90)),
    ],
)
def test_durations_accept_seconds_and_short_forms(raw, expected):
    assert _workflow(defaults={"retry_delay": raw}).defaults.retry_delay == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            "99999999999999999999h",
            "Input should be a valid timedelta, durations may not exceed 999,999,999 days",
        ),
        ("9" * 30 + "h", "Input should be a valid timedelta, invalid character in hour"),
        ("-5m", 'Input should be a valid timedelta, "day" identifier in duration not correctly formatted'),
        (-30, "a duration cannot be negative (got -30 seconds)"),
        ("soon", "Input should be a valid timedelta, invalid digit in duration"),
    ],
)
def test_a_duration_too_large_or_malformed_is_refused_in_pydantic_s_words_never_a_crash(raw, message):
    with pytest.raises(ValidationError) as caught:
        _workflow(defaults={"retry_delay": raw})
    assert [error["msg"] for error in caught.value.errors()] == [message]


def test_defaults_retry_with_exponential_backoff_capped():
    defaults = _workflow().defaults
    assert (defaults.retries, defaults.retry_exponential_backoff) == (2, True)
    assert defaults.max_retry_delay == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("raw", "cron"), [(None, None), ("none", None), ("@daily", "@daily"), ("0 9 * * *", "0 9 * * *")]
)
def test_schedule_string_forms(raw, cron):
    schedule = _workflow(schedule=raw).schedule
    assert (schedule.cron, schedule.timezone, schedule.catchup) == (cron, "UTC", False)


def test_output_shorthand_means_type():
    step = STEP.validate_python(
        {"id": "a", "agent": "x", "output": {"score": "integer", "why": {"type": "string"}}}
    )
    assert step.output["score"].type == "integer"
    assert step.output["why"].type == "string"


def test_needs_may_be_a_single_name():
    assert STEP.validate_python({"id": "b", "skill": "s", "needs": "a"}).needs == ["a"]


def test_a_step_needs_exactly_one_worker():
    with pytest.raises(ValidationError, match="a step names exactly one of 'agent'"):
        STEP.validate_python({"id": "a"})


def test_step_id_must_be_an_identifier():
    with pytest.raises(ValidationError, match="String should match pattern"):
        STEP.validate_python({"id": "Score Leads", "skill": "s"})


def test_agent_without_backend_uses_the_default_llm_connection():
    agent = Agent.model_validate({"name": "helper"})
    assert (agent.llm_conn_id, agent.skill, agent.pool) == (DEFAULT_LLM_CONN_ID, None, "baton_agent_helper")


def test_agent_cannot_be_both_llm_and_skill():
    with pytest.raises(ValidationError, match="either 'llm_conn_id' \\(an LLM\\) or 'skill'"):
        Agent.model_validate({"name": "x", "llm_conn_id": "c", "skill": "s"})


def test_roster_names_are_unique():
    with pytest.raises(ValidationError, match="agents\\[1\\].name: duplicate agent name 'a'"):
        Roster.model_validate({"agents": [{"name": "a"}, {"name": "a"}]})


def test_escalate_shorthands_and_a_purely_human_step():
    assert STEP.validate_python({"id": "a", "agent": "x", "escalate": "human"}).escalate.when == "always"
    assert (
        STEP.validate_python({"id": "a", "agent": "x", "escalate": "on_failure"}).escalate.when == "failure"
    )
    human = STEP.validate_python(
        {"id": "a", "escalate": {"when": "always", "timeout": "4h", "default": "fail"}}
    )
    assert isinstance(human, PersonStep)
    assert (human.agent_name, human.skill_name, human.escalate.timeout) == (None, None, timedelta(hours=4))
    with pytest.raises(ValidationError, match="or none with 'escalate: human'"):
        STEP.validate_python({"id": "a", "escalate": "on_failure"})  # nobody would do the step


def test_who_does_a_step_is_its_type():
    assert type(STEP.validate_python({"id": "a", "agent": "x"})) is AgentStep
    assert type(STEP.validate_python({"id": "a", "skill": "s", "with": {"k": 1}})) is SkillStep
    assert type(STEP.validate_python({"id": "a", "route": {"capabilities": ["c"]}})) is RoutedStep
    with pytest.raises(ValidationError, match="with\n  Extra inputs are not permitted"):
        STEP.validate_python({"id": "a", "agent": "x", "with": {"k": 1}})  # only a skill takes arguments


def test_for_each_is_one_sub_model_with_a_string_shorthand():
    short = STEP.validate_python({"id": "a", "agent": "x", "for_each": "plan.tasks"})
    full = STEP.validate_python(
        {
            "id": "a",
            "agent": "x",
            "for_each": {"over": "plan.tasks", "concurrency": 3, "partial_failure": "continue"},
        }
    )
    assert (short.source, short.for_each.concurrency, short.for_each.partial_failure) == (
        ("plan", "tasks"),
        None,
        "fail",
    )
    assert (full.for_each.concurrency, full.for_each.partial_failure) == (3, "continue")


def test_items_per_call_is_for_steps_that_call_models():
    with pytest.raises(ValidationError) as caught:
        STEP.validate_python(
            {"id": "a", "skill": "s", "for_each": {"over": "plan.tasks", "items_per_call": 5}}
        )
    assert (
        "for_each.items_per_call groups model calls, and a skill step makes none: remove it, or give the step "
        "an agent" in str(caught.value)
    )
    routed = {"id": "a", "route": {}, "for_each": {"over": "plan.tasks", "items_per_call": 5}}
    assert STEP.validate_python(routed).for_each.items_per_call == 5


def test_a_route_needs_capabilities_unless_each_item_brings_its_own():
    with pytest.raises(ValidationError, match="route needs capabilities: only a for_each step may take them"):
        STEP.validate_python({"id": "a", "route": {"prefer": "fast"}})
    assert STEP.validate_python({"id": "a", "route": {}, "for_each": "plan.tasks"}).source == (
        "plan",
        "tasks",
    )
    with pytest.raises(ValidationError, match="a step names exactly one of 'agent'"):
        STEP.validate_python({"id": "a", "agent": "x", "route": {"capabilities": ["y"]}})


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            {"concurrency": 4},
            "steps[1].concurrency: unknown key 'concurrency' (fix: it belongs to the fan-out: for_each: {over: "
            "<step>.<list>, concurrency: N})",
        ),
        (
            {"partial_failure": "continue"},
            "steps[1].partial_failure: unknown key 'partial_failure' (fix: it belongs to the fan-out: for_each:",
        ),
        (
            {"with": {"x": 1}},
            "steps[1].with: unknown key 'with' (fix: 'with' passes arguments to a skill: name one with 'skill:', "
            "or put the values in the instruction)",
        ),
        (
            {"for_each": {"over": "plan", "concurrency": 8}},
            "steps[1].for_each.concurrency: concurrency 8 exceeds agent 'strategy_strategic_planner' "
            "max_concurrency 2",
        ),
        (
            {"for_each": "plann"},
            "steps[1].for_each: for_each over unknown step 'plann' (fix: did you mean 'plan'?",
        ),
        ({"for_each": "plan", "escalate": "human"}, "steps[1].escalate: a for_each step cannot be reviewed"),
        (
            {"for_each": {"over": "plan", "dedupe": "sometimes"}},
            "steps[1].for_each.dedupe: Input should be a valid boolean, unable to interpret input",
        ),
        ({"dedupe": True}, "steps[1].dedupe: unknown key 'dedupe'"),
        (
            {"for_each": {"over": "plan", "items_per_call": 1}},
            "steps[1].for_each.items_per_call: Input should be greater than or equal to 2",
        ),
        (
            {"for_each": {"over": "plan", "items_per_call": 10**40}},
            "steps[1].for_each.items_per_call: Input should be less than or equal to 50",
        ),
    ],
)
def test_fan_out_settings_are_checked(tmp_path, dags_folder, step, message):
    from baton.errors import TemplateError
    from baton.spec import load_roster, load_workflow

    template = {
        "workflow": "fan",
        "version": 1,
        "description": "d",
        "owner": "o",
        "steps": [
            {"id": "plan", "agent": "strategy_strategic_planner", "output": {"tasks": {"type": "array"}}},
            {"id": "work", "agent": "strategy_strategic_planner", "needs": ["plan"], **step},
        ],
    }
    import yaml

    path = tmp_path / "fan.yaml"
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    with pytest.raises(TemplateError) as caught:
        load_workflow(path, load_roster(dags_folder / "agents.yaml"), root=tmp_path)
    assert any(message in str(issue) for issue in caught.value.issues), [str(i) for i in caught.value.issues]
