"""What a step may learn from its runs: which agent does it best (``route.learn``), and which of its variants
(an experiment's arms, ``variants``) does."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from baton.spec.common import Strict


class Variant(Strict):
    """One arm of a step's experiment: what it changes, and its share of the runs."""

    weight: float = Field(default=1.0, ge=0, le=1_000_000, description="its share of the runs, relative")
    instruction: str | None = Field(default=None, max_length=100_000, description="instead of the step's")
    agent: str | None = Field(default=None, description="instead of the step's agent (a roster name)")


class Variants(Strict):
    """An experiment on a step: each run takes one arm (sticky by ``key``), the arms' outcomes are compared
    by a sequential test valid however often it is looked at, and a winner is promoted by itself (or a
    loser stopped on a guardrail: its failures or its latency)."""

    arms: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")], Variant] = Field(
        min_length=2, max_length=10
    )
    control: str | None = Field(default=None, description="the arm the others are compared with (the first)")
    key: str = Field(
        default="{{ run.id }}",
        max_length=500,
        description="Jinja over the run's scope: what keeps a run on one arm (e.g. a customer's id)",
    )
    min_runs: int = Field(default=100, ge=10, le=1_000_000, description="runs per arm before any decision")
    alpha: float = Field(default=0.05, gt=0, le=0.2, description="the declared false-promotion rate")
    approve: bool = Field(
        default=False,
        description="a decision waits for a person (Management page, baton experiments approve) instead of "
        "applying by itself",
    )

    @model_validator(mode="after")
    def _control_is_an_arm(self) -> Variants:
        if self.control is not None and self.control not in self.arms:
            raise ValueError(f"control '{self.control[:40]}' is not one of the arms ({', '.join(self.arms)})")
        return self


class Learn(Strict):
    """Learned routing: the step's own past calls teach which agent does it best (Thompson sampling
    with change detection over each call's reward: answered, valid, fast and cheap as ``prefer`` weighs them, and a
    person's verdict where there is one). ``learn: true`` takes these defaults."""

    half_life_calls: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="an outcome also counts half after this many later calls of its agent; none (the "
        "default): only a detected change in how often an agent delivers forgets its earlier calls, so "
        "an agent that degrades loses its traffic within a dozen or so calls",
    )
    recheck_calls: int = Field(
        default=1000,
        ge=10,
        le=1_000_000,
        description="every outcome also fades by half over this many calls of the step, so an agent "
        "nobody calls is tried again",
    )
    history: int = Field(default=1000, ge=10, le=10_000, description="the step's latest tries it learns from")


def _learn(value: Any) -> Any:
    if value is True:
        return Learn()
    if value is False or value is None or isinstance(value, Learn):
        return None if value is False else value
    if not isinstance(value, dict):
        raise ValueError(
            f"learn is true, false or a mapping (half_life_calls, recheck_calls, history), not {str(value)[:40]!r}"
        )
    return Learn.model_validate(value)
