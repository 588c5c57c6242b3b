"""The ``baton`` command's list of commands: ``baton X`` imports X's module only (each command module imports
what it runs on at its top), ``baton --help`` none, and the list says what each module adds."""

import argparse
import importlib
import json
import re
import subprocess
import sys

import pytest

from baton.cli import COMMANDS, parser

LOADED = """
import contextlib, io, json, sys
from baton.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main(sys.argv[1:])
    except SystemExit as done:
        code = done.code
print(json.dumps({"code": code, "out": out.getvalue(),
                  "modules": sorted(m for m in sys.modules if m.startswith("baton.cli."))}))
"""


def _baton(*argv: str) -> dict:
    done = subprocess.run([sys.executable, "-c", LOADED, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_help_lists_every_command_and_imports_no_command_module():
    found = _baton("--help")
    assert found["code"] == 0
    assert found["modules"] == ["baton.cli.common"]
    listed = re.findall(r"^ {4}([a-z]+)  ", found["out"], re.M)  # a command, then its help
    assert listed == list(COMMANDS)
    assert "    db                  create or migrate Baton's store" in found["out"]
    assert "AI-agent workflows on Airflow: validate, migrate, templates, skills, admin, runs" in " ".join(
        found["out"].split()
    )


@pytest.mark.parametrize(("argv", "module"), [(["diff", "--help"], "diff"), (["db", "--help"], "admin")])
def test_a_command_imports_its_own_module_only(argv, module):
    found = _baton(*argv)
    assert found["code"] == 0
    assert found["modules"] == sorted(["baton.cli.common", f"baton.cli.{module}"])
    assert found["out"].startswith(f"usage: baton {argv[0]} [-h]")


@pytest.mark.parametrize("module", sorted({module for module, _ in COMMANDS.values()}))
def test_each_module_adds_the_commands_listed_for_it_in_their_order(module):
    commands = argparse.ArgumentParser(prog="baton").add_subparsers(dest="command")
    importlib.import_module(f"baton.cli.{module}").add(commands)
    assert list(commands.choices) == [name for name, (of, _) in COMMANDS.items() if of == module]
    # each with its line of --help from the list
    assert [a.help for a in commands._choices_actions] == [COMMANDS[name][1] for name in commands.choices]


def test_a_command_of_a_module_with_several_keeps_its_siblings_whole():
    """``baton db`` loads admin, which adds pools and alerts too: each is added once, in the list's order."""
    top = parser(["db", "upgrade"])
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    assert list(commands.choices) == list(COMMANDS)
    assert top.parse_args(["db", "upgrade"]).action == "upgrade"
    assert top.parse_args(["alerts", "--resend"]).resend is True  # admin's other commands are whole


def test_a_misspelt_command_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as done:
        parser(["valdate"]).parse_args(["valdate"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "argument command: invalid choice: 'valdate' (choose from 'validate', 'migrate', 'schema'" in err
