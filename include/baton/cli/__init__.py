"""The ``baton`` command. Each command lives in a module of this package that adds its parser (``add``)
with the function that runs it; a new command is a new module in ``COMMANDS``."""

from __future__ import annotations

import argparse
import importlib
import sys

from baton.cli.templates import SCHEMA_DIR

COMMANDS = (
    "validate",
    "migrate",
    "templates",
    "skills",
    "admin",
    "runs",
    "approve",
    "verify",
    "incidents",
    "cost",
    "capacity",
    "feedback",
    "diff",
    "errors",
    "rollout",
    "experiments",
    "init",
)  # modules of baton.cli, in the order of --help

__all__ = ["COMMANDS", "SCHEMA_DIR", "main", "parser"]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="baton", description="AI-agent workflows on Airflow: " + ", ".join(COMMANDS)
    )
    commands = top.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"baton.cli.{name}").add(commands)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
