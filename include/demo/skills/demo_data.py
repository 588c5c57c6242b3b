"""Reads the bundled demo data set (include/demo/*.json) that the offline workflows work on."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from baton.errors import FinalSkillError

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"


@cache
def demo_data(name: str) -> dict[str, Any]:
    """Return the parsed ``include/demo/<name>.json``."""
    return json.loads((DEMO_DIR / f"{name}.json").read_text())


def demo_pick(records: dict[str, Any], kind: str, wanted: str) -> Any:
    """``records[wanted]``, or a FinalSkillError naming the demo ``kind``s there are: a wrong input, which
    no retry mends."""
    if wanted not in records:
        raise FinalSkillError(f"unknown {kind} '{wanted}'; the demo {kind}s are {', '.join(sorted(records))}")
    return records[wanted]
