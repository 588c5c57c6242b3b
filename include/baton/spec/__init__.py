"""The template language: pydantic models, loading with located errors, JSON Schema export."""

from baton.spec.loading import load_roster, load_workflow
from baton.spec.models import Step, Workflow
from baton.spec.roster import Agent, Roster

__all__ = ["Agent", "Roster", "Step", "Workflow", "load_roster", "load_workflow"]
