"""A platform component's start and clean stop, recorded for the monitor: ``platform.started`` and
``platform.stopped`` (their payload: :class:`baton.events.types.ComponentLife`).

Airflow's scheduler, triggerer and dag processor call the plugin's lifecycle listener (``on_starting`` when
their job starts, ``before_stopping`` when it ends cleanly); a Celery worker fires ``worker_ready`` and
``worker_shutdown`` (``baton.celery_config``). A component killed with SIGKILL, or out of memory, or on a
machine that died, records no stop: the monitor reads its next start, with no stop since the one before,
as a crash (``baton.ops.monitor.platform``).

A start is recorded from a thread of its own: a component never waits for Baton's store to start (the store
may be down, which is often why the component is starting again); the append retries a lost connection
(``baton.events.reconnect``). A stop waits for its record at most ``STOP_WAIT_S``.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from baton.events.event import Event, worker_name

log = logging.getLogger(__name__)

# the monitor's workflow, as for the incidents' events (ops.monitor.record.MONITOR, which this layer cannot import)
WORKFLOW = "baton_monitor"
COMPONENTS = ("scheduler", "triggerer", "dag-processor", "worker")
STOP_WAIT_S = 5.0


def airflow_component(argv: list[str] | None = None) -> str | None:
    """Which long-running component of Airflow this process is (``airflow scheduler`` -> ``scheduler``), from
    its command line; None for anything else (a task, a CLI command, the api-server)."""
    argv = sys.argv if argv is None else argv
    if len(argv) < 2 or Path(argv[0]).name != "airflow":
        return None
    if argv[1] == "celery" and len(argv) > 2 and argv[2] == "worker":
        return "worker"
    return argv[1] if argv[1] in COMPONENTS else None


def life_event(kind: str, component: str, now: datetime | None = None) -> Event:
    """The ``platform.<kind>`` event of this process as ``component``."""
    now = now or datetime.now(UTC)
    payload = {
        "component": component,
        "name": worker_name(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
    }
    return Event(
        type=f"platform.{kind}",
        run_id=f"platform:{component}",
        workflow=WORKFLOW,
        payload=payload,
        discriminator=f"{payload['hostname']}|{payload['name']}|{payload['pid']}|{now.isoformat()}",
        ts=now,
    )


def record(append: Callable[[list[Event]], object], kind: str, component: str) -> threading.Thread:
    """Append this process's ``platform.<kind>`` from a daemon thread (started, returned); a failure is
    logged, never raised."""

    def write() -> None:
        try:
            append([life_event(kind, component)])
        except Exception:
            log.exception("Could not record that %s %s (Baton's monitor will not see it)", component, kind)

    thread = threading.Thread(target=write, name=f"baton-platform-{kind}", daemon=True)
    thread.start()
    return thread


def started(append: Callable[[list[Event]], object], component: str | None) -> None:
    if component is not None:
        record(append, "started", component)


def stopped(append: Callable[[list[Event]], object], component: str | None) -> None:
    if component is not None:
        record(append, "stopped", component).join(STOP_WAIT_S)
