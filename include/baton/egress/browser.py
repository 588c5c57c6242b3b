"""Which hosts a browser agent may reach, and the URL of a refused request as it is recorded.

A pattern is ``host`` (that host, any port), ``*.suffix`` (any subdomain of ``suffix``, not
``suffix`` itself), or either with ``:port`` (that port only): ``crm.example.com``,
``*.example.com``, ``127.0.0.1``, ``127.0.0.1:8000``. Only ``http``, ``https``, ``ws`` and ``wss``
URLs are ever allowed (``data:`` and ``blob:`` URLs never reach the network, and are not asked about).

URLs are read by the WHATWG URL standard, as Chromium reads them (``baton.egress``, ``ada-url``):
``http://evil.example\\@127.0.0.1/`` goes to ``evil.example``, and is judged so. The egress rules
hold here too: a link-local or cloud metadata address is never allowed, even when listed; and a host
name pinned at start (:meth:`Allowlist.pin`) whose addresses are private ones the list does not name
(a host name never grants one) is not reached.
"""

from __future__ import annotations

import asyncio
import logging

from baton.egress import DEFAULT_PORTS, Entry, Policy, never, parse_url, resolve
from baton.egress import safe_url as _safe_url

log = logging.getLogger("baton.browser")

PIN_TIMEOUT = 5.0  # seconds to resolve the allowed host names when the browser starts


def display_host(url: str) -> str:
    """The host of ``url`` as recorded: ``example.com``, or ``127.0.0.1:9000`` when a port is written."""
    target = parse_url(url)
    if target is None:
        return "(not a URL)"
    return target.display or f"({target.scheme or 'no'} URL)"


def safe_url(url: str) -> str:
    """Scheme, host (and a written port) and path of ``url``: never its query, fragment or credentials."""
    return _safe_url(url)


class Allowlist:
    """The hosts of an agent's ``browser.allow``."""

    def __init__(self, patterns: list[str]):
        self.patterns = [p.strip().lower() for p in patterns]
        self._parsed = [Entry.parse(p) for p in self.patterns]
        self.policy = Policy(
            self._parsed, who="this agent", where="the agent's browser.allow in the roster", ranges=False
        )
        self.refused: dict[str, str] = {}  # host name -> why it is not reached (from :meth:`pin`)

    def allows(self, url: str) -> bool:
        """Whether a request to ``url`` may go out (http(s) or ws(s), to an allowed host and port)."""
        return self.why_not(url) is None

    def why_not(self, url: str) -> str | None:
        """None if a request to ``url`` may go out; else why not, when there is more to say than "not an
        allowed host" (an address never reached, a host name pinned to nothing); else ""."""
        target = parse_url(url)
        if target is None or target.scheme not in DEFAULT_PORTS or not target.host:
            return ""
        address = target.address
        if address is None:
            if target.host in self.refused:
                return self.refused[target.host]
            return None if any(p.names(target.host, target.port) for p in self._parsed) else ""
        refusal = self.policy.judge(target.host, target.port, address)
        if refusal is None:
            return None
        return refusal.detail if refusal.reason in ("link_local", "metadata") else ""

    def allows_host(self, url: str) -> bool:
        """Whether ``url``'s host is allowed on some port (what the browser's resolver enforces)."""
        target = parse_url(url)
        if target is None or target.scheme not in DEFAULT_PORTS or target.host in self.refused:
            return False
        address = target.address
        if address is not None:
            return never(address) is None and any(p.holds(address, None) for p in self._parsed)
        return any(p.names(target.host, None) for p in self._parsed)

    def pinnable(self) -> list[str]:
        """The host names Chromium can be told the address of: every name pattern that is not a
        wildcard, nor under one (Chromium's EXCLUDE rules, which let a wildcard resolve, win over MAP)."""
        wildcards = [p for p in self._parsed if p.wildcard]
        names = [p.name for p in self._parsed if p.name and not p.wildcard]
        return [n for n in dict.fromkeys(names) if not any(w.names(n, None) for w in wildcards)]

    async def pin(self, timeout: float = PIN_TIMEOUT) -> dict[str, str | None]:
        """Resolve :meth:`pinnable` once, now: host -> the first address the egress rules allow, or None
        (the host is then refused, see :attr:`refused`). Chromium is told these addresses
        (:meth:`resolver_rules`), so a DNS answer that changes later (rebinding) is not used."""
        hosts = self.pinnable()
        if not hosts:
            return {}
        loop = asyncio.get_running_loop()
        lookups = [loop.run_in_executor(None, resolve, host, None) for host in hosts]
        done, _ = await asyncio.wait(lookups, timeout=timeout)
        pins: dict[str, str | None] = {}
        for host, lookup in zip(hosts, lookups, strict=True):
            if lookup not in done or lookup.exception() is not None:
                pins[host] = None
                self.refused[host] = (
                    f"{host} did not resolve when the browser started (within {timeout:g} s), so it is not "
                    "reached; check the name in the agent's browser.allow in the roster"
                )
                continue
            judged = [(a, self.policy.judge(host, None, a)) for a in lookup.result()]
            pins[host] = next((str(a) for a, refusal in judged if refusal is None), None)
            if pins[host] is None:
                self.refused[host] = next(r.detail for _, r in judged if r is not None)
        for host, why in self.refused.items():
            log.warning("Browser: %s is not reached: %s", host, why)
        return pins

    def resolver_rules(self, pins: dict[str, str | None] | None = None) -> str:
        """Chromium's ``--host-resolver-rules``: every host outside the list resolves to nothing, and a
        pinned host to its checked address (``pins``, from :meth:`pin`).

        The second line of defence: Playwright's routing sees a request, not the redirects the browser
        follows for it, so a redirect (or a chain of them) out of the allowed hosts is stopped here.
        Chromium applies these rules to IP literals and ``localhost`` too, but by host only: a port
        named in a pattern is enforced by the routing alone. A wildcard pattern cannot be pinned: its
        hosts resolve through DNS when the browser asks.
        """
        pins = pins or {}
        maps = [f"MAP {host} {_rule_address(ip) if ip else '~NOTFOUND'}" for host, ip in pins.items()]
        hosts = dict.fromkeys(p.host for p in self._parsed if p.host not in pins)
        return ", ".join([*maps, "MAP * ~NOTFOUND", *(f"EXCLUDE {host}" for host in hosts)])

    def __str__(self) -> str:
        return ", ".join(self.patterns)


def _rule_address(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip
