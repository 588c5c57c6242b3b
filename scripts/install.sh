#!/usr/bin/env bash
# Creates .venv and installs the pinned lock (requirements.txt) with uv, then Baton itself
# (editable). Re-runs only when the lock or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(command -v python3.11 || command -v python3)
stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet "$(grep -E '^uv==' requirements.txt)"
fi
# Bytecode is compiled at install time: every Airflow process (and each task process) then loads
# .pyc files instead of compiling sources, even where PYTHONDONTWRITEBYTECODE is set.
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
   || [ scripts/install.sh -nt "$stamp" ]; then
  .venv/bin/uv pip sync --quiet --compile-bytecode --python .venv/bin/python requirements.txt
  .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python --no-deps -e .
  touch "$stamp"
fi
