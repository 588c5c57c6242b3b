"""``baton eval``: a workflow's evaluation dataset (``evals/<workflow>.yaml``) run through its compiled steps,
each case a ``dag.test()`` of the version's DAG in a throwaway Airflow (:mod:`baton.evaluate.run`), scored
check by check and compared with the stable version's scores on the same cases (:mod:`baton.evaluate.score`).
"""
