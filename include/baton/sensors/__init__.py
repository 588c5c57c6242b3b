"""Business-event triggers: SQL conditions polled in Airflow's triggerer, and their high-water marks."""
