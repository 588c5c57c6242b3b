"""The ids of the tasks Baton adds to a workflow's DAG beside its steps. The DAG's build reads them while
Airflow parses the DAG file, so they live apart from the runtime that records these tasks' events (the
saga, the rollout), which parsing does not load."""

SAGA_TASK = "_compensate"  # a step id cannot start with "_": no clash with the template's steps
VERSION_TASK = "baton_version"  # picks each run's version of a workflow that rolls out its next one
EVAL_STEP = "baton_eval"  # the step of a workflow's evaluation.completed events (`baton eval --record`)
