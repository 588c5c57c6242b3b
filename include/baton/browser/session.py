"""One Chromium for one step: the allowlist enforced on every request, one action at a time, and each
action, refusal and saved file recorded.

Both modes use it: a declarative step (:mod:`baton.browser.runner`) and a model's browser tools
(:mod:`baton.browser.tools`). Playwright's async API, imported when the browser starts.

A session is its browser's lifecycle and one action at a time; its parts are the guard on the network
(``session.guard``, :mod:`baton.browser.guard`: the routing of every request, and the refusals), its
record (``session.journal``, :mod:`baton.browser.journal`: the events, and error texts scrubbed of typed
values), what it reads of a page (:mod:`baton.browser.extraction`) and the files it keeps
(:mod:`baton.browser.files`).

The allowed host names that are not wildcards are resolved when the browser starts and judged by the
egress rules (``baton.egress``: never a link-local or metadata address; a private one only when the
list names it); Chromium is told the address that passed (``MAP host address``), so a DNS answer that
changes later (rebinding) is not used, and is started with host-resolver rules under which no other host
resolves. A host under a wildcard pattern is resolved by Chromium itself, when it is asked for: for those
hosts, the routing and the resolver rules check the name only.

Values typed into fields are never recorded nor logged: events carry the action, its selector and
how it went; every error text is scrubbed of the step's typed values.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from baton.browser import ActionFailed, ActionRefused, BrowserError, NavigationBlocked, extraction, files
from baton.browser.artifacts import Artifacts
from baton.browser.guard import Guard
from baton.browser.journal import Journal, Record
from baton.egress.browser import Allowlist, safe_url
from baton.spec.browser import BrowserAccess

log = logging.getLogger("baton.browser")

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


class BrowserSession:
    """A browser for one step (or one model's run): started by :meth:`start` (or ``async with``)."""

    def __init__(
        self,
        access: BrowserAccess | dict[str, Any],
        *,
        record: Record,
        artifacts: Artifacts | None = None,
        mode: str = "declared",
        step: str = "",
    ):
        self.access = access if isinstance(access, BrowserAccess) else BrowserAccess.model_validate(access)
        self.allowlist = Allowlist(self.access.allow)
        self.journal = Journal(record, mode=mode, step=step)
        self.guard = Guard(self.allowlist, self.journal)
        self.artifacts = artifacts
        self.mode = mode
        self.step = step
        self._playwright: Any = None
        self._browser: Any = None
        self._context: Any = None
        self.page: Any = None

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self.page is not None

    async def start(self) -> BrowserSession:
        from playwright.async_api import async_playwright

        if self.started:
            return self
        pins = await self.allowlist.pin()
        self._playwright = await async_playwright().start()
        try:
            self._browser = await self._playwright.chromium.launch(
                executable_path=os.environ.get("BATON_CHROMIUM", CHROMIUM),
                args=[*LAUNCH_ARGS, f"--host-resolver-rules={self.allowlist.resolver_rules(pins)}"],
            )
            self._context = await self._browser.new_context(
                service_workers="block",  # a service worker's requests would not be routed
                accept_downloads=True,
                viewport={"width": 1280, "height": 800},
                locale="en-US",
                timezone_id="UTC",
            )
            self._context.set_default_timeout(self.access.action_timeout.total_seconds() * 1000)
            self._context.set_default_navigation_timeout(
                self.access.navigation_timeout.total_seconds() * 1000
            )
            await self._context.route("**/*", self.guard.route)
            self._context.on("request", self.guard.on_request)
            self.page = await self._context.new_page()
        except BaseException:
            await self.close()
            raise
        log.info("Browser started for %s; allowed hosts: %s", self.step or "a step", self.allowlist)
        return self

    async def close(self) -> None:
        for closing in (self._context, self._browser):
            if closing is not None:
                try:
                    await closing.close()
                except Exception as error:  # already gone: nothing to release
                    log.debug("closing the browser: %s", error)
        if self._playwright is not None:
            try:
                await self._playwright.stop()
            except Exception as error:
                log.debug("stopping Playwright: %s", error)
        self._playwright = self._browser = self._context = self.page = None

    async def __aenter__(self) -> BrowserSession:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- one action ------------------------------------------------------------------------------

    async def perform(self, index: int, action: Any, *, label: str | None = None) -> Any:
        """Do one typed action (``baton.spec.browser``); its value (an extract's, a saved file's
        relative path, a goto's HTTP status), after recording it. A failure is recorded and raised as
        :class:`BrowserError` (:class:`NavigationBlocked` for the allowlist)."""
        name = label or action.action
        selector = getattr(action, "selector", "") or ""
        target = selector or (safe_url(action.url) if action.action == "goto" else "")
        started = time.monotonic()
        blocks_before = len(self.guard.blocked)
        try:
            value = await self._perform(action)
            if self.mode == "declared":
                self.guard.check_navigation(blocks_before)
        except Exception as error:
            reason, blocked = self._reason(action, error, blocks_before)
            self.journal.action_event(index, name, selector, started, reason)
            kind = NavigationBlocked if blocked else BrowserError
            reason = self.journal.scrub(reason)
            raise kind(f"{self.journal.where(index, name, target)}: {reason}", reason) from error
        self.guard.raise_record_errors()
        self.journal.action_event(index, name, selector, started)
        return value

    def _reason(self, action: Any, error: Exception, blocks_before: int) -> tuple[str, bool]:
        """(why the action failed, in words a person or a model can act on; whether the allowlist refused it)."""
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        if isinstance(error, ActionRefused):
            return f"blocked: {error.reason}", True
        blocked = self.guard.navigation_blocks(blocks_before)
        if blocked:
            return f"blocked: it led to {blocked[0]['url']}: " + self.guard.refusal(blocked[0]["url"]), True
        if isinstance(error, ActionFailed):
            return error.reason, False
        if isinstance(error, PlaywrightTimeout):
            if action.action == "goto":
                seconds = self.access.navigation_timeout.total_seconds()
                return (
                    f"the page did not load within the navigation_timeout of {seconds:g} s; raise the "
                    "agent's browser.navigation_timeout if the site is slow",
                    False,
                )
            seconds = self.access.action_timeout.total_seconds()
            return (
                f"no element matched within the action_timeout of {seconds:g} s (or it never became "
                f"visible and enabled) on {safe_url(self.page.url)}; check the selector, put a wait_for "
                "before this action, or raise the agent's browser.action_timeout",
                False,
            )
        if isinstance(error, PlaywrightError):
            return error.message.strip().splitlines()[0], False
        return f"{type(error).__name__}: {error}", False

    async def _perform(self, action: Any) -> Any:
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        kind = action.action
        if kind == "goto":
            return await self.goto(action.url)
        if kind == "fill":
            self.journal.typed(action.value)
            return await self.page.locator(action.selector).fill(action.value)
        if kind == "select":
            locator = self.page.locator(action.selector)
            await locator.wait_for(state="attached")
            try:
                await locator.select_option(action.value)
            except PlaywrightTimeout as error:
                raise ActionFailed("none of the select's options has that value or label") from error
            return None
        if kind == "check":
            return await self.page.locator(action.selector).set_checked(action.checked)
        if kind == "click":
            return await self.page.locator(action.selector).click()
        if kind == "wait_for":
            return await self.page.locator(action.selector).first.wait_for(state=action.state)
        if kind == "extract":
            return await extraction.extract(self.page, action.selector, action.kind, action.attribute)
        if kind == "screenshot":
            return await files.screenshot(
                self.page, self.artifacts, self.journal, action.name, full_page=action.full_page
            )
        if kind == "download":
            timeout_s = self.access.navigation_timeout.total_seconds()
            return await files.download(
                self.page, self.artifacts, self.journal, action.name, action.selector, timeout_s
            )
        raise ActionFailed(f"unknown browser action '{kind}'")

    async def goto(self, url: str) -> int | None:
        """Open ``url`` (refused, and recorded, outside the allowlist); its HTTP status. A declared
        step fails on a status of 400 or more."""
        self.guard.refuse_navigation(url)
        response = await self.page.goto(url)
        status = response.status if response else None
        if self.mode == "declared" and status is not None and status >= 400:
            raise ActionFailed(f"the page answered HTTP {status} ({safe_url(self.page.url)})")
        return status

    async def read_page(self, text_limit: int = 4000, link_limit: int = 60) -> dict[str, Any]:
        """What a model reads of the current page (:func:`baton.browser.extraction.read_page`)."""
        return await extraction.read_page(self.page, text_limit, link_limit)

    async def final_url(self) -> str:
        """The page's URL once the current navigation (if any) has loaded."""
        try:
            await self.page.wait_for_load_state("load")
        except Exception as error:  # a page still loading at the step's end is not the step's failure
            log.debug("waiting for the last page: %s", error)
        return self.page.url
