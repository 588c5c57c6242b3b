"""``baton skills``: what templates may name — every registered skill, output model and evaluator, and the
module each comes from (Baton's own, the demo's, a team's extensions), with the extensions that failed to load."""

from __future__ import annotations

import sys
from typing import Any

import baton.skills  # noqa: F401  (registers Baton's own skills, which this command lists)
from baton.cli.common import add_command
from baton.extensions import load, named
from baton.registry import evaluators, output_models, skills


def add(commands: Any) -> None:
    listing = add_command(commands, "skills")
    listing.set_defaults(run=lambda args: list_skills())


def list_skills() -> int:
    """Print the registered skills and output models; 1 when an extension module failed to import."""
    failed = load()
    loaded = [module for module, _ in named() if module not in {error.module for error in failed}]
    print(
        f"extensions: {', '.join(loaded) or 'none'} (BATON_EXTENSIONS and the baton.extensions entry points)"
    )
    for error in failed:
        print(f"  {error}", file=sys.stderr)
    found = skills()
    width = max((len(s.name) for s in found), default=0)
    print(f"\nskills ({len(found)}):")
    for entry in found:
        print(f"  {entry.name:<{width}}  {entry.func.__module__:<28} {entry.description}")
    models = output_models()
    print(f"\noutput models ({len(models)}):")
    for model in models:
        print(f"  {model.__name__:<{width}}  {model.__module__}")
    checks = evaluators()
    print(f"\nevaluators ({len(checks)}):")
    for entry in checks:
        print(f"  {entry.name:<{width}}  {entry.func.__module__:<28} {entry.description}")
    return 1 if failed else 0
