"""Where Baton's outbound calls may go: one egress policy for every call a skill makes on a template's
behalf (``http_post``, and any skill that calls out), and the URL parsing the browser's allowlist shares.

The roster declares it per skill; an agent whose backend is a skill uses its skill's entry::

    skills:
      http_post: {allow: ["partner.example.com", "*.cms.example.com:443", "10.20.0.0/16", "127.0.0.1"]}

An entry is a host (``partner.example.com``: any port), a wildcard (``*.example.com``: any subdomain,
not ``example.com`` itself), an IP address (``127.0.0.1``, ``::1``, ``[::1]:8080``) or a range
(``10.0.0.0/8``, ``fd00::/8``); a host or an address may end with ``:port`` (that port only).

1. Only ``http`` and ``https`` URLs, parsed by the WHATWG URL standard as Chromium parses them
   (``ada-url``): ``http://a.example\\@127.0.0.1/`` goes to ``a.example``, ``http://0x7f.1/`` to
   ``127.0.0.1``.
2. Link-local addresses (169.254.0.0/16, fe80::/10: where cloud metadata services answer) and the
   metadata addresses 100.100.100.200 and fd00:ec2::254: never, even when listed.
3. Loopback, private, shared, reserved and unspecified addresses: only when an address or range entry
   holds them. A host name never grants one: ``localhost`` also needs ``127.0.0.1``.
4. Anything else: only when an entry names the host (or, for an address URL, holds the address).

A skill with no entry may reach nothing. The host of an Airflow HTTP connection a step names
(``with: {conn_id: ...}``) was named by an admin: it is allowed, private addresses included; rule 2
still applies.

The check is made on the address the call connects to: the host is resolved once, every address is
judged, and the connection goes to an address that passed (TLS still checks the host's name), so a DNS
answer that changes between the check and the connection (DNS rebinding) cannot slip through.
Redirects are not followed, and no proxy from the environment is used. A refusal raises
:class:`EgressBlocked` (a ``FinalSkillError``: no retry mends it) and is recorded as an
``egress.blocked`` event in the current effect scope: the URL without its query or credentials, the
address, the reason. Never a body.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from baton.egress.address import (
    DEFAULT_PORTS,
    HTTP,
    LINK_LOCAL,
    MAX_ENTRY,
    METADATA,
    ROSTER_FILE,
    URL_LIMIT,
    Address,
    Entry,
    Network,
    Target,
    ip_of,
    never,
    parse_url,
    plain,
    safe_url,
    special,
)
from baton.errors import FinalSkillError

__all__ = [
    "DEFAULT_PORTS",
    "HTTP",
    "LINK_LOCAL",
    "MAX_ENTRY",
    "METADATA",
    "ROSTER_FILE",
    "URL_LIMIT",
    "Address",
    "EgressBlocked",
    "Entry",
    "Network",
    "Policy",
    "Refusal",
    "Target",
    "ip_of",
    "never",
    "parse_url",
    "plain",
    "resolve",
    "safe_url",
    "skill_policy",
    "special",
]

log = logging.getLogger(__name__)


class EgressBlocked(FinalSkillError):
    """An outbound call the egress policy refused: no retry can mend it, the roster must change."""


# --- entries -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    reason: str  # not_allowed | link_local | metadata | private_not_named | scheme | bad_url
    detail: str  # why, and the fix


class Policy:
    """The hosts, addresses and ranges one skill (or one browser) may reach.

    :param who: who is calling, for messages and events: ``skill http_post``.
    :param where: where to add an entry, for the fix: ``skills.http_post.allow in dags/agents.yaml``.
    :param unset: the fix when the policy has no entry at all (none was declared).
    :param ranges: whether ``where`` takes address ranges (a browser's allowlist does not).
    :param record: called with the payload of each refusal (an ``egress.blocked`` event), besides the log.
    """

    def __init__(
        self,
        allow: Iterable[str | Entry],
        *,
        who: str,
        where: str,
        unset: str = "",
        ranges: bool = True,
        record: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.entries = tuple(e if isinstance(e, Entry) else Entry.parse(e) for e in allow)
        self.who = who
        self.where = where
        self.unset = unset
        self.ranges = ranges
        self.record = record

    @property
    def allowed(self) -> list[str]:
        """The entries as declared (those an admin named through a connection are marked so)."""
        return [f"{e.text} (connection)" if e.admin else e.text for e in self.entries]

    def naming(self, host: str, port: int | None = None) -> Policy:
        """This policy, and ``host`` (an HTTP connection's host, named by an admin) on ``port``."""
        address = ip_of(host)
        text = f"{host}:{port}" if port else host
        entry = (
            Entry(text, network=ipaddress.ip_network(address), port=port, admin=True)
            if address is not None
            else Entry(text, name=host.lower().rstrip("."), port=port, admin=True)
        )
        return Policy(
            [*self.entries, entry],
            who=self.who,
            where=self.where,
            unset=self.unset,
            ranges=self.ranges,
            record=self.record,
        )

    # --- judging ---------------------------------------------------------------------------------

    def check_url(self, url: str, schemes: tuple[str, ...] = HTTP) -> Target:
        """``url`` parsed, if its scheme is one of ``schemes`` and its host may be reached (an address
        URL is judged whole; a host name's addresses are judged when it is resolved); else
        :class:`EgressBlocked`, recorded."""
        target, refusal = self.refusal(url, schemes)
        if refusal is None and target is not None:
            return target
        shown = target.shown if target is not None else "(not a URL)"
        host = target.host if target is not None else ""
        address = (
            "" if target is None or refusal.reason in ("bad_url", "scheme") else str(target.address or "")
        )
        raise self.block(shown, host, address, refusal)

    def refusal(self, url: str, schemes: tuple[str, ...] = HTTP) -> tuple[Target | None, Refusal | None]:
        """``url`` parsed, and why it is refused before any host name is resolved (None: the call may go on
        to resolve it): what :meth:`check_url` judges, asked without recording, so that ``baton validate``
        reports a template's literal URL that every run would be refused."""
        target = parse_url(url)
        if target is None or not target.host:
            shown = target.shown if target is not None else "(not a URL)"
            return target, Refusal("bad_url", f"{shown} is not a URL with a host")
        if target.scheme not in schemes:
            return target, Refusal(
                "scheme", f"only {'/'.join(schemes)} URLs may be reached, not '{target.scheme}:'"
            )
        address = target.address
        if address is not None:
            return target, self.judge(target.host, target.port, address)
        return target, self.judge_name(target.host, target.port, shown=target.display)

    def judge_name(self, host: str, port: int | None, *, shown: str = "") -> Refusal | None:
        """Before resolving: whether an entry names the host name ``host`` on ``port`` at all
        (``shown``: the host as the URL writes it, for the message)."""
        host = host.lower().rstrip(".")
        if any(e.names(host, port) for e in self.entries):
            return None
        return self._not_allowed(shown or with_port(host, port))

    def judge(self, host: str, port: int | None, address: Address) -> Refusal | None:
        """Whether a connection to ``address`` (which ``host`` resolved to, or ``host`` itself) on
        ``port`` may be made; None if it may."""
        host = host.lower().rstrip(".")
        kind = never(address)
        if kind == "metadata":
            return Refusal(kind, f"{address} is a cloud metadata address: never allowed, even when listed")
        if kind == "link_local":
            return Refusal(
                kind,
                f"{address} is a link-local address (where cloud metadata services answer): never allowed, "
                "even when listed",
            )
        if not self.entries:
            return self._not_allowed(host)
        literal = ip_of(host) is not None
        named = [] if literal else [e for e in self.entries if e.names(host, port)]
        held = any(e.holds(plain(address), port) for e in self.entries)
        if not literal and not named:
            return self._not_allowed(with_port(host, port))
        kind = special(address)
        if held or (kind is None and not literal) or any(e.admin for e in named):
            return None
        if kind is None:
            return self._not_allowed(with_port(str(address), port))
        what = (
            f"{address} is a {kind} address" if literal else f"{host} resolves to {address}, a {kind} address"
        )
        never_grants = "" if literal else " (a host name never grants one)"
        return Refusal(
            "private_not_named",
            f"{what}, which {self.who}'s allowlist does not name{never_grants}; add '{address}'"
            f"{' (or a range holding it)' if self.ranges else ''} to {self.where}",
        )

    def _not_allowed(self, host: str) -> Refusal:
        if not self.entries and self.unset:
            return Refusal(
                "not_allowed", f"{self.who} has no egress allowlist, so it may reach nothing; {self.unset}"
            )
        bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return Refusal(
            "not_allowed",
            f"{host} is not on {self.who}'s allowlist ({', '.join(self.allowed) or 'empty'}); add "
            f"'{bare.strip('[]')}' to {self.where}",
        )

    def block(self, shown: str, host: str, address: str, refusal: Refusal) -> EgressBlocked:
        """The error of a refused call, after recording it (an ``egress.blocked`` event in the current
        effect scope; a warning in the log)."""
        shown, host = shown[:URL_LIMIT], host[:URL_LIMIT]
        message = f"{self.who}: egress to {shown} blocked: {refusal.detail}"
        payload = {
            "who": self.who,
            "url": shown,
            "host": host,
            "address": address,
            "reason": refusal.reason,
            "allowed": self.allowed,
        }
        log.warning("Egress blocked: %s", message)
        if self.record is not None:
            self.record(payload)
        return EgressBlocked(message)

    # --- resolving and connecting ----------------------------------------------------------------

    def addresses(self, host: str, port: int, *, url: str = "") -> list[str]:
        """The addresses of ``host`` a connection on ``port`` may go to, in the resolver's order; an
        :class:`EgressBlocked` (recorded) when none may. ``host`` is resolved once: connect to these
        addresses, never to the name again. ``url`` (as shown) names the call in a refusal."""
        host = host.strip("[]").lower().rstrip(".")
        shown = url or with_port(host, port)
        address = ip_of(host)
        if address is None:
            refusal = self.judge_name(host, port)
            if refusal is not None:
                raise self.block(shown, host, "", refusal)
        found = [address] if address is not None else resolve(host, port)
        judged = [(a, self.judge(host, port, a)) for a in found]
        passed = [str(a) for a, refusal in judged if refusal is None]
        if passed:
            return passed
        first, refusal = next((a, r) for a, r in judged if r is not None)  # every address was refused
        raise self.block(shown, host, str(first), refusal)


def skill_policy(
    skill: str,
    allow: Iterable[str],
    *,
    unset: str = "",
    record: Callable[[dict[str, Any]], None] | None = None,
) -> Policy:
    """The policy of the roster's ``skills.<skill>.allow``: the one a running skill is held to
    (``hooks.http.for_skill``) and the one ``baton validate`` asks of a template's literal URLs."""
    return Policy(
        allow,
        who=f"skill {skill}",
        where=f"skills.{skill}.allow in dags/{ROSTER_FILE}",
        unset=unset or f"add `{skill}: {{allow: [<hosts>]}}` under `skills:` in dags/{ROSTER_FILE}",
        record=record,
    )


def resolve(host: str, port: int | None) -> list[Address]:
    """The addresses ``host`` resolves to, in the resolver's order (``OSError`` when it does not)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


def with_port(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host
