"""Variant experiments: sticky assignment, and a sequential test that stays valid however often people look.

**Assignment.** ``assign(experiment, key, weights)`` hashes the experiment's name and the key (a run's
business key, a customer) with BLAKE2b into a number in [0, 1) and walks the variants, in name order, by
their weights. No state and no RNG: every process, every worker and every rerun gives the key the same
variant, and the shares converge on the weights.

**The test** pairs each treatment's runs with the control's in the order they finish, and decides on
the e-value of the discordant pairs (:mod:`baton.optimize.sequential`): the chance that it *ever*
reaches 1/alpha when the variants do equally well is at most alpha, however often people look.

**Decisions**, each only once every variant of the comparison has ``min_runs`` runs:

- *promote* a treatment whose success beats the control's (E >= k / alpha for k treatments: the
  false-positive rate is split over the comparisons); a treatment that does worse is stopped;
- *stop* a treatment early on a guardrail, one-sided, each tested at ``guardrail_alpha`` split over
  the guardrails and treatments: **failures** (the run failed) when the treatment's failure odds are
  worse than the control's by more than ``failure_odds_margin`` (odds ratio), and **latency** when, in
  more than half of the pairs, the treatment took more than ``1 + latency_margin`` times as long as the
  control (a sequential sign test). Both use the same mixture over theta truncated above the margin,
  a supermartingale under every theta at or under it.

Each decision carries a JSON-ready "why": the statistic, its threshold, the counts of each variant and
of the pairs. A decision is final: later outcomes are still counted but do not change it. An
``Experiment`` is not thread-safe: one writer (the projection of the outcomes) records into it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from baton.errors import OptimizeError
from baton.optimize import _state
from baton.optimize.assignment import NAME_FIX, _weights, assign
from baton.optimize.pairs import Comparison, Verdict, Waiting, _flags, _latencies, fifo_pairs, replay_rows
from baton.optimize.sequential import e_test

VERSION = 1
STATUSES = ("running", "promoted", "stopped")
SETTINGS = (
    "name",
    "variants",
    "control",
    "alpha",
    "guardrail_alpha",
    "min_runs",
    "failure_odds_margin",
    "latency_margin",
    "concentration",
    "max_waiting",
)

# --- the experiment -----------------------------------------------------------------------------------


class Experiment:
    """An A/B(/n) experiment on a binary primary metric (``success``) with two guardrails.

    :param name: the experiment's name (also what ``assign`` hashes).
    :param variants: variant -> weight of the traffic it gets.
    :param control: the variant the others are compared with (default: the first).
    :param alpha: the declared false-positive rate of a promotion, under any monitoring (default 5 %).
    :param guardrail_alpha: the same for a guardrail stop of a variant that does no harm.
    :param min_runs: the runs every variant of a comparison needs before any decision on it.
    :param failure_odds_margin: a treatment is stopped when its failure odds are worse than the
        control's by more than this ratio (1.5: 15 % failures against 10.5 %).
    :param latency_margin: ... or when it takes more than (1 + this) times as long in most pairs.
    :param concentration: the mixture's Beta(a, a): its weight is mostly within +-1/(2 sqrt(2a + 1)) of
        theta = 1/2; 50 suits lifts of about 5 to 20 %.
    :param max_waiting: runs of one variant that may wait for a pair; older ones are dropped.
    """

    def __init__(
        self,
        name: str,
        variants: Mapping[str, float],
        control: str | None = None,
        alpha: float = 0.05,
        guardrail_alpha: float = 0.05,
        min_runs: int = 100,
        failure_odds_margin: float = 1.5,
        latency_margin: float = 0.2,
        concentration: float = 50.0,
        max_waiting: int = 1000,
    ):
        # long: every setting of an experiment checked with its own message
        self.name = _state.name(name, "experiment.name", "an experiment's name", fix=NAME_FIX)
        self.variants = _weights(variants, "experiment.variants")
        if len(self.variants) < 2:
            raise OptimizeError(
                "experiment.variants: an experiment needs at least two variants (fix: add one)"
            )
        self.control = next(iter(self.variants)) if control is None else control
        if self.control not in self.variants:
            raise OptimizeError(
                f"experiment.control: {str(self.control)[:40]!r} is not one of the variants "
                f"({', '.join(self.variants)}) (fix: name one of them)"
            )
        self.alpha = self._rate(alpha, "alpha")
        self.guardrail_alpha = self._rate(guardrail_alpha, "guardrail_alpha")
        self.min_runs = int(
            _state.number(min_runs, "experiment.min_runs", 1, 10**9, whole=True, fix="(fix: e.g. 100 runs)")
        )
        self.failure_odds_margin = _state.number(
            failure_odds_margin,
            "experiment.failure_odds_margin",
            1.0,
            100.0,
            fix="(fix: an odds ratio, e.g. 1.5)",
        )
        self.latency_margin = _state.number(
            latency_margin, "experiment.latency_margin", 0.0, 100.0, fix="(fix: e.g. 0.2 for 20 % slower)"
        )
        self.concentration = _state.number(
            concentration, "experiment.concentration", 0.5, 1e6, fix="(fix: keep the default, 50)"
        )
        self.max_waiting = int(
            _state.number(
                max_waiting,
                "experiment.max_waiting",
                1,
                10**6,
                whole=True,
                fix="(fix: keep the default, 1000)",
            )
        )
        self.totals = {
            v: {"runs": 0, "successes": 0, "failures": 0, "timed": 0, "seconds": 0.0} for v in self.variants
        }
        self.comparisons = {v: Comparison() for v in self.treatments}
        self.decision: Verdict | None = None

    @staticmethod
    def _rate(value: Any, name: str) -> float:
        rate = _state.number(value, f"experiment.{name}", 0.0, 0.5, fix="(fix: a rate such as 0.05)")
        if rate == 0:
            raise OptimizeError(f"experiment.{name}: must be > 0 (fix: keep the default, 0.05)")
        return rate

    @property
    def treatments(self) -> list[str]:
        return sorted(v for v in self.variants if v != self.control)

    def assign(self, key: str) -> str:
        return assign(self.name, key, self.variants)

    # --- recording ----------------------------------------------------------------------------

    def record(
        self, variant: str, success: bool, failed: bool = False, latency_s: float | None = None
    ) -> None:
        """One run's outcome: whether it succeeded (the primary metric), failed (an error: the failure
        guardrail) and how long it took (the latency guardrail; None when unknown)."""
        self.record_many(variant, [success], [failed], [latency_s])

    def record_many(
        self,
        variant: str,
        success: Sequence[bool] | np.ndarray,
        failed: Sequence[bool] | np.ndarray | None = None,
        latency_s: Sequence[float | None] | np.ndarray | None = None,
    ) -> None:
        """The outcomes of several runs of ``variant``, in the order they finished; the same as calling
        ``record`` for each."""
        if variant not in self.variants:
            raise OptimizeError(
                f"record: variant {str(variant)[:40]!r} is not in experiment {self.name!r} "
                f"({', '.join(self.variants)}) (fix: record the variant that assign() gave the run)"
            )
        successes = _flags(success, None, "record: success")
        failures = _flags(
            np.zeros(len(successes), bool) if failed is None else failed, len(successes), "record: failed"
        )
        latencies = _latencies(latency_s, len(successes), "record: latency_s")
        total = self.totals[variant]
        timed = ~np.isnan(latencies)
        total["runs"] += len(successes)
        total["successes"] += int(successes.sum())
        total["failures"] += int(failures.sum())
        total["timed"] += int(timed.sum())
        for seconds in latencies[timed].tolist():  # one by one: the same sum as record() run by run
            total["seconds"] += seconds
        runs = Waiting(variant, successes, failures, latencies)
        for treatment in self.treatments if variant == self.control else [variant]:
            side = "treatment" if variant != self.control else "control"
            self.comparisons[treatment].add(side, runs, self.max_waiting, self.latency_margin)

    def replay(self, runs: Iterable[tuple[str, bool, bool, float | None]]) -> None:
        """Record ``runs`` (variant, success, failed, seconds or None), in the order they finished, into
        an experiment that has none yet: the same state as ``record`` for each, in one pass (a step's
        history is replayed at every run's start; 20,000 runs one by one took 0.45 s)."""
        if any(total["runs"] for total in self.totals.values()):
            raise OptimizeError(
                f"replay: experiment {self.name!r} already has runs (fix: replay into a new Experiment)"
            )
        arms, success, failed, latency = replay_rows(runs, self.variants, self.name)
        for variant, total in self.totals.items():
            mine = arms == variant
            timed = mine & ~np.isnan(latency)
            total["runs"] += int(mine.sum())
            total["successes"] += int(success[mine].sum())
            total["failures"] += int(failed[mine].sum())
            total["timed"] += int(timed.sum())
            for seconds in latency[timed].tolist():  # one by one: the same sum as record() run by run
                total["seconds"] += seconds
        for treatment in self.treatments:
            rows = np.flatnonzero((arms == self.control) | (arms == treatment))
            treated, controls, waiting, side, dropped = fifo_pairs(
                (arms[rows] == treatment).tolist(), self.max_waiting
            )
            t, c, w = rows[treated], rows[controls], rows[waiting]
            comparison = self.comparisons[treatment]
            comparison.count(
                (success[t], failed[t], latency[t]), (success[c], failed[c], latency[c]), self.latency_margin
            )
            comparison.dropped += dropped
            comparison.waiting = Waiting(side, success[w], failed[w], latency[w])

    # --- deciding -----------------------------------------------------------------------------

    def decide(self) -> Verdict:
        """Where the experiment stands now; a decision once taken is kept."""
        if self.decision is not None:
            return self.decision
        tests = {treatment: self._judge(treatment) for treatment in self.treatments}
        won = [t for t in self.treatments if self.comparisons[t].status == "won"]
        done = all(self.comparisons[t].status != "running" for t in self.treatments)
        why = {"experiment": self.name, "control": self.control, "counts": self.counts(), "tests": tests}
        if won:
            best = max(won, key=lambda t: tests[t]["success"]["log_e_value"])
            verdict = Verdict("promoted", best, {**why, "reason": self.comparisons[best].why["reason"]})
        elif done:
            reasons = "; ".join(self.comparisons[t].why["reason"] for t in self.treatments)
            verdict = Verdict("stopped", self.control, {**why, "reason": f"{self.control} stays: {reasons}"})
        else:
            return Verdict("running", None, {**why, "reason": self._pending()})
        self.decision = verdict
        return verdict

    def counts(self) -> dict[str, dict[str, Any]]:
        counts = {}
        for variant, total in self.totals.items():
            runs = total["runs"]
            counts[variant] = {
                "runs": runs,
                "successes": total["successes"],
                "failures": total["failures"],
                "success_rate": round(total["successes"] / runs, 4) if runs else None,
                "failure_rate": round(total["failures"] / runs, 4) if runs else None,
                "mean_latency_s": round(total["seconds"] / total["timed"], 3) if total["timed"] else None,
            }
        return counts

    def _pending(self) -> str:
        short = {v: t["runs"] for v, t in self.totals.items() if t["runs"] < self.min_runs}
        if short:
            have = ", ".join(f"{v} {n}" for v, n in short.items())
            return f"waiting for the minimum sample of {self.min_runs} runs per variant ({have})"
        running = [t for t in self.treatments if self.comparisons[t].status == "running"]
        return f"no decision yet on {', '.join(running)}: no e-value has reached its threshold"

    def _judge(self, treatment: str) -> dict[str, Any]:
        """The tests of one comparison now; sets its status when one of them decides."""
        comparison = self.comparisons[treatment]
        k = len(self.treatments)
        primary = e_test("success", comparison.success, None, k / self.alpha, self.concentration)
        failure_theta = self.failure_odds_margin / (1 + self.failure_odds_margin)
        threshold = 2 * k / self.guardrail_alpha
        guards = {
            "failures": e_test("failures", comparison.failed, failure_theta, threshold, self.concentration),
            "latency": e_test("latency", comparison.latency, 0.5, threshold, self.concentration),
        }
        tests = {
            "success": primary,
            **guards,
            "pairs": comparison.pairs,
            "dropped_unpaired": comparison.dropped,
        }
        ready = min(self.totals[treatment]["runs"], self.totals[self.control]["runs"]) >= self.min_runs
        if comparison.status != "running" or not ready:
            return tests
        counts = self.counts()
        t_count, c_count = counts[treatment], counts[self.control]
        for metric, test in guards.items():
            if test["decides"]:
                comparison.status = "harmful"
                comparison.why = {
                    "metric": metric,
                    **test,
                    "reason": self._harm(metric, treatment, test, t_count, c_count),
                }
                return tests
        if primary["decides"]:
            better = comparison.success[0] > comparison.success[1]
            comparison.status = "won" if better else "lost"
            rates = (
                f"success {t_count['success_rate']:.1%} over {t_count['runs']} runs against "
                f"{c_count['success_rate']:.1%} over {c_count['runs']} for {self.control}"
            )
            verb = "promoted: it does better" if better else f"stopped: {self.control} does better"
            comparison.why = {
                "metric": "success",
                **primary,
                "reason": f"{treatment} {verb} ({rates}); e-value {primary['e_value']:.4g} >= "
                f"{primary['threshold']:g} (1 / alpha {self.alpha:g}, split over {k} comparison(s))",
            }
        return tests

    def _harm(self, metric: str, treatment: str, test: dict, t_count: dict, c_count: dict) -> str:
        if metric == "failures":
            what = (
                f"its failure odds are worse than {self.control}'s by more than {self.failure_odds_margin:g}x "
                f"(failures {t_count['failure_rate']:.1%} against {c_count['failure_rate']:.1%})"
            )
        else:
            what = (
                f"it took more than {1 + self.latency_margin:g}x as long as {self.control} in "
                f"{test['treatment_slower']} of {test['treatment_slower'] + test['treatment_not_slower']} timed pairs"
            )
        return (
            f"{treatment} stopped on a guardrail: {what}; e-value {test['e_value']:.4g} >= {test['threshold']:g} "
            f"(1 / guardrail_alpha {self.guardrail_alpha:g}, split over 2 guardrails x {len(self.treatments)} "
            "treatment(s))"
        )

    # --- storing ------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        settings = {key: getattr(self, key) for key in SETTINGS}
        return {**settings, "variants": dict(self.variants)}

    def to_json(self) -> dict[str, Any]:
        comparisons = {treatment: c.to_json() for treatment, c in self.comparisons.items()}
        decision = self.decision
        return {
            "version": VERSION,
            **self.settings(),
            "totals": {v: dict(t) for v, t in self.totals.items()},
            "comparisons": comparisons,
            "decision": None
            if decision is None
            else {"status": decision.status, "variant": decision.variant, "why": decision.why},
        }

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any], where: str = "experiment") -> Experiment:
        """The experiment ``to_json`` wrote; OptimizeError naming the field when ``data`` is not one."""
        data = _state.parse(data, where)
        settings = set(SETTINGS)
        data = _state.only(data, settings | {"version", "totals", "comparisons", "decision"}, where)
        _state.number(data["version"], f"{where}.version", VERSION, VERSION, whole=True)
        experiment = cls(**{key: data[key] for key in settings})
        totals = _state.only(data["totals"], set(experiment.variants), f"{where}.totals")
        for variant, total in totals.items():
            here = f"{where}.totals.{variant}"
            total = _state.only(total, {"runs", "successes", "failures", "timed", "seconds"}, here)
            runs = _state.number(total["runs"], f"{here}.runs", 0, 2**53, whole=True)
            experiment.totals[variant] = {
                "runs": runs,
                "successes": _state.number(total["successes"], f"{here}.successes", 0, runs, whole=True),
                "failures": _state.number(total["failures"], f"{here}.failures", 0, runs, whole=True),
                "timed": _state.number(total["timed"], f"{here}.timed", 0, runs, whole=True),
                "seconds": _state.number(total["seconds"], f"{here}.seconds"),
            }
        comparisons = _state.only(data["comparisons"], set(experiment.treatments), f"{where}.comparisons")
        for treatment, raw in comparisons.items():
            experiment.comparisons[treatment] = Comparison.from_json(
                raw, f"{where}.comparisons.{treatment}", experiment.max_waiting
            )
        decision = data["decision"]
        if decision is not None:
            decision = _state.only(decision, {"status", "variant", "why"}, f"{where}.decision")
            if decision["status"] not in STATUSES[1:] or decision["variant"] not in experiment.variants:
                raise OptimizeError(
                    f"{where}.decision: status must be promoted or stopped and variant one of the variants, got "
                    f"{str(decision['status'])[:40]!r} and {str(decision['variant'])[:40]!r} {_state.FIX}"
                )
            if not isinstance(decision["why"], Mapping):
                raise OptimizeError(f"{where}.decision.why: must be an object {_state.FIX}")
            experiment.decision = Verdict(decision["status"], decision["variant"], dict(decision["why"]))
        return experiment
