"""``BusinessSensor``: the task of a workflow's sensor DAG (``<workflow>__sensor``).

It defers to :class:`~baton.triggers.sql.SqlSensorTrigger`, so a waiting run holds no worker slot,
and when the trigger fires it claims what it found by moving the sensor's mark in Baton's store: the
claim is an event whose key names the mark it moves from, so two runs can never claim the same rows
(the store keeps one event per key) and the next run starts exactly where this one ended.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from baton import templating
from baton.errors import ConnectionNotDefined, SensorError, SensorQueryError
from baton.hooks import sql
from baton.hooks.business import database_url
from baton.hooks.readonly import read_only, timeout_of
from baton.triggers.sql import SqlSensorTrigger, check


def sensor_id(kind: str, spec: dict[str, Any]) -> str:
    """What identifies a sensor's mark: its kind, database, table, key and rule, not its timings."""
    timings = ("poke_interval", "timeout", "statement_timeout", "batch_size", "start")
    keep = {k: v for k, v in spec.items() if k not in timings}
    digest = hashlib.sha256(json.dumps([kind, keep], sort_keys=True, default=str).encode()).hexdigest()
    return digest[:16]


class BusinessSensor(BaseOperator):
    """Wait (deferred, in the triggerer) for new rows, a rule match or a threshold on a business database.

    :param kind: ``new_rows``, ``rule_match`` or ``sql_threshold``.
    :param spec: the sensor's template fields (``model_dump(mode="json")``).
    :param key_path: where the sensor is in the template, for error messages.
    """

    ui_color = "#fdf3e7"
    template_fields: Sequence[str] = ()

    def __init__(
        self,
        *,
        workflow: str,
        kind: str,
        spec: dict[str, Any],
        key_path: str,
        template_version: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow, self.kind, self.spec, self.key_path = workflow, kind, spec, key_path
        self.template_version = template_version

    # --- the mark --------------------------------------------------------------------------------

    @property
    def _mark_prefix(self) -> str:
        return f"watermark|{self.workflow}|{sensor_id(self.kind, self.spec)}|"

    def _current_mark(self, store: Any) -> tuple[bool, Any]:
        """(whether the sensor has a mark yet, the mark)."""
        newest = store.newest(self._mark_prefix)
        if newest is None:
            return False, None
        return True, getattr(newest, "payload", {}).get("mark_to")

    def _claim(self, store: Any, context: Any, mark_from: Any, payload: dict[str, Any], init: bool) -> bool:
        """Move the mark from ``mark_from``: False when another run moved it first."""
        ti = context["ti"]
        suffix = "init" if init else json.dumps(mark_from, default=str)
        if self.kind == "sql_threshold" and payload.get("mark_to") is None:
            suffix = f"run|{ti.run_id}"  # no period: every reach fires, once per run
        from baton.events.event import Event  # deferred: events load on a poke, not a parse

        event = Event.of_task(
            ti,
            "trigger.fired",
            template_version=self.template_version,
            payload={"kind": self.kind, "source": self._source, "mark_from": mark_from, **payload},
            key=self._mark_prefix + suffix,
        )
        return bool(store.append([event]))

    @property
    def _source(self) -> str:
        where = self.spec.get("table") or "query"
        return f"{self.spec['conn_id']}:{where}" + (
            f" rule {self.spec['rule']}" if self.spec.get("rule") else ""
        )

    # --- execution -------------------------------------------------------------------------------

    def _url(self) -> str:
        try:
            return database_url(self.spec["conn_id"], "the business database")
        except (ConnectionNotDefined, ValueError) as error:
            raise SensorError(f"{self.key_path}.conn_id: {error}") from None

    def _params(self, context: Any) -> dict[str, Any]:
        if self.kind != "sql_threshold":
            return {}
        scope = {
            "inputs": dict(context["params"]),
            "steps": {},
            "context": {},
            "run": {"id": context["run_id"]},
        }
        bind = templating.arguments(self.spec.get("params") or {}, scope)
        rendered = templating.arguments({"threshold": self.spec["threshold"]}, scope)["threshold"]
        try:
            threshold = float(rendered)
        except (TypeError, ValueError):
            raise SensorError(
                f"{self.key_path}.threshold: '{self.spec['threshold']}' is not a number once rendered"
            ) from None
        return {"threshold": threshold, "bind": bind}

    def execute(self, context: Any) -> Any:
        url = self._url()
        store = _store()
        if (claimed := self._claimed_by_this_run(store, context)) is not None:
            return self._reclaimed(context, url, claimed)
        params = self._params(context)
        has_mark, mark = self._current_mark(store)
        if not has_mark and self.kind != "sql_threshold" and self.spec.get("start", "now") == "now":
            try:
                with read_only(url, timeout_of(self.spec), self.kind) as conn:
                    start = sql.max_key(conn, self.spec)
            except SensorQueryError as error:
                raise SensorError(f"{self.key_path}: {error}") from None
            self._claim(store, context, None, {"count": 0, "mark_to": start}, init=True)
            has_mark, mark = self._current_mark(store)
        try:
            found = check(self.kind, self.spec, url, mark, params)
        except SensorQueryError as error:  # its timeout, or a write: the message says what to change
            raise SensorError(f"{self.key_path}: {error}") from None
        except Exception as error:
            raise SensorError(f"{self.key_path}: the sensor's query failed: {error}") from None
        if found is not None:
            return self._fired(context, store, mark, found)
        self._defer(mark, params, time.time() + self._timeout())

    def _timeout(self) -> float:
        return float(self.spec.get("timeout") or timedelta(days=1).total_seconds())

    def _defer(self, mark: Any, params: dict[str, Any], deadline: float) -> None:
        self.log.info("Sensor %s waits in the triggerer (mark %s)", self.kind, mark)
        self.defer(
            trigger=SqlSensorTrigger(
                kind=self.kind,
                spec=self.spec,
                conn_id=self.spec["conn_id"],
                mark=mark,
                params=params,
                poke_interval=float(self.spec.get("poke_interval") or 30),
                deadline=deadline,
            ),
            method_name="execute_complete",
            kwargs={"deadline": deadline, "mark": mark},
        )

    def execute_complete(
        self, context: Any, event: dict[str, Any], deadline: float = 0.0, mark: Any = None
    ) -> Any:
        """The trigger fired: claim what it found after ``mark`` (the mark it looked from)."""
        status = event.get("status")
        if status == "timeout":
            raise AirflowSkipException(
                f"Sensor {self.kind} saw nothing in {self._timeout():g} s: the run's steps are skipped."
            )
        if status == "error" and event.get("stopped"):
            raise SensorError(f"{self.key_path}: {event.get('error')}")
        if status == "error":
            raise SensorError(f"{self.key_path}: the sensor's query failed: {event.get('error')}")
        return self._fired(context, _store(), mark, event, deadline=deadline)

    def _fired(
        self, context: Any, store: Any, mark: Any, found: dict[str, Any], deadline: float = 0.0
    ) -> dict[str, Any]:
        rows = found.get("rows")
        payload = {
            "count": len(rows) if rows is not None else 1,
            "value": found.get("value"),
            "mark_to": found.get("mark_to"),
        }
        if (lag := lag_s(rows or [], self.spec.get("time_column"), time.time())) is not None:
            payload["lag_s"] = lag
        if not self._claim(store, context, mark, payload, init=False):
            # Another run moved the mark first: look again from where it left it.
            self.log.info("Another run claimed from mark %s: waiting again", mark)
            _, mark = self._current_mark(store)
            self._defer(mark, self._params(context), deadline or time.time() + self._timeout())
        self.log.info("Sensor %s fired: %s", self.kind, {k: v for k, v in payload.items() if v is not None})
        return self._emit(context, mark, payload, rows, found.get("period"))

    def _emit(
        self, context: Any, mark: Any, payload: dict[str, Any], rows: list | None, period: Any
    ) -> dict[str, Any]:
        output = {"kind": self.kind, "source": self._source, "mark_from": mark, **payload}
        if rows is not None:
            output["rows"] = rows
        else:
            output["period"] = period
        for outlet in self.outlets:  # the message that starts the workflow
            context["outlet_events"][outlet].extra = output
        return output

    def _claimed_by_this_run(self, store: Any, context: Any) -> dict[str, Any] | None:
        """What an earlier try of this run claimed (it failed before its asset event was stored)."""
        claims = [
            e.payload
            for e in store.read(context["ti"].run_id, types=["trigger.fired"])
            if getattr(e, "key", "").startswith(self._mark_prefix) and not e.key.endswith("|init")
        ]
        return claims[-1] if claims else None

    def _reclaimed(self, context: Any, url: str, claim: dict[str, Any]) -> dict[str, Any]:
        """Hand on again what this run claimed in an earlier try: the same rows (those between the two
        marks), or the same value, so that nothing claimed is ever skipped."""
        self.log.info(
            "An earlier try of this run claimed %s..%s: handing it on", claim["mark_from"], claim["mark_to"]
        )
        payload = {k: claim.get(k) for k in ("count", "value", "mark_to")}
        if self.kind == "sql_threshold":
            return self._emit(context, claim["mark_from"], payload, None, claim.get("mark_to"))
        with read_only(url, timeout_of(self.spec), self.kind) as conn:
            rows = sql.new_rows(conn, self.spec, claim["mark_from"], until=claim["mark_to"])
        return self._emit(context, claim["mark_from"], payload, rows, None)


def _store() -> Any:
    """Baton's event store, opened when the sensor pokes or resumes: a DAG file's parse loads none of it."""
    from baton.events.store import EventStore  # deferred: events load on a poke, not a parse

    return EventStore.from_airflow()


def lag_s(rows: list[dict[str, Any]], column: str | None, now: float) -> float | None:
    """Seconds from the oldest time in ``rows``' ``column`` (a timestamp; a naive one is UTC) to ``now``:
    how late the sensor saw them. None when no row has a readable time; a row stamped later than ``now``
    (clocks differ) counts as no lag."""
    if not column:
        return None
    times = []
    for row in rows:
        value = row.get(column)
        try:
            at = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        except (TypeError, ValueError):
            continue
        times.append((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())
    return max(0.0, round(now - min(times), 3)) if times else None
