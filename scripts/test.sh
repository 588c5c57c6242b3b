#!/usr/bin/env bash
# README command 2 (`make test`): the same install, then ruff and the whole pytest suite
# (unit, DAG integrity, integration). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export AIRFLOW_HOME="$PWD/.airflow/test"
source scripts/env.sh
bash scripts/install.sh
rm -rf "$AIRFLOW_HOME" && mkdir -p "$AIRFLOW_HOME"
ruff check .
ruff format --check .
set +e
pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here." >&2
  exit 1
fi
exit "$status"
