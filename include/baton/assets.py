"""Airflow assets of Baton's names (``emits`` and ``trigger.asset``): one definition for the compiler
and the operators."""

from __future__ import annotations

from typing import Any


def asset(name: str) -> Any:
    """The asset a workflow emits and another is scheduled on."""
    from airflow.sdk import Asset

    return Asset(name=name, uri=f"baton://assets/{name}", group="baton")
