"""The compiler: load -> validate -> plan -> build, one DAG per workflow template (the DAG files use
:mod:`baton.compile.loader`; :mod:`baton.plan` is pure and imported by the runtime)."""
