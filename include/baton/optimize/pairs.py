"""The records of a variant experiment: runs waiting to be paired, the counts of each comparison (how runs
pair, and what a pair counts for), and a decision with its why; the checks of the outcomes recorded, and a
comparison's JSON state, each field checked when it is read back."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from baton.errors import OptimizeError
from baton.optimize import _state


@dataclass
class Waiting:
    """Runs of one side of a comparison that wait for a run of the other side."""

    side: str = ""
    success: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    failed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    latency: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.success)


@dataclass
class Comparison:
    """One treatment against the control: its pairs' counts, the runs waiting, its status and why."""

    pairs: int = 0
    success: list[int] = field(default_factory=lambda: [0, 0])  # discordant pairs won by [treatment, control]
    failed: list[int] = field(
        default_factory=lambda: [0, 0]
    )  # ... failed by the treatment only, by the control only
    latency: list[int] = field(default_factory=lambda: [0, 0])  # ... treatment slower beyond margin, not
    dropped: int = 0
    status: str = "running"  # running | won | lost | harmful
    why: dict[str, Any] | None = None
    waiting: Waiting = field(default_factory=Waiting)

    def add(self, side: str, runs: Waiting, max_waiting: int, latency_margin: float) -> None:
        """Runs of ``side`` (treatment or control), in the order they finished: each pairs with the
        oldest waiting run of the other side, or waits; more than ``max_waiting`` waiting drops the oldest."""
        queue = self.waiting
        if len(queue) and queue.side != side:  # runs of the other side wait: pair with the oldest
            k = min(len(queue), len(runs))
            mine = (runs.success[:k], runs.failed[:k], runs.latency[:k])
            theirs = (queue.success[:k], queue.failed[:k], queue.latency[:k])
            treatment, control = (mine, theirs) if side == "treatment" else (theirs, mine)
            self.count(treatment, control, latency_margin)
            queue.success, queue.failed, queue.latency = (
                queue.success[k:],
                queue.failed[k:],
                queue.latency[k:],
            )
            runs = Waiting(side, runs.success[k:], runs.failed[k:], runs.latency[k:])
        if len(runs):
            if not len(queue):
                queue.side = side
            queue.success = np.concatenate([queue.success, runs.success])
            queue.failed = np.concatenate([queue.failed, runs.failed])
            queue.latency = np.concatenate([queue.latency, runs.latency])
            extra = len(queue) - max_waiting
            if extra > 0:
                self.dropped += extra
                queue.success, queue.failed, queue.latency = (
                    queue.success[extra:],
                    queue.failed[extra:],
                    queue.latency[extra:],
                )

    def count(self, treatment: tuple, control: tuple, latency_margin: float) -> None:
        """Count pairs: (success, failed, latency) arrays of their treatment runs and of their control runs."""
        (t_success, t_failed, t_latency), (c_success, c_failed, c_latency) = treatment, control
        self.pairs += len(t_success)
        self.success[0] += int((t_success & ~c_success).sum())
        self.success[1] += int((~t_success & c_success).sum())
        self.failed[0] += int((t_failed & ~c_failed).sum())
        self.failed[1] += int((~t_failed & c_failed).sum())
        timed = ~np.isnan(t_latency) & ~np.isnan(c_latency)
        bound = (1 + latency_margin) * c_latency[timed]
        self.latency[0] += int((t_latency[timed] > bound).sum())
        self.latency[1] += int((t_latency[timed] < bound).sum())

    def to_json(self) -> dict[str, Any]:
        q = self.waiting
        return {
            "pairs": self.pairs,
            "success": list(self.success),
            "failed": list(self.failed),
            "latency": list(self.latency),
            "dropped": self.dropped,
            "status": self.status,
            "why": self.why,
            "waiting": {
                "side": q.side,
                "runs": [
                    [bool(s), bool(f), None if math.isnan(t) else float(t)]
                    for s, f, t in zip(q.success, q.failed, q.latency, strict=True)
                ],
            },
        }

    @classmethod
    def from_json(cls, raw: Any, where: str, max_waiting: int) -> Comparison:
        """The comparison ``to_json`` wrote; OptimizeError naming the field when ``raw`` is not one."""
        # long: one stored comparison, every field checked with its own message
        keys = {"pairs", "success", "failed", "latency", "dropped", "status", "why", "waiting"}
        raw = _state.only(raw, keys, where)
        pairs = int(_state.number(raw["pairs"], f"{where}.pairs", 0, 2**53, whole=True))
        counts = {}
        for key in ("success", "failed", "latency"):
            value = raw[key]
            if not isinstance(value, list) or len(value) != 2:
                raise OptimizeError(f"{where}.{key}: must be a list of two counts {_state.FIX}")
            counts[key] = [
                int(_state.number(v, f"{where}.{key}[{i}]", 0, pairs, whole=True))
                for i, v in enumerate(value)
            ]
            if sum(counts[key]) > pairs:
                raise OptimizeError(
                    f"{where}.{key}: {sum(counts[key])} discordant pairs out of {pairs} {_state.FIX}"
                )
        status = raw["status"]
        if status not in ("running", "won", "lost", "harmful"):
            raise OptimizeError(
                f"{where}.status: must be running, won, lost or harmful, got {str(status)[:40]!r} {_state.FIX}"
            )
        if status != "running" and not isinstance(raw["why"], Mapping):
            raise OptimizeError(f"{where}.why: a decided comparison needs its why {_state.FIX}")
        waiting = _state.only(raw["waiting"], {"side", "runs"}, f"{where}.waiting")
        runs = waiting["runs"]
        if not isinstance(runs, list) or len(runs) > max_waiting:
            raise OptimizeError(
                f"{where}.waiting.runs: must be a list of at most {max_waiting} runs {_state.FIX}"
            )
        if runs and waiting["side"] not in ("treatment", "control"):
            raise OptimizeError(f"{where}.waiting.side: must be treatment or control {_state.FIX}")
        for i, run in enumerate(runs):
            ok = (
                isinstance(run, list)
                and len(run) == 3
                and isinstance(run[0], bool)
                and isinstance(run[1], bool)
                and (run[2] is None or _state.number(run[2], f"{where}.waiting.runs[{i}][2]") >= 0)
            )
            if not ok:
                raise OptimizeError(
                    f"{where}.waiting.runs[{i}]: must be [success, failed, seconds or null] {_state.FIX}"
                )
        queue = Waiting(
            waiting["side"] if runs else "",
            np.array([r[0] for r in runs], bool),
            np.array([r[1] for r in runs], bool),
            np.array([np.nan if r[2] is None else r[2] for r in runs], float),
        )
        return cls(
            pairs=pairs,
            success=counts["success"],
            failed=counts["failed"],
            latency=counts["latency"],
            dropped=int(_state.number(raw["dropped"], f"{where}.dropped", 0, 2**53, whole=True)),
            status=status,
            why=None if raw["why"] is None else dict(raw["why"]),
            waiting=queue,
        )


