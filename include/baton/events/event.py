"""One fact about a run (``Event``), a stored row that cannot be read (``CorruptEvent``), and the helpers that
build a run's start payload. A leaf of ``baton.events``: the log, the projections and the replay import it,
it imports only the payload catalogue (``types``)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from baton.events.types import EVENT_TYPES


@dataclass(frozen=True)
class Event:
    """One fact about a run. ``key`` defaults to run/step/map index/try/type (+ ``discriminator``)."""

    type: str
    run_id: str
    workflow: str
    payload: dict[str, Any] = field(default_factory=dict)
    step: str | None = None
    map_index: int = -1
    try_number: int = 0
    agent: str | None = None
    template_version: int | None = None
    discriminator: str = ""
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))
    seq: int | None = None
    key: str = ""

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type '{self.type}'; known: {', '.join(sorted(EVENT_TYPES))}")
        if not self.key:
            parts = (self.run_id, self.step or "", str(self.map_index), str(self.try_number), self.type)
            key = "|".join(parts) + (f"|{self.discriminator}" if self.discriminator else "")
            object.__setattr__(self, "key", key)

    @classmethod
    def like(cls, source: Any, type: str, **fields: Any) -> Event:
        """An event of ``source``'s run, step, map index and try (an event, a context writer, an effect's
        scope: anything with those attributes); ``fields`` set the rest."""
        scope = {
            "run_id": source.run_id,
            "workflow": source.workflow,
            "step": source.step,
            "map_index": source.map_index,
            "try_number": source.try_number,
        }
        return cls(type=type, **{**scope, **fields})

    @classmethod
    def of_task(cls, ti: Any, type: str, **fields: Any) -> Event:
        """An event of an Airflow task instance's run, task, map index and try."""
        scope = {
            "run_id": ti.run_id,
            "workflow": ti.dag_id,
            "step": ti.task_id,
            "map_index": ti.map_index if getattr(ti, "map_index", None) is not None else -1,
            "try_number": ti.try_number or 0,
        }
        return cls(type=type, **{**scope, **fields})

    @classmethod
    def stored(
        cls,
        type: str,
        run_id: str,
        workflow: str,
        payload: dict[str, Any],
        step: str | None,
        map_index: int,
        try_number: int,
        agent: str | None,
        template_version: int | None,
        ts: datetime,
        seq: int,
        key: str,
    ) -> Event:
        """An event read back from the store, whose type the reader has checked and whose key is stored: it is
        built without ``__init__`` and its checks (a frozen dataclass sets each of its 13 fields through
        ``object.__setattr__``), which was a third of what reading a stored event cost (a replay reads 100,000)."""
        if not key:  # a row without its key gets the one __init__ derives
            return cls(
                type,
                run_id,
                workflow,
                payload,
                step,
                map_index,
                try_number,
                agent,
                template_version,
                ts=ts,
                seq=seq,
            )
        event = object.__new__(cls)
        event.__dict__.update(
            type=type,
            run_id=run_id,
            workflow=workflow,
            payload=payload,
            step=step,
            map_index=map_index,
            try_number=try_number,
            agent=agent,
            template_version=template_version,
            discriminator="",
            ts=ts,
            seq=seq,
            key=key,
        )
        return event

    def row(self) -> dict[str, Any]:
        payload = EVENT_TYPES[self.type].model_validate(self.payload).model_dump(mode="json")
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "template_version": self.template_version,
            "step": self.step,
            "map_index": self.map_index,
            "try_number": self.try_number,
            "agent": self.agent,
            "type": self.type,
            "payload": payload,
            "ts": self.ts,
            "idempotency_key": self.key,
        }


@dataclass(frozen=True)
class CorruptEvent:
    """A stored row whose payload cannot be read or does not fit its type."""

    seq: int
    type: str
    problem: str

    def __str__(self) -> str:
        return f"event {self.seq} ({self.type}): {self.problem}"


def conf_digest(conf: dict[str, Any] | None) -> str:
    """The digest of a run's conf, recorded instead of the conf itself."""
    return hashlib.sha256(json.dumps(conf or {}, sort_keys=True, default=str).encode()).hexdigest()


def worker_name() -> str:
    """The name of the Celery worker this process runs in (``BATON_WORKER_NAME``, which scripts/celery.sh
    sets per worker; in containers the hostname already tells them apart), or ``""``."""
    return os.environ.get("BATON_WORKER_NAME", "")


def run_started_payload(dag_run: Any, logical_date: Any) -> dict[str, Any]:
    conf = dict(getattr(dag_run, "conf", None) or {})
    return {
        "run_type": str(getattr(dag_run, "run_type", "manual")),
        "logical_date": logical_date.isoformat() if logical_date else None,
        "conf_keys": sorted(conf),
        "conf_sha256": conf_digest(conf),
    }
