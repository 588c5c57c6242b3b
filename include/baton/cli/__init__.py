"""The ``baton`` command. Each command lives in a module of this package that adds its parser (``add``)
with the function that runs it, and imports what it runs on (the store, the monitor, the compiler) at its
top. ``baton X`` imports X's module only, and ``baton --help`` none: ``COMMANDS`` (in ``common``) names
every command, the module that adds it and its line of ``--help``. A new command is a module of this
package and its line in ``COMMANDS``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from baton.cli.common import COMMANDS

__all__ = ["COMMANDS", "main", "parser"]


def parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of ``baton`` for ``argv`` (default: this process's arguments): the command it names has
    its whole parser, from its module; every other command, its name and line of ``--help`` only (what
    ``baton --help`` and a misspelt command's list of choices show)."""
    argv = sys.argv[1:] if argv is None else argv
    named = next((word for word in argv if not word.startswith("-")), None)
    module_of = {name: module for name, (module, _) in COMMANDS.items()}
    top = argparse.ArgumentParser(
        prog="baton",
        description="AI-agent workflows on Airflow: " + ", ".join(dict.fromkeys(module_of.values())),
    )
    commands = top.add_subparsers(dest="command", required=True)
    for name, (module, help) in COMMANDS.items():
        if name in commands.choices:  # added by its module, with the command named
            continue
        if module == module_of.get(named):  # the named command's module adds all of its commands
            importlib.import_module(f"baton.cli.{module}").add(commands)
        else:
            commands.add_parser(name, help=help)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser(argv).parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
