#!/usr/bin/env bash
# README command 2 (`make test`): the same install, then ruff and the whole pytest suite
# (unit, DAG integrity, integration). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export AIRFLOW_HOME="$PWD/.airflow/test"
source scripts/env.sh
bash scripts/install.sh
# The local model's tests answer with the real model (tests/test_localmodel.py): built once (about 6 minutes on
# two cores, then cached in ~/.cache/baton), as `make run MODEL=local` installs it.
bash scripts/local_model.sh
rm -rf "$AIRFLOW_HOME" && mkdir -p "$AIRFLOW_HOME"

# The event-store and Celery tests need the PostgreSQL at 127.0.0.1:5432 and the Redis at 6379.
# Start each one that is down, and stop it again at the end, so that the machine is left as it was found.
stops=()
stop_started() { for stop in "${stops[@]}"; do eval "$stop" || true; done; }
trap stop_started EXIT
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  cluster=$(ls /etc/postgresql 2>/dev/null | head -n 1)
  if [ -n "$cluster" ] && pg_ctlcluster --skip-systemctl-redirect "$cluster" main start; then
    stops+=("pg_ctlcluster --skip-systemctl-redirect $cluster main stop")
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  else
    echo "PostgreSQL is not running at 127.0.0.1:5432 and could not be started; its tests will fail." >&2
  fi
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  if command -v redis-server >/dev/null && redis-server --daemonize yes --bind 127.0.0.1 --port 6379 \
    --save "" --appendonly no --logfile "$AIRFLOW_HOME/redis.log"; then
    stops+=("redis-cli -p 6379 shutdown nosave >/dev/null 2>&1")
  else
    echo "Redis is not running at 127.0.0.1:6379 and could not be started; its tests will fail." >&2
  fi
fi
ruff check .
ruff format --check .
set +e
# Three worker processes on the machine's two cores: much of a test process's time is waiting (on an
# Airflow's scheduler, a model server, the monitor's minutes), and a third process fills those waits. The
# suite is bound by CPU: a fourth worker only shares the same cores, and with two the monitor test's waiting
# is not filled (the runs: docs/architecture.md, "The test suite: what was measured"). Each test file runs
# whole on one of them
# (its module fixtures run once) and the files that share one Airflow on the one that started it
# (tests/conftest.py makes xdist's scheduler), the longest files first (SLOW_FIRST there: xdist would
# otherwise start the files with most tests first and leave the few long ones for the end);
# BATON_TEST_WORKERS=0 runs everything in this process. The 25 slowest tests are listed at the end: where
# the time goes when the suite grows.
# scripts/cost.py prints, last, what the suite cost: the CPU-seconds of every process it started (the Airflows,
# browsers and model servers of the tests included) beside the wall time. Compare that, not the wall time: the
# clock of a shared machine drifts (the same commit took 482 s and 545 s an hour apart).
python scripts/cost.py pytest -n "${BATON_TEST_WORKERS:-3}" --dist loadfile --no-loadscope-reorder --durations=25 --cpu-costs=25 "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here." >&2
  exit 1
fi
exit "$status"
