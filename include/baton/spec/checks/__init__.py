"""Checks a valid-shaped template against everything pydantic cannot see: graph, names, Jinja, cron.

Validation is a pipeline of generators over one parsed workflow, each yielding located findings
``(key path, message, fix)``; :func:`check_workflow` runs them all, so every problem of a file is
reported, not just the first.
"""

from __future__ import annotations

from pathlib import Path

from baton.spec.checks.common import REGISTER_SKILL, TEMPLATE_SUFFIXES, Found
from baton.spec.checks.graph import Ancestry, _check_name, _check_steps, ancestors, find_cycle
from baton.spec.checks.jinja import _check_sensor_templates, _check_templates, read_jinja
from baton.spec.checks.live import _check_live
from baton.spec.checks.schedule import _check_inputs, _check_schedule
from baton.spec.checks.workers import (
    _check_fan_outs,
    _check_routes,
    _check_variants,
    _check_workers,
    list_fields,
)
from baton.spec.models import Workflow
from baton.spec.roster import Roster

__all__ = [
    "REGISTER_SKILL",
    "TEMPLATE_SUFFIXES",
    "Ancestry",
    "Found",
    "ancestors",
    "check_workflow",
    "find_cycle",
    "list_fields",
    "read_jinja",
]


def check_workflow(workflow: Workflow, roster: Roster | None, path: Path) -> list[Found]:
    """Every problem of ``workflow`` that its pydantic model cannot see."""
    return [
        *_check_name(workflow, path),
        *_check_steps(workflow),
        *_check_workers(workflow, roster),
        *_check_routes(workflow, roster),
        *_check_fan_outs(workflow, roster),
        *_check_variants(workflow, roster),
        *_check_live(workflow, roster),
        *_check_templates(workflow),
        *_check_sensor_templates(workflow),
        *_check_schedule(workflow),
        *_check_inputs(workflow),
    ]
