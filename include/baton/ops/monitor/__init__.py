"""The monitor: what the ``baton_monitor`` DAG does every minute, and what it recorded.

- ``loop.py`` — :func:`tick`, one minute: fold the events into signals, run the detectors, move the
  incident book, carry out the runbook's actions, tell Slack;
- ``signals.py`` — the events folded into per-minute buckets per scope (failure rate, latency, cost, ...),
  read back as the detectors' series;
- ``schedules.py`` — the ``runs_started`` signal: the runs each scheduled, unpaused workflow's cron said
  should start, and those that did;
- ``record.py`` — the incident book and the ``incident.*`` events in the store, a person's acknowledgement
  or stop, the incidents and one incident's timeline read back, the Slack messages;
- ``actions.py`` — the runbook's actions carried out once each (circuits, concurrency caps, pause, retry,
  a person paged);
- ``paging.py`` — a runbook's ``escalate`` step: a person asked on Airflow's Required Actions page, whose
  answer acknowledges the incident or stops its runbook;
- ``postmortem.py`` — the report of one incident: time to detect and to recover, what it affected;
- ``state.py`` — the monitor's small state documents in the store (the cursor, the book, the watches).

What it runs on, pure and usable alone: :mod:`baton.ops.detectors` (is a signal anomalous now) and
:mod:`baton.ops.incidents` (the incident state machine). Its configuration is ``dags/monitoring.yaml``.

The package imports none of its modules: the API server and ``baton incidents`` read the record without
loading the tick's detectors (scipy), and a DAG file names the tick only when a run ticks.
"""
