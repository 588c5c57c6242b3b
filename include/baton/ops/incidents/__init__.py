"""Incidents: a pure state machine from this minute's anomalies to incident transitions and runbook actions.

The state is a :class:`Book` (JSON-ready: ``book.model_dump(mode="json")`` and ``Book.model_validate``
round-trip), kept by the caller as a projection of the ``incident.*`` events. :func:`evaluate` takes the
book, this minute's anomalies and the time, and returns an :class:`Outcome`: the next book, the
transitions to record as events, and the runbook actions due now. :func:`acknowledge` and :func:`stop`
are what a person does. Nothing reads a clock; the same inputs give the same outputs.

- An anomaly is keyed by its fingerprint, ``kind@where`` (``failure_rate@agent:x``): the first opens an
  incident, the next ones update it and add to its count, so a storm is one incident with a count.
- An incident resolves once no anomaly of its fingerprint came for ``incidents.resolve_after``.
- An open, unacknowledged incident goes one severity up every ``escalate_after`` (or at ``escalate_count``).
- Acknowledged: updates stop notifying, severity stays, ``escalate`` steps are skipped (someone is on it).
- In a maintenance window: a new anomaly opens nothing (one ``incident.suppressed`` per window), an
  open incident neither notifies nor gets actions until the window ends.
- Runbook steps run in order, each once ``after`` has passed since the incident opened; an action's id
  is ``<incident id>/<step>``, recorded in the book when issued, so no step is ever issued twice. When
  the incident resolves, what was done is undone (the circuit closed, concurrency restored, the
  workflow resumed) and ``retry_failed_runs`` runs. A person's ``stop`` halts every further action.
- A circuit the runbook opened is a trial's business, not quiet's: an agent that gets no work has no
  failures, whether it recovered or not. ``probe_after`` the opening the circuit goes half-open
  (``probe_circuit``: the agent's next call is a trial); the caller says what each half-open circuit
  saw (``trials``: pending, passed, failed). A failed trial holds the circuit open again, and another
  comes ``probe_after`` later; the incident resolves only once a trial passed (or, when no call came
  within ``probe_for``, with the circuit left half-open), and the signal has been quiet.

The parts: the records (``model.py``), one minute's evaluation (``evaluate.py``), the runbook's steps and
their undoing (``runbook.py``), the trials of a circuit a runbook opened (``trials.py``), what a person
does (``person.py``).
"""

from baton.ops.incidents.evaluate import evaluate
from baton.ops.incidents.model import (
    Action,
    Anomaly,
    Book,
    Incident,
    IncidentError,
    Outcome,
    Step,
    Suppressed,
    Transition,
    TrialSeen,
)
from baton.ops.incidents.person import acknowledge, stop
from baton.ops.incidents.trials import half_open_agents

__all__ = [
    "Action",
    "Anomaly",
    "Book",
    "Incident",
    "IncidentError",
    "Outcome",
    "Step",
    "Suppressed",
    "Transition",
    "TrialSeen",
    "acknowledge",
    "evaluate",
    "half_open_agents",
    "stop",
]
