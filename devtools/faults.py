"""Injected faults, for tests and the fault benchmark only: not part of the installed package.

An Airflow whose processes have ``BATON_EXTENSIONS=devtools.faults`` (and the repository on
``PYTHONPATH``) import this module, which hooks the offline model's requests and every step's call;
the faults are then switched on by ``BATON_FAULTS`` (JSON). Nothing in a template or a connection can
switch them on, and with the variable unset the hooks do nothing. Example::

    BATON_FAULTS='{"seed": 7, "error": 0.10, "timeout": 0.02, "invalid": 0.05, "hang_s": 30,
                   "fail_after": {"ship": [1], "post": 0.1}}'

- ``error`` / ``timeout`` / ``invalid``: rates at which one request to the offline model
  (:mod:`baton.hooks.offline`, through its ``REQUEST_HOOKS``) fails (an ``InjectedModelError``, a
  ``ModelHTTPError`` 503: the
  step's try fails), hangs ``hang_s`` seconds (so the step's ``agent_timeout`` cuts it), or answers
  with arguments that break the step's output schema (so pydantic-ai asks again, up to the step's
  ``output_retries``). The three are drawn in that order, each independently, and the first that
  hits is the request's fault. Models behind a real connection are never touched.
- ``fail_after``: step id -> the tries on which the step fails right after its agent or skill
  returned — its side effects done — which is the case idempotent effects exist for; or a rate
  (a number in [0, 1]) drawn per run, step, map index and try. ``_compensate`` (the saga's task) names the
  tries of that task that fail right after a compensation's call, before its success is recorded.

- ``workflows``: the workflows whose steps the rates and ``fail_after`` apply to (a list of workflow ids;
  left out: every workflow's). With it, one Airflow can run a fault campaign beside other work that must
  not see a fault (``bench/faults.py --attach`` on the test suite's shared Airflow); a request outside
  any step is never faulted then.

- ``windows``: faults of one LLM connection (so of the agents that use it) for a while, at wall-clock
  epoch times: ``{"kind": "error", "conn": "c", "start": t0, "end": t1, "rate": 0.3}`` fails that share of
  its requests; ``"slow"`` with ``"factor": 3`` makes each answer take that many times the connection's
  ``offline_delay_s``; ``"cost"`` with ``"factor": 4`` reports that many times the tokens (a blown-up
  prompt). ``bench/incidents.py`` injects its labelled faults so.
- ``clock``: a file's path; the windows' ``start`` and ``end`` are then seconds after the epoch time
  written in that file, and no window is open until it exists (a benchmark writes it when its traffic
  starts, so a slow start of Airflow cannot eat into the schedule).

Every draw is a hash of the seed, the kind and what is drawn for — the run, step, map index, subtask,
try and the request's position in the conversation (a re-ask is a new request) — so a campaign is
repeatable, a retry and a re-ask draw anew, and the draws can be recomputed afterwards from the
event store (``bench/faults.py`` does).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from functools import cache

from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models.function import AgentInfo

from baton import effects
from baton.agents import call
from baton.coordination import saga as saga_module
from baton.coordination.saga import SAGA_TASK, Saga, Target
from baton.errors import AgentError
from baton.hooks import offline
from baton.hooks.offline import OFFLINE_MODEL_NAME, SERVING, Faker, Serving, prompt_of, respond

log = logging.getLogger(__name__)

ENV = "BATON_FAULTS"
EXTENSION = __name__  # what BATON_EXTENSIONS names for an Airflow to load this module
INVALID_FIELD = "injected_invalid_field"
_unscoped_calls = itertools.count()  # tells apart requests made outside any step (unit tests)
MODEL_KINDS = ("error", "timeout", "invalid")  # the order in which a model request's faults are drawn


class InjectedFault(AgentError):
    """A failure injected by ``BATON_FAULTS`` (tests and benchmarks only)."""


class InjectedModelError(ModelHTTPError):
    """A model request failed on purpose (``BATON_FAULTS``): a 503 as a provider would answer it."""

    def __init__(self, where: str):
        super().__init__(
            503, OFFLINE_MODEL_NAME, body={"error": f"injected model error ({where}; BATON_FAULTS)"}
        )


def _unit(text: str) -> float:
    """A repeatable number in [0, 1) from ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


WINDOW_KINDS = ("error", "slow", "cost")


@dataclass(frozen=True)
class Window:
    """A fault of one LLM connection between two wall-clock times (epoch seconds)."""

    kind: str
    conn: str
    start: float
    end: float
    rate: float = 1.0
    factor: float = 1.0

    def __post_init__(self) -> None:
        where = f"{ENV}: a window ({self.kind!r} on {self.conn!r})"
        if self.kind not in WINDOW_KINDS:
            raise ValueError(f"{where}: kind must be one of {', '.join(WINDOW_KINDS)}")
        if not isinstance(self.conn, str) or not self.conn:
            raise ValueError(f"{where}: 'conn' must name an LLM connection")
        for name in ("start", "end", "rate", "factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{where}: '{name}' must be a finite number, not {value!r}")
        if self.end <= self.start:
            raise ValueError(f"{where}: 'end' must come after 'start'")
        if not 0 <= self.rate <= 1:
            raise ValueError(f"{where}: 'rate' must be in [0, 1], not {self.rate!r}")
        if not 1 <= self.factor <= 100:
            raise ValueError(f"{where}: 'factor' must be in [1, 100], not {self.factor!r}")

    def active(self, conn: str, now: float) -> bool:
        return conn == self.conn and self.start <= now < self.end


