"""One Chromium for one step: the allowlist enforced on every request, one action at a time, and each
action, refusal and saved file recorded.

Both modes use it: a declarative step (:mod:`baton.browser.runner`) and a model's browser tools
(:mod:`baton.browser.tools`). Playwright's async API, imported when the browser starts.

The allowlist is enforced twice. Every request of the browser context goes through
``context.route``: one to a host (or port) outside the list is aborted and recorded as
``browser.blocked``. Playwright does not route the redirects the browser follows, so Chromium is also
started with host-resolver rules under which no host outside the list resolves: a redirect out of the
allowed hosts fails in the browser, and is recorded too (a redirect to another *port* of an allowed
host is not stopped by the resolver, only logged). URLs are read as Chromium reads them (the WHATWG
URL standard), in the early check of a ``goto`` as in the routing.

The allowed host names that are not wildcards are resolved when the browser starts and judged by the
egress rules (``baton.egress``: never a link-local or metadata address; a private one only when the
list names it); Chromium is told the address that passed (``MAP host address``), so a DNS answer that
changes later (rebinding) is not used. A host under a wildcard pattern is resolved by Chromium itself,
when it is asked for: for those hosts, the routing and the resolver rules check the name only.

Values typed into fields are never recorded nor logged: events carry the action, its selector and
how it went; every error text is scrubbed of the step's typed values.
"""

# long: one BrowserSession: its launch, its guard on every request and its actions share the page and the allowlist

from __future__ import annotations

import logging
import mimetypes
import os
import re
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from baton.browser import BrowserError, NavigationBlocked
from baton.browser.artifacts import Artifacts
from baton.egress import HTTP, parse_url
from baton.egress.browser import Allowlist, display_host, safe_url
from baton.spec.browser import BrowserAccess

log = logging.getLogger("baton.browser")

Record = Callable[[str, dict[str, Any]], None]
"""``record(event_type, payload)``: how the runtime hands its events to the caller's store."""

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
_EXT = re.compile(r"^[a-z0-9]{1,10}$")
_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#'\"]*)[?#][^\s'\"]*", re.IGNORECASE)
_PASS_THROUGH = ("data:", "blob:", "about:")

# The rows of a <table> (the selector may also name an element holding one): the header is the last
# row of <thead>, else the first row; every other row is a record.
TABLE_JS = """(node) => {
  const table = node.tagName === "TABLE" ? node : node.querySelector("table");
  if (!table) throw new Error("the element is a <" + node.tagName.toLowerCase() + ">, not a <table>");
  const rows = Array.from(table.rows);
  const head = table.tHead && table.tHead.rows.length ? table.tHead.rows[table.tHead.rows.length - 1] : rows[0];
  const text = (row) => Array.from(row.cells).map((cell) => cell.innerText.trim());
  return {
    header: head ? text(head) : [],
    rows: rows.filter((row) => row !== head && !(table.tHead && table.tHead.contains(row))).map(text),
  };
}"""

# What a model reads of a page: its text, its links, and the fields and buttons it can use.
PAGE_JS = """() => {
  const selectorOf = (el) => el.id ? "#" + CSS.escape(el.id)
    : el.name ? el.tagName.toLowerCase() + "[name=\\"" + el.name + "\\"]" : null;
  const labelOf = (el) => (el.labels && el.labels.length ? el.labels[0].innerText
    : el.getAttribute("aria-label") || el.getAttribute("placeholder") || el.innerText || "").trim();
  const fields = Array.from(document.querySelectorAll("input, select, textarea, button"))
    .filter((el) => el.type !== "hidden")
    .map((el) => ({
      selector: selectorOf(el), tag: el.tagName.toLowerCase(), type: el.type || "",
      label: labelOf(el).slice(0, 80),
      options: el.tagName === "SELECT" ? Array.from(el.options).map((o) => o.value) : undefined,
    }));
  const links = Array.from(document.querySelectorAll("a[href]"))
    .map((a) => ({ text: a.innerText.trim().slice(0, 100), href: a.href }));
  return { title: document.title, text: document.body ? document.body.innerText : "", links, fields };
}"""


