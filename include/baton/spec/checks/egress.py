"""What the egress policy will always refuse, asked of a template's literal URLs: an ``http_post`` step whose
``with.url`` fixes the host (the whole URL, or its part before the first Jinja hole once the host is
written) is judged by the policy the skill runs under (``baton.egress.skill_policy`` over the roster's
``skills.http_post.allow``), so a URL every run would be refused (a cloud metadata address, a host or
address the roster does not allow, a scheme other than http(s)) is reported by ``baton validate`` in the
words the run would fail with.

A warning, not an error: the roster is the admins' and changes apart from the template, and a template that
loaded before keeps loading (its step fails, recorded as ``egress.blocked``, as it did) rather than its DAG
vanishing when a host leaves the allowlist."""

from __future__ import annotations

import re
from collections.abc import Iterator

from baton.egress import skill_policy
from baton.spec.checks.common import Found
from baton.spec.models import Workflow
from baton.spec.roster import Roster

POSTS = "http_post"  # the skill whose URL a template writes (``with.url``)
# The part of a URL before its first Jinja hole, when it already holds the whole host: scheme://authority
# and then the path, query or fragment.
_FIXED_HOST = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#{}]*[/?#]")


def fixed_url(url: str, path: object = None) -> str | None:
    """The part of a step's URL (``with.url`` and ``with.path``, joined as the skill joins them) that
    fixes where the post goes, or None when Jinja decides the host."""
    if path:
        url = url.rstrip("/") + "/" + str(path).lstrip("/")
    holes = [i for i in (url.find("{{"), url.find("{%"), url.find("{#")) if i >= 0]
    if not holes:
        return url
    prefix = url[: min(holes)]
    return prefix if _FIXED_HOST.match(prefix) else None


def egress_findings(workflow: Workflow, roster: Roster | None) -> Iterator[Found]:
    """(key path, message, fix) of each ``http_post`` URL whose fixed host every run would be refused."""
    if roster is None:
        return  # the policy is the roster's: without one there is nothing to ask
    access = roster.skills.get(POSTS)
    policy = skill_policy(POSTS, access.allow if access is not None else [])
    for index, step in enumerate(workflow.steps):
        arguments = step.arguments
        url = arguments.get("url")
        if step.skill_name != POSTS or arguments.get("conn_id") or not isinstance(url, str):
            continue  # a connection's host was named by an admin: allowed, as at run time
        fixed = fixed_url(url, arguments.get("path"))
        if fixed is None:
            continue
        target, refusal = policy.refusal(fixed)
        if refusal is None:
            continue
        shown = target.shown if target is not None else "(not a URL)"
        detail, _, add = refusal.detail.partition("; add ")
        yield (
            ("steps", index, "with", "url"),
            f"every run's post to {shown} would be refused by the egress policy: {detail}",
            f"add {add}" if add else "post elsewhere: no entry of the roster can allow it",
        )
