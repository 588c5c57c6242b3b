"""The SQL sensors without Airflow's scheduler: their queries (bound values only), one look at a real
PostgreSQL business database, the high-water mark's claims, and the checks of ``baton validate``."""

from __future__ import annotations

import textwrap
from types import SimpleNamespace

import pytest
from demo.business import add, create, leads, payments
from sqlalchemy.dialects import postgresql

from baton.cli import main as baton
from baton.events.store import engine_for
from baton.hooks import sql
from baton.sensors.business import BusinessSensor, SensorError, sensor_id
from baton.triggers.sql import check

NEW_ROWS = {
    "conn_id": "baton_business",
    "table": "leads",
    "key": "seq",
    "columns": ["seq", "id"],
    "batch_size": 2,
}
RULE = {
    "conn_id": "baton_business",
    "table": "payments",
    "key": "seq",
    "columns": ["seq", "id", "country", "amount"],
    "rule": "large_or_sanctioned",
    "any": [
        {"column": "amount", "op": ">=", "value": 10000},
        {"column": "country", "op": "in", "value": ["KP", "IR"]},
    ],
    "all": [{"column": "currency", "op": "=", "value": "USD'; DROP TABLE payments; --"}],
}
THRESHOLD = {
    "conn_id": "baton_business",
    "query": "SELECT substr(day, 1, 7) AS period, SUM(amount) AS value FROM revenue "
    "WHERE substr(day, 1, 7) = :month GROUP BY substr(day, 1, 7)",
    "op": ">=",
}


@pytest.fixture(scope="module")
def business(pg_url):
    """The demo business tables, seeded, in the session's throwaway PostgreSQL database."""
    create(pg_url)
    return pg_url


def test_values_are_bound_never_pasted_into_the_sql():
    query = sql.rows_query(RULE, mark=41)
    text = str(query.compile(dialect=postgresql.dialect()))
    assert "DROP TABLE" not in text and "10000" not in text and "41" not in text
    assert text == (
        "SELECT seq, id, country, amount \nFROM payments \nWHERE seq > %(mark)s::INTEGER AND currency = "
        "%(rule_all_0)s::VARCHAR AND (amount >= %(rule_any_0)s::INTEGER OR country IN "
        "(__[POSTCOMPILE_rule_any_1])) ORDER BY seq \n LIMIT %(param_1)s::INTEGER"
    )
    params = query.compile().params
    assert params["rule_all_0"] == "USD'; DROP TABLE payments; --" and params["rule_any_1"] == ["KP", "IR"]


def test_new_rows_are_read_after_the_mark_in_key_order_a_batch_at_a_time(business):
    mark = sql.max_key(engine_for(business).connect(), NEW_ROWS)
    assert mark == 14  # the demo leads
    assert check("new_rows", NEW_ROWS, business, mark, {}) is None
    add(business, leads, [_lead(f"L-77{i}") for i in range(3)])
    found = check("new_rows", NEW_ROWS, business, mark, {})
    assert found == {
        "status": "fired",
        "rows": [{"seq": 15, "id": "L-770"}, {"seq": 16, "id": "L-771"}],
        "mark_to": 16,
    }  # batch_size 2: the third waits for the next run
    assert check("new_rows", NEW_ROWS, business, 16, {})["rows"] == [{"seq": 17, "id": "L-772"}]


def test_a_rule_matches_only_new_rows_that_break_it(business):
    mark = sql.max_key(engine_for(business).connect(), RULE)
    rule = {**RULE, "all": [{"column": "currency", "op": "=", "value": "USD"}]}
    add(
        business,
        payments,
        [
            {
                "id": "P-1",
                "customer": "C",
                "country": "DE",
                "amount": 50.0,
                "currency": "USD",
                "day": "2026-11-21",
            },
            {
                "id": "P-2",
                "customer": "C",
                "country": "KP",
                "amount": 50.0,
                "currency": "USD",
                "day": "2026-11-21",
            },
            {
                "id": "P-3",
                "customer": "C",
                "country": "DE",
                "amount": 20000.0,
                "currency": "EUR",
                "day": "2026-11-21",
            },
        ],
    )
    found = check("rule_match", rule, business, mark, {})
    assert [row["id"] for row in found["rows"]] == ["P-2"]  # P-1 too small, P-3 not in USD


def test_a_threshold_fires_once_per_period(business):
    params = {"threshold": 2000.0, "bind": {"month": "2026-11"}}
    found = check("sql_threshold", THRESHOLD, business, None, params)
    assert found == {"status": "fired", "value": 2254, "period": "2026-11", "mark_to": "2026-11"}
    assert check("sql_threshold", THRESHOLD, business, "2026-11", params) is None  # already fired
    assert check("sql_threshold", THRESHOLD, business, None, {**params, "threshold": 4167.0}) is None
    with pytest.raises(ValueError, match="it must return one named 'value'"):
        check("sql_threshold", {**THRESHOLD, "query": "SELECT 1 AS total"}, business, None, params)


