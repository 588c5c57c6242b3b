"""``baton verify``: Baton's event store against Airflow's own record of the same runs.

The store is written by the operator, the listener and the next try; a process killed at the wrong
moment, a listener that could not reach the store, a run deleted in the UI or a store restored from an
older backup leave the two apart. :func:`reconcile` compares them (pure: records in, findings and repair
events out); :func:`airflow_record` and :func:`store_record` read the two sides for a period.

What it repairs, from Airflow's record (each repair is an ordinary event, ``recorded_by: verify``, whose
idempotency key is the one the listener would have used, so a repair never doubles a fact):

- a run Airflow has and the store never heard of: its ``run.started`` (and its end, if it ended);
- a run that ended in Airflow with no ``run.succeeded`` / ``run.failed`` in the store;
- a task instance in a final state with no event of that state (skipped by the scheduler while the
  listener was down, marked in the UI).

What it only reports (a person decides): a run the store has and Airflow does not (deleted, or another
deployment's store), a run whose recorded end contradicts Airflow's, a run running for longer than
``stuck_after``, and a saga that started and never completed (``baton compensate RUN_ID`` goes on).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from baton.events import schema
from baton.events.event import Event
from baton.events.store import EventStore
from baton.events.types import BATON_TAG, TI_TERMINAL

RUN_END = {"success": "run.succeeded", "failed": "run.failed"}
REPAIRABLE = ("missing_run", "missing_run_end", "missing_step_end")
REPORTED = ("unknown_to_airflow", "end_differs", "stuck", "saga_unfinished")


@dataclass(frozen=True)
class AirflowTry:
    task_id: str
    map_index: int
    try_number: int
    state: str


@dataclass(frozen=True)
class AirflowRun:
    dag_id: str
    run_id: str
    state: str
    run_type: str = "manual"
    start_date: datetime | None = None
    end_date: datetime | None = None
    tries: tuple[AirflowTry, ...] = ()


@dataclass
class StoreRun:
    run_id: str
    workflow: str
    #: (type, step, map index) of every event of the run
    facts: set[tuple[str, str | None, int]] = field(default_factory=set)

    def has(self, kind: str, step: str | None = None, map_index: int = -1) -> bool:
        return (kind, step, map_index) in self.facts

    def has_any(self, kind: str) -> bool:
        """An event of this type, of any step."""
        return any(fact[0] == kind for fact in self.facts)

    @property
    def end(self) -> str | None:
        return next((kind for kind in ("run.succeeded", "run.failed") if self.has(kind)), None)


@dataclass(frozen=True)
class Finding:
    kind: str
    run_id: str
    workflow: str
    detail: str
    step: str | None = None
    repair: Event | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "run_id": self.run_id,
            "workflow": self.workflow,
            "step": self.step,
            "detail": self.detail,
            "repairable": self.repair is not None,
        }


def _duration(run: AirflowRun) -> float | None:
    if run.start_date and run.end_date:
        return round((run.end_date - run.start_date).total_seconds(), 3)
    return None


def _run_end(run: AirflowRun) -> Event:
    payload: dict[str, Any] = {"duration_s": _duration(run), "recorded_by": "verify"}
    if run.state == "failed":
        payload["reason"] = "recorded by baton verify from Airflow's record"
    return Event(type=RUN_END[run.state], run_id=run.run_id, workflow=run.dag_id, payload=payload)


def _step_end(run: AirflowRun, ti: AirflowTry, kind: str) -> Event:
    payload: dict[str, Any] = {"recorded_by": "verify"}
    if kind == "step.skipped":
        payload["reason"] = f"{ti.state} in Airflow's record"
    elif kind == "step.failed":
        payload |= {
            "error_class": "MarkedFailed",
            "error": "failed in Airflow's record, with no recorded error",
        }
    return Event(
        type=kind,
        run_id=run.run_id,
        workflow=run.dag_id,
        step=ti.task_id,
        map_index=ti.map_index,
        try_number=ti.try_number,
        payload=payload,
    )


def _of_airflow_run(run: AirflowRun, stored: StoreRun | None, now: datetime, stuck_after: timedelta):
    if stored is None:
        started = Event(
            type="run.started",
            run_id=run.run_id,
            workflow=run.dag_id,
            payload={"run_type": run.run_type, "conf_keys": [], "conf_sha256": "", "recorded_by": "verify"},
        )
        yield Finding(
            "missing_run",
            run.run_id,
            run.dag_id,
            "Airflow ran it; the store has no event of it",
            repair=started,
        )
        stored = StoreRun(run.run_id, run.dag_id)
    if run.state in RUN_END:
        if stored.end is None:
            detail = f"ended {run.state} in Airflow; the store has no end"
            yield Finding("missing_run_end", run.run_id, run.dag_id, detail, repair=_run_end(run))
        elif stored.end != RUN_END[run.state]:
            detail = f"Airflow says {run.state}, the store says {stored.end}"
            yield Finding("end_differs", run.run_id, run.dag_id, detail)
        for ti in run.tries:
            kind = TI_TERMINAL.get(ti.state)
            if kind is not None and not stored.has(kind, ti.task_id, ti.map_index):
                detail = f"{ti.state} in Airflow (try {ti.try_number}); the store has no {kind}"
                repair = _step_end(run, ti, kind)
                yield Finding("missing_step_end", run.run_id, run.dag_id, detail, ti.task_id, repair)
    elif run.state == "running" and run.start_date and now - run.start_date > stuck_after:
        hours = (now - run.start_date).total_seconds() / 3600
        yield Finding("stuck", run.run_id, run.dag_id, f"running for {hours:.1f} h in Airflow")


def reconcile(
    airflow: Iterable[AirflowRun],
    store: dict[str, StoreRun],
    now: datetime,
    stuck_after: timedelta = timedelta(hours=6),
) -> list[Finding]:
    """Every disagreement between Airflow's runs and the store's, oldest run first as given."""
    findings: list[Finding] = []
    seen: set[str] = set()
    for run in airflow:
        seen.add(run.run_id)
        findings += _of_airflow_run(run, store.get(run.run_id), now, stuck_after)
    for run_id, stored in store.items():
        if run_id not in seen and stored.has("run.started"):
            findings.append(
                Finding(
                    "unknown_to_airflow", run_id, stored.workflow, "the store has it; Airflow has no such run"
                )
            )
        if stored.has_any("saga.started") and not stored.has_any("saga.completed"):
            detail = (
                f"a saga started and never completed: `baton compensate {run_id}` goes on where it stopped"
            )
            findings.append(Finding("saga_unfinished", run_id, stored.workflow, detail, "_compensate"))
    return findings


# --- the two records --------------------------------------------------------------------------------


def airflow_record(since: datetime, run_ids: Iterable[str] = ()) -> list[AirflowRun]:
    """The runs of Baton's DAGs (tagged ``baton``) queued or started since ``since``, and those of
    ``run_ids`` (the store's runs of the period, which may have started before it), with their task
    instances, from Airflow's metadata database."""
    from airflow.models.dag import DagTag
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        dag_ids = select(DagTag.dag_id).where(DagTag.name == BATON_TAG)
        when = func.coalesce(DagRun.start_date, DagRun.queued_at, DagRun.run_after)
        query = select(DagRun).where(DagRun.dag_id.in_(dag_ids), when >= since).order_by(when)
        runs = list(session.scalars(query))
        have = {r.run_id for r in runs}
        wanted = sorted(set(run_ids) - have)
        for start in range(0, len(wanted), 500):  # bounded IN lists
            chunk = wanted[start : start + 500]
            runs += session.scalars(
                select(DagRun).where(DagRun.dag_id.in_(dag_ids), DagRun.run_id.in_(chunk))
            )
        tries: dict[tuple[str, str], list[AirflowTry]] = {}
        if runs:
            ti = TaskInstance
            rows = session.execute(
                select(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number, ti.state).where(
                    ti.dag_id.in_({r.dag_id for r in runs}), ti.run_id.in_([r.run_id for r in runs])
                )
            )
            for dag_id, run_id, task_id, map_index, try_number, state in rows:
                tries.setdefault((dag_id, run_id), []).append(
                    AirflowTry(task_id, map_index, try_number or 0, str(getattr(state, "value", state)))
                )
        return [
            AirflowRun(
                dag_id=r.dag_id,
                run_id=r.run_id,
                state=str(getattr(r.state, "value", r.state)),
                run_type=str(getattr(r.run_type, "value", r.run_type)),
                start_date=r.start_date,
                end_date=r.end_date,
                tries=tuple(tries.get((r.dag_id, r.run_id), ())),
            )
            for r in runs
        ]


def store_record(store: EventStore, since: datetime) -> dict[str, StoreRun]:
    """The runs with an event since ``since``, each with the (type, step, map index) of all its events:
    three short columns per event, read in batches."""
    e = schema.events.c
    recent = select(e.run_id).where(e.ts >= since).distinct()
    query = select(e.run_id, e.workflow, e.type, e.step, e.map_index).where(e.run_id.in_(recent))
    runs: dict[str, StoreRun] = {}
    with store.engine.connect() as conn:
        for run_id, workflow, kind, step, map_index in conn.execution_options(yield_per=5000).execute(query):
            runs.setdefault(run_id, StoreRun(run_id, workflow)).facts.add((kind, step, map_index))
    return runs


def verify(store: EventStore, since: datetime, *, repair: bool, now: datetime | None = None) -> list[Finding]:
    """Reconcile the period; with ``repair``, append every repair event (idempotently)."""
    now = now or datetime.now(UTC)
    stored = store_record(store, since)
    findings = reconcile(airflow_record(since, stored), stored, now)
    if repair:
        store.append([f.repair for f in findings if f.repair is not None])
    return findings
