"""The compiler: load -> validate -> plan -> build, one DAG per workflow template."""

from baton.compile.loader import load_dags, load_template_errors
from baton.compile.plan import plan_workflow

__all__ = ["load_dags", "load_template_errors", "plan_workflow"]
