"""Baton's API app in-process (FastAPI's TestClient), behind Airflow's real simple auth manager: JWTs it
signs for a viewer, a user and an admin; the event store of the test's own Airflow home."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import DAGS


@pytest.fixture(scope="session")
def auth(airflow_db):
    from airflow.api_fastapi.app import create_auth_manager

    manager = create_auth_manager()
    manager.init()
    return manager


@pytest.fixture(scope="session")
def tokens(auth) -> dict[str, str]:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return {role: auth.generate_jwt(SimpleAuthManagerUser(username=f"a_{role}", role=role))
            for role in ("viewer", "user", "admin")}  # fmt: skip


@pytest.fixture(scope="session")
def client(auth):
    from fastapi.testclient import TestClient

    from baton.plugin.api import app

    return TestClient(app)


@pytest.fixture
def as_role(client, tokens):
    """``as_role(role)``: request kwargs that authenticate as that role (by Airflow's session cookie, as the
    pages do in a browser)."""

    def headers(role: str, action: bool = True) -> dict:
        extra = {"X-Baton-Action": "1"} if action else {}
        return {"headers": {"Authorization": f"Bearer {tokens[role]}", **extra}}

    return headers


@pytest.fixture
def dags(tmp_path, monkeypatch) -> Path:
    """A copy of the bundled dags folder (with one broken template) as this Airflow's dags folder."""
    folder = tmp_path / "dags"
    shutil.copytree(DAGS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    text = (folder / "workflows" / "customer_onboarding.yaml").read_text()
    broken = text.replace("workflow: customer_onboarding", "workflow: broken_one").replace(
        "agent: ", "agent: nobody_", 1
    )
    assert "agent: nobody_" in broken
    (folder / "workflows" / "broken_one.yaml").write_text(broken)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    monkeypatch.setenv("BATON_SPEC_CACHE", "off")
    return folder
