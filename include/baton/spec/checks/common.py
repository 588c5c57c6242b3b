"""What the checks share: the template file rule, the shape of a finding, and the hint that lists known
names."""

from __future__ import annotations

import difflib

TEMPLATE_SUFFIXES = (".yaml", ".yml")  # in any case: a file named .YAML is a template too
Found = tuple[tuple[str | int, ...], str, str]  # (key path, message, fix)


REGISTER_SKILL = "register it with @skill in an extension module (BATON_EXTENSIONS)"
SHOWN_NAMES = 60  # names listed in a "known: ..." hint; a larger list is cut, saying how many more


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    shown = ", ".join(known[:SHOWN_NAMES]) + (
        f", ... ({len(known) - SHOWN_NAMES} more)" if len(known) > SHOWN_NAMES else ""
    )
    return f"{hint}known: {shown if known else '(none)'}"
