"""Baton's pages and API behind ``[api] base_url`` with a path (``https://host/airflow``): mounted as Airflow's
API server mounts a plugin's app (``/baton`` under the root path ``/airflow``), with Airflow's real simple auth
manager; the views' hrefs resolve under the path as Airflow's UI resolves them; and who may act under FAB's
auth manager, by the permissions of FAB's own default roles. The same behind a real Airflow with FAB's auth
manager, in Chromium: tests/integration/test_pages_behind_path.py."""

from __future__ import annotations

import importlib.metadata
import re
from urllib.parse import urljoin, urlsplit

import pytest
from starlette.requests import Request

from baton.plugin.api import app as baton_app


def _views() -> list[dict]:
    """The plugin's ``external_views``, from the class Airflow loads through the package's entry point."""
    (entry,) = [e for e in importlib.metadata.entry_points(group="airflow.plugins") if e.name == "baton"]
    return entry.load().external_views


VIEWS = _views()


def _served_at(root_path: str):
    """A client of an API server like Airflow's: its app's root path is base_url's path, Baton's app mounted at
    /baton (airflow.api_fastapi.app.create_app and init_plugins)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    outer = FastAPI(root_path=root_path)
    outer.mount("/baton", baton_app)
    return TestClient(outer)


@pytest.fixture(scope="module")
def behind_path(auth):
    return _served_at("/airflow")


@pytest.mark.parametrize(("root", "base"), [("/airflow", "/airflow/baton"), ("", "/baton"),
                                            ("/a/b/c", "/a/b/c/baton")])  # fmt: skip
def test_a_page_says_where_the_api_is_as_the_browser_reaches_it(auth, as_role, root, base):
    page = _served_at(root).get(f"{root}/baton/ui/coordination", **as_role("viewer", action=False))
    assert page.status_code == 200, page.text[:300]
    assert f'data-base="{base}"' in page.text


def test_every_asset_and_link_of_a_page_resolves_under_the_path_and_answers(behind_path, as_role):
    """What the browser asks for after the page: each src/href of its HTML, resolved against the page's address
    as the browser resolves it, is under /airflow/baton/ and answers 200."""
    url = "http://testserver/airflow/baton/ui/management"
    page = behind_path.get(url, **as_role("viewer", action=False))
    assert page.status_code == 200
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(refs) == 6, refs  # the style, two links, ECharts, common.js and the page's script
    for ref in refs:
        path = urlsplit(urljoin(url, ref)).path
        assert path.startswith("/airflow/baton/ui/"), ref
        assert behind_path.get(path, **as_role("viewer", action=False)).status_code == 200, ref


def test_the_api_answers_under_the_path_and_refuses_without_authentication(behind_path, as_role):
    assert behind_path.get("/airflow/baton/api/runs", **as_role("viewer", action=False)).status_code == 200
    # behind a path, a mounted app answers only there (Starlette keeps the path whole when it is not under it)
    assert behind_path.get("/baton/api/runs", **as_role("viewer", action=False)).status_code == 404
    refused = behind_path.get("/airflow/baton/api/runs")
    assert refused.status_code == 401 and refused.json()["detail"] == "Not authenticated"
    viewer = behind_path.post("/airflow/baton/api/actions/agents/a/circuit", json={"open": True},
                              **as_role("viewer"))  # fmt: skip
    assert viewer.status_code == 403 and viewer.json()["detail"] == "Forbidden"


def test_a_root_path_with_markup_is_escaped_in_the_page(auth, as_role):
    root = '/x"><script>alert(1)</script>'
    page = _served_at(root).get(f"{root}/baton/ui/coordination", **as_role("viewer", action=False))
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert 'data-base="/x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;/baton"' in page.text


@pytest.mark.parametrize("base", ["http://localhost:8080/", "https://host/airflow/", "https://host/a/b/"])
def test_the_views_hrefs_resolve_under_airflows_base_url(base):
    """Airflow's UI sets its frame's src to the href as given (airflow/ui: the external view's iframe) and its
    page has <base href> at base_url's path: a relative href is Baton's app under that path."""
    path = urlsplit(base).path
    for view in VIEWS:
        assert not view["href"].startswith(("/", "http")), view
        resolved = urlsplit(urljoin(base, view["href"]))
        assert (
            resolved.path.startswith(f"{path}baton/ui/coordination")
            or resolved.path == f"{path}baton/ui/management"
        )
    run_tab = urljoin(base, VIEWS[2]["href"].replace("{DAG_ID}", "d").replace("{RUN_ID}", "r"))
    assert run_tab == f"{base}baton/ui/coordination?dag_id=d&run_id=r&only=run"
    for view in VIEWS[:2]:  # the nav's icons: Baton's app under the same path, one per mode
        for key in ("icon", "icon_dark_mode"):
            assert urlsplit(urljoin(base, view[key])).path.startswith(f"{path}baton/ui/static/"), view


def test_an_action_calls_airflows_api_under_its_root_path():
    """The stop, trigger and retry-now actions call Airflow's REST API at the address the request came to,
    under Airflow's root path: a proxy that routes only /airflow/ to Airflow would not reach /api/v2."""
    from baton.plugin.actions import _airflow

    scope = {"type": "http", "scheme": "https", "method": "POST", "path": "/airflow/baton/api/actions/x",
             "root_path": "/airflow/baton", "app_root_path": "/airflow", "query_string": b"",
             "headers": [(b"host", b"host.example:8443"), (b"authorization", b"Bearer t")]}  # fmt: skip
    assert _airflow(Request(scope)).url == "https://host.example:8443/airflow"
    at_root = {**scope, "path": "/baton/api/actions/x", "root_path": "/baton", "app_root_path": ""}
    assert _airflow(Request(at_root)).url == "https://host.example:8443"


@pytest.mark.parametrize(
    ("role", "acts"), [("Public", False), ("Viewer", False), ("User", True), ("Op", True), ("Admin", True)]
)
def test_under_fabs_auth_manager_only_the_roles_that_may_edit_dag_runs_act(role, acts):
    """FAB's default roles with the permissions FAB gives them: a Viewer reads DAG runs (the pages) but may
    not act; User, Op and Admin may (they may create and edit DAG runs: trigger them)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager
    from airflow.providers.fab.auth_manager.models import User
    from airflow.providers.fab.auth_manager.security_manager.override import (
        FabAirflowSecurityManagerOverride as Fab,
    )

    from baton.plugin.pages import _may_act

    perms = {config["role"]: config["perms"] for config in Fab.ROLE_CONFIGS}
    user = User()
    user._perms = set(perms.get(role, []))
    manager = FabAuthManager()
    assert _may_act(user, manager) is acts
    reads = manager.is_authorized_dag(method="GET", access_entity=DagAccessEntity.RUN, user=user)
    assert reads is (role != "Public")  # the pages' own requirement: every role but Public sees them
    triggers = manager.is_authorized_dag(
        method="POST",
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id="lead_qualification"),
        user=user,
    )
    assert triggers is acts  # the trigger action's requirement agrees with the page's
