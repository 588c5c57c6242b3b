"""Deprecated: this module held ``AgentOperator`` and ``FanOutBatches`` until 0.2; both are importable from
:mod:`baton.operators` (``AgentOperator`` as :class:`~baton.operators.step.StepOperator`). Importing them
from here warns (``DeprecationWarning``) until 0.3."""

from __future__ import annotations

from typing import Any

from baton.operators import moved


def __getattr__(name: str) -> Any:
    return moved(__name__, name)
