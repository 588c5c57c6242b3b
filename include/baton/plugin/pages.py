"""Baton's two pages inside Airflow's UI: Coordination and Management (``external_views`` of the plugin, in
the nav and on a DAG run's page, drawn in Airflow's frame). They are HTML and a script each, served here
behind Airflow's authentication (the session cookie Airflow's UI set: no second login, with the simple auth
manager or FAB's); their data comes from Baton's API routes, polled, at the address the page was served
under (``data-base``: ``/baton``, or ``/airflow/baton`` behind ``[api] base_url`` ``https://host/airflow``);
the charts are drawn by ECharts, the version the committed npm lock pins, which the wheel carries
(``_echarts``). When what is there is not what the lock pins, the pages refuse to load and say how to mend
it, rather than run stale code.
"""

from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path as Folder
from typing import Annotated

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import FileResponse, HTMLResponse

UI = Folder(__file__).resolve().parent / "ui"
STATIC = UI / "static"
PAGES = {"coordination": "Coordination", "management": "Management"}
# the pages' script and style, and the nav's icons (Airflow's line style, in its colour for each mode)
ASSETS = {"baton.css": "text/css", "common.js": "text/javascript", "coordination.js": "text/javascript",
          "management.js": "text/javascript", "coordination.svg": "image/svg+xml",
          "coordination-dark.svg": "image/svg+xml", "management.svg": "image/svg+xml",
          "management-dark.svg": "image/svg+xml"}  # fmt: skip
ReadRuns = Depends(requires_access_dag("GET", DagAccessEntity.RUN))
router = APIRouter(prefix="/ui", dependencies=[ReadRuns])


@cache
def _echarts() -> tuple[Folder | None, str]:
    """The ECharts file to serve, or None and why (missing; not the version the lock pins). An installed
    Baton carries it in its wheel (``ui/vendor``, copied from the lock at build time: setup.py, with the
    lock's record of it in ``vendor/echarts.json``); a source checkout without a build has npm's install
    (``ui/node_modules``)."""
    lock = json.loads((UI / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/echarts"]["version"]
    vendored = UI / "vendor" / "echarts.json"
    if vendored.is_file():
        have = json.loads(vendored.read_text()).get("echarts", {}).get("version")
        fix = "reinstall Baton: its wheel's ECharts is not the one its lock pins"
        script = UI / "vendor" / "echarts.min.js"
    else:
        installed = UI / "node_modules" / "echarts" / "package.json"
        fix = "run scripts/install.sh (it runs npm ci in include/baton/plugin/ui)"
        if not installed.is_file():
            return None, f"ECharts is not installed: {fix}"
        have = json.loads(installed.read_text()).get("version")
        script = UI / "node_modules" / "echarts" / "dist" / "echarts.min.js"
    if have != wanted:
        return None, f"ECharts {have} is installed but the lock pins {wanted}: {fix}"
    if not script.is_file():
        return None, f"ECharts {have} has no {script.name}: {fix}"
    return script, wanted


def _may_act(user: object, manager: object) -> bool:
    """Whether the user may change runs (trigger, stop, reassign, circuits), as Airflow's auth ``manager``
    says: the simple auth manager's viewer may not, its user, op and admin may; under FAB's, the Viewer role
    may not (it may only read DAG runs), User, Op and Admin may (they may edit DAG runs)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    return bool(
        manager.is_authorized_dag(
            method="PUT", access_entity=DagAccessEntity.RUN, details=DagDetails(id=None), user=user
        )
    )


def base_of(request: Request) -> str:
    """Where Baton's app is served, as the browser reaches it: its mount's path under Airflow's root path
    (``[api] base_url``'s path), e.g. ``/baton`` or ``/airflow/baton``; ``""`` for the app on its own."""
    return request.scope.get("root_path", "").rstrip("/")


@router.get("/{page}", response_class=HTMLResponse)
def page(
    page: Annotated[str, Path(pattern="^(coordination|management)$")], user: GetUserDep, request: Request
) -> HTMLResponse:
    """The page's HTML; its script polls the API under ``data-base``. ``data-may-act`` hides the actions
    from a viewer (the action routes refuse them anyway). Its own links are relative to the page."""
    from airflow.api_fastapi.app import get_auth_manager

    echarts, why = _echarts()
    if echarts is None:
        raise HTTPException(503, why)
    title, may_act = PAGES[page], _may_act(user, get_auth_manager())
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Baton · {title}</title>
<link rel="stylesheet" href="static/baton.css"></head>
<body data-page="{page}" data-base="{html.escape(base_of(request))}" data-user="{html.escape(user.get_name())}"
 data-may-act="{str(may_act).lower()}">
<header><h1>Baton · {title}</h1><nav><a href="coordination">Coordination</a> <a href="management">Management</a></nav>
<span class="who">{html.escape(user.get_name())}{"" if may_act else " (viewer: read only)"}</span></header>
<main id="main"></main>
<dialog id="confirm"><form method="dialog"><p id="confirm-text"></p>
<menu><button value="no">Cancel</button> <button value="yes" id="confirm-yes">Confirm</button></menu></form></dialog>
<script src="vendor/echarts.min.js?v={why}"></script>
<script src="static/common.js"></script><script src="static/{page}.js"></script>
</body></html>"""
    return HTMLResponse(body, headers={"Cache-Control": "no-store", "X-Frame-Options": "SAMEORIGIN"})


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    """The pages' own script and style (only these names)."""
    if name not in ASSETS:
        raise HTTPException(404, f"no asset '{name[:100]}'")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})


@router.get("/vendor/echarts.min.js")
def echarts() -> FileResponse:
    found, why = _echarts()
    if found is None:
        raise HTTPException(503, why)
    return FileResponse(found, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


__all__ = ["router"]
