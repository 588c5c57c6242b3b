"""The reports the CLI and the pages read from the event store: the failures' patterns (``errors.py``:
``baton errors``, ``GET /baton/api/errors``), where each step's experiment stands (``experiments.py``:
``baton experiments``, the Management page) and where each rollout stands (``rollouts.py``:
``baton rollout``, ``GET /baton/api/rollouts``)."""
