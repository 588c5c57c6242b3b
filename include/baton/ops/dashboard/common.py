"""What the dashboard's queries share: the opaque cursor of the runs' pages, times and numbers as shown."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from baton.errors import BatonError

_PREFIX = "r1."

#: Baton's own DAGs (the monitor's minute, the saga's compensation runs, the incidents' pages to a person):
#: their runs are the platform's, not a team's work, and the figures of "every workflow" leave them out.
#: tests/ops/dashboard/test_analytics.py checks these against the constants of the modules that name them.
SYSTEM_WORKFLOWS = frozenset({"baton_monitor", "baton_compensate", "baton_incident_escalation"})


class CursorError(BatonError):
    """A ``before`` cursor that is not one the runs' page gave."""


def _check(body: str) -> str:
    return hashlib.sha256(f"baton-dashboard|{body}".encode()).hexdigest()[:12]


def encode_cursor(started_at: datetime, run_id: str) -> str:
    """The position after a run of the newest-first list: its start and id, opaque to the caller."""
    raw = json.dumps([started_at.astimezone(UTC).isoformat(), run_id], separators=(",", ":"))
    body = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    return f"{_PREFIX}{body}.{_check(body)}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(started_at, run_id) of a cursor ``encode_cursor`` made; ``CursorError`` for anything else."""
    refused = CursorError(
        "the cursor 'before' is not one this API gave: pass the 'next' of a previous page unchanged"
    )
    if not cursor.startswith(_PREFIX) or cursor.count(".") != 2:
        raise refused
    body, check = cursor[len(_PREFIX) :].split(".")
    if check != _check(body):
        raise refused
    try:
        started, run_id = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        when = datetime.fromisoformat(started)
    except (ValueError, TypeError, binascii.Error):
        raise refused from None
    if not isinstance(run_id, str) or when.tzinfo is None:
        raise refused
    return when.astimezone(UTC), run_id


def iso(value: datetime | float | None) -> str | None:
    """A time as ISO 8601 text in UTC (a datetime, or epoch seconds), or None."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).isoformat()


def rounded(value: Any, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)
