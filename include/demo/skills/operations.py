"""Daily operations skills (the daily_operations workflow, 09:00 every day)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from baton.registry import SkillRequest, skill
from demo.skills.demo_data import demo_data


class SystemStatus(BaseModel):
    system: str
    owner: str
    state: Literal["healthy", "degraded", "failing"]
    backlog: int
    sla_breaches: int
    error_rate: float


class OpsSnapshot(BaseModel):
    systems: list[SystemStatus]
    healthy: int
    degraded: int
    failing: int
    needs_attention: list[str]


@skill("ops_snapshot", output=OpsSnapshot)
def ops_snapshot(request: SkillRequest) -> dict:
    """Classify every operational system by backlog, SLA breaches and error rate."""
    max_backlog = int(request.inputs.get("max_backlog", 50))
    systems = []
    for row in demo_data("operations")["systems"]:
        if row["sla_breaches"] >= 3 or row["error_rate"] >= 0.05:
            state = "failing"
        elif row["sla_breaches"] or row["backlog"] > max_backlog or row["error_rate"] >= 0.01:
            state = "degraded"
        else:
            state = "healthy"
        systems.append(SystemStatus(state=state, **row))
    count = {state: sum(s.state == state for s in systems) for state in ("healthy", "degraded", "failing")}
    return OpsSnapshot(
        systems=systems,
        needs_attention=[s.system for s in systems if s.state != "healthy"],
        **count,
    ).model_dump()
