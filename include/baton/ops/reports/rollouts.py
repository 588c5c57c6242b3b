"""Where each rollout stands (``baton rollout``, ``GET /baton/api/rollouts``): its share and stage, each
version's runs and how they ended, the runs in flight on each version, and every decision with its reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from baton.compile.loader import rollouts
from baton.coordination.rollout import Rollout, experiment, replay
from baton.events.store import EventStore

MAX_DECISIONS = 50  # the latest decisions a report lists


def report(store: EventStore, dags_folder: Path, workflow: str | None = None) -> list[dict[str, Any]]:
    """One document per rollout of the healthy templates of ``dags_folder`` (only ``workflow``'s if given)."""
    found = []
    for current, new in rollouts(dags_folder):
        if workflow is not None and current.workflow != workflow:
            continue
        rollout = Rollout(current.workflow, current.version, new.version, current.rollout)
        state = replay(store, current.workflow, current.version, new.version)
        test = experiment(state, current.rollout)
        verdict = test.decide() if state.ended else None
        ended = {run_id for _, run_id, _, _ in state.ended}
        gated = []  # why it has not started: its new version has not passed the workflow's dataset (yet)
        if state.status == "not started":
            found_gates = store.read(f"rollout:{rollout.name}"[:250], types=["rollout.gated"])
            gated = [getattr(e, "payload", {}).get("reason", "") for e in found_gates]
        in_flight = {"stable": 0, "canary": 0}
        for run_id, arm in state.assigned.items():
            in_flight[arm] += run_id not in ended
        found.append(
            {
                "workflow": current.workflow,
                "rollout": rollout.name,
                "from_version": current.version,
                "to_version": new.version,
                "file": f"versions/{current.rollout.to}",
                "status": state.status,
                "share": state.share,
                "stage": state.stage,
                "stage_since": state.stage_at.isoformat() if state.stage_at else None,
                "reason": state.reason,
                "gated": gated[-1] if gated else "",
                "settings": current.rollout.model_dump(mode="json"),
                "runs": test.counts(),
                "in_flight": in_flight,
                "guardrails": verdict.why.get("reason", "")
                if verdict is not None
                else "no run has ended yet",
                "decisions": state.decisions[-MAX_DECISIONS:],
            }
        )
    return found
