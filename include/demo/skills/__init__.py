"""The demo workflows' business skills (leads, revenue, payments, invoices, content, hiring, supply, the
market, onboarding, engineering): an extension of Baton like a team's own skills, loaded by an Airflow
with ``BATON_EXTENSIONS=demo.skills`` (``make run`` and the tests set it). Importing a module registers
its skills; every module here, in name order."""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
