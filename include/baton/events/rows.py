"""A stored event's row: the SELECT of its columns and the ``Event`` it holds (or the ``CorruptEvent`` a replay
reports). One reading for the log's reads and the projection's catch-up."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import Text, cast, select

from baton.events import schema
from baton.events.decode import loads
from baton.events.event import CorruptEvent, Event
from baton.events.types import EVENT_TYPES


def select_events() -> Any:
    """SELECT of the columns ``from_row`` reads, in its order."""
    e = schema.events.c
    return select(
        e.seq,
        e.run_id,
        e.workflow,
        e.template_version,
        e.step,
        e.map_index,
        e.try_number,
        e.agent,
        e.type,
        cast(e.payload, Text),
        e.ts,
        e.idempotency_key,
    )


def from_row(row: Any, validate: bool = True) -> Event | CorruptEvent:
    """The event of a row of ``select_events``; a ``CorruptEvent`` for an unknown type, a payload that is not
    JSON or (``validate``) does not fit its type's model. Without ``validate`` (the catch-up: a projection reads
    what it knows of a payload) a payload need only be a JSON object."""
    seq, run_id, workflow, version, step, map_index, try_number, agent, kind, payload, ts, key = row
    try:
        data = loads(payload)
        model = EVENT_TYPES.get(kind)
        if model is None:
            return CorruptEvent(seq, kind, "unknown event type")
        if validate:
            # model_validate's own work, without its Python wrapper (a replay validates 100,000)
            model.__pydantic_validator__.validate_python(data)
        elif not isinstance(data, dict):
            return CorruptEvent(seq, kind, "payload is not a JSON object")
    except RecursionError:
        return CorruptEvent(seq, kind, "payload is nested too deeply")
    except ValueError as error:  # json.JSONDecodeError and pydantic.ValidationError are ValueErrors
        problem = (
            f"payload does not fit: {error.errors()[0]['loc']}: {error.errors()[0]['msg']}"
            if isinstance(error, ValidationError)
            else f"payload is not JSON: {error}"
        )
        return CorruptEvent(seq, kind, problem)
    return Event.stored(
        kind, run_id, workflow, data, step, map_index, try_number, agent, version, ts, seq, key
    )
