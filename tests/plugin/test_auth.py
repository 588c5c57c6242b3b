"""Every page and route of Baton's app refuses a request without Airflow's authentication, and every action
refuses a viewer; the pages show a viewer no action."""

from __future__ import annotations

import re

import pytest

from baton.plugin.api import app

ROUTES = sorted(
    (method, route.path)
    for route in app.routes
    if hasattr(route, "methods") and not route.path.startswith(("/docs", "/openapi", "/redoc"))
    for method in route.methods - {"HEAD", "OPTIONS"}
)
# Every POST changes something but the editor's validation, which a viewer may use (tests/plugin/test_templates.py)
ACTIONS = [(m, p) for m, p in ROUTES if m == "POST" and p != "/api/templates/validate"]
EXAMPLES = {"dag_id": "lead_followup", "run_id": "r1", "step": "s", "agent": "a", "incident_id": "inc-000000000000",
            "verb": "ack", "page": "coordination", "name": "common.js", "workflow": "lead_followup"}  # fmt: skip


def _path(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: EXAMPLES.get(m.group(1), "x"), path)


def test_the_app_has_the_pages_and_the_routes_the_tests_cover():
    paths = {p for _, p in ROUTES}
    assert {"/ui/{page}", "/ui/static/{name}", "/ui/vendor/echarts.min.js", "/api/templates", "/api/templates/validate",
            "/api/actions/dags/{dag_id}/trigger", "/api/actions/dags/{dag_id}/runs/{run_id}/stop",
            "/api/actions/dags/{dag_id}/runs/{run_id}/steps/{step}/reassign", "/api/actions/agents/{agent}/circuit",
            "/api/rollouts"} <= paths  # fmt: skip
    assert len(ROUTES) >= 20


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_refuses_a_request_without_authentication(client, method, path):
    answer = client.request(method, _path(path), json={}, headers={"X-Baton-Action": "1"})
    assert answer.status_code == 401, (answer.status_code, answer.text[:300])
    assert answer.json()["detail"] == "Not authenticated"


@pytest.mark.parametrize(("method", "path"), ACTIONS, ids=[p for _, p in ACTIONS])
def test_a_viewer_cannot_act(client, as_role, method, path, airflow_db):
    answer = client.request(method, _path(path), json={}, **as_role("viewer"))
    assert answer.status_code == 403, (answer.status_code, answer.text[:300])
    assert answer.json()["detail"] == "Forbidden"


def test_a_viewer_sees_the_pages_without_their_actions_and_a_user_with_them(client, as_role):
    viewer = client.get("/ui/coordination", **as_role("viewer", action=False))
    assert viewer.status_code == 200 and 'data-may-act="false"' in viewer.text
    assert "a_viewer (viewer: read only)" in viewer.text
    user = client.get("/ui/management", **as_role("user", action=False))
    assert user.status_code == 200 and 'data-may-act="true"' in user.text
    assert user.headers["x-frame-options"] == "SAMEORIGIN" and user.headers["cache-control"] == "no-store"


def test_an_action_without_the_pages_header_is_refused_even_for_an_admin(client, tokens):
    cookie_only = {
        "Authorization": f"Bearer {tokens['admin']}"
    }  # what a cross-site form could send: no header
    answer = client.post("/api/actions/agents/a/circuit", json={"open": True}, headers=cookie_only)
    assert answer.status_code == 403
    assert answer.json()["detail"].startswith("an action needs the header X-Baton-Action: 1")