class _Refused(Exception):
    """A navigation the allowlist refused before it started."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Failed(Exception):
    """An action failed for a reason this module words itself."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def table_records(header: list[str], rows: list[list[str]]) -> list[dict[str, str]]:
    """Rows as objects keyed by the header cells (an empty or repeated header cell gets ``column_<n>``
    or a ``_<n>`` suffix; a missing cell is ``""``)."""
    keys: list[str] = []
    for number, cell in enumerate(header, start=1):
        key = cell or f"column_{number}"
        keys.append(key if key not in keys else f"{key}_{number}")
    width = max([len(keys), *(len(row) for row in rows)]) if rows else len(keys)
    keys += [f"column_{n}" for n in range(len(keys) + 1, width + 1)]
    return [{key: row[i] if i < len(row) else "" for i, key in enumerate(keys)} for row in rows]


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
        self._record = record
        self.artifacts = artifacts
        self.mode = mode
        self.step = step
        self.blocked: list[dict[str, Any]] = []  # every refusal, in order (recorded once per kind and URL)
        self._recorded_blocks: set[tuple[str, str]] = set()
        self._typed: set[str] = set()
        self._record_errors: list[BaseException] = []  # a record that failed inside a network callback
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
            await self._context.route("**/*", self._route)
            self._context.on("request", self._on_request)
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

    # --- records ---------------------------------------------------------------------------------

    def emit(self, kind: str, payload: dict[str, Any]) -> None:
        """Validate ``payload`` against the event type's model, then hand it to ``record``."""
        from baton.events.types import EVENT_TYPES

        self._record(kind, EVENT_TYPES[kind].model_validate(payload).model_dump(mode="json"))

    def typed(self, value: str) -> None:
        """A value typed into a field: scrubbed from every error text from now on."""
        if value and len(value) >= 3:
            self._typed.add(value)

    def scrub(self, text: str) -> str:
        """``text`` without the typed values, nor the query string of any URL in it."""
        for value in sorted(self._typed, key=len, reverse=True):
            text = text.replace(value, "***")
        return _QUERY.sub(r"\1", text)

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
        if (kind, payload["url"]) not in self._recorded_blocks:
            self._recorded_blocks.add((kind, payload["url"]))
            self.emit("browser.blocked", payload)
            log.warning(
                "Browser %s to %s blocked: not in the allowlist (%s)", kind, payload["url"], self.allowlist
            )
        return payload

    def where(self, index: int, action: str, target: str = "") -> str:
        step = f"Step '{self.step}', " if self.step else ""
        return f"{step}browser[{index}] ({action}{f' {target!r}' if target else ''})"

    def action_event(self, index: int, action: str, selector: str, started: float, error: str = "") -> None:
        latency = round(time.monotonic() - started, 3)
        self.emit(
            "browser.action",
            {
                "index": index,
                "action": action,
                "selector": selector,
                "mode": self.mode,
                "ok": not error,
                "error": self.scrub(error)[:2000],
                "latency_s": latency,
            },
        )
        if error:
            log.warning(
                "%s failed in %.2f s: %s", self.where(index, action, selector), latency, self.scrub(error)
            )
        else:
            log.info("%s ok in %.2f s", self.where(index, action, selector), latency)

    def fail(self, index: int, action: str, selector: str, started: float, reason: str) -> BrowserError:
        """Record a failed action and give the error that says where and why."""
        self.action_event(index, action, selector, started, reason)
        reason = self.scrub(reason)
        return BrowserError(f"{self.where(index, action, selector)}: {reason}", reason)

    def refuse_early(self, index: int, action: Any) -> None:
        """Before the browser starts: refuse (and record) a declared ``goto`` outside the allowlist,
        so that a step that would leave it does nothing at all (no form half-submitted)."""
        if action.action == "goto" and not self.allowlist.allows(action.url):
            started = time.monotonic()
            self.block(action.url, "navigation")
            reason = "blocked: " + self.refusal(action.url)
            self.action_event(index, "goto", "", started, reason)
            raise NavigationBlocked(f"{self.where(index, 'goto', safe_url(action.url))}: {reason}", reason)

    # --- one action ------------------------------------------------------------------------------

    async def perform(self, index: int, action: Any, *, label: str | None = None) -> Any:
        """Do one typed action (``baton.spec.browser``); its value (an extract's, a saved file's
        relative path, a goto's HTTP status), after recording it. A failure is recorded and raised as
        :class:`BrowserError` (:class:`NavigationBlocked` for the allowlist)."""
        name = label or action.action
        selector = getattr(action, "selector", "") or ""
        target = selector or (safe_url(action.url) if action.action == "goto" else "")
        started = time.monotonic()
        blocks_before = len(self.blocked)
        try:
            value = await self._perform(action)
            if self.mode == "declared":
                self._check_navigation(blocks_before)
        except Exception as error:
            reason, blocked = self._reason(action, error, blocks_before)
            self.action_event(index, name, selector, started, reason)
            kind = NavigationBlocked if blocked else BrowserError
            reason = self.scrub(reason)
            raise kind(f"{self.where(index, name, target)}: {reason}", reason) from error
        self._raise_record_errors()
        self.action_event(index, name, selector, started)
        return value

    def _raise_record_errors(self) -> None:
        """A refusal the network callbacks could not record fails the action: a step whose history
        cannot be kept fails (and is retried), as everywhere in Baton."""
        if self._record_errors:
            error = self._record_errors.pop(0)
            self._record_errors.clear()
            raise error

    def navigation_blocks(self, since: int) -> list[dict[str, Any]]:
        return [b for b in self.blocked[since:] if b["kind"] == "navigation"]

    def _check_navigation(self, since: int) -> None:
        blocked = self.navigation_blocks(since)
        if blocked:
            raise _Refused(f"it led to {blocked[0]['url']}: " + self.refusal(blocked[0]["url"]))

    def _reason(self, action: Any, error: Exception, blocks_before: int) -> tuple[str, bool]:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        if isinstance(error, _Refused):
            return f"blocked: {error.reason}", True
        blocked = self.navigation_blocks(blocks_before)
        if blocked:
            return f"blocked: it led to {blocked[0]['url']}: " + self.refusal(blocked[0]["url"]), True
        if isinstance(error, _Failed):
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

        page = self.page
        kind = action.action
        if kind == "goto":
            return await self.goto(action.url)
        if kind == "fill":
            self.typed(action.value)
            return await page.locator(action.selector).fill(action.value)
        if kind == "select":
            locator = page.locator(action.selector)
            await locator.wait_for(state="attached")
            try:
                await locator.select_option(action.value)
            except PlaywrightTimeout as error:
                raise _Failed("none of the select's options has that value or label") from error
            return None
        if kind == "check":
            return await page.locator(action.selector).set_checked(action.checked)
        if kind == "click":
            return await page.locator(action.selector).click()
        if kind == "wait_for":
            return await page.locator(action.selector).first.wait_for(state=action.state)
        if kind == "extract":
            return await self.extract(action.selector, action.kind, action.attribute)
        if kind == "screenshot":
            return await self.screenshot(action.name, full_page=action.full_page)
        if kind == "download":
            return await self.download(action.name, action.selector)
        raise _Failed(f"unknown browser action '{kind}'")

    async def goto(self, url: str) -> int | None:
        """Open ``url`` (refused, and recorded, outside the allowlist); its HTTP status. A declared
        step fails on a status of 400 or more."""
        if not self.allowlist.allows(url):
            self.block(url, "navigation")
            raise _Refused(self.refusal(url))
        response = await self.page.goto(url)
        status = response.status if response else None
        if self.mode == "declared" and status is not None and status >= 400:
            raise _Failed(f"the page answered HTTP {status} ({safe_url(self.page.url)})")
        return status

    async def extract(self, selector: str, kind: str = "text", attribute: str | None = None) -> Any:
        locator = self.page.locator(selector)
        if kind == "text":
            return (await locator.first.inner_text()).strip()
        if kind == "all_text":  # does not wait: an empty list is an answer (wait_for first if it loads late)
            return [text.strip() for text in await locator.all_inner_texts()]
        if kind == "table":
            found = await locator.first.evaluate(TABLE_JS)
            return table_records(found["header"], found["rows"])
        if kind == "attribute":
            if not attribute:
                raise _Failed("an extract of kind attribute names its attribute")
            value = await locator.first.get_attribute(attribute)
            if value is None:
                raise _Failed(f"the element has no attribute '{attribute}'")
            return value
        raise _Failed(f"unknown extract kind '{kind}'")

    async def read_page(self, text_limit: int = 4000, link_limit: int = 60) -> dict[str, Any]:
        """Title, URL, visible text (at most ``text_limit`` characters), links and form fields."""
        found = await self.page.evaluate(PAGE_JS)
        lines = (" ".join(line.split()) for line in found["text"].splitlines())
        text = "\n".join(line for line in lines if line)
        more = len(text) > text_limit
        return {
            "title": found["title"],
            "url": self.page.url,
            "text": text[:text_limit] + (f" [... {len(text) - text_limit} more characters]" if more else ""),
            "links": found["links"][:link_limit],
            "fields": [f for f in found["fields"] if f["selector"]][:link_limit],
        }

    def _artifacts(self) -> Artifacts:
        if self.artifacts is None:
            raise _Failed("this step was given no artifacts folder to keep files in")
        return self.artifacts

    async def screenshot(self, name: str, *, full_page: bool = True) -> str:
        """Save a PNG of the page as ``<name>.png``; its path relative to the artifacts root."""
        artifacts = self._artifacts()
        path = artifacts.path(name, "png")
        await self.page.screenshot(path=str(path), full_page=full_page)
        payload = artifacts.saved(name, "screenshot", path, "image/png")
        self.emit("artifact.saved", payload)
        return payload["path"]

    async def download(self, name: str, selector: str) -> str:
        """Click ``selector`` and keep the file it downloads as ``<name>.<its extension>``."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        artifacts = self._artifacts()
        locator = self.page.locator(selector)
        await locator.wait_for(state="visible")
        seconds = self.access.navigation_timeout.total_seconds()
        try:
            async with self.page.expect_download(timeout=seconds * 1000) as info:
                await locator.click()
            download = await info.value
        except PlaywrightTimeout as error:
            raise _Failed(
                f"no download started within the navigation_timeout of {seconds:g} s after the click; "
                "check that the selector names the link or button that downloads the file"
            ) from error
        failure = await download.failure()
        if failure:
            raise _Failed(f"the download failed: {failure}")
        suffix = PurePosixPath(download.suggested_filename or "").suffix.lstrip(".").lower()
        path = artifacts.path(name, suffix if _EXT.match(suffix) else "bin")
        await download.save_as(str(path))
        content_type = mimetypes.guess_type(download.suggested_filename or "")[0] or ""
        payload = artifacts.saved(name, "download", path, content_type)
        self.emit("artifact.saved", payload)
        return payload["path"]

    async def final_url(self) -> str:
        """The page's URL once the current navigation (if any) has loaded."""
        try:
            await self.page.wait_for_load_state("load")
        except Exception as error:  # a page still loading at the step's end is not the step's failure
            log.debug("waiting for the last page: %s", error)
        return self.page.url

    # --- the network -----------------------------------------------------------------------------

    async def _route(self, route: Any, request: Any) -> None:
        url = request.url
        allowed = url.startswith(_PASS_THROUGH) or self.allowlist.allows(url)
        try:
            await (route.continue_() if allowed else route.abort("blockedbyclient"))
        except Exception as error:  # the page or the browser closed meanwhile
            log.debug("routing %s: %s", safe_url(url), error)
        if not allowed:
            self._block_later(url, "navigation" if _main_frame_navigation(request) else "request")

    def _block_later(self, url: str, kind: str) -> None:
        try:
            self.block(url, kind)
        except Exception as error:  # the store refused it: the action fails when it ends
            self._record_errors.append(error)

    def _on_request(self, request: Any) -> None:
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


def _main_frame_navigation(request: Any) -> bool:
    try:
        return bool(request.is_navigation_request() and request.frame.parent_frame is None)
    except Exception:  # a request without a frame (a service worker's)
        return False
