"""Baton's Airflow operators (light modules: their runtimes are imported inside ``execute``).

``AgentOperator`` is the name :class:`StepOperator` had until 0.2; it shared it with common-ai's operator
that runs one pydantic-ai agent. It stays importable, here and from ``baton.operators.agent``, with a
``DeprecationWarning``, until 0.3.
"""

from __future__ import annotations

import warnings
from typing import Any

from baton.operators.step import FanOutBatches, StepOperator

__all__ = ["FanOutBatches", "StepOperator"]

RENAMED = (
    "the same operator, renamed: AgentOperator is also the name of common-ai's operator that runs one "
    "pydantic-ai agent"
)
#: Names that moved: (module, old name) -> the operator it is now, what to import instead, and why.
MOVED: dict[tuple[str, str], tuple[type, str, str]] = {
    ("baton.operators", "AgentOperator"): (StepOperator, "baton.operators.StepOperator", RENAMED),
    ("baton.operators.agent", "AgentOperator"): (StepOperator, "baton.operators.StepOperator", RENAMED),
    ("baton.operators.agent", "FanOutBatches"): (
        FanOutBatches,
        "baton.operators.FanOutBatches",
        "its module, baton.operators.agent, is now baton.operators.step",
    ),
}


def moved(module: str, name: str) -> Any:
    """``module.name`` of an earlier release, with a ``DeprecationWarning`` naming what to import instead;
    ``AttributeError`` for a name that never was there."""
    if (module, name) not in MOVED:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    operator, instead, why = MOVED[module, name]
    warnings.warn(
        f"{module}.{name} is deprecated and goes in Baton 0.3: import {instead} ({why})",
        DeprecationWarning,
        stacklevel=3,
    )
    return operator


def __getattr__(name: str) -> Any:
    return moved(__name__, name)
