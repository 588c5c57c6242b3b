"""``baton pools sync``, ``baton db upgrade`` and ``clean``, ``baton alerts``: what an operator runs on a deployment."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import baton.skills  # noqa: F401  (registers Baton's own skills, which the roster may name)
from baton.alerts import cli as alerts_cli
from baton.cli.common import add_command, dags_folder
from baton.events.migrations import upgrade
from baton.events.store import EventStore
from baton.ops import retention_cli
from baton.spec.loading import load_roster


def add(commands: Any) -> None:
    pools = add_command(commands, "pools")
    pools.add_argument("action", choices=["sync"])
    pools.add_argument("--dags", type=Path, default=None)
    pools.set_defaults(run=lambda args: sync_pools(args.dags or dags_folder()))
    db = add_command(commands, "db").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", help="create or migrate the store").set_defaults(run=lambda args: db_upgrade())
    retention_cli.add(db)
    alerts = add_command(commands, "alerts")
    alerts.add_argument("--resend", action="store_true")
    alerts.set_defaults(run=_alerts)


def _alerts(args: argparse.Namespace) -> int:
    return alerts_cli(args.resend)


def sync_pools(dags: Path) -> int:
    """Create or resize one Airflow pool per roster agent (needs the Airflow metadata database)."""
    from airflow.models.pool import Pool

    for agent in load_roster(dags / "agents.yaml").agents:
        Pool.create_or_update_pool(
            agent.pool,
            agent.max_concurrency,
            f"Baton agent {agent.name}: at most {agent.max_concurrency} concurrent steps",
            include_deferred=False,
        )
        print(f"pool {agent.pool}: {agent.max_concurrency} slot(s)")
    return 0


def db_upgrade() -> int:
    """Create or migrate Baton's store (the Airflow connection baton_store)."""
    store = EventStore.from_airflow()
    applied = upgrade(store.engine)
    where = store.engine.url.render_as_string()
    print(f"{where}: " + ("applied " + "; ".join(applied) if applied else "up to date"))
    return 0
