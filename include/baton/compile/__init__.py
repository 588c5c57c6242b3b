"""The compiler: load -> validate -> plan -> build, one DAG per workflow template."""

from baton.compile.loader import load_dags
from baton.compile.plan import plan_workflow

__all__ = ["load_dags", "plan_workflow"]