def test_only_one_run_claims_the_rows_after_a_mark(store):
    sensor = BusinessSensor(
        task_id="wait",
        workflow="leads_flow",
        kind="new_rows",
        spec=NEW_ROWS,
        key_path="trigger.sensor.new_rows",
    )
    first, second = (_context(f"run_{n}") for n in (1, 2))
    payload = {"count": 2, "mark_to": 16}
    assert sensor._claim(store, first, 14, payload, init=False) is True
    assert sensor._claim(store, second, 14, payload, init=False) is False  # the same rows: refused
    assert sensor._current_mark(store) == (True, 16)
    assert sensor._claim(store, second, 16, {"count": 1, "mark_to": 17}, init=False) is True
    assert sensor._current_mark(store) == (True, 17)
    # Timings are not part of the sensor's identity; its table and rule are.
    assert sensor_id("new_rows", {**NEW_ROWS, "poke_interval": 5}) == sensor_id("new_rows", NEW_ROWS)
    assert sensor_id("new_rows", {**NEW_ROWS, "table": "contacts"}) != sensor_id("new_rows", NEW_ROWS)


def test_a_sensor_on_a_connection_that_does_not_exist_fails_with_the_key_path(airflow_db):
    sensor = BusinessSensor(
        task_id="wait",
        workflow="leads_flow",
        kind="new_rows",
        spec={**NEW_ROWS, "conn_id": "crm_replica"},
        key_path="trigger.sensor.new_rows",
    )
    with pytest.raises(SensorError) as caught:
        sensor._url()
    assert str(caught.value) == (
        "trigger.sensor.new_rows.conn_id: connection 'crm_replica' is not defined: create it as a postgres or "
        "sqlite connection to the business database (Admin > Connections, or "
        "AIRFLOW_CONN_CRM_REPLICA='postgresql://user:password@host:5432/db')"
    )


