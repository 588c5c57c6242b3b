"""What ``baton eval`` prints (text, or one JSON object for CI) and records (``evaluation.completed``: the
scores and the cases' ids, never their inputs or outputs)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from baton.coordination.tasks import EVAL_STEP
from baton.evaluate.run import Version
from baton.evaluate.score import ALPHA, CaseScore, Comparison
from baton.events.event import Event

#: The most failed checks of one case the text names (the JSON has them all).
SHOWN_FAILURES = 10
#: The most regressed cases an evaluation.completed event names (the report names them all).
RECORDED_CASES = 50


def by_check(cases: list[CaseScore]) -> dict[str, list[int]]:
    """Each check (``step.field kind``) -> [the cases it held in, the cases it was checked in]."""
    found: dict[str, list[int]] = {}
    for score in cases:
        for result in score.results:
            held = found.setdefault(result.key, [0, 0])
            held[0] += result.passed
            held[1] += 1
    return found


def as_json(
    workflow: str, scores: dict[str, list[CaseScore]], comparison: Comparison | None, failed: bool
) -> dict:
    return {
        "workflow": workflow,
        "versions": {label: [score.as_json() for score in cases] for label, cases in scores.items()},
        "checks": {label: by_check(cases) for label, cases in scores.items()},
        "comparison": comparison.as_json() if comparison else None,
        "passed": not failed,
    }


def _held(cases: list[CaseScore]) -> str:
    passed, checks = sum(s.passed for s in cases), sum(len(s.results) for s in cases)
    return f"{passed}/{checks} checks held ({100 * passed / checks if checks else 0:.1f} %)"


def as_text(
    workflow: str, labels: list[str], scores: dict[str, list[CaseScore]], comparison: Comparison | None
) -> list[str]:
    lines = [f"{workflow}: {len(scores[labels[0]])} case(s), " + " against ".join(labels)]
    for label in labels:
        for score in scores[label]:
            failing = [f"{r.key}: {r.reason}" for r in score.results if not r.passed]
            lines.append(f"  {label} {score.case}: {score.passed}/{len(score.results)} ({score.state})")
            lines += [f"      {line}" for line in failing[:SHOWN_FAILURES]]
            if len(failing) > SHOWN_FAILURES:
                lines.append(f"      and {len(failing) - SHOWN_FAILURES} more")
    lines.append("by check: " + ", ".join(f"{label} held/checked" for label in labels))
    checks = {label: by_check(scores[label]) for label in labels}
    for key in checks[labels[0]]:
        held = [checks[label].get(key, [0, 0]) for label in labels]
        lines.append(f"  {key}: " + ", ".join(f"{passed}/{total}" for passed, total in held))
    lines += [f"{label}: {_held(scores[label])}" for label in labels]
    if comparison is None:
        return lines
    low, high = comparison.interval
    lines.append(
        f"{labels[0]} against stable: mean difference per case {comparison.mean_difference:+.3f} "
        f"(95 % CI {low:+.3f} to {high:+.3f})"
    )
    for case, keys in comparison.regressed.items():
        lines.append(f"  regressed {case}: {', '.join(keys)}")
    if (rule := comparison.rule) is not None:
        lines.append(
            f"sequential rule (alpha {ALPHA:g}): "
            + (f"a regression after {rule.decided_after} case(s)" if rule.decided_after else "no call")
            + f", {rule.regressed} case(s) regressed and {rule.improved} improved, e-value {rule.e_value:.3g}"
        )
    verdict = "a regression" if comparison.regression else "no regression"
    lines.append(
        f"{verdict}: {labels[0]} held {100 * comparison.share_new:.1f} % of the checks, stable "
        f"{100 * comparison.share_stable:.1f} % (tolerance {100 * comparison.tolerance:.1f} %)"
    )
    return lines


def evaluation_event(
    workflow: str,
    version: Version,
    dataset: Path,
    cases: list[CaseScore],
    comparison: Comparison | None,
    failed: bool,
) -> Event:
    """The ``evaluation.completed`` event of ``version``'s evaluation (a new fact each time it runs)."""
    payload: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(),
        "version": version.number,
        "digest": version.digest,
        "variant": ":".join(next(iter(version.arms.items()))) if version.arms else "",
        "passed": not failed,
        "cases": len(cases),
        "checks": sum(len(case.results) for case in cases),
        "held": sum(case.passed for case in cases),
        "dataset_sha256": hashlib.sha256(dataset.read_bytes()).hexdigest()[:16],
    }
    if comparison is not None:
        payload |= {
            "against": "stable",
            "held_stable": comparison.passed_stable,
            "mean_difference": comparison.mean_difference,
            "interval": list(comparison.interval),
            "regressed": dict(list(comparison.regressed.items())[:RECORDED_CASES]),
        }
    return Event(
        type="evaluation.completed",
        run_id=f"evaluation:{workflow}:v{version.number}:{uuid.uuid4().hex[:12]}",
        workflow=workflow,
        step=EVAL_STEP,
        template_version=version.number,
        payload=payload,
    )


__all__ = ["RECORDED_CASES", "as_json", "as_text", "evaluation_event"]
