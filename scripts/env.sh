# Baton's Airflow settings for this checkout; sourced by the run and test commands (scripts/*.sh).
# Source it yourself to use the `airflow` and `baton` commands against the same Airflow:
#   source scripts/env.sh
BATON_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BATON_ROOT
export PATH="$BATON_ROOT/.venv/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$BATON_ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$BATON_ROOT/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="$BATON_ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# Bundled workflows run on their schedules as soon as Airflow is up (daily_operations at 09:00).
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-False}"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
# The two settings that dominate the latency of small workflows on this kind of machine (see
# shared ARCHITECTURE.md): the scheduler's idle sleep and the task heartbeat interval.
export AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME=0.1
export AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL=1
# LocalExecutor workers start from a forkserver that has loaded what every task process needs
# (include/baton/preload.py: plugins, the agent runtime, Baton): tasks skip ~1.5 s of imports.
export AIRFLOW__SCHEDULER__MP_START_METHOD="${AIRFLOW__SCHEDULER__MP_START_METHOD:-forkserver}"
export AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD="${AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD:-baton.preload}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
# Task processes report to the Execution API of the same api-server, on whatever port it has.
export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://localhost:$AIRFLOW__API__PORT}"  # links in alerts
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$AIRFLOW__API__PORT/execution/"
# Embedded defaults: Baton's own store on SQLite next to Airflow's; no LLM connection, so agents
# answer with the offline model; no Slack connection, so alerts are only logged.
export AIRFLOW_CONN_BATON_STORE="${AIRFLOW_CONN_BATON_STORE:-sqlite:///$AIRFLOW_HOME/baton_store.db}"
# The demo business database the bundled sensors watch (leads, revenue, payments): `baton demo db`.
export AIRFLOW_CONN_BATON_BUSINESS="${AIRFLOW_CONN_BATON_BUSINESS:-sqlite:///$AIRFLOW_HOME/baton_business.db}"