def test_validate_warns_of_an_asset_nobody_emits_and_an_undefined_sensor_connection(
    tmp_path, dags_folder, capsys, monkeypatch
):
    monkeypatch.delenv("AIRFLOW_CONN_CRM_REPLICA", raising=False)
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "followup.yaml").write_text(
        _template("followup", "trigger: {asset: qualified_lead}\nsteps: [{id: a, skill: plan_followups}]")
    )
    (folder / "watch.yaml").write_text(
        _template(
            "watch",
            "trigger: {sensor: {new_rows: {conn_id: crm_replica, table: leads, key: seq}}}\n"
            "steps: [{id: a, skill: score_leads, emits: qualified_leads}]",
        )
    )
    assert baton(["validate", str(folder), "--agents", str(dags_folder / "agents.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{folder / 'followup.yaml'}: trigger.asset[0]: warning: no workflow here emits asset 'qualified_lead', "
        "so 'followup' runs only when triggered by hand (fix: add `emits: qualified_lead` to a step of the "
        "workflow that produces it; emitted here: qualified_leads)",
        f"{folder / 'watch.yaml'}: trigger.sensor.new_rows.conn_id: warning: connection 'crm_replica' is not "
        "defined here, so the sensor will fail (fix: create it in Admin > Connections or set "
        "AIRFLOW_CONN_CRM_REPLICA to the business database's URI)",
        "2 template(s) checked, 0 with errors, 0 error(s) in all, 2 warning(s)",
    ]


def _template(name: str, body: str) -> str:
    head = f"workflow: {name}\nversion: 1\ndescription: A test.\nowner: tests\n"
    return head + textwrap.dedent(body) + "\n"


def _lead(lead_id: str) -> dict:
    return {"id": lead_id, "company": "Co", "region": "na", "employees": 10, "annual_budget": 1000.0,
            "engagement": 10}  # fmt: skip


def _context(run_id: str) -> dict:
    return {"ti": SimpleNamespace(run_id=run_id, dag_id="leads_flow__sensor", task_id="wait", try_number=1)}


def test_a_threshold_and_its_params_are_rendered_over_the_inputs_and_bound():
    spec = {**THRESHOLD, "params": {"month": "{{ inputs.month }}"}, "threshold": "{{ inputs.target }}"}
    sensor = BusinessSensor(
        task_id="wait",
        workflow="revenue",
        kind="sql_threshold",
        spec=spec,
        key_path="trigger.sensor.sql_threshold",
    )
    context = {"params": {"month": "2026-11", "target": 4167}, "run_id": "r1"}
    assert sensor._params(context) == {"threshold": 4167.0, "bind": {"month": "2026-11"}}
    with pytest.raises(SensorError) as caught:
        sensor._params({"params": {"month": "2026-11", "target": "lots"}, "run_id": "r1"})
    assert str(caught.value) == (
        "trigger.sensor.sql_threshold.threshold: '{{ inputs.target }}' is not a number once rendered"
    )


def test_a_retry_hands_on_exactly_what_its_run_claimed_before_it_failed(business, store):
    """Claimed and then lost (the try died before Airflow stored its asset event): the next try of
    the same run must not look past the moved mark, or those rows would be skipped for good."""
    spec = {**NEW_ROWS, "batch_size": 500}
    sensor = BusinessSensor(
        task_id="wait", workflow="retry_flow", kind="new_rows", spec=spec, key_path="trigger.sensor.new_rows"
    )
    tag = store.engine.dialect.name  # the test runs once per store backend, on one business database
    start = sql.max_key(engine_for(business).connect(), spec)
    add(business, leads, [_lead(f"L-880-{tag}"), _lead(f"L-881-{tag}")])
    found = check("new_rows", spec, business, start, {})
    first_try = _context("run_9")
    assert sensor._fired(first_try, store, start, found)["count"] == 2  # claimed; then the try dies
    add(business, leads, [_lead(f"L-882-{tag}")])  # a row added after the claim is the next run's
    claim = sensor._claimed_by_this_run(store, first_try)
    assert (claim["mark_from"], claim["mark_to"]) == (start, start + 2)
    again = sensor._reclaimed(first_try, business, claim)
    assert ([row["id"] for row in again["rows"]], again["mark_from"], again["count"]) == (
        [f"L-880-{tag}", f"L-881-{tag}"],
        start,
        2,
    )
    assert sensor._claimed_by_this_run(store, _context("run_10")) is None


def test_a_sensor_with_a_time_column_records_how_late_it_saw_the_rows(business, store):
    """lag_s on the claim (what the monitor's sensor_lag reads): from the oldest new row's time_column to
    the firing."""
    from datetime import UTC, datetime, timedelta

    spec = {**NEW_ROWS, "columns": ["seq", "id", "created_at"], "time_column": "created_at"}
    sensor = BusinessSensor(
        task_id="wait", workflow="lag_flow", kind="new_rows", spec=spec, key_path="trigger.sensor.new_rows"
    )
    tag = store.engine.dialect.name
    start = sql.max_key(engine_for(business).connect(), spec)
    now = datetime.now(UTC)
    stamped = [
        {**_lead(f"L-890-{tag}"), "created_at": (now - timedelta(seconds=90)).isoformat()},
        {**_lead(f"L-891-{tag}"), "created_at": (now - timedelta(seconds=30)).isoformat()},
    ]
    add(business, leads, stamped)
    found = check("new_rows", spec, business, start, {})
    lag = sensor._fired(_context("run_lag"), store, start, found)["lag_s"]
    # from the oldest row's time (90 s before `now`) to the firing, which came after `now` and before this
    seen = (datetime.now(UTC) - now).total_seconds()
    assert 89 <= lag <= 90 + seen + 1, (lag, seen)
    (fired,) = [e for e in store.read("run_lag", types=["trigger.fired"])]
    assert fired.payload["lag_s"] == lag


@pytest.mark.parametrize(
    ("values", "lag"),
    [
        (["2026-11-24T11:58:00+00:00", "2026-11-24T11:59:00+00:00"], 120.0),  # the oldest row counts
        (["2026-11-24T11:59:30"], 30.0),  # a naive time is UTC
        (["2026-11-24T12:59:00+01:00"], 60.0),  # any zone
        (["2026-11-24"], 12 * 3600.0),  # a date is its midnight
        (["2026-11-24T12:05:00+00:00"], 0.0),  # stamped after the firing (clocks differ): no lag
        (["soon", None, 17, {"a": 1}], None),  # nothing readable: no lag
        ([], None),
    ],
)
def test_lag_is_read_from_the_oldest_readable_time(values, lag):
    from datetime import UTC, datetime

    from baton.sensors.business import lag_s

    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC).timestamp()
    assert lag_s([{"at": v} for v in values], "at", now) == lag
    assert lag_s([{"at": v} for v in values], None, now) is None  # no time_column: not measured


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"columns": ["id", "seq"], "time_column": "created_at"},
            "time_column 'created_at' is not among columns",
        ),
        ({"columns": ["id", "created_at"], "time_column": "created_at"}, "key 'seq' is not among columns"),
        ({"time_column": "created_at; DROP TABLE leads"}, "String should match pattern"),
        ({"time_column": "x" * 10_000}, "String should match pattern"),
    ],
)
def test_a_time_column_the_sensor_cannot_read_is_refused(extra, message):
    from pydantic import ValidationError

    from baton.spec.triggers import NewRows

    with pytest.raises(ValidationError, match=message):
        NewRows.model_validate({"conn_id": "baton_business", "table": "leads", "key": "seq", **extra})
