"""What starts a workflow besides its schedule, the UI and REST: a deferrable sensor on business
tables, an asset another workflow emits, or a message on a queue (an Airflow ``AssetWatcher``).

::

    trigger:
      sensor:
        new_rows: {conn_id: baton_business, table: leads, key: seq}
    # or
    trigger:
      asset: qualified_leads
    # or
    trigger:
      queue: {redis_channel: baton.orders}

A step sends a message to the workflows triggered by an asset with ``emits``::

    emits:
      - asset: qualified_leads
        extra: {count: "{{ output.qualified }}"}
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from baton.limits import MAX_SENSOR_QUERY_CHARS as MAX_QUERY_CHARS
from baton.spec.common import IDENTIFIER, Duration, Strict

ASSET_NAME = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
# identifiers of at most 63 characters: PostgreSQL's limit (it would cut a longer one silently)
_TABLE = r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$"
_COLUMN = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
OPERATORS = ("=", "!=", ">", ">=", "<", "<=", "in", "not_in", "is_null", "not_null", "like")
_NO_VALUE = ("is_null", "not_null")
# How long one query of a sensor may run: at least a second, at most what a triggerer thread may be held.
STATEMENT_TIMEOUT = timedelta(seconds=30)
STATEMENT_TIMEOUT_BOUNDS = (timedelta(seconds=1), timedelta(minutes=10))


class _Sensor(Strict):
    conn_id: str = Field(
        min_length=1,
        description="the Airflow connection of the business database (postgres, or sqlite)",
    )
    poke_interval: Duration = Field(
        default=timedelta(seconds=30), description="how often the triggerer looks (it holds no worker slot)"
    )
    timeout: Duration = Field(
        default=timedelta(days=1),
        description="how long a run waits; then its steps are skipped and the next run waits again",
    )
    statement_timeout: Duration = Field(
        default=STATEMENT_TIMEOUT,
        description="how long one query of the sensor may run before the database stops it and the "
        "sensor fails (1s to 10m); every query runs in a read-only session",
    )

    @field_validator("statement_timeout")
    @classmethod
    def _timeout_bounded(cls, value: timedelta) -> timedelta:
        low, high = STATEMENT_TIMEOUT_BOUNDS
        if value < low:
            raise ValueError(f"statement_timeout is {value.total_seconds():g} s; use at least 1s")
        if value > high:
            raise ValueError(
                f"statement_timeout is {value.total_seconds():g} s; use at most 10m, what one look of a sensor "
                "may hold a triggerer thread (a query that needs longer belongs in a scheduled step)"
            )
        return value


class NewRows(_Sensor):
    """Rows added to ``table`` since the last run: those whose ``key`` exceeds the high-water mark.

    The mark moves only when a run claims the rows, in the same store write that records the claim, so
    no row is handed to two runs and none is skipped (``key`` must grow with every insert: an
    identity column, or a timestamp set at commit)."""

    table: str = Field(pattern=_TABLE, description="table or schema.table")
    key: str = Field(pattern=_COLUMN, description="an ever-increasing column (id, created_at)")
    columns: list[Annotated[str, Field(pattern=_COLUMN)]] = Field(
        default_factory=list, description="the columns a run gets (default all)"
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, description="the most rows one run takes")
    start: Literal["now", "beginning"] = Field(
        default="now",
        description="the first run: 'now' takes only rows added after the sensor first looked; "
        "'beginning' takes the rows already there too",
    )
    time_column: str | None = Field(
        default=None,
        pattern=_COLUMN,
        description="a column holding when each row was added (a timestamp); the monitor then measures "
        "the sensor's lag, from the oldest new row's time to the sensor firing (signal sensor_lag)",
    )

    @model_validator(mode="after")
    def _read_columns_selected(self) -> NewRows:
        if self.columns:
            for field, name in (("key", self.key), ("time_column", self.time_column)):
                if name is not None and name not in self.columns:
                    raise ValueError(
                        f"{field} '{name}' is not among columns, so the sensor could not read it: add it "
                        "to columns (or list no columns: all of them)"
                    )
        return self


class Condition(Strict):
    """``column op value``; the value is always a bind parameter, never SQL text."""

    column: str = Field(pattern=_COLUMN)
    op: Literal[OPERATORS] = "="  # type: ignore[valid-type]
    value: Any = None

    @model_validator(mode="after")
    def _value_fits(self) -> Condition:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op '{self.op}' compares with a list: write value: [a, b]")
        if self.op in _NO_VALUE and self.value is not None:
            raise ValueError(f"op '{self.op}' takes no value")
        if self.op not in _NO_VALUE and self.value is None:
            raise ValueError(f"op '{self.op}' needs a value (for a missing value use is_null)")
        return self


class RuleMatch(NewRows):
    """New rows of ``table`` that match a compliance rule: every condition of ``all`` and, when given,
    at least one of ``any``."""

    rule: str = Field(pattern=IDENTIFIER, description="the rule's name, in alerts and events")
    all: list[Condition] = Field(default_factory=list)
    any: list[Condition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_condition(self) -> RuleMatch:
        if not self.all and not self.any:
            raise ValueError("a rule needs conditions under 'all' (every one) or 'any' (at least one)")
        return self


class SqlThreshold(_Sensor):
    """A query's ``value`` reaches ``threshold``: fires once per ``period`` when the query returns one.

    The query is static SQL with ``:name`` bind parameters; ``params`` (Jinja over ``inputs``) are
    bound, never pasted into the text. It returns one row with a column ``value`` and, optionally,
    ``period`` (e.g. the month): the sensor then fires at most once per period."""

    query: str = Field(
        min_length=1,
        description="one SELECT (or WITH ... SELECT) that only reads, read as PostgreSQL",
        json_schema_extra={"maxLength": MAX_QUERY_CHARS},
    )
    params: dict[Annotated[str, Field(pattern=_COLUMN)], Any] = Field(default_factory=dict)
    op: Literal[">=", ">", "<=", "<"] = ">="
    threshold: float | str = Field(description="a number, or Jinja over inputs: '{{ inputs.target }}'")

    @field_validator("query")
    @classmethod
    def _static_select(cls, value: str) -> str:
        text = value.strip().rstrip(";").strip()
        if any(mark in text for mark in ("{{", "{%", "{#")):  # the database reads a Jinja comment as an error
            raise ValueError(
                "the query is SQL text, not Jinja: write :name placeholders and give their values in params"
            )
        from baton.spec.sensor_query import refusal  # deferred: sqlglot (~140 ms), for a query only

        if problem := refusal(text):
            raise ValueError(problem)
        return text

    @model_validator(mode="after")
    def _params_bound(self) -> SqlThreshold:
        used = _bind_names(self.query)
        if missing := sorted(used - set(self.params)):
            raise ValueError(f"the query uses :{', :'.join(missing)}; give a value for each in params")
        if unused := sorted(set(self.params) - used):
            raise ValueError(f"params {', '.join(unused)} are not used by the query (write :{unused[0]})")
        return self


def _bind_names(query: str) -> set[str]:
    """The ``:name`` parameters SQLAlchemy's ``text()`` will bind when the sensor runs the query.

    Asked of SQLAlchemy, not of sqlglot's placeholders: ``text()`` finds them with its own pattern,
    which does not skip string literals (``':x'`` is a parameter to it), so only its answer is what
    the run will need values for."""
    from sqlalchemy import text

    return set(text(query).compile().params)


SENSOR_KINDS: dict[str, type[_Sensor]] = {
    "new_rows": NewRows,
    "rule_match": RuleMatch,
    "sql_threshold": SqlThreshold,
}


class Sensor(Strict):
    """One of ``new_rows``, ``rule_match`` or ``sql_threshold``."""

    new_rows: NewRows | None = None
    rule_match: RuleMatch | None = None
    sql_threshold: SqlThreshold | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_kind(cls, value: Any) -> Any:
        if isinstance(value, dict):
            unknown = [k for k in value if k not in SENSOR_KINDS]
            if unknown:
                raise ValueError(f"unknown sensor '{unknown[0]}'; use one of {', '.join(SENSOR_KINDS)}")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Sensor:
        if sum(getattr(self, kind) is not None for kind in SENSOR_KINDS) != 1:
            raise ValueError(f"a sensor is exactly one of {', '.join(SENSOR_KINDS)}")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in SENSOR_KINDS if getattr(self, kind) is not None)

    @property
    def spec(self) -> NewRows | RuleMatch | SqlThreshold:
        return getattr(self, self.kind)


class Queue(Strict):
    """Messages on a Redis pub/sub channel start runs: an Airflow ``AssetWatcher`` in the triggerer
    (common-messaging's ``MessageQueueTrigger``, scheme ``redis+pubsub``). The message is the
    run's ``trigger.payload``."""

    redis_channel: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    conn_id: str = Field(default="redis_default", description="an Airflow connection of type redis")
    poll_interval: Duration = timedelta(seconds=1)


class Trigger(Strict):
    """Exactly one of ``sensor``, ``asset`` or ``queue``."""

    sensor: Sensor | None = None
    asset: list[Annotated[str, Field(pattern=ASSET_NAME)]] | None = Field(
        default=None,
        description="asset names: the workflow runs when every one was emitted since its last run",
    )
    queue: Queue | None = None

    @field_validator("asset", mode="before")
    @classmethod
    def _asset_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        given = [name for name in ("sensor", "asset", "queue") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "a trigger is exactly one of 'sensor', 'asset' or 'queue'"
                + (f"; it names {' and '.join(given)}" if given else "")
            )
        return self


class Emit(Strict):
    """An asset event a step emits when it succeeds: its ``extra`` is the message (Jinja over
    ``output``, inputs, steps, context, run)."""

    asset: str = Field(pattern=ASSET_NAME)
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"asset": value} if isinstance(value, str) else value