@dataclass(frozen=True)
class Faults:
    seed: int = 0
    error: float = 0.0
    timeout: float = 0.0
    invalid: float = 0.0
    hang_s: float = 30.0
    fail_after: dict[str, list[int] | float] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)
    clock: str | None = None
    workflows: list[str] | None = None

    def __post_init__(self) -> None:
        if self.workflows is not None and not (
            isinstance(self.workflows, list)
            and 0 < len(self.workflows) <= 100
            and all(isinstance(w, str) and 0 < len(w) <= 250 for w in self.workflows)
        ):
            raise ValueError(
                f"{ENV}: 'workflows' must be a list of 1 to 100 workflow ids (leave it out for every "
                f"workflow), not {str(self.workflows)[:80]}"
            )
        if self.clock is not None and (not isinstance(self.clock, str) or not self.clock):
            raise ValueError(f"{ENV}: 'clock' must be the path of a file, not {self.clock!r}")
        if not isinstance(self.windows, list) or len(self.windows) > 100:
            raise ValueError(f"{ENV}: 'windows' must be a list of at most 100 windows")
        windows = [w if isinstance(w, Window) else Window(**w) for w in self.windows]
        object.__setattr__(self, "windows", windows)
        for kind in MODEL_KINDS:
            rate = getattr(self, kind)
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
                raise ValueError(f"{ENV}: '{kind}' must be a rate in [0, 1], not {rate!r}")
        if not isinstance(self.hang_s, (int, float)) or self.hang_s < 0:
            raise ValueError(f"{ENV}: 'hang_s' must be a number of seconds >= 0, not {self.hang_s!r}")
        for step, when in self.fail_after.items():
            if isinstance(when, bool) or not (
                isinstance(when, list)
                and all(isinstance(t, int) for t in when)
                or isinstance(when, (int, float))
                and 0 <= when <= 1
            ):
                raise ValueError(
                    f"{ENV}: fail_after['{step}'] must be a list of tries or a rate in [0, 1], not {when!r}"
                )

    def draw(self, kind: str, *parts: object, rate: float | None = None) -> bool:
        """Whether the fault ``kind`` hits this call: a repeatable draw at the kind's rate (or ``rate``)."""
        rate = float(getattr(self, kind) if rate is None else rate)
        if rate <= 0:
            return False
        return _unit("|".join(map(str, (self.seed, kind, *parts)))) < rate

    def now(self) -> float | None:
        """The time the windows are judged at: epoch seconds, or seconds after the ``clock`` file's
        time (None while that file does not exist yet, or does not hold a number)."""
        if self.clock is None:
            return time.time()
        started = _clock_start(self.clock)
        return None if started is None else time.time() - started

    def covers(self, scope: effects.EffectScope | Saga | None) -> bool:
        """Whether the rates and ``fail_after`` apply in ``scope`` (the step's effect scope, a run's saga, or
        None outside any step): always without ``workflows``; else only in a step or saga of one of them."""
        return self.workflows is None or (scope is not None and scope.workflow in self.workflows)

    def model_fault(self, *parts: object) -> str | None:
        """The fault of one model request (``error``, ``timeout``, ``invalid``), or None."""
        return next((kind for kind in MODEL_KINDS if self.draw(kind, *parts)), None)

    def fails_after(self, step: str, run_id: str, try_number: int, map_index: int = -1) -> bool:
        """Whether ``fail_after`` fails this try of ``step`` right after its call."""
        when = self.fail_after.get(step)
        if when is None:
            return False
        if isinstance(when, list):
            return try_number in when
        return self.draw("fail_after", run_id, step, map_index, try_number, rate=when)


def request_parts(
    run_id: str, step: str, map_index: int, subtask: str, try_number: int, request: int
) -> tuple[object, ...]:
    """What a model request's draws are keyed by (the offline model and the benchmark agree on it).

    :param request: the request's position in its conversation: 0, then 1 after one re-ask, ...
    """
    return (run_id, step, map_index, subtask, try_number, request)


def environment(**faults: object) -> dict[str, str]:
    """The environment of an Airflow whose processes inject ``faults`` (the keys of :class:`Faults`)."""
    loaded = [m for m in os.environ.get("BATON_EXTENSIONS", "").split(",") if m.strip()]
    return {ENV: json.dumps(faults), "BATON_EXTENSIONS": ",".join([*loaded, EXTENSION])}


def _clock_start(path: str) -> float | None:
    """The epoch time in the clock file (read once it holds one), or None."""
    if path in _CLOCKS:
        return _CLOCKS[path]
    try:
        with open(path, encoding="ascii") as file:
            started = float(file.read(64))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not math.isfinite(started):
        return None
    _CLOCKS[path] = started
    return started


