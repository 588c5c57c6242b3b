"""The store fixtures (SQLite and PostgreSQL) are in tests/conftest.py, shared with tests/context."""
