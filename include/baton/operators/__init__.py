"""Baton's Airflow operators (light modules: their runtimes are imported inside ``execute``)."""

from baton.operators.agent import AgentOperator

__all__ = ["AgentOperator"]
