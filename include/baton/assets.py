"""Airflow assets of Baton's names (``emits`` and ``trigger.asset``): one definition for the compiler
and the operators."""

from __future__ import annotations

from typing import Any

from baton import templating


def asset(name: str) -> Any:
    """The asset a workflow emits and another is scheduled on."""
    from airflow.sdk import Asset

    return Asset(name=name, uri=f"baton://assets/{name}", group="baton")


def emit(step: Any, context: Any, scope: dict[str, Any], output: Any, recorder: Any) -> None:
    """Set the extra of each asset event ``step`` (a compiled step) emits (Airflow stores the events when
    the task succeeds) and record what was sent: the payload's keys and digest, never its values."""
    import hashlib
    import json

    for declared in step.spec.emits:
        extra = templating.arguments(declared.extra or {}, {**scope, "output": output})
        context["outlet_events"][asset(declared.asset)].extra = extra
        digest = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode()).hexdigest()
        recorder.record(
            recorder.event(
                "asset.emitted",
                {"asset": declared.asset, "extra_keys": sorted(extra), "extra_sha256": digest},
                discriminator=declared.asset,
            )
        )
