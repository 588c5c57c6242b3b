"""``baton init [FOLDER]``: make an Airflow dags folder Baton's, with the one DAG file it needs, a roster
and an example workflow that validates.

It writes three files and nothing else: ``baton_dags.py`` (every DAG Baton makes of the folder:
``baton.dagfile``), ``agents.yaml`` (two LLM agents behind the ``baton_llm`` connection) and
``workflows/hello_baton.yaml`` (a routed step and a named one). It refuses, writing nothing, when any of
them exists already, when the folder already loads Baton's DAGs from another file, when the folder is not
a folder or cannot be written, or when a path to write is a link; each file is created exclusively
(``O_EXCL``), so two ``baton init`` at once write each file once or stop.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from baton.cli.common import add_command, dags_folder
from baton.compile.shards import dag_files_matching

DAG_FILE = "baton_dags.py"
ROSTER_FILE = "agents.yaml"
EXAMPLE_FILE = "workflows/hello_baton.yaml"

DAG_TEXT = '''"""Airflow DAG file of Baton, written by `baton init`: every DAG Baton makes of this folder.

One DAG per healthy template in workflows/*.yaml (agents from agents.yaml), Baton's monitor and its
incident escalation. A broken template shows as the DAG baton_template_errors, whose task fails with
every error (file, line, key path, fix); `baton validate` prints the same. Leave this file as it is:
what it loads comes from the installed Baton, so an upgrade of Baton needs no change here.
"""

from baton.dagfile import load

globals().update(load(__file__))
'''

ROSTER_TEXT = """\
# Baton's agent roster: every agent a workflow step may name or be routed to (see the docs: "Agents").
# An LLM agent answers through an Airflow connection of type pydanticai (llm_conn_id). Until you create
# one, its steps fail and say how. To answer with Baton's offline model (made-up data that fits the
# step's output schema, for trying things out), create the connection with {"model": "baton:offline"}:
#   airflow connections add baton_llm --conn-type pydanticai --conn-extra '{"model": "baton:offline"}'
# and for a real model, e.g. {"model": "openai:gpt-5-mini"} with the key as the password.
agents:
  - name: assistant
    description: A general assistant that answers in the step's output schema.
    capabilities: [writing, summarising]
    llm_conn_id: baton_llm
    system_prompt: >-
      You are a careful assistant. Answer exactly in the requested structure.
    max_concurrency: 2

  - name: analyst
    description: Summarises and weighs sources; says how sure it is.
    capabilities: [summarising, analysis]
    llm_conn_id: baton_llm
    system_prompt: >-
      You are an analyst. Summarise precisely and rate your confidence from 0 to 1.
    max_concurrency: 2
"""

EXAMPLE_TEXT = """\
# An example workflow: a step routed to whichever agent can summarise (assistant or analyst, chosen
# by their record), then a step of a named agent; each answer is checked against its output schema.
# `baton validate` checks every template of this folder; Airflow shows it as the DAG hello_baton.
workflow: hello_baton
version: 1
description: Summarise a topic in one sentence, with a confidence, and give it a headline.
owner: platform
category: examples
inputs:
  topic:
    type: string
    default: Apache Airflow
    description: What to summarise.
defaults:
  retries: 1
  retry_delay: 30s
  execution_timeout: 10m
steps:
  - id: summarise
    route: {capabilities: [summarising], prefer: reliable}
    instruction: Summarise {{ inputs.topic }} in one sentence.
    output:
      summary: string
      confidence: {type: number, minimum: 0, maximum: 1}
  - id: headline
    agent: assistant
    needs: [summarise]
    instruction: "Write a headline for this summary: {{ steps.summarise.summary }}"
    output:
      headline: string
"""

FILES = {DAG_FILE: DAG_TEXT, ROSTER_FILE: ROSTER_TEXT, EXAMPLE_FILE: EXAMPLE_TEXT}


class InitError(Exception):
    """``baton init`` cannot write the folder: what and how to fix it."""


def add(commands: Any) -> None:
    init = add_command(commands, "init")
    init.add_argument(
        "folder",
        nargs="?",
        type=Path,
        default=None,
        help="default: Airflow's dags folder ([core] dags_folder)",
    )
    init.set_defaults(run=lambda args: run(args.folder or dags_folder()))


def _check(folder: Path) -> None:
    """Refuse before writing anything: the folder must be a writable folder (made if missing, with its
    parents), and none of the files may exist, as a file, a folder or a link (a dangling one included)."""
    if folder.exists() and not folder.is_dir():
        raise InitError(f"{folder} is not a folder (fix: name an Airflow dags folder)")
    found = [name for name in FILES if os.path.lexists(folder / name)]
    if found:
        raise InitError(
            f"{folder} already has {', '.join(found)}: baton init writes nothing over an existing file "
            "(fix: remove or rename them, or run it on an empty dags folder)"
        )
    earlier = _batons_dag_files(folder)
    if earlier:
        raise InitError(
            f"{folder} already loads Baton's DAGs from {', '.join(earlier)}: a second DAG file would define "
            "the same DAGs again (fix: keep it, or replace it by removing it and running baton init again)"
        )
    workflows = folder / "workflows"
    if workflows.is_symlink() or (workflows.exists() and not workflows.is_dir()):
        raise InitError(f"{workflows} is not a folder of this dags folder (fix: remove or rename it)")


_LOADS_BATON = re.compile(rb"baton\.dagfile|baton\.compile\.loader")


def _batons_dag_files(folder: Path) -> list[str]:
    """The DAG files of the folder that load Baton's DAGs already: an earlier ``baton init``'s, or those that
    version 0.1's instructions had copied in (``baton_workflows.py``, ``baton_monitor.py``, ...)."""
    if not folder.is_dir():
        return []
    return dag_files_matching(folder, _LOADS_BATON, head=20_000)


def _write(path: Path, text: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def init(folder: Path) -> list[Path]:
    """Write the three files into ``folder``; the paths written. Raises InitError, having written nothing,
    when it cannot write them all."""
    _check(folder)
    try:
        (folder / "workflows").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InitError(
            f"cannot create {folder / 'workflows'}: {error.strerror} (fix: check its permissions)"
        ) from None
    if not os.access(folder, os.W_OK) or not os.access(folder / "workflows", os.W_OK):
        raise InitError(f"{folder} is not writable (fix: check its permissions, or name another folder)")
    written: list[Path] = []
    try:
        for name, text in FILES.items():
            _write(folder / name, text)
            written.append(folder / name)
    except OSError as error:
        for path in written:  # all or nothing: what this call wrote goes again
            path.unlink(missing_ok=True)
        what = "another baton init wrote it first" if isinstance(error, FileExistsError) else error.strerror
        raise InitError(
            f"cannot write {error.filename}: {what} (fix: run baton init once, on an empty folder)"
        ) from None
    return written


def run(folder: Path) -> int:
    try:
        written = init(folder)
    except InitError as error:
        print(f"baton init: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(
        f"Next: `baton validate` (with AIRFLOW__CORE__DAGS_FOLDER={folder}), and a connection baton_llm "
        "for the agent (see agents.yaml)."
    )
    return 0
