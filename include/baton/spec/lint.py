"""Warnings for ``baton validate``: what is valid but probably a mistake in the roster and templates.

- An allowlist entry (an agent's ``browser.allow``, a skill's ``skills.<name>.allow``) as broad as a
  public suffix: ``*.com``, ``*.co.uk``, ``*.github.io`` — anyone can register a name under it (the
  Public Suffix List, through ``publicsuffixlist``; its copy ships with the package, nothing is
  fetched). Or an address range wider than a /8 (IPv4) or a /32 (IPv6); or a link-local or cloud
  metadata address, which is never reached anyway.
- A ``skills:`` entry for a skill that is not registered (a typo leaves the skill meant without one).
- Text shaped like a credential in a template or the roster (``detect-secrets``, its default
  detectors but the public-IP one: an allowlist names addresses on purpose). Each file is scanned
  once, offline; the warning says the file, the line and the detector, never the text itself.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from baton.egress import LINK_LOCAL, METADATA, Entry
from baton.errors import Issue, TemplateError
from baton.registry import skill_names
from baton.spec.loading import Source

WIDEST = {4: 8, 6: 32}  # the widest range an allowlist may name without a warning, per IP version
SKIPPED_DETECTORS = ("IPPublicDetector",)
BROAD_FIX = "name the hosts themselves, or a wildcard under a domain you control such as '*.example.com'"
RANGE_FIX = "name the addresses, or the smallest range that holds them, such as '10.20.0.0/16'"
SECRET_FIX = (
    "keep secrets out of templates: put them in an Airflow connection or variable; if this is not a "
    "secret, end the line with the comment `# pragma: allowlist secret`"
)


def warnings(templates: list[Path], roster: Path | None = None, root: Path | None = None) -> list[Issue]:
    """The broad allowlist entries of ``roster``, and the credential-shaped text of ``templates`` and
    ``roster``; file names relative to ``root`` when under it."""
    found = allowlist_warnings(roster, root) if roster is not None and roster.exists() else []
    files = [*templates, *([roster] if roster is not None and roster.exists() else [])]
    return [*found, *credentials(files, root)]


# --- allowlist entries ---------------------------------------------------------------------------


def allowlist_warnings(roster: Path, root: Path | None = None) -> list[Issue]:
    """A warning per ``skills:`` entry of ``roster`` naming no skill, and per allowlist entry as broad as
    a public suffix or a very wide range, or never reached."""
    source = Source(roster, root)
    try:
        data = source.parse()
    except TemplateError:  # a roster that does not parse is reported as an error already
        return []
    found = list(_unknown_skills(source, data))
    for loc, text in _allow_entries(data):
        problem = doubtful(text)
        if problem is not None:
            message, fix = problem
            found.append(source.issue(loc, f"warning: {message}", fix))
    return found


def _allow_entries(data: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(key path, entry) of every allowlist entry of a roster's data, however malformed around them."""
    if not isinstance(data, dict):
        return
    agents = data.get("agents")
    for index, agent in enumerate(agents if isinstance(agents, list) else []):
        browser = agent.get("browser") if isinstance(agent, dict) else None
        allow = browser.get("allow") if isinstance(browser, dict) else None
        for number, text in enumerate(allow if isinstance(allow, list) else []):
            yield ("agents", index, "browser", "allow", number), text
    skills = data.get("skills")
    for name, access in (skills if isinstance(skills, dict) else {}).items():
        allow = access.get("allow") if isinstance(access, dict) else None
        for number, text in enumerate(allow if isinstance(allow, list) else []):
            yield ("skills", str(name), "allow", number), text


def _unknown_skills(source: Source, data: Any) -> Iterator[Issue]:
    """A ``skills:`` entry naming no registered skill allows nothing (and the skill meant has no entry)."""
    skills = data.get("skills") if isinstance(data, dict) else None
    known = skill_names()
    for name in skills if isinstance(skills, dict) else {}:
        if str(name) not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            yield source.issue(
                ("skills", str(name)),
                f"warning: no skill '{name}' is registered, so this entry allows nothing",
                f"{hint}name a registered skill: {', '.join(known)}",
            )


def doubtful(text: Any) -> tuple[str, str] | None:
    """(message, fix) if the allowlist entry ``text`` is as broad as a public suffix or a wide range, or
    is an address never reached; else None."""
    try:
        entry = Entry.parse(str(text))
    except ValueError:
        return None  # reported as an error
    if entry.network is not None:
        if _never(entry.network):
            return (
                f"'{entry.text}' is a link-local or cloud metadata address: it is never reached, even when "
                "listed",
                "remove it: a cloud metadata service is never reached on a template's behalf",
            )
        if entry.network.prefixlen < WIDEST[entry.network.version]:
            return (
                f"'{entry.text}' is a range wider than a /{WIDEST[entry.network.version]}: it holds private "
                "networks and much of the internet",
                RANGE_FIX,
            )
        return None
    if entry.wildcard and _suffixes().is_public(entry.name):
        return (
            f"'{entry.text}' allows every host under '{entry.name}', a public suffix: anyone can register "
            "a name there",
            BROAD_FIX,
        )
    return None


def _never(network: Any) -> bool:
    if network.num_addresses == 1 and network.network_address in METADATA:
        return True
    return any(network.version == near.version and network.subnet_of(near) for near in LINK_LOCAL)


@cache
def _suffixes() -> Any:
    """The Public Suffix List (ICANN and private sections) shipped with ``publicsuffixlist``; a name
    under no known suffix (``*.internal``) is not public."""
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList(accept_unknown=False)


# --- credentials ---------------------------------------------------------------------------------


def credentials(paths: list[Path], root: Path | None = None) -> list[Issue]:
    """A warning per line of ``paths`` that detect-secrets finds credential-shaped (its detector types
    named, the secret never)."""
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import transient_settings

    found = []
    with transient_settings({"plugins_used": [{"name": name} for name in _detectors()]}):
        for path in dict.fromkeys(paths):
            source = Source(path, root)
            lines: dict[int, list[str]] = {}
            for secret in scan_file(str(path)):
                kinds = lines.setdefault(secret.line_number, [])
                if secret.type not in kinds:
                    kinds.append(secret.type)
            found += [
                Issue(
                    source.name,
                    "",
                    f"warning: text shaped like a credential ({', '.join(kinds)}); it is not shown here",
                    SECRET_FIX,
                    line,
                )
                for line, kinds in sorted(lines.items())
            ]
    return found


@cache
def _detectors() -> tuple[str, ...]:
    """detect-secrets' default detectors (its plugins), without the public-IP one."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    names = (plugin.__name__ for plugin in get_mapping_from_secret_type_to_class().values())
    return tuple(sorted(name for name in names if name not in SKIPPED_DETECTORS))
