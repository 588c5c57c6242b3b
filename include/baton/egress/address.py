"""Parsing what the egress policy judges: allowlist entries (hosts, wildcards, addresses, ranges, ports),
URLs as the WHATWG URL standard (Chromium) reads them (``ada-url``), and what an address is."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

HTTP = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
METADATA = frozenset(
    {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}
)  # Alibaba Cloud's metadata service; AWS's over IPv6 (169.254.169.254 is link-local)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_ENTRY = 260
URL_LIMIT = 2000  # characters of a refused URL kept in its message and event
ROSTER_FILE = "agents.yaml"

_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_NAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")  # the URL standard reads such a host as IPv4


_WRITE = (
    "write a host such as 'api.example.com' or '*.example.com', an address such as '127.0.0.1' or '::1', "
    "or a range such as '10.0.0.0/8' (no scheme, no path)"
)


@dataclass(frozen=True)
class Entry:
    """One allowlist entry: a host name (or ``*.suffix``), or an address or range; maybe a port."""

    text: str
    name: str = ""  # a host name, without the "*." of a wildcard
    wildcard: bool = False
    network: Network | None = None  # an address (a /32 or /128) or a range
    port: int | None = None
    admin: bool = False  # named by an admin (an HTTP connection's host): grants a private address too

    @classmethod
    def parse(cls, text: str) -> Entry:
        """The entry ``text``; a ``ValueError`` says what is wrong with it and what to write."""
        raw = str(text).strip().lower()
        if not raw or len(raw) > MAX_ENTRY:
            raise ValueError(f"is not a host (empty, or longer than {MAX_ENTRY} characters)")
        if "://" in raw:
            raise ValueError("is a URL; write only its host, such as 'api.example.com' (no scheme, no path)")
        host, port = _split_port(raw)
        if not host.isascii():  # an international name: matched in its ASCII form, as URLs carry it
            host = _ascii(host)
        if "/" in host and ip_of(host.split("/", 1)[0]) is None:
            raise ValueError(f"is not a host: {_WRITE}")
        if "/" in host:
            if port is not None:
                raise ValueError("is a range with a port; a range takes no port (write '10.0.0.0/8')")
            try:
                return cls(raw, network=ipaddress.ip_network(host))
            except ValueError as error:
                raise ValueError(
                    f"is not an address range ({error}); write one such as '10.0.0.0/8'"
                ) from None
        address = ip_of(host)
        if address is not None:
            return cls(raw, network=ipaddress.ip_network(address), port=port)
        if not _NAME.match(host):
            raise ValueError(f"is not a host name, an IP address or a range; {_WRITE}")
        if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
            raise ValueError("reads as an IP address in a short or hex form; write it dotted: '127.0.0.1'")
        wildcard = host.startswith("*.")
        return cls(raw, name=host[2:] if wildcard else host, wildcard=wildcard, port=port)

    def names(self, host: str, port: int | None) -> bool:
        """Whether this (name) entry names ``host``, a host name, on ``port`` (None: any port)."""
        if not self.name or not self._port_fits(port):
            return False
        return host.endswith("." + self.name) if self.wildcard else host == self.name

    def holds(self, address: Address, port: int | None) -> bool:
        """Whether this (address or range) entry holds ``address`` on ``port`` (None: any port)."""
        if self.network is None or not self._port_fits(port):
            return False
        return address.version == self.network.version and address in self.network

    def _port_fits(self, port: int | None) -> bool:
        return self.port is None or port is None or port == self.port

    @property
    def host(self) -> str:
        """The host part as Chromium's host rules write it (``*.example.com``, ``127.0.0.1``)."""
        if self.network is not None:
            return str(self.network.network_address) if _single(self.network) else str(self.network)
        return ("*." if self.wildcard else "") + self.name


