"""Statistical cores of learned routing and variant experiments, pure and JSON-serialisable.

- ``reward``: what one agent call delivered (``Outcome``) as one number in [0, 1], weighted by the step's
  ``prefer``, with latency and cost measured against the candidates' recent medians (``Scale``).
- ``bandit``: Thompson sampling with change detection (``change``) over the agents the caller says are
  available now; its state is a projection of the outcomes (rebuilt one outcome at a time, stored as
  JSON), and each choice comes with the posterior it was drawn from, for the ``agent.selected`` event.
- ``experiments``: sticky assignment of a key to a variant, and an anytime-valid sequential test that
  promotes a winner or stops a loser on a guardrail, with its reasons.

This package imports numpy, scipy and ``baton.errors`` only: nothing else of Baton, so that it can be
moved or wired in without changes.
"""
