"""Budgets: spend that cannot run away.

``dags/budgets.yaml`` declares limits in money (the roster's prices) and in tokens, per run, per day or
per month, for the whole deployment, a workflow or an agent (:mod:`baton.spec.budgets`;
:mod:`baton.budgets.config` finds those in force for a task). Every model call reserves its estimate in
each budget that applies before it starts and settles its actual usage after it
(:mod:`baton.budgets.ledger`, in Baton's store: SQLite or PostgreSQL), so that concurrent calls — a
fan-out of 16, several workers, several runs — share one ledger (:mod:`baton.budgets.guard`).
"""
