"""VersionOperator: the first task of a workflow that rolls out its next version (``rollout:``).

The DAG holds both versions: the current one's tasks as always, the new one's in the task group ``v<N>``.
This task picks the run's version (:mod:`baton.coordination.rollout`: recorded, sticky, decided from the
rollout's events) and skips every task of the other version, so the run finishes on the version it started
with whatever the share does meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.bases.skipmixin import SkipMixin


class VersionOperator(BaseOperator, SkipMixin):
    """Pick the template version of this run and skip the other version's tasks.

    :param workflow: the workflow's id.
    :param stable: the current version (the template's); its tasks are outside ``group``.
    :param canary: the new version (``dags/versions/``); its tasks are in ``group``.
    :param group: the task group of the new version's tasks.
    :param rollout: the template's ``rollout:`` (a ``baton.spec.rollout.Rollout``).
    :param own_tasks: the tasks of neither version (this one, the saga's): never skipped here.
    :param gate: the new version's digest when the workflow has an evaluation dataset: the rollout starts
        once an evaluation of that version against the current one passed (``baton eval --record``).
    """

    ui_color = "#e8eaf6"
    template_fields: Sequence[str] = ()  # nothing to render: the version comes from the rollout's events

    def __init__(
        self, *, workflow: str, stable: int, canary: int, group: str, rollout: Any, own_tasks: Sequence[str] = (),
        gate: str | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.workflow, self.stable, self.canary, self.group = workflow, stable, canary, group
        self.rollout, self.gate = rollout, gate
        self.own_tasks = tuple(own_tasks)

    def execute(self, context: Any) -> None:
        from baton.coordination.rollout import version_of_run  # deferred: parsing a DAG file loads no runtime

        chosen = version_of_run(
            self.workflow, self.stable, self.canary, self.rollout, context["ti"].run_id, self.gate
        )
        self.log.info(
            "Run on v%s (%s of rollout %s: %s)",
            chosen["version"],
            chosen["arm"],
            chosen["rollout"],
            chosen["how"],
        )
        prefix, keep = f"{self.group}.", set(self.own_tasks) | {self.task_id}
        in_group = chosen["arm"] == "stable"  # skip the new version's tasks, or else the current one's
        others = [
            task
            for task_id, task in self.dag.task_dict.items()
            if task_id not in keep and task_id.startswith(prefix) == in_group
        ]
        self.skip(context["ti"], others)  # raises DownstreamTasksSkipped: Airflow skips them