@dataclass(frozen=True)
class Verdict:
    """Where the experiment stands: running, promoted (``variant`` won) or stopped (every treatment lost
    or was stopped on a guardrail; ``variant`` is the control); and why, JSON-ready."""

    status: str
    variant: str | None
    why: dict[str, Any]


def _flags(values: Any, count: int | None, where: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or (count is not None and len(array) != count):
        raise OptimizeError(
            f"{where}: must be a list of {count if count is not None else 'the'} outcomes (fix: one per run)"
        )
    if array.dtype != bool:
        if array.size and not np.isin(array, (0, 1)).all():
            raise OptimizeError(
                f"{where}: must be true or false for each run, got {array[~np.isin(array, (0, 1))][0].item()!r}"
            )
        array = array.astype(bool)
    return array


def _latencies(values: Any, count: int, where: str) -> np.ndarray:
    if values is None:
        return np.full(count, np.nan)
    try:
        array = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    except (TypeError, ValueError):
        raise OptimizeError(f"{where}: must be seconds (a number >= 0) or none for each run") from None
    if array.ndim != 1 or len(array) != count:
        raise OptimizeError(f"{where}: must hold one value per run ({count})")
    bad = np.isinf(array) | (array < 0)
    if bad.any():
        raise OptimizeError(
            f"{where}: {array[bad][0].item()!r} is not a number of seconds >= 0 (fix: none when unknown)"
        )
    return array


def replay_rows(
    runs: Iterable[Any], variants: Mapping[str, float], name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The runs of ``Experiment.replay`` (variant, success, failed, seconds) as four arrays, each run
    checked against the experiment ``name``'s ``variants``."""
    columns: tuple[list, list, list, list] = ([], [], [], [])
    for i, row in enumerate(runs):
        if not isinstance(row, tuple | list) or len(row) != 4:
            raise OptimizeError(
                f"replay: runs[{i}]: must be (variant, success, failed, seconds), got "
                f"{type(row).__name__} (fix: one tuple per run)"
            )
        if not isinstance(row[0], str) or row[0] not in variants:
            raise OptimizeError(
                f"replay: runs[{i}]: variant {str(row[0])[:40]!r} is not in experiment {name!r} "
                f"({', '.join(variants)}) (fix: replay the variants assign() gave the runs)"
            )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    count = len(columns[0])
    return (
        np.asarray(columns[0], dtype=object),
        _flags(columns[1], count, "replay: success"),
        _flags(columns[2], count, "replay: failed"),
        _latencies(columns[3], count, "replay: latency_s"),
    )


def fifo_pairs(
    treatment: Sequence[bool], max_waiting: int
) -> tuple[list[int], list[int], list[int], str, int]:
    """How runs pair when they come one at a time (``treatment[i]``: the i-th run is the treatment's, else
    the control's), as ``Experiment.record`` pairs them: a run pairs with the oldest waiting run of the
    other side, or waits; a side with more than ``max_waiting`` waiting drops its oldest. The indices of
    the pairs' treatment and control runs, of the runs still waiting and their side, and the runs
    dropped. Plain Python over indices: 20,000 runs in a few milliseconds, where recording them one by
    one costs a numpy round per run."""
    waiting: deque[int] = deque()
    side, dropped = "", 0
    treated: list[int] = []
    controls: list[int] = []
    for i, is_treatment in enumerate(treatment):
        mine = "treatment" if is_treatment else "control"
        if waiting and side != mine:
            other = waiting.popleft()
            treated.append(i if is_treatment else other)
            controls.append(other if is_treatment else i)
            continue
        if not waiting:
            side = mine
        waiting.append(i)
        if len(waiting) > max_waiting:
            waiting.popleft()
            dropped += 1
    return treated, controls, list(waiting), side, dropped
