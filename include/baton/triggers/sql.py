"""``SqlSensorTrigger``: polls a business database from Airflow's triggerer (no worker slot held)
until new rows arrive, a rule matches or a value reaches its threshold.

Every look runs in a read-only session bounded by the sensor's ``statement_timeout``
(:mod:`baton.hooks.readonly`); when the triggerer drops the trigger mid-look, the query is cancelled
on the database, so neither the triggerer's thread nor the database session stays busy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from baton.errors import SensorQueryError
from baton.events.engine import connection_url
from baton.hooks import sql
from baton.hooks.readonly import QueryHandle, read_only, timeout_of


def check(
    kind: str,
    spec: dict[str, Any],
    url: str,
    mark: Any,
    params: dict[str, Any],
    handle: QueryHandle | None = None,
) -> dict | None:
    """One look at the database: the event to fire, or None. Runs in a thread of the triggerer (and
    once in the worker before the task defers), in a read-only session; ``handle`` lets another
    thread cancel its query."""
    with read_only(url, timeout_of(spec), kind, handle) as conn:
        if kind in ("new_rows", "rule_match"):
            rows = sql.new_rows(conn, spec, mark)
            if not rows:
                return None
            return {"status": "fired", "rows": rows, "mark_to": rows[-1][spec["key"]]}
        found = sql.threshold_value(conn, spec, params.get("bind") or {})
        if found is None or not sql.reached(found["value"], spec["op"], params["threshold"]):
            return None
        if found["period"] is not None and found["period"] == mark:
            return None  # this period already fired
        return {"status": "fired", **found, "mark_to": found["period"]}


class SqlSensorTrigger(BaseTrigger):
    """Fires ``{"status": "fired", ...}`` when the condition holds, ``{"status": "timeout"}`` at the
    deadline, ``{"status": "error", "error": ...}`` when the database cannot be read (with
    ``"stopped": True`` when the session stopped the query: its timeout, or a write)."""

    def __init__(
        self,
        kind: str,
        spec: dict[str, Any],
        conn_id: str,
        mark: Any,
        params: dict[str, Any],
        poke_interval: float,
        deadline: float,
    ):
        super().__init__()
        self.kind, self.spec, self.conn_id, self.mark = kind, spec, conn_id, mark
        self.params, self.poke_interval, self.deadline = params, poke_interval, deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "kind": self.kind,
                "spec": self.spec,
                "conn_id": self.conn_id,
                "mark": self.mark,
                "params": self.params,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from asgiref.sync import sync_to_async

        try:
            url = await sync_to_async(connection_url)(self.conn_id)
        except Exception as error:  # the task turns it into a clear failure
            yield TriggerEvent({"status": "error", "error": f"{type(error).__name__}: {error}"})
            return
        while True:
            handle = QueryHandle()
            try:
                found = await asyncio.to_thread(
                    check, self.kind, self.spec, url, self.mark, self.params, handle
                )
            except asyncio.CancelledError:  # reassigned, or cleared: stop the query on the database too
                handle.cancel_in_background()
                raise
            except SensorQueryError as error:
                yield TriggerEvent({"status": "error", "error": str(error), "stopped": True})
                return
            except Exception as error:
                yield TriggerEvent({"status": "error", "error": f"{type(error).__name__}: {error}"})
                return
            if found is not None:
                yield TriggerEvent(found)
                return
            if time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout"})
                return
            await asyncio.sleep(min(self.poke_interval, max(0.0, self.deadline - time.time())))
