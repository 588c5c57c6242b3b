"""Baton's Airflow plugin: the listener that records run and step events, Baton's API, and its two pages in
Airflow's UI (Coordination and Management).

Airflow loads it from the package's entry point (``airflow.plugins`` in pyproject.toml): installing Baton is
enough, and nothing goes into Airflow's plugins folder."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from baton.compile.timetables import UniqueCronTrigger
from baton.plugin import listener
from baton.queue import BatonPriority


class _ReadApi:
    """The FastAPI app, imported only by the API server (task processes never load FastAPI)."""

    def __get__(self, instance: object, owner: type) -> list[dict]:
        from baton.plugin.api import app  # deferred: the API (FastAPI) loads on the API server only

        return [{"app": app, "url_prefix": "/baton", "name": "Baton events"}]


# The pages in Airflow's UI: two top-level items of the nav, and a tab of a DAG run's page (Airflow fills in
# its DAG id and run id; only=run: that run alone). Each is drawn in Airflow's frame from Baton's FastAPI app
# (baton.plugin.pages). The hrefs are relative: Airflow's UI sets its frame's src to the href as given, and its
# page has <base href="{[api] base_url's path}/">, so "baton/ui/..." is /baton/ui/... on an Airflow at the root
# and /airflow/baton/ui/... behind base_url https://host/airflow (an absolute "/baton/..." would leave the path).
# The nav's labels fit its 56 px column whole (Airflow 3.3 cuts "Coordination" to "Coordinati…"), so they are
# the verbs; the pages' own titles keep the nouns. Its icons are line icons, for each mode in a tone that reads
# on its panel and on its chosen item's fill.
VIEWS = [
    {"name": "Coordinate", "href": "baton/ui/coordination", "url_route": "baton-coordination",
     "destination": "nav", "nav_top_level": True, "icon": "baton/ui/static/coordination.svg",
     "icon_dark_mode": "baton/ui/static/coordination-dark.svg"},
    {"name": "Manage", "href": "baton/ui/management", "url_route": "baton-management",
     "destination": "nav", "nav_top_level": True, "icon": "baton/ui/static/management.svg",
     "icon_dark_mode": "baton/ui/static/management-dark.svg"},
    {"name": "Baton", "href": "baton/ui/coordination?dag_id={DAG_ID}&run_id={RUN_ID}&only=run",
     "url_route": "baton-run", "destination": "dag_run"},
]  # fmt: skip


class BatonPlugin(AirflowPlugin):
    name = "baton"
    listeners = [listener]
    fastapi_apps = _ReadApi()
    external_views = VIEWS
    # The weight rule of Baton's tasks: registered so that the scheduler can load the DAGs that name it.
    priority_weight_strategies = [BatonPriority]
    # The timetable of scheduled templates (unique run ids across DAGs): registered for the same reason.
    timetables = [UniqueCronTrigger]
