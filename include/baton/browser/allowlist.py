"""Which hosts a browser agent may reach, and the URL of a refused request as it is recorded.

A pattern is ``host`` (that host, any port), ``*.suffix`` (any subdomain of ``suffix``, not
``suffix`` itself), or either with ``:port`` (that port only): ``crm.example.com``,
``*.example.com``, ``127.0.0.1``, ``127.0.0.1:8000``. Only ``http``, ``https``, ``ws`` and ``wss``
URLs are ever allowed (``data:`` and ``blob:`` URLs never reach the network, and are not asked about).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True)
class Pattern:
    host: str  # without the "*." of a wildcard
    wildcard: bool
    port: int | None

    @classmethod
    def parse(cls, text: str) -> Pattern:
        text = text.strip().lower()
        host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
        wildcard = host.startswith("*.")
        return cls(host[2:] if wildcard else host, wildcard, int(port) if port else None)

    def matches(self, host: str, port: int | None) -> bool:
        if self.port is not None and port != self.port:
            return False
        return host.endswith("." + self.host) if self.wildcard else host == self.host


def _host_port(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``; the port is the scheme's default when not written."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number
        port = None
    return scheme, (parts.hostname or "").lower().rstrip("."), port or DEFAULT_PORTS.get(scheme)


def display_host(url: str) -> str:
    """The host of ``url`` as recorded: ``example.com``, or ``127.0.0.1:9000`` when a port is written."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if not host:
        return f"({parts.scheme or 'no'} URL)"
    return f"{host}:{port}" if port else host


def safe_url(url: str) -> str:
    """Scheme, host (and a written port) and path of ``url``: never its query, fragment or credentials."""
    parts = urlsplit(url)
    if not parts.hostname:
        return f"{parts.scheme}:" if parts.scheme else ""
    return f"{parts.scheme}://{display_host(url)}{parts.path}"


class Allowlist:
    """The hosts of an agent's ``browser.allow``."""

    def __init__(self, patterns: list[str]):
        self.patterns = [p.strip().lower() for p in patterns]
        self._parsed = [Pattern.parse(p) for p in self.patterns]

    def allows(self, url: str) -> bool:
        """Whether a request to ``url`` may go out (http(s) or ws(s), to an allowed host and port)."""
        scheme, host, port = _host_port(url)
        if scheme not in DEFAULT_PORTS or not host:
            return False
        return any(p.matches(host, port) for p in self._parsed)

    def allows_host(self, url: str) -> bool:
        """Whether ``url``'s host is allowed on some port (what the browser's resolver enforces)."""
        scheme, host, _ = _host_port(url)
        return scheme in DEFAULT_PORTS and any(
            Pattern(p.host, p.wildcard, None).matches(host, None) for p in self._parsed
        )

    def resolver_rules(self) -> str:
        """Chromium's ``--host-resolver-rules``: every host outside the list resolves to nothing.

        The second line of defence: Playwright's routing sees a request, not the redirects the browser
        follows for it, so a redirect (or a chain of them) out of the allowed hosts is stopped here.
        Chromium applies these rules to IP literals and ``localhost`` too, but by host only: a port
        named in a pattern is enforced by the routing alone.
        """
        hosts = dict.fromkeys(("*." if p.wildcard else "") + p.host for p in self._parsed)
        return ", ".join(["MAP * ~NOTFOUND", *(f"EXCLUDE {host}" for host in hosts)])

    def __str__(self) -> str:
        return ", ".join(self.patterns)
