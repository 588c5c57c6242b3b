"""Baton's own skills (``baton.skills``: http_post) are registered by the modules above the registry that
read templates or run skills, never by the registry itself, which sits below every skill and imports none:
the import graph shows both, and a fresh process shows what a lookup finds before and after."""

from __future__ import annotations

import subprocess
import sys

import grimp
import pytest

# Where each process that reads templates or runs a skill starts: the DAG file (the DAG processor and every
# task), the forkserver's preload, the API's template routes, replay --rerun, the skill runner, and each
# command of the CLI that reads templates, the roster or the registry.
ENTRIES = [
    "baton.dagfile",
    "baton.compile.loader",
    "baton.preload",
    "baton.plugin.templates_api",
    "baton.rerun",
    "baton.agents.skills",
    "baton.cli.validate",
    "baton.cli.skills",
    "baton.cli.admin",
    "baton.cli.templates",
]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("baton")


def test_the_registry_imports_no_skill(graph):
    assert not graph.chain_exists(importer="baton.registry", imported="baton.skills")
    assert graph.find_modules_directly_imported_by("baton.registry") <= {"baton.errors", "baton.extensions"}


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_entry_registers_batons_own_skills(graph, entry):
    assert graph.chain_exists(importer=entry, imported="baton.skills"), (
        f"{entry} reads templates or runs skills but does not import baton.skills: a template naming "
        "http_post would be refused there (fix: import baton.skills at its top)"
    )


def test_a_lookup_finds_http_post_once_an_entry_is_imported():
    code = (
        "import sys\n"
        "from baton.registry import skill_names\n"
        "print('http_post' in skill_names(), 'baton.skills' in sys.modules)\n"
        "import baton.compile.loader\n"
        "print('http_post' in skill_names())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["False False", "True"]
