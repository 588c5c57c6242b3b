"""Unit tests of the template models: shorthands, defaults and the rules pydantic enforces."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from baton.spec.models import Step, Workflow
from baton.spec.roster import DEFAULT_LLM_CONN_ID, Agent, Roster


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
    ],
)
def test_durations_accept_seconds_and_short_forms(raw, expected):
    assert _workflow(defaults={"retry_delay": raw}).defaults.retry_delay == expected


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
    step = Step.model_validate(
        {"id": "a", "agent": "x", "output": {"score": "integer", "why": {"type": "string"}}}
    )
    assert step.output["score"].type == "integer"
    assert step.output["why"].type == "string"


def test_needs_may_be_a_single_name():
    assert Step.model_validate({"id": "b", "skill": "s", "needs": "a"}).needs == ["a"]


def test_a_step_needs_exactly_one_worker():
    with pytest.raises(ValidationError, match="a step names exactly one of 'agent'"):
        Step.model_validate({"id": "a"})


def test_step_id_must_be_an_identifier():
    with pytest.raises(ValidationError, match="String should match pattern"):
        Step.model_validate({"id": "Score Leads", "skill": "s"})


def test_agent_without_backend_uses_the_default_llm_connection():
    agent = Agent.model_validate({"name": "helper"})
    assert (agent.llm_conn_id, agent.skill, agent.pool) == (DEFAULT_LLM_CONN_ID, None, "baton_agent_helper")


def test_agent_cannot_be_both_llm_and_skill():
    with pytest.raises(ValidationError, match="either 'llm_conn_id' \\(an LLM\\) or 'skill'"):
        Agent.model_validate({"name": "x", "llm_conn_id": "c", "skill": "s"})


def test_roster_names_are_unique():
    with pytest.raises(ValidationError, match="agents\\[1\\].name: duplicate agent name 'a'"):
        Roster.model_validate({"agents": [{"name": "a"}, {"name": "a"}]})
