#!/usr/bin/env bash
# README command 1 (`make run`): Airflow with the bundled workflows on the embedded defaults —
# SQLite, the offline model, no keys — at http://localhost:8080. Ctrl-C stops all of it.
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$BATON_ROOT/scripts/install.sh"
mkdir -p "$AIRFLOW_HOME"
baton db upgrade
python -m demo.business >/dev/null
baton validate >/dev/null || echo "Some templates have errors: they show as import errors in the UI (run: baton validate)."

# `make run MODEL=local`: every agent of baton_llm answered by a real language model on this machine (Gemma 3
# 270M under llama.cpp: scripts/local_model.sh installs it; docs/plug-in.md) instead of the offline one.
model_pgid=""
case "${BATON_MODEL:-offline}" in
  offline) ;;
  local)
    bash "$BATON_ROOT/scripts/local_model.sh"
    model_port=${BATON_LOCAL_MODEL_PORT:-8089}
    setsid python -m baton.localmodel --port "$model_port" >"$AIRFLOW_HOME/local_model.log" 2>&1 &
    model_pgid=$!
    trap 'kill -TERM -- "-$model_pgid" 2>/dev/null || true' EXIT  # until Airflow's start sets the whole stop
    for wait_s in $(seq 1 121); do
      curl -sf "http://127.0.0.1:$model_port/health" >/dev/null 2>&1 && break
      kill -0 "$model_pgid" 2>/dev/null || { echo "The local model exited; see $AIRFLOW_HOME/local_model.log"; exit 1; }
      [ "$wait_s" -le 120 ] || { echo "The local model did not answer in 120 s; see $AIRFLOW_HOME/local_model.log"; exit 1; }
      sleep 1
    done
    # common-ai's OpenAI-compatible path (no key is checked: the password only fills the client's field)
    export AIRFLOW_CONN_BATON_LLM="{\"conn_type\": \"pydanticai\", \"host\": \"http://127.0.0.1:$model_port/v1\",
      \"password\": \"no-key\", \"extra\": {\"model\": \"openai-chat:gemma-3-270m\"}}"
    ;;
  *) echo "MODEL=${BATON_MODEL}: use MODEL=local for the local model, or leave it out for the offline one." >&2; exit 2 ;;
esac

# The demo web site the browser agents work on (CRM, billing and support-desk forms; market pages).
setsid python -m demo.web --port "${BATON_DEMO_WEB_PORT:-8765}" >"$AIRFLOW_HOME/demo_web.log" 2>&1 &
web_pgid=$!
# The demo partner API: hr_recruiting's job board, content_marketing's CMS and support_triage's helpdesk
# record what is posted. The helpdesk has a planned outage: 4 minutes of 503s, 4 minutes after its first
# ticket (support_triage runs every two minutes), so the monitor opens an incident and resolves it.
setsid python -m demo.http_service --port "${BATON_DEMO_PARTNER_PORT:-8766}" \
  --outage /helpdesk/tickets:240:240 >"$AIRFLOW_HOME/demo_partner.log" 2>&1 &
partner_pgid=$!
# airflow standalone in its own process group: stopping it means signalling the whole group.
setsid airflow standalone >"$AIRFLOW_HOME/standalone.log" 2>&1 &
pgid=$!
# support_triage has an evaluation dataset (dags/evals/): its rollout to version 2 and its "brief" arm get runs
# once each passed it against the template as written, recorded as a team's CI would (baton eval --record,
# docs/improving.md). Until then (a minute or two) its runs take version 1 as written.
setsid bash -c 'baton eval support_triage --version 2 --record && baton eval support_triage --variant triage:brief --record' \
  >"$AIRFLOW_HOME/evaluations.log" 2>&1 &
eval_pgid=$!
stop() {
  kill -TERM -- "-$pgid" "-$web_pgid" "-$partner_pgid" "-$eval_pgid" ${model_pgid:+"-$model_pgid"} 2>/dev/null || true
  wait "$pgid" "$web_pgid" "$partner_pgid" "$eval_pgid" ${model_pgid:+"$model_pgid"} 2>/dev/null || true
}
trap 'echo; echo "Stopping Airflow..."; stop; exit 0' INT TERM
trap stop EXIT

url="http://localhost:$AIRFLOW__API__PORT"
echo "Starting Airflow (log: $AIRFLOW_HOME/standalone.log)..."
# Alone it is up in 20-60 s; on a loaded two-core machine a start has taken minutes.
healthy=false wait_s=480
for _ in $(seq 1 "$wait_s"); do
  if curl -sf "$url/api/v2/monitor/health" >/dev/null 2>&1; then healthy=true; break; fi
  kill -0 "$pgid" 2>/dev/null || { echo "airflow standalone exited; see $AIRFLOW_HOME/standalone.log"; exit 1; }
  sleep 1
done
if [ "$healthy" != true ]; then
  echo "airflow standalone did not answer $url/api/v2/monitor/health within $wait_s s; see $AIRFLOW_HOME/standalone.log"
  exit 1
fi
baton pools sync >/dev/null
password=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['admin'])" \
  "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated")
cat <<MSG

  Baton is up: $url
  user: admin   password: $password
  demo site for the browser agents: http://127.0.0.1:${BATON_DEMO_WEB_PORT:-8765}/
  demo job board and CMS: board_url http://127.0.0.1:${BATON_DEMO_PARTNER_PORT:-8766}/board, cms_url http://127.0.0.1:${BATON_DEMO_PARTNER_PORT:-8766}/cms
  demo traffic: support_triage every 2 minutes (a variant, a rollout, budgets: the variant and the rollout
    start once their evaluations pass, log: $AIRFLOW_HOME/evaluations.log); its helpdesk goes down
    for 4 minutes, 4 minutes after its first ticket: the monitor opens an incident and resolves it.
  DAGs: $(cd "$BATON_ROOT/dags/workflows" && ls *.yaml | sed 's/\.yaml$//' | paste -sd' ')
  model of the agents: ${BATON_MODEL:-offline}$([ -n "$model_pgid" ] && echo " (Gemma 3 270M on http://127.0.0.1:$model_port/v1; log: $AIRFLOW_HOME/local_model.log)")
  Ctrl-C stops Airflow.

MSG
wait "$pgid"
