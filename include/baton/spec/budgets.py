"""What ``dags/budgets.yaml`` declares: each budget's scope, window, limits and what happens at its limit.

.. code-block:: yaml

    budgets:
      - name: research-daily
        scope: workflow:market_research   # global | workflow:<name> | agent:<name>
        per: day                          # run | day | month (UTC)
        cost: 5.00                        # in the currency of the roster's prices
        tokens: 2000000                   # and/or tokens (input + output)
        at_limit: fail                    # fail | fallback | ask | defer (see Budget.at_limit)
        warn_at: 0.8                      # one Slack warning per window at 80 % (null: none)

A budget applies to a model call when its scope is ``global``, the call's workflow or the call's agent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from baton.spec.common import Strict, first_repeat
from baton.spec.loading import Source

FILE = "budgets.yaml"
NAME = r"^[A-Za-z0-9_.-]{1,100}$"
SCOPE = r"^(global|workflow:[A-Za-z0-9_.-]{1,200}|agent:[A-Za-z0-9_.-]{1,200})$"
MAX_BUDGETS = 200


class Budget(Strict):
    """A limit on the spend of model calls in a window."""

    name: str = Field(description="how messages, events and `baton cost` name it")
    scope: str = Field(
        default="global", description="whose calls count: global, workflow:<name> or agent:<name>"
    )
    per: Literal["run", "day", "month"] = Field(
        description="the window: each run of a workflow, each UTC day, or each UTC month"
    )
    cost: float | None = Field(
        default=None, gt=0, le=1e12, description="the limit in money, at the roster's prices"
    )
    tokens: int | None = Field(default=None, gt=0, le=10**15, description="the limit in tokens (in + out)")
    at_limit: Literal["fail", "fallback", "ask", "defer"] = Field(
        default="fail",
        description="a call that does not fit: fail the step (naming the budget and its spend); fallback: "
        "on a routed step, go to the cheapest capable agent whose call still fits; ask: a person on the "
        "Required Actions page may raise the limit once per window (else the step fails); defer: the step "
        "waits, deferred, for the next window (a day or month budget only) and goes on there",
    )
    warn_at: float | None = Field(
        default=0.8, gt=0, lt=1, description="share of the limit that sends one warning per window"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.match(NAME, value):
            raise ValueError(
                f"'{value[:100]}' is not a budget name: use 1 to 100 letters, digits, '_', '.' or '-'"
            )
        return value

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        if not re.match(SCOPE, value):
            raise ValueError(
                f"scope '{value[:100]}' is not one: use 'global', 'workflow:<workflow>' or 'agent:<agent>'"
            )
        return value

    @model_validator(mode="after")
    def _a_limit(self) -> Budget:
        if self.cost is None and self.tokens is None:
            raise ValueError("a budget needs a limit: 'cost' (money), 'tokens', or both")
        if self.at_limit == "defer" and self.per == "run":
            raise ValueError(
                "at_limit 'defer' waits for the next window, and a per-run budget has none: use per day or "
                "month, or at_limit fail, fallback or ask"
            )
        return self

    def applies(self, workflow: str, agent: str) -> bool:
        return self.scope in ("global", f"workflow:{workflow}", f"agent:{agent}")

    def window(self, run_id: str, now: datetime) -> str:
        """The key of the window a call at ``now`` of run ``run_id`` spends in."""
        if self.per == "run":
            return f"run:{run_id}"[:250]
        return now.strftime("%Y-%m-%d" if self.per == "day" else "%Y-%m")

    def window_end(self, window: str) -> datetime | None:
        """When the day or month window ``window`` (a key of :meth:`window`) ends; None for a run's."""
        if self.per == "run":
            return None
        start = datetime.strptime(window, "%Y-%m-%d" if self.per == "day" else "%Y-%m").replace(tzinfo=UTC)
        return self.span(start)[1]  # type: ignore[index]

    def span(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The start and end of the window ``now`` is in (None for a per-run budget)."""
        if self.per == "day":
            start = now.replace(hour=0, minute=0, second=0, microsecond=0)
            return start, start + timedelta(days=1)
        if self.per == "month":
            start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            return start, (start + timedelta(days=32)).replace(day=1)
        return None


class Budgets(Strict):
    budgets: list[Budget] = Field(default_factory=list, max_length=MAX_BUDGETS)

    @field_validator("budgets")
    @classmethod
    def _unique(cls, budgets: list[Budget]) -> list[Budget]:
        if (name := first_repeat(budget.name for budget in budgets)) is not None:
            raise ValueError(f"two budgets are named '{name}': give each its own name")
        return budgets


def load_budgets(path: Path, root: Path | None = None) -> tuple[Budget, ...]:
    """The budgets of ``path`` (an empty file: none); ``TemplateError`` naming the file, the key, the line
    and the fix."""
    source = Source(path, root)
    data = source.parse()
    if data is None:
        return ()
    return tuple(source.validate(Budgets, data).budgets)


__all__ = ["FILE", "MAX_BUDGETS", "Budget", "Budgets", "load_budgets"]
