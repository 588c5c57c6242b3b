# Baton's Airflow settings for this checkout; sourced by the run and test commands (scripts/*.sh).
# Source it yourself to use the `airflow` and `baton` commands against the same Airflow:
#   source scripts/env.sh
# A value you set yourself (before sourcing, or after) is kept. A value this file derived is derived
# again each time it is sourced, so that `AIRFLOW_HOME=/other source scripts/env.sh` (or another
# AIRFLOW__API__PORT) moves the store, the business database and the API URL along with it.
BATON_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BATON_ROOT
case ":$PATH:" in *":$BATON_ROOT/.venv/bin:"*) ;; *) export PATH="$BATON_ROOT/.venv/bin:$PATH" ;; esac

# derive NAME VALUE: set NAME to VALUE unless it holds a value this file did not derive (the user's).
derive() {
  local name=$1 value=$2 derived="_BATON_DERIVED_$1"
  if [ -z "${!name:-}" ] || [ "${!name}" = "${!derived:-}" ]; then
    export "$name=$value"
    export "$derived=$value"
  fi
}

derive AIRFLOW_HOME "$BATON_ROOT/.airflow"
derive AIRFLOW__CORE__DAGS_FOLDER "$BATON_ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# Bundled workflows run on their schedules as soon as Airflow is up (daily_operations at 09:00).
derive AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION False
derive AIRFLOW__CORE__PARALLELISM 4
# The two settings that dominate the latency of small workflows on this kind of machine (see
# shared ARCHITECTURE.md): the scheduler's idle sleep and the task heartbeat interval.
derive AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME 0.1
export AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL=1
# LocalExecutor workers start from a forkserver that has loaded what every task process needs
# (include/baton/preload.py: plugins, the agent runtime, Baton, and what tasks imported on first use:
# scipy.stats, the OpenAI client, the DAG bag): tasks skip ~1.5 s of imports, and a rollout step ~1.8 s more.
derive AIRFLOW__SCHEDULER__MP_START_METHOD forkserver
derive AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD baton.preload
derive AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS admin:admin,viewer:viewer  # a viewer sees Baton's pages, cannot act
derive AIRFLOW__API__PORT 8080
# Task processes report to the Execution API of the same api-server, on whatever port it has.
derive AIRFLOW__API__BASE_URL "http://localhost:$AIRFLOW__API__PORT"  # links in alerts
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$AIRFLOW__API__PORT/execution/"
# Embedded defaults: Baton's own store on SQLite next to Airflow's; no Slack connection, so alerts are only
# logged; and the model of every agent, baton_llm, is Baton's offline model, chosen by name (made-up answers,
# marked offline in every event and page). Set AIRFLOW_CONN_BATON_LLM yourself for a real model: yours is kept.
derive AIRFLOW_CONN_BATON_STORE "sqlite:///$AIRFLOW_HOME/baton_store.db"
derive AIRFLOW_CONN_BATON_LLM '{"conn_type": "pydanticai", "extra": {"model": "baton:offline"}}'
# The demo workflows' business skills are an extension of Baton (like a team's own skills): demo.skills.
derive BATON_EXTENSIONS demo.skills
# The demo business database the bundled sensors watch (leads, revenue, payments): `python -m demo.business`.
derive AIRFLOW_CONN_BATON_BUSINESS "sqlite:///$AIRFLOW_HOME/baton_business.db"
unset -f derive
