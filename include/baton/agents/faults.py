"""Injected faults, for tests and the fault benchmark only.

Faults are switched on by the environment variable ``BATON_FAULTS`` (JSON) of the processes that run
tasks; nothing in a template or a connection can switch them on, and with the variable unset this
module does nothing. Example::

    BATON_FAULTS='{"seed": 7, "error": 0.10, "timeout": 0.02, "invalid": 0.05, "hang_s": 30,
                   "fail_after": {"ship": [1]}}'

- ``error`` / ``timeout`` / ``invalid``: rates at which an agent call fails, hangs ``hang_s``
  seconds (so ``agent_timeout`` cuts it), or answers with an output that breaks the step's schema;
  each draw is a hash of the seed and what is drawn for (run, step, try, call), so a campaign is
  repeatable and a retry draws anew.
- ``fail_after``: step id -> the tries on which the step fails right after its agent or skill
  returned — its side effects done — which is the case idempotent effects exist for.
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


class InjectedFault(AgentError):
    """A failure injected by ``BATON_FAULTS`` (tests and benchmarks only)."""


@dataclass(frozen=True)
class Faults:
    seed: int = 0
    error: float = 0.0
    timeout: float = 0.0
    invalid: float = 0.0
    hang_s: float = 30.0
    fail_after: dict[str, list[int]] = field(default_factory=dict)

    def draw(self, kind: str, *parts: object) -> bool:
        """Whether the fault ``kind`` hits this call: a repeatable draw at the kind's rate."""
        rate = float(getattr(self, kind))
        if rate <= 0:
            return False
        text = "|".join(map(str, (self.seed, kind, *parts)))
        value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
        return value < rate


@cache
def active() -> Faults | None:
    """The faults of this process, or None (the normal case)."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return None
    faults = Faults(**json.loads(raw))
    log.warning("%s is set: faults are injected on purpose (%s)", ENV, faults)
    return faults


def after_call(step: str, run_id: str, try_number: int, map_index: int = -1) -> None:
    """Fail the step's try right after its call when ``fail_after`` or the ``error`` rate says so."""
    faults = active()
    if faults is None:
        return
    if try_number in faults.fail_after.get(step, ()):
        raise InjectedFault(f"injected failure of step '{step}' after its call (try {try_number}, {ENV})")
