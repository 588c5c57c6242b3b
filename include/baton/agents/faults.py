"""Injected faults, for tests and the fault benchmark only.

Faults are switched on by the environment variable ``BATON_FAULTS`` (JSON) of the processes that run
tasks; nothing in a template or a connection can switch them on, and with the variable unset this
module does nothing. Example::

    BATON_FAULTS='{"seed": 7, "error": 0.10, "timeout": 0.02, "invalid": 0.05, "hang_s": 30,
                   "fail_after": {"ship": [1], "post": 0.1}}'

- ``error`` / ``timeout`` / ``invalid``: rates at which one request to the offline model
  (:mod:`baton.agents.offline`) fails (an ``InjectedModelError``, a ``ModelHTTPError`` 503: the
  step's try fails), hangs ``hang_s`` seconds (so the step's ``agent_timeout`` cuts it), or answers
  with arguments that break the step's output schema (so pydantic-ai asks again, up to the step's
  ``output_retries``). The three are drawn in that order, each independently, and the first that
  hits is the request's fault. Models behind a real connection are never touched.
- ``fail_after``: step id -> the tries on which the step fails right after its agent or skill
  returned — its side effects done — which is the case idempotent effects exist for; or a rate
  (a number in [0, 1]) drawn per run, step, map index and try.

Every draw is a hash of the seed, the kind and what is drawn for — the run, step, map index, subtask,
try and the request's position in the conversation (a re-ask is a new request) — so a campaign is
repeatable, a retry and a re-ask draw anew, and the draws can be recomputed afterwards from the
event store (``bench/faults.py`` does).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from functools import cache

from baton.errors import AgentError

log = logging.getLogger(__name__)

ENV = "BATON_FAULTS"
MODEL_KINDS = ("error", "timeout", "invalid")  # the order in which a model request's faults are drawn


class InjectedFault(AgentError):
    """A failure injected by ``BATON_FAULTS`` (tests and benchmarks only)."""


def _unit(text: str) -> float:
    """A repeatable number in [0, 1) from ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


@dataclass(frozen=True)
class Faults:
    seed: int = 0
    error: float = 0.0
    timeout: float = 0.0
    invalid: float = 0.0
    hang_s: float = 30.0
    fail_after: dict[str, list[int] | float] = field(default_factory=dict)

    def __post_init__(self) -> None:
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


@cache
def active() -> Faults | None:
    """The faults of this process, or None (the normal case)."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return None
    faults = Faults(**json.loads(raw))
    log.warning("%s is set: faults are injected on purpose (%s)", ENV, faults)
    return faults


def after_call() -> None:
    """Fail the try of the step whose effect scope is active right after its call, when
    ``fail_after`` says so (a list of tries or a rate); keyed like the model's draws, by the scope."""
    faults = active()
    if faults is None:
        return
    from baton import effects

    scope = effects.current()
    if scope is not None and faults.fails_after(scope.step, scope.run_id, scope.try_number, scope.map_index):
        raise InjectedFault(
            f"injected failure of step '{scope.step}' after its call (try {scope.try_number}, {ENV})"
        )
