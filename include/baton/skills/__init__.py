"""Baton's own skills: the generic ones (http_post). Importing this package registers them (see
:mod:`baton.registry`); the modules above the registry that read templates or run skills import it. A team's
skills, and the demo's business skills (demo.skills), are extensions (:mod:`baton.extensions`)."""

from baton.skills import http  # noqa: F401  (registers http_post)
