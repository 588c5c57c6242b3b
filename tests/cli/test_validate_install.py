"""What ``baton validate`` can tell about an installation before a run fails: an LLM agent whose model
connection is not defined (its steps would fail: no offline model answers in its place), and a copy of
Baton's plugin in Airflow's plugins folder (which Airflow would load instead of the installed package's)."""

from __future__ import annotations

import pytest

from baton.cli import main
from baton.cli.init import init
from tests.conftest import ROOT


@pytest.fixture
def folder(tmp_path, monkeypatch):
    init(tmp_path / "dags")
    (tmp_path / "plugins").mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    monkeypatch.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(tmp_path / "plugins"))
    return tmp_path


def _warnings(capsys) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if ": warning: " in line]


def test_an_undefined_model_connection_is_a_warning_naming_the_agent_and_the_fix(folder, monkeypatch, capsys):
    monkeypatch.delenv("AIRFLOW_CONN_BATON_LLM", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_OTHER_LLM", '{"conn_type": "pydanticai", "extra": {"model": "baton:offline"}}'
    )
    assert main(["validate"]) == 0  # a warning: the connection may be defined where the tasks run
    roster = folder / "dags" / "agents.yaml"
    fix = (
        "(fix: create it, e.g. `airflow connections add baton_llm --conn-type pydanticai --conn-extra "
        """'{"model": "openai:gpt-5-mini"}'`, or with {"model": "baton:offline"} for Baton's offline model)"""
    )
    assert _warnings(capsys) == [
        f"{roster}: agents[{i}].llm_conn_id: warning: connection 'baton_llm' of agent '{name}' is not defined "
        f"here, so its steps will fail {fix}"
        for i, name in enumerate(["assistant", "analyst"])
    ]


def test_a_defined_model_connection_is_no_warning(folder, monkeypatch, capsys):
    monkeypatch.setenv(
        "AIRFLOW_CONN_BATON_LLM", '{"conn_type": "pydanticai", "extra": {"model": "baton:offline"}}'
    )
    assert main(["validate"]) == 0
    assert _warnings(capsys) == []


def test_a_copy_of_batons_plugin_in_the_plugins_folder_is_a_warning(folder, monkeypatch, capsys):
    monkeypatch.setenv(
        "AIRFLOW_CONN_BATON_LLM", '{"conn_type": "pydanticai", "extra": {"model": "baton:offline"}}'
    )
    copy = folder / "plugins" / "baton_plugin.py"
    copy.write_text((ROOT / "include" / "baton" / "plugin" / "entry.py").read_text())  # as 0.1 had it copied
    (folder / "plugins" / "teams_plugin.py").write_text("from airflow.plugins_manager import AirflowPlugin\n")
    (folder / "plugins" / "huge.py").write_bytes(b"#" * 5_000_000)  # read only as far as it must
    assert main(["validate"]) == 0
    assert _warnings(capsys) == [
        f"{copy}: warning: a copy of Baton's plugin; Airflow loads it instead of the installed package's, whose "
        "pages and API may have changed since (fix: delete it: installing Baton registers the plugin)"
    ]


def test_a_plugins_folder_that_does_not_exist_is_no_warning(folder, monkeypatch, capsys):
    monkeypatch.setenv(
        "AIRFLOW_CONN_BATON_LLM", '{"conn_type": "pydanticai", "extra": {"model": "baton:offline"}}'
    )
    monkeypatch.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(folder / "missing"))
    assert main(["validate"]) == 0
    assert _warnings(capsys) == []
