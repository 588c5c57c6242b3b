"""The suite's warning policy (pyproject.toml, filterwarnings): a DeprecationWarning raised from Baton's own
code fails the test, one raised from a library's is shown."""

from __future__ import annotations

import warnings

import pytest

CALL = compile(
    "def call():\n    warnings.warn('old API', DeprecationWarning, stacklevel=1)\n", "<module>", "exec"
)


def _module(name: str) -> dict:
    """A module named ``name`` whose ``call()`` raises a DeprecationWarning from its own code."""
    namespace = {"__name__": name, "warnings": warnings}
    exec(CALL, namespace)
    return namespace


def test_a_deprecation_raised_from_batons_code_is_an_error():
    with pytest.raises(DeprecationWarning, match="^old API$"):
        _module("baton.example")["call"]()


def test_a_deprecation_raised_from_a_librarys_code_is_shown():
    with warnings.catch_warnings(record=True) as seen:  # the suite's filters, kept: its "default" action
        _module("airflow.example")["call"]()
    assert [(w.category, str(w.message)) for w in seen] == [(DeprecationWarning, "old API")]
