"""The timetable of a scheduled template: Airflow's cron trigger, whose runs' ids are unique across DAGs.

Airflow names a scheduled run ``scheduled__<when it runs>``: unique within its DAG, the same for every DAG
scheduled at that minute (``daily_operations`` at 09:00 and ``support_triage`` every two minutes both run
``scheduled__2026-11-28T09:00:00+00:00``). Baton's store identifies a run by its id alone, so two such runs
would be one: the second's start and end dropped as duplicates, their summaries merged. Airflow's manual runs
already end in a random suffix; Baton's scheduled runs do too (``scheduled__2026-11-28T09:00:00+00:00_x8Kq2LpA``),
through this subclass of Airflow's ``CronTriggerTimetable``, registered by Baton's plugin so that the scheduler
can load it. It schedules exactly as its parent (the same summary, the same runs); Airflow still finds a
scheduled run by its logical date, never by its id.
"""

from __future__ import annotations

from typing import Any

from airflow.timetables.trigger import CronTriggerTimetable
from airflow.utils.strings import get_random_string


class UniqueCronTrigger(CronTriggerTimetable):
    """``CronTriggerTimetable`` whose scheduled runs' ids end in a random suffix (see the module)."""

    def generate_run_id(self, *, run_type: Any, run_after: Any, data_interval: Any, **extra: Any) -> str:
        return run_type.generate_run_id(suffix=f"{run_after.isoformat()}_{get_random_string()}")