_CLOCKS: dict[str, float] = {}


@cache
def active() -> Faults | None:
    """The faults of this process, or None (the normal case)."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return None
    faults = Faults(**json.loads(raw))
    log.warning("%s is set: faults are injected on purpose (%s)", ENV, faults)
    return faults


def request_identity(messages: list[ModelMessage]) -> tuple[object, ...]:
    """What this request's fault draws are keyed by: its step's run, step, map index, subtask and try
    (from the effect scope the step runs the call in) and how many answers the conversation has had (a
    re-ask is the next request). Outside a step: the prompt and a process-wide counter."""
    request = sum(isinstance(m, ModelResponse) for m in messages)
    scope = effects.current()
    if scope is not None:
        return request_parts(
            scope.run_id, scope.step, scope.map_index, scope.subtask, scope.try_number, request
        )
    prompt = hashlib.sha256(prompt_of(messages).encode()).hexdigest()[:16]
    return ("unscoped", prompt, next(_unscoped_calls), request)


def invalid_response(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """An answer that breaks the output schema: the valid one without its first required field and
    with a field the schema does not have (an array where none is required); with no output tool,
    a call of a tool that does not exist. pydantic-ai answers each with a retry prompt (a re-ask)."""
    if not info.output_tools:
        return ModelResponse(parts=[ToolCallPart(INVALID_FIELD, {})])
    tool = info.output_tools[0]
    schema = tool.parameters_json_schema
    value = Faker(prompt_of(messages), schema).value(schema, "output")
    required = schema.get("required") or []
    if isinstance(value, dict) and required:
        value.pop(required[0], None)
        value[INVALID_FIELD] = "not in the schema (BATON_FAULTS)"
        return ModelResponse(parts=[ToolCallPart(tool.name, value)])
    return ModelResponse(parts=[ToolCallPart(tool.name, json.dumps([value]))])


async def _windowed(faults: Faults, parts: tuple[object, ...], messages: list[ModelMessage], info: AgentInfo):
    """The faults of the windows open now on the connection the model answers for."""
    serving, now = SERVING.get() or Serving(), faults.now()
    costly = None
    for window in (w for w in faults.windows if now is not None and w.active(serving.conn_id, now)):
        if window.kind == "error" and faults.draw("window_error", window.conn, *parts, rate=window.rate):
            raise InjectedModelError(f"window on {window.conn}, request " + "/".join(map(str, parts)))
        if window.kind == "slow":
            await asyncio.sleep(serving.delay_s * (window.factor - 1))
        elif window.kind == "cost":
            costly = window.factor
    if costly is None:
        return None
    from pydantic_ai.models.function import _estimate_usage  # the estimate FunctionModel itself reports

    response = respond(messages, info)
    usage = _estimate_usage([*messages, response])
    response.usage = type(usage)(
        input_tokens=round(usage.input_tokens * costly), output_tokens=round(usage.output_tokens * costly)
    )
    return response


async def model_fault(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse | None:
    """The offline model's request hook: fail, hang or answer invalidly as ``BATON_FAULTS`` draws."""
    faults = active()
    if faults is None:
        return None
    parts = request_identity(messages)
    if faults.windows and (instead := await _windowed(faults, parts, messages, info)) is not None:
        return instead
    kind = faults.model_fault(*parts) if faults.covers(effects.current()) else None
    if kind is not None:
        log.warning("BATON_FAULTS: injected model %s on request %s", kind, parts)
    if kind == "error":
        raise InjectedModelError("request " + "/".join(map(str, parts)))
    if kind == "timeout":
        await asyncio.sleep(faults.hang_s)
    elif kind == "invalid":
        return invalid_response(messages, info)
    return None


def after_call() -> None:
    """Fail the try of the step whose effect scope is active right after its call, when
    ``fail_after`` says so (a list of tries or a rate); keyed like the model's draws, by the scope."""
    faults = active()
    if faults is None:
        return
    scope = effects.current()
    if (
        scope is not None
        and faults.covers(scope)
        and faults.fails_after(scope.step, scope.run_id, scope.try_number, scope.map_index)
    ):
        raise InjectedFault(
            f"injected failure of step '{scope.step}' after its call (try {scope.try_number}, {ENV})"
        )


def after_compensation(saga: Saga, target: Target) -> None:
    """Fail the try of the ``_compensate`` task right after a compensation's call (its effect done, its
    success not recorded yet) when ``fail_after['_compensate']`` lists the task's try: as a worker dying
    there would."""
    faults = active()
    if faults is None or not faults.covers(saga):
        return
    if faults.fails_after(SAGA_TASK, saga.run_id, saga.try_number):
        raise InjectedFault(
            f"injected failure of the saga after undoing {target.name} (try {saga.try_number}, {ENV})"
        )


# Importing this module (BATON_EXTENSIONS=devtools.faults) hooks the offline model, every step's call and
# every compensation's.
offline.REQUEST_HOOKS.append(model_fault)
call.AFTER_CALL.append(after_call)
saga_module.AFTER_COMPENSATION.append(after_compensation)
