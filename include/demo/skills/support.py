"""Support triage skills (the support_triage workflow, every two minutes in ``make run``).

``support_tickets`` picks the run's new tickets from the demo queue (include/demo/support.json); the agent
``helpdesk_api`` files each with the partner helpdesk (``file_ticket``: a POST to ``<helpdesk_url>/tickets``,
once per run and ticket whatever the retries). ``make run``'s partner service has a planned outage on that
path, so the filing fails for a few minutes as a real partner's would, and the monitor sees it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import BaseModel

from baton.errors import FinalSkillError
from baton.hooks import http as http_hook
from baton.registry import SkillRequest, skill
from demo.skills.demo_data import demo_data

TICKET_ID = re.compile(r"\bT-\d{4}\b")
FILE_TIMEOUT_S = 10.0


class Ticket(BaseModel):
    id: str
    customer: str
    channel: str
    subject: str
    body: str


class NewTickets(BaseModel):
    tickets: list[Ticket]
    count: int
    queue: int


class Filed(BaseModel):
    ticket: str
    status: int
    helpdesk: Any = None


@skill("support_tickets", output=NewTickets)
def support_tickets(request: SkillRequest) -> dict:
    """The run's new tickets: ``per_run`` of the demo queue, in order from a place the run's id chooses
    (the same tickets for every try of a run, other ones for the next run)."""
    queue = demo_data("support")["tickets"]
    per_run = max(1, min(int(request.inputs.get("per_run", 3)), len(queue)))
    start = int.from_bytes(hashlib.sha256(request.run_id.encode()).digest()[:4], "big") % len(queue)
    tickets = [queue[(start + i) % len(queue)] for i in range(per_run)]
    return {"tickets": tickets, "count": len(tickets), "queue": len(queue)}


@skill("file_ticket", output=Filed)
def file_ticket(request: SkillRequest) -> dict:
    """File the ticket the instruction names (``T-nnnn``, one of the run's new tickets) with the partner
    helpdesk at ``<helpdesk_url>/tickets``, with its triage when the run has one."""
    from baton.skills.http import post_json  # deferred: an extension loads no Baton skill (test_own_skills)

    ticket = _named_ticket(request)
    url = str(request.inputs.get("helpdesk_url", "")).rstrip("/") + "/tickets"
    triage = request.steps.get("triage") or {}
    body = {
        "ticket": ticket["id"],
        "customer": ticket["customer"],
        "subject": ticket["subject"],
        "priority": triage.get("priority"),
        "run": request.run_id,
    }
    answer = post_json(
        url, body, timeout=FILE_TIMEOUT_S, step=request.step, policy=http_hook.current("file_ticket")
    )
    return {"ticket": ticket["id"], "status": answer["status"], "helpdesk": answer["body"]}


def _named_ticket(request: SkillRequest) -> dict[str, Any]:
    """The ticket of the run that the instruction names; a FinalSkillError when it names none of them (no
    retry mends a wrong instruction)."""
    found = TICKET_ID.search(request.instruction)
    tickets = {
        t.get("id"): t
        for output in request.steps.values()
        if isinstance(output, dict) and isinstance(output.get("tickets"), list)
        for t in output["tickets"]
        if isinstance(t, dict)
    }
    if found is None or found.group() not in tickets:
        named = found.group() if found else "no ticket id (T-nnnn)"
        raise FinalSkillError(
            f"the instruction names {named}; this run's new tickets are {', '.join(sorted(tickets)) or 'none'}"
        )
    return tickets[found.group()]
