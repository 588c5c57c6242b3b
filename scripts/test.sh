#!/usr/bin/env bash
# README command 2 (`make test`): the same install, then ruff and the whole pytest suite
# (unit, DAG integrity, integration). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export AIRFLOW_HOME="$PWD/.airflow/test"
source scripts/env.sh
bash scripts/install.sh
rm -rf "$AIRFLOW_HOME" && mkdir -p "$AIRFLOW_HOME"

# The event-store tests need the PostgreSQL at 127.0.0.1:5432. Start it if it is down, and stop
# it again at the end, so that the machine is left as it was found.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  cluster=$(ls /etc/postgresql 2>/dev/null | head -n 1)
  if [ -n "$cluster" ] && pg_ctlcluster --skip-systemctl-redirect "$cluster" main start; then
    trap 'pg_ctlcluster --skip-systemctl-redirect "$cluster" main stop || true' EXIT
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  else
    echo "PostgreSQL is not running at 127.0.0.1:5432 and could not be started; its tests will fail." >&2
  fi
fi
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
