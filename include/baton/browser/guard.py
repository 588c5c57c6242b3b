"""The allowlist of one browser, enforced on everything it asks of the network.

It is enforced twice. Every request of the browser context goes through ``context.route``
(:meth:`Guard.route`): one to a host (or port) outside the list is aborted and recorded as
``browser.blocked``. Playwright does not route the redirects the browser follows, so Chromium is also
started with host-resolver rules under which no host outside the list resolves: a redirect out of the
allowed hosts fails in the browser, and is recorded too (:meth:`Guard.on_request`; a redirect to another
*port* of an allowed host is not stopped by the resolver, only logged). URLs are read as Chromium reads
them (the WHATWG URL standard), in the early check of a ``goto`` as in the routing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from baton.browser import ActionRefused, NavigationBlocked
from baton.browser.journal import Journal
from baton.egress import HTTP, parse_url
from baton.egress.browser import Allowlist, display_host, safe_url

log = logging.getLogger("baton.browser")

_PASS_THROUGH = ("data:", "blob:", "about:")


class Guard:
    """The refusals of one browser: why a URL is refused, each refusal recorded once per kind and URL,
    and the routing of every request."""

    def __init__(self, allowlist: Allowlist, journal: Journal):
        self.allowlist = allowlist
        self.journal = journal
        self.blocked: list[dict[str, Any]] = []  # every refusal, in order (recorded once per kind and URL)
        self._recorded: set[tuple[str, str]] = set()
        self._record_errors: list[BaseException] = []  # a record that failed inside a network callback

    def refusal(self, url: str) -> str:
        """Why the allowlist refuses ``url``, and the fix."""
        host = display_host(url)
        target = parse_url(url)
        if target is None or target.scheme not in HTTP:
            scheme = target.scheme if target is not None else url.split(":", 1)[0]
            return f"only http(s) pages can be opened, not '{scheme}:' URLs"
        if why := self.allowlist.why_not(url):
            return why
        return (
            f"{host} is not an allowed host for this agent (allowed: {self.allowlist}); add it to the "
            "agent's browser.allow in the roster, or go to a page on an allowed host"
        )

    def block(self, url: str, kind: str) -> dict[str, Any]:
        """Record a refused navigation or request (each kind and URL once per session)."""
        payload = {
            "host": display_host(url),
            "url": safe_url(url),
            "kind": kind,
            "allowed": list(self.allowlist.patterns),
        }
        self.blocked.append(payload)
        if (kind, payload["url"]) not in self._recorded:
            self._recorded.add((kind, payload["url"]))
            self.journal.emit("browser.blocked", payload)
            log.warning(
                "Browser %s to %s blocked: not in the allowlist (%s)", kind, payload["url"], self.allowlist
            )
        return payload

    def refuse_navigation(self, url: str) -> None:
        """Refuse (record, and raise :class:`ActionRefused` for) a ``goto`` outside the allowlist."""
        if not self.allowlist.allows(url):
            self.block(url, "navigation")
            raise ActionRefused(self.refusal(url))

    def refuse_early(self, index: int, action: Any) -> None:
        """Before the browser starts: refuse (and record) a declared ``goto`` outside the allowlist,
        so that a step that would leave it does nothing at all (no form half-submitted)."""
        if action.action == "goto" and not self.allowlist.allows(action.url):
            started = time.monotonic()
            self.block(action.url, "navigation")
            reason = "blocked: " + self.refusal(action.url)
            self.journal.action_event(index, "goto", "", started, reason)
            where = self.journal.where(index, "goto", safe_url(action.url))
            raise NavigationBlocked(f"{where}: {reason}", reason)

    def navigation_blocks(self, since: int) -> list[dict[str, Any]]:
        """The navigations refused since the ``since``-th refusal."""
        return [b for b in self.blocked[since:] if b["kind"] == "navigation"]

    def check_navigation(self, since: int) -> None:
        """Raise :class:`ActionRefused` when a navigation was refused since the ``since``-th refusal."""
        blocked = self.navigation_blocks(since)
        if blocked:
            raise ActionRefused(f"it led to {blocked[0]['url']}: " + self.refusal(blocked[0]["url"]))

    def raise_record_errors(self) -> None:
        """A refusal the network callbacks could not record fails the action: a step whose history
        cannot be kept fails (and is retried), as everywhere in Baton."""
        if self._record_errors:
            error = self._record_errors.pop(0)
            self._record_errors.clear()
            raise error

    # --- the network's callbacks -------------------------------------------------------------------

    async def route(self, route: Any, request: Any) -> None:
        """``context.route`` of every request: continued when allowed, else aborted and recorded."""
        url = request.url
        allowed = url.startswith(_PASS_THROUGH) or self.allowlist.allows(url)
        try:
            await (route.continue_() if allowed else route.abort("blockedbyclient"))
        except Exception as error:  # the page or the browser closed meanwhile
            log.debug("routing %s: %s", safe_url(url), error)
        if not allowed:
            self._block_later(url, "navigation" if _main_frame_navigation(request) else "request")

    def on_request(self, request: Any) -> None:
        """A redirect the browser follows is not routed: record one that leaves the allowed hosts."""
        if request.redirected_from is None or self.allowlist.allows(request.url):
            return
        kind = "navigation" if _main_frame_navigation(request) else "request"
        if not self.allowlist.allows_host(request.url):
            self._block_later(request.url, kind)  # the host-resolver rules stop it
        else:
            log.warning(
                "A redirect took the browser to %s, a port the allowlist (%s) does not name",
                safe_url(request.url),
                self.allowlist,
            )

    def _block_later(self, url: str, kind: str) -> None:
        try:
            self.block(url, kind)
        except Exception as error:  # the store refused it: the action fails when it ends
            self._record_errors.append(error)


def _main_frame_navigation(request: Any) -> bool:
    try:
        return bool(request.is_navigation_request() and request.frame.parent_frame is None)
    except Exception:  # a request without a frame (a service worker's)
        return False