def _split_port(raw: str) -> tuple[str, int | None]:
    if raw.startswith("["):
        host, bracket, rest = raw[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("is not an IPv6 address; write '::1' or '[::1]:8080'")
        return host, _port(rest[1:]) if rest else None
    if raw.count(":") == 1:
        host, _, port = raw.partition(":")
        return host, _port(port)
    return raw, None  # a bare IPv6 address (or range): no port


def _ascii(host: str) -> str:
    from ada_url import idna_to_ascii

    wildcard = host.startswith("*.")
    try:
        ascii_host = idna_to_ascii(host[2:] if wildcard else host)
    except Exception:  # ada raises on a name IDNA cannot map
        ascii_host = ""
    ascii_host = ascii_host.decode() if isinstance(ascii_host, bytes) else ascii_host
    if not ascii_host:
        raise ValueError(f"is not a host name, an IP address or a range; {_WRITE}")
    return ("*." if wildcard else "") + ascii_host


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError("has a port that is not a number from 1 to 65535")
    return int(text)


def _single(network: Network) -> bool:
    return network.num_addresses == 1


def ip_of(host: str) -> Address | None:
    """``host`` as an IP address (an IPv6 one with or without brackets), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


# --- addresses -----------------------------------------------------------------------------------


def _inner(address: Address) -> list[Address]:
    """``address`` and the IPv4 address an IPv6 one carries (mapped, NAT64, 6to4), if any."""
    found = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        elif address in NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        elif address.sixtofour is not None:
            found.append(address.sixtofour)
    return found


def never(address: Address) -> str | None:
    """``metadata`` or ``link_local`` for an address no allowlist can open, else None."""
    for inner in _inner(address):
        if inner in METADATA:
            return "metadata"
        if inner.is_link_local or any(inner in net for net in LINK_LOCAL if net.version == inner.version):
            return "link_local"
    return None


def special(address: Address) -> str | None:
    """What kind of non-public address ``address`` is (``loopback``, ``private``...), or None."""
    for inner in reversed(_inner(address)):  # the carried IPv4 address says more than its wrapper
        if inner.is_loopback:
            return "loopback"
        if inner.is_unspecified:
            return "unspecified"
        if inner.is_multicast:
            return "multicast"
        if inner.is_private:
            return "private"
        if inner.is_reserved:
            return "reserved"
        if not inner.is_global:
            return "non-public"
    return None


def plain(address: Address) -> Address:
    """An IPv4-mapped IPv6 address as the IPv4 address it is (what an entry such as ``127.0.0.1`` holds)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# --- URLs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A URL as the WHATWG URL standard (and Chromium) reads it."""

    scheme: str
    host: str  # ASCII, lower case; an IPv6 address without its brackets; "" for a URL without a host
    port: int | None  # the scheme's default when not written
    href: str  # the whole URL, normalised: what is sent
    shown: str  # scheme://host[:port]/path: never the query, the fragment or credentials
    display: str  # host[:port] as written (with brackets for IPv6); "" without a host

    @property
    def address(self) -> Address | None:
        return ip_of(self.host)


def parse_url(url: str) -> Target | None:
    """``url`` parsed by the WHATWG URL standard (``ada-url``), or None when it is not a URL."""
    from ada_url import parse_url as ada_parse

    try:
        parts = ada_parse(str(url), attributes=("href", "protocol", "host", "hostname", "port", "pathname"))
    except ValueError:
        return None
    scheme = parts["protocol"].removesuffix(":")
    host = parts["hostname"].removeprefix("[").removesuffix("]").rstrip(".")
    port = int(parts["port"]) if parts["port"] else DEFAULT_PORTS.get(scheme)
    shown = f"{scheme}://{parts['host']}{parts['pathname']}" if host else f"{scheme}:"
    return Target(scheme, host, port, parts["href"], shown, parts["host"] if host else "")


def safe_url(url: str) -> str:
    """Scheme, host (and a written port) and path of ``url``: never its query, fragment or credentials."""
    target = parse_url(url)
    return target.shown if target is not None else "(not a URL)"


# --- the policy ----------------------------------------------------------------------------------
