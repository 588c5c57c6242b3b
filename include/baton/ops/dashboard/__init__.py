"""The read side of the Coordination and Management pages: query functions over the event
store's dashboard projections (``baton.events.summaries``) and Baton's own tables, each answering a
JSON-ready dict from a few indexed reads (never the events of a window): ``runs.page`` (runs, newest
first, with their progress, running steps, ETA and the people they wait on), ``agents.board`` (each
agent's last hour, load, circuit and spend), ``gantt.chart`` (one run's tries, fan-out items and
markers, bounded) and ``analytics.report`` (a window's figures, hourly trend and suggestions)."""
