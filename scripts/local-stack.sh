#!/usr/bin/env bash
# Bring the local tradeops stack up or down: Kafka broker, project database + paper venue, and
# Airflow's scheduler, dag-processor, triggerer and api-server (LocalExecutor, SQLite) with this
# repository's dags/ and plugins/, run by our supervisor (`tradeops stack supervise`), which
# restarts a component that dies. Called by `make run` / `make stop` / `make status`; everything
# lives under .local/ (the supervisor's state and one log per component in $AIRFLOW_HOME/stack/).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
export PATH="$VENV/bin:$PATH"
export TRADEOPS_STATE_DIR="${TRADEOPS_STATE_DIR:-$ROOT/.local}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$TRADEOPS_STATE_DIR/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES="False"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-10}"
export AIRFLOW__API__HOST="127.0.0.1"
export AIRFLOW__API__PORT="${TRADEOPS_AIRFLOW_PORT:-8080}"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:${AIRFLOW__API__PORT}"
# Latency settings of the kill switch (measured in docs/benchmarks.md; the same in k8s/).
source "$ROOT/scripts/airflow-latency.env"
# What `airflow standalone` forced, which the stack relies on: a local executor, the simple auth
# manager (its generated admin password is what `make run` prints).
export AIRFLOW__CORE__EXECUTOR="LocalExecutor"
export AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# Two logins (passwords generated on first start): a change of the trading state back to ACTIVE
# or REDUCING is approved by another user than the one who asked (trading_state.distinct_approver).
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin,approver:admin}"
STACK_DIR="$AIRFLOW_HOME/stack"
# An `airflow standalone` started by an older version of this script.
LEGACY_PID_FILE="$AIRFLOW_HOME/standalone.pid"
UI_URL="http://127.0.0.1:${AIRFLOW__API__PORT}"

legacy_standalone_running() {
  [[ -f "$LEGACY_PID_FILE" ]] && kill -0 "$(cat "$LEGACY_PID_FILE")" 2>/dev/null
}

print_access() {
  local password_file="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
  echo
  echo "Airflow UI:  $UI_URL"
  if [[ -f "$password_file" ]]; then
    echo "Login:       $(python -c 'import json,sys; d=json.load(open(sys.argv[1])); print(*(f"{u} / {p}" for u, p in d.items()), sep=",  ")' "$password_file")"
    echo "             (generated on first start; kept in $password_file)"
  fi
  echo "Kafka:       $(python -c 'from tradeops.kafka.broker import bootstrap_servers; print(bootstrap_servers())')"
  echo "Logs:        $STACK_DIR/<component>.log (scheduler, dag-processor, triggerer, api-server, news-feed);"
  echo "             restarts in $STACK_DIR/supervisor.log"
  echo "Status:      make status       Stop with: make stop"
}

start_airflow() {
  airflow db migrate >>"$AIRFLOW_HOME/migrate.log" 2>&1
  airflow pools set emergency 16 "emergency stop-loss: never queued behind other work" >/dev/null
  mkdir -p "$STACK_DIR"
  # The agents read headlines from Kafka unless news.source (config/agents.yaml) names another
  # source: then no paper feed runs. A change of news.source takes a `make stop` first.
  local extra=() what="scheduler, dag-processor, triggerer, api-server"
  if [[ "$(tradeops news source)" == "kafka" ]]; then
    extra+=(--also "news-feed=tradeops news feed")
    what+=", news-feed"
  fi
  echo "starting Airflow ($what) under the tradeops supervisor"
  setsid nohup tradeops stack supervise "${extra[@]}" >>"$STACK_DIR/supervisor.log" 2>&1 </dev/null &
}

up() {
  mkdir -p "$AIRFLOW_HOME"
  if legacy_standalone_running; then
    echo "an 'airflow standalone' started by an older 'make run' still runs (pid $(cat "$LEGACY_PID_FILE")):" \
      "run 'make stop' first" >&2
    return 1
  fi
  tradeops config check >/dev/null
  tradeops kafka up
  tradeops init
  # The Kafka watchers' connections (one consumer group each); Airflow reads AIRFLOW_CONN_*.
  eval "$(tradeops kafka connections --format env)"
  # A running supervisor starts again what it left DEAD; exit 3: none runs, start one.
  local rc=0
  tradeops stack revive || rc=$?
  if ((rc == 3)); then
    start_airflow
  elif ((rc != 0)); then
    return "$rc"
  fi
  tradeops stack wait --url "$UI_URL/api/v2/monitor/health" --timeout 300
  print_access
}

stop_legacy_standalone() {
  local pid
  pid="$(cat "$LEGACY_PID_FILE")"
  echo "stopping airflow standalone (pid $pid) started by an older 'make run'"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

down() {
  if legacy_standalone_running; then
    stop_legacy_standalone
  fi
  rm -f "$LEGACY_PID_FILE"
  tradeops stack stop --timeout 60
  tradeops kafka down
}

status() {
  # Exit code: the Airflow part's (1 something DEAD or stuck, 3 not running), else 1 if Kafka is not ready.
  local rc=0
  tradeops stack status || rc=$?
  echo "Airflow UI: $UI_URL"
  tradeops kafka status || { ((rc != 0)) || rc=1; }
  # The Kafka watchers (heartbeat, lag, broker up/down); a silent or disconnected one fails status.
  tradeops kafka watchers || { ((rc != 0)) || rc=1; }
  tradeops state show --history 0 || true
  return "$rc"
}

print_env() {
  # For `eval "$(scripts/local-stack.sh env)"`: point the airflow CLI at the local stack.
  local name
  for name in PATH TRADEOPS_STATE_DIR AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER AIRFLOW__CORE__PLUGINS_FOLDER \
    AIRFLOW__CORE__LOAD_EXAMPLES AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION AIRFLOW__CORE__EXECUTOR \
    AIRFLOW__CORE__AUTH_MANAGER AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS AIRFLOW__API__HOST AIRFLOW__API__PORT AIRFLOW__API__BASE_URL; do
    printf 'export %s=%q\n' "$name" "${!name}"
  done
  tradeops kafka connections --format env
}

case "${1:-}" in
  env) print_env ;;
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 64 ;;
esac
