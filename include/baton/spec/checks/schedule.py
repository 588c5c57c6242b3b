"""The schedule (cron or preset, time zone) and the inputs' defaults against their schemas."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from baton.spec.checks.common import Found
from baton.spec.models import PRESETS, Workflow


@lru_cache(maxsize=1024)
def _valid_cron(cron: str) -> bool:
    """croniter's verdict, once per expression a parse meets (most templates share a few)."""
    from croniter import croniter

    return croniter.is_valid(cron)


def _check_schedule(workflow: Workflow) -> Iterator[Found]:
    cron = workflow.schedule.cron
    if cron is not None and not cron.startswith("@"):
        if not _valid_cron(cron):
            yield (
                ("schedule",),
                f"invalid cron expression '{cron}'",
                "use five fields 'minute hour day month weekday' (e.g. '0 9 * * *'), a preset "
                f"({', '.join(PRESETS)}) or none",
            )
    elif cron is not None and cron not in PRESETS:
        yield (("schedule",), f"unknown schedule preset '{cron}'", f"use one of {', '.join(PRESETS)}")
    try:
        ZoneInfo(workflow.schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        yield (
            ("schedule", "timezone"),
            f"unknown timezone '{workflow.schedule.timezone}'",
            "use an IANA name such as 'UTC' or 'Europe/Paris'",
        )


def _check_inputs(workflow: Workflow) -> Iterator[Found]:
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for

    for name, field in workflow.inputs.items():
        loc = ("inputs", name, "default")
        if field.default is None:
            if workflow.schedule.cron is not None and field.required:
                yield (
                    loc,
                    f"input '{name}' has no default, but scheduled runs get no conf",
                    "give it a default, or make the workflow unscheduled",
                )
            continue
        # What jsonschema.validate does, minus re-checking the schema against its metaschema on every
        # call: InputField builds it from typed fields only (a JSON type, an enum list, numbers, and
        # lengths >= 0), so it is a valid schema by construction.
        schema = field.json_schema()
        error = best_match(validator_for(schema)(schema).iter_errors(field.default))
        if error is not None:
            yield (
                loc,
                f"default {field.default!r} does not fit the input: {error.message}",
                f"use a default that is a valid {field.type}"
                + (f" among {field.enum}" if field.enum else ""),
            )
