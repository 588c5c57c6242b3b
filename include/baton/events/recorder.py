"""Records a step's events from inside its task (the operator side of the writers).

Every event has the same idempotency key whoever writes it, so the operator, the listener and a
later try can all record what they know and each fact is stored once. The operator's appends raise
when the store cannot be written: a step whose history cannot be kept fails and is retried.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from baton.events.event import Event, run_started_payload, worker_name
from baton.events.store import EventStore

TERMINAL = ("step.succeeded", "step.failed", "step.skipped")
LOST_TRY = "the try ended without reporting (its task process was killed or lost)"


def redact(text: str) -> str:
    """Airflow's secrets masker, so that a secret in an error message never reaches the store."""
    from airflow.sdk.log import redact as airflow_redact

    return str(airflow_redact(text))


class StepRecorder:
    """The events of one try of one step."""

    def __init__(
        self,
        store: EventStore,
        context: Any,
        *,
        workflow: str,
        template_version: int | None,
        agent: str | None = None,
        pool: str = "",
    ):
        ti = context["ti"]
        self.store = store
        self.context = context
        self.pool = pool
        self.common = {
            "run_id": ti.run_id,
            "workflow": workflow,
            "template_version": template_version,
            "step": ti.task_id,
            "map_index": ti.map_index if ti.map_index is not None else -1,
            "try_number": ti.try_number,
            "agent": agent,
        }
        self.started = time.monotonic()

    def event(
        self,
        kind: str,
        payload: dict[str, Any] | None = None,
        discriminator: str = "",
        agent: str | None = None,
    ) -> Event:
        common = self.common if agent is None else {**self.common, "agent": agent}
        return Event(type=kind, payload=payload or {}, discriminator=discriminator, **common)

    def record(self, *events: Event) -> None:
        self.store.append(events)

    def start(self, *more: Event) -> None:
        """The run (once per run), a lost previous try if there was one, this try's start and ``more``
        (the agent chosen), in one transaction."""
        self.record(*self.start_events(), *more)

    def start_events(self) -> list[Event]:
        run_started = Event(
            type="run.started",
            run_id=self.common["run_id"],
            workflow=self.common["workflow"],
            template_version=self.common["template_version"],
            payload=run_started_payload(self.context["dag_run"], self.context.get("logical_date")),
        )
        started = self.event(
            "step.started",
            {
                "pid": os.getpid(),
                "hostname": socket.gethostname(),
                "worker": worker_name(),
                "pool": self.pool,
                "recorded_by": "operator",
            },
        )
        return [run_started, *self._lost_previous_try(), started]

    def _lost_previous_try(self) -> list[Event]:
        """When the previous try left no terminal event (SIGKILL, a lost worker), record its failure now."""
        previous = self.common["try_number"] - 1
        if previous < 1:
            return []
        earlier_tries = self.store.read(
            self.common["run_id"],
            step=(self.common["step"], self.common["map_index"]),
            before_try=previous + 1,
        )
        kinds = {e.type for e in earlier_tries if getattr(e, "try_number", None) == previous}
        if not kinds or kinds & set(TERMINAL):
            return []
        earlier = {**self.common, "try_number": previous}
        return [
            Event(
                type="step.failed",
                payload={
                    "error_class": "TaskLost",
                    "error": LOST_TRY,
                    "will_retry": True,
                    "recorded_by": "next try",
                },
                **earlier,
            ),
            Event(
                type="step.retried",
                payload={"next_try": self.common["try_number"], "recorded_by": "next try"},
                **earlier,
            ),
        ]

    def succeeded(self, output: Any) -> None:
        """The output and the success, in one transaction."""
        self.record(
            self.event("output.recorded", self.store.output_payload(output)),
            self.event("step.succeeded", {"duration_s": round(time.monotonic() - self.started, 3)}),
        )

    def skipped(self, reason: str) -> None:
        self.record(self.event("step.skipped", {"reason": reason}))

    def failed(self, error: BaseException) -> None:
        """The failure, with the try's start (stored once, by key) in case it failed before starting."""
        from airflow.sdk.exceptions import AirflowFailException

        ti = self.context["ti"]
        # AirflowFailException fails the task with no retry, whatever retries are left.
        will_retry = ti.try_number <= getattr(ti, "max_tries", 0) and not isinstance(
            error, AirflowFailException
        )
        events = [
            self.event(
                "step.failed",
                {
                    "error_class": type(error).__name__,
                    "error": redact(str(error))[:1000],
                    "will_retry": will_retry,
                },
            )
        ]
        if will_retry:
            events.append(self.event("step.retried", {"next_try": ti.try_number + 1}))
        self.record(*self.start_events(), *events)
