"""Baton: AI-agent workflows declared in YAML and run as Apache Airflow 3 DAGs."""
