"""Baton's Airflow plugin: the listener that records run and step events, and the events read API."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from baton.plugin import listener


class _ReadApi:
    """The FastAPI app, imported only by the API server (task processes never load FastAPI)."""

    def __get__(self, instance: object, owner: type) -> list[dict]:
        from baton.plugin.api import app

        return [{"app": app, "url_prefix": "/baton", "name": "Baton events"}]


class BatonPlugin(AirflowPlugin):
    name = "baton"
    listeners = [listener]
    fastapi_apps = _ReadApi()
