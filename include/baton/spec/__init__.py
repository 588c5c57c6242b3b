"""The template language: pydantic models, loading with located errors, JSON Schema export, and the
language's version with its deprecations (forms of earlier versions, translated with a warning)."""

from baton.spec.deprecations import DEPRECATIONS, LANGUAGE_VERSION, BatonDeprecationWarning
from baton.spec.loading import load_roster, load_workflow, read_roster, read_workflow
from baton.spec.models import Step, Workflow
from baton.spec.roster import Agent, Roster

__all__ = [
    "DEPRECATIONS",
    "LANGUAGE_VERSION",
    "Agent",
    "BatonDeprecationWarning",
    "Roster",
    "Step",
    "Workflow",
    "load_roster",
    "load_workflow",
    "read_roster",
    "read_workflow",
]
