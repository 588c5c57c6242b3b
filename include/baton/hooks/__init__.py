"""Connections to what Baton talks to outside its own store: models, business databases, Airflow's runs."""
