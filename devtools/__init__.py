"""Baton's development tools: not part of the installed package (tests, benchmarks and scripts import
them from the repository): a running Airflow, the Celery topology, fault injection, benchmark skills."""
