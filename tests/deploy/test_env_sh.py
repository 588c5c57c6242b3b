"""scripts/env.sh (issue 17): sourced again, it derives again what it derived (another AIRFLOW_HOME moves
the store and the business database with it, another port the API's URLs), and keeps what a user set."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import ROOT

ENV_SH = ROOT / "scripts" / "env.sh"
SHOWN = (
    "AIRFLOW_HOME",
    "AIRFLOW_CONN_BATON_STORE",
    "AIRFLOW_CONN_BATON_BUSINESS",
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW_CONN_BATON_LLM",
)


def _after(script: str, **env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_BATON_DERIVED", "BATON_"))}
    shown = " ".join(f'"{name}=${{{name}}}"' for name in SHOWN)
    done = subprocess.run(
        ["bash", "-c", f"set -u; {script}; printf '%s\\n' {shown}"],
        env={**clean, **env, "ENV_SH": str(ENV_SH)},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def test_sourcing_again_with_another_home_and_port_moves_what_it_derived():
    values = _after('source "$ENV_SH"; AIRFLOW_HOME=/srv/other AIRFLOW__API__PORT=9090; source "$ENV_SH"')
    assert values["AIRFLOW_HOME"] == "/srv/other"
    assert values["AIRFLOW_CONN_BATON_STORE"] == "sqlite:////srv/other/baton_store.db"
    assert values["AIRFLOW_CONN_BATON_BUSINESS"] == "sqlite:////srv/other/baton_business.db"
    assert values["AIRFLOW__API__BASE_URL"] == "http://localhost:9090"


def test_a_value_the_user_set_is_kept_before_and_after_sourcing():
    store = "postgresql://baton@db.internal/baton"
    values = _after(f'export AIRFLOW_CONN_BATON_STORE={store}; source "$ENV_SH"; source "$ENV_SH"')
    assert values["AIRFLOW_CONN_BATON_STORE"] == store
    again = _after(f'source "$ENV_SH"; export AIRFLOW_CONN_BATON_STORE={store}; source "$ENV_SH"')
    assert again["AIRFLOW_CONN_BATON_STORE"] == store
    assert again["AIRFLOW_HOME"] == str(ROOT / ".airflow")


def test_the_model_is_the_offline_one_by_name_unless_the_user_set_one():
    """`make run` chooses the offline model with a connection that names it; a real model of the user's wins,
    set before or after sourcing, and what the file derived is a connection Airflow reads as that choice."""
    from airflow.models.connection import Connection  # Airflow's own parser of AIRFLOW_CONN_* values

    from baton.hooks.llm import OFFLINE_CONNECTION

    derived = _after('source "$ENV_SH"; source "$ENV_SH"')["AIRFLOW_CONN_BATON_LLM"]
    assert derived == OFFLINE_CONNECTION
    parsed = Connection.from_json(derived, conn_id="baton_llm")
    assert (parsed.conn_type, parsed.extra_dejson) == ("pydanticai", {"model": "baton:offline"})
    real = '{"conn_type": "pydanticai", "password": "sk-x", "extra": {"model": "openai:gpt-5-mini"}}'
    before = _after(f'export AIRFLOW_CONN_BATON_LLM=\'{real}\'; source "$ENV_SH"; source "$ENV_SH"')
    after = _after(f'source "$ENV_SH"; export AIRFLOW_CONN_BATON_LLM=\'{real}\'; source "$ENV_SH"')
    assert (before["AIRFLOW_CONN_BATON_LLM"], after["AIRFLOW_CONN_BATON_LLM"]) == (real, real)
