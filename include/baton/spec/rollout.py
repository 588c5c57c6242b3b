"""A workflow's next version, rolled out gradually (``rollout:``): the new version's template is a file in
``dags/versions/``; it takes a share of the runs (a canary) that grows on schedule while its guardrails
hold, and goes back to 0 by itself when they do not. Both versions' tasks are in the one DAG, so a run
finishes on the version it started with."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from baton.spec.common import Duration, Strict

VERSIONS_DIR = "versions"  # beside workflows/: the templates of versions being rolled out (never a DAG alone)
VERSION_FILE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,150}\.ya?ml$"


class Rollout(Strict):
    """The version this template rolls out to, and how fast (its numbers finite: ``.nan`` is refused)."""

    to: str = Field(
        pattern=VERSION_FILE,
        description=f"the new version's template: a file name in dags/{VERSIONS_DIR}/ (no folder), e.g. "
        "customer_onboarding.v2.yaml",
    )
    start: float = Field(
        default=10,
        allow_inf_nan=False,
        gt=0,
        le=100,
        description="the new version's share of runs at first, %",
    )
    step: float = Field(
        default=10, allow_inf_nan=False, gt=0, le=100, description="what each stage adds to the share, %"
    )
    every: Duration = Field(
        default=timedelta(hours=1), description="how long a stage lasts at least before the share grows"
    )
    min_runs: int = Field(
        default=20,
        ge=1,
        le=1_000_000,
        description="the new version's finished runs a stage needs before the share grows (and each "
        "version's before a guardrail may stop it)",
    )
    alpha: float = Field(
        default=0.05,
        allow_inf_nan=False,
        gt=0,
        le=0.5,
        description="the declared rate of rolling back a version that does no harm (its guardrails: "
        "failures, latency), under any number of looks",
    )

    @model_validator(mode="after")
    def _a_stage_is_at_least_a_minute(self) -> Rollout:
        if self.every < timedelta(minutes=1):
            raise ValueError(
                f"every is {self.every.total_seconds():g} s: a stage lasts at least a minute (fix: e.g. 1h)"
            )
        return self
