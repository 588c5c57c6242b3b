"""Python skills: registered by name, named by templates and agents (see registry). Baton's own are the
generic ones (http_post); a team's, and the demo's business skills (demo.skills), are extensions
(:mod:`baton.extensions`)."""

import importlib
import pkgutil

from baton.registry import (
    Skill,
    SkillRequest,
    get_output_model,
    get_skill,
    output_model_names,
    skill_names,
)

__all__ = [
    "Skill",
    "SkillRequest",
    "get_output_model",
    "get_skill",
    "output_model_names",
    "skill_names",
]

# Importing a module of this package registers its skills: every module here, in name order.
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
