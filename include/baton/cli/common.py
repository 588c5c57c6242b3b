"""What the commands share: the list of commands (each with the module of this package that adds it and its
line in ``baton --help``) and the dags folder they read."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

# Every command of ``baton``, in the order of ``--help``: the module of baton.cli that adds its parser, and
# its line in ``--help``. A module's commands are listed together, in the order its ``add`` adds them.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "check templates; list every error; exit 1 on any"),
    "migrate": ("migrate", "rewrite templates' deprecated forms to today's language, in place"),
    "schema": ("templates", "write the JSON Schemas generated from the models"),
    "show": ("templates", "print the compiled plan of a workflow"),
    "skills": ("skills", "the skills and output models templates may name, and from where"),
    "pools": ("admin", "create one Airflow pool per agent of the roster"),
    "db": ("admin", "create or migrate Baton's store"),
    "alerts": ("admin", "alerts that did not reach Slack; --resend tries them again"),
    "replay": ("runs", "a run's timeline and state, rebuilt from its events"),
    "runs": ("runs", "recent runs, newest first"),
    "compensate": ("runs", "undo a past run's completed steps, newest first (the saga, on purpose)"),
    "approve": ("approve", "answer what a step asks a person (approval, escalation)"),
    "verify": ("verify", "reconcile the event store with Airflow's record; repair what is safe, report the rest"),
    "incidents": ("incidents", "the monitor's incidents, newest first"),
    "incident": ("incidents", "one incident: its timeline, actions and messages"),
    "monitor": ("incidents", "the monitor by hand (the baton_monitor DAG runs it every minute)"),
    "cost": ("cost", "model spend by workflow, agent, model or day; budgets against their limits"),
    "capacity": ("capacity", "forecast each agent's calls from history; the concurrency that keeps queue wait low"),
    "feedback": ("feedback", "record a score (0 bad .. 1 good) for a step of a run: learned routing learns it"),
    "diff": ("diff", "the change impact between two versions of a template; exit 1 when it breaks callers"),
    "errors": ("errors", "failures grouped by message, step and agent; what changed"),
    "rollout": ("rollout", "where each version rollout stands (share, guardrails)"),
    "experiments": ("experiments", "each step's variants: arms, outcomes, decision; settle one"),
    "init": ("init", "write the DAG file, a roster and an example workflow into an Airflow dags folder"),
    "eval": ("evaluate", "run a workflow's evaluation dataset; compare a new version with the stable one"),
    "shard": ("shard", "split the templates over N DAG files, each parsed well within Airflow's import timeout"),
}  # fmt: skip


def add_command(commands: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """The parser of the command ``name`` among ``commands`` (argparse's subparsers), with its line of
    ``--help`` from ``COMMANDS``."""
    return commands.add_parser(name, help=COMMANDS[name][1], **kwargs)


def dags_folder() -> Path:
    """The dags folder of this Airflow (AIRFLOW__CORE__DAGS_FOLDER), or ./dags."""
    return Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or "dags")
