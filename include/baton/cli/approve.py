"""``baton approve RUN STEP``: answer what a step asks a person (an approval, an escalation, a stuck
compensation, a conflict) from the command line, where people test.

By default the answer is written to Airflow's metadata database by Airflow's own HITL route handler (the
function behind ``PATCH .../hitlDetails``, with its checks: a valid option, one answer only, the task
resumed), so it works under ``airflow dags test`` / ``dag.test()`` (no API server there) and wherever the
command has the deployment's Airflow configuration. ``--api URL`` sends the same answer to a running
Airflow's REST API instead (a JWT from ``/auth/token`` with ``--user``/``--password``, or ``$BATON_API_TOKEN``).
``--show`` prints the question, its options and its fields, and answers nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from baton.cli.common import add_command

MAX_FIELDS = 100
MAX_VALUE = 100_000  # characters of one --field value
# Airflow 3.3 fails a task answered in the first moments after it parked: the scheduler may requeue the
# resumed task before it has seen the parked worker's exit, then takes that exit for the resumed try's
# and fails it ("state mismatch"; the step runs again and asks again). An answer waits until the
# question is this old, and for a step still running to park, at most PARK_WAIT seconds.
SETTLE_S = 5.0
PARK_WAIT_S = 60.0


class ApproveError(Exception):
    """What cannot be answered, and why; the command prints it and exits 1."""


def _field(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"'{text[:60]}' is not key=value: write e.g. --field amount=1200")
    if len(raw) > MAX_VALUE:
        raise argparse.ArgumentTypeError(f"the value of {key[:60]} is over {MAX_VALUE:,} characters")
    try:
        value = json.loads(raw)  # 1200, true, {"a": 1}, "text"
    except ValueError:
        value = raw  # plain text
    return key.strip(), value


def add(commands: Any) -> None:
    answer = add_command(commands, "approve")
    answer.add_argument("run_id")
    answer.add_argument("step", help="the step's task id")
    answer.add_argument("--map-index", type=int, default=-1, help="for a mapped task (a batch of a for_each)")
    answer.add_argument("--dag", help="the workflow, when the run id is not unique")
    answer.add_argument("--option", action="append", default=[], help="the option chosen (default: Approve)")
    answer.add_argument("--field", type=_field, action="append", default=[], help="a form field: key=value")
    answer.add_argument("--by", default=os.environ.get("USER") or "cli", help="who answers (recorded)")
    answer.add_argument("--show", action="store_true", help="print the question; answer nothing")
    answer.add_argument("--api", help="a running Airflow's URL: answer through its REST API")
    answer.add_argument("--user", default="admin")
    answer.add_argument("--password", default=os.environ.get("BATON_API_PASSWORD", ""))
    answer.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if len(args.field) > MAX_FIELDS:
        print(f"baton approve: at most {MAX_FIELDS} --field values")
        return 2
    fields = dict(args.field)
    try:
        detail = _answer_over_rest(args, fields) if args.api else _answer_in_db(args, fields)
    except ApproveError as error:
        print(f"baton approve: {error}")
        return 1
    if detail is not None:
        print(detail)
    return 0


# --- the metadata database --------------------------------------------------------------------------


class _CliUser:
    """Who answered from the command line, as Airflow's handler records a user: the name given with
    ``--by``, and an id that says it came from the CLI."""

    def __init__(self, name: str):
        self.name = name

    def get_id(self) -> str:
        return f"cli:{self.name}"

    def get_name(self) -> str:
        return self.name


def _task_instance(session: Any, args: argparse.Namespace) -> Any:
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import select

    query = select(TI).where(
        TI.run_id == args.run_id, TI.task_id == args.step, TI.map_index == args.map_index
    )
    if args.dag:
        query = query.where(TI.dag_id == args.dag)
    found = list(session.scalars(query))
    if not found:
        where = f"run {args.run_id}" + (f" of {args.dag}" if args.dag else "")
        raise ApproveError(f"no step '{args.step}' (map index {args.map_index}) in {where}: check the run id")
    if len(found) > 1:
        dags = ", ".join(sorted(ti.dag_id for ti in found))
        raise ApproveError(f"run {args.run_id} exists in several workflows ({dags}): say which with --dag")
    return found[0]


def _describe(detail: Any, ti: Any) -> str:
    fields = ", ".join(sorted(detail.params or {})) or "none"
    state = f"answered by {detail.responded_by_user_name or '?'}" if detail.response_received else "waiting"
    return (
        f"{ti.dag_id} / {ti.run_id} / {ti.task_id}: {detail.subject}\n"
        f"  {state}; options: {', '.join(detail.options)}; fields: {fields}"
    )


def _choice(detail: Any, args: argparse.Namespace, fields: dict[str, Any]) -> list[str]:
    options = list(detail.options)
    chosen = args.option or (["Approve"] if "Approve" in options else [])
    if not chosen:
        raise ApproveError(f"choose one with --option: {', '.join(repr(o) for o in options)}")
    unknown = [o for o in chosen if o not in options]
    if unknown:
        raise ApproveError(
            f"unknown option {unknown[0]!r}: the options are {', '.join(repr(o) for o in options)}"
        )
    allowed = set(detail.params or {})
    extra = sorted(set(fields) - allowed)
    if extra:
        known = ", ".join(sorted(allowed)) or "none: this question has no form"
        raise ApproveError(f"unknown field {extra[0]!r}: the fields are {known}")
    return chosen


def _answer_in_db(args: argparse.Namespace, fields: dict[str, Any]) -> str | None:
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.hitl import HITLDetail
    from airflow.utils.session import create_session
    from fastapi import HTTPException

    with create_session() as session:
        ti = _task_instance(session, args)
        detail = session.get(HITLDetail, ti.id)
        if detail is None:
            raise ApproveError(
                f"step '{args.step}' of run {args.run_id} asks nobody anything (state {ti.state})"
            )
        if args.show:
            return _describe(detail, ti)
        if detail.response_received:
            who = detail.responded_by_user_name or "someone"
            raise ApproveError(f"step '{args.step}' of run {args.run_id} was already answered by {who}")
        chosen = _choice(detail, args, fields)
        params = {**(detail.params_input or {}), **fields}
        if ti.queued_by_job_id is not None:  # a scheduler runs it (not dag.test()): let it settle
            session.commit()
            _settle(lambda: _state_in_db(args), detail.created_at)
            ti = _task_instance(session, args)
        try:
            update_hitl_detail(
                dag_id=ti.dag_id,
                dag_run_id=ti.run_id,
                task_id=ti.task_id,
                update_hitl_detail_payload=UpdateHITLDetailPayload(
                    chosen_options=chosen, params_input=params
                ),
                user=_CliUser(args.by[:100]),
                session=session,
                map_index=ti.map_index,
            )
        except HTTPException as error:  # Airflow's own checks: already answered (409), bad option (400)
            raise ApproveError(str(error.detail)) from None
    return f"answered {args.step} of {args.run_id}: {', '.join(chosen)}" + (
        f" with {', '.join(sorted(fields))}" if fields else ""
    )


# --- a running Airflow's REST API ---------------------------------------------------------------------


def _answer_over_rest(args: argparse.Namespace, fields: dict[str, Any]) -> str | None:
    import httpx

    base = args.api.rstrip("/")
    with httpx.Client(base_url=base, timeout=30) as client:
        token = os.environ.get("BATON_API_TOKEN")
        if not token:
            got = client.post("/auth/token", json={"username": args.user, "password": args.password})
            if got.status_code >= 300:
                raise ApproveError(
                    f"{base}/auth/token refused {args.user}: {got.status_code} {got.text[:200]}"
                )
            token = got.json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        dag = args.dag or _dag_of_run(client, args.run_id)
        path = (
            f"/api/v2/dags/{dag}/dagRuns/{args.run_id}/taskInstances/{args.step}/{args.map_index}/hitlDetails"
        )
        current = client.get(path)
        if current.status_code >= 300:
            raise ApproveError(f"GET {path}: {current.status_code} {current.text[:300]}")
        detail = current.json()
        if args.show:
            return json.dumps(
                {k: detail.get(k) for k in ("subject", "options", "params", "response_received")}
            )
        options = detail.get("options") or []
        chosen = args.option or (["Approve"] if "Approve" in options else [])
        if not chosen:
            raise ApproveError(f"choose one with --option: {', '.join(repr(o) for o in options)}")
        body = {"chosen_options": chosen, "params_input": {**(detail.get("params_input") or {}), **fields}}
        task_path = f"/api/v2/dags/{dag}/dagRuns/{args.run_id}/taskInstances/{args.step}"
        if args.map_index >= 0:
            task_path += f"/{args.map_index}"
        _settle(lambda: client.get(task_path).json().get("state"), _parse_time(detail.get("created_at")))
        done = client.patch(path, json=body)
        if done.status_code >= 300:
            raise ApproveError(
                f"PATCH {path}: {done.status_code} {done.json().get('detail', done.text)!s:.300}"
            )
    return f"answered {args.step} of {args.run_id} through {base}: {', '.join(chosen)}"


def _state_in_db(args: argparse.Namespace) -> str | None:
    from airflow.utils.session import create_session

    with create_session() as session:
        return _task_instance(session, args).state


def _parse_time(value: Any) -> Any:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _settle(state: Any, created_at: Any) -> None:
    """Wait until the step has parked (``state()`` is no longer running) and its question is SETTLE_S
    old, at most PARK_WAIT_S: see SETTLE_S."""
    from datetime import UTC, datetime

    deadline = time.monotonic() + PARK_WAIT_S
    while str(state()) in ("running", "TaskInstanceState.RUNNING") and time.monotonic() < deadline:
        time.sleep(0.5)
    if created_at is not None:
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        age = (datetime.now(UTC) - created_at).total_seconds()
        time.sleep(min(max(SETTLE_S - age, 0.0), SETTLE_S))


def _dag_of_run(client: Any, run_id: str) -> str:
    found = client.get("/api/v2/dags/~/dagRuns", params={"run_id_pattern": run_id, "limit": 100}).json()
    dags = sorted({r["dag_id"] for r in found.get("dag_runs", []) if r["dag_run_id"] == run_id})
    if len(dags) != 1:
        raise ApproveError(
            f"cannot tell the workflow of run {run_id} ({dags or 'not found'}): say it with --dag"
        )
    return dags[0]
