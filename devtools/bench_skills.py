"""Benchmark skills: a list of N items for a for_each step to fan out over (bench/fanout.py).

An extension like a team's own skills: an Airflow with ``BATON_EXTENSIONS=devtools.bench_skills`` loads it."""

from __future__ import annotations

from pydantic import BaseModel

from baton.registry import SkillRequest, skill


class BenchItems(BaseModel):
    """``count`` items named item_0, item_1, ..."""

    items: list[str]


@skill("bench_items", output=BenchItems)
def bench_items(request: SkillRequest) -> dict:
    """The items item_0 .. item_<count - 1> (input count, default 100), for a fan-out benchmark."""
    count = int(request.inputs.get("count", 100))
    return BenchItems(items=[f"item_{i}" for i in range(count)]).model_dump()
