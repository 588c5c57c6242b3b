"""Operating what runs, one package or module per job:

- ``monitor/`` — the ``baton_monitor`` DAG's minute: signals folded from the events, schedules watched,
  the detectors run, the incident book moved and recorded, the runbook's actions carried out, a person
  paged, the post-incident report;
- ``detectors/`` — is a signal anomalous now: one module per detector, pure functions of numpy arrays;
- ``incidents/`` — the incident state machine: anomalies in, transitions and runbook actions out, pure;
- ``capacity/`` — hourly demand, its forecast, and the concurrency that keeps queue wait under a target;
- ``dashboard/`` — the Coordination and Management pages' reads over the store's projections;
- ``reports/`` — error patterns, where experiments and rollouts stand;
- ``verify.py`` — ``baton verify``: the event store reconciled with Airflow's record of the same runs;
- ``airflow_api.py`` — Airflow's REST API, as the monitor's actions and the pages' actions call it;
- what ``dags/monitoring.yaml`` declares (the signals' detectors, the incidents' rules, the runbooks) is
  read by the template language's loader: :mod:`baton.spec.monitoring`.
"""
