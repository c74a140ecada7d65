#!/usr/bin/env bash
# Bring the local tradeops stack up or down: Kafka broker, project database + paper venue,
# and `airflow standalone` (LocalExecutor, SQLite) with this repository's dags/ and plugins/.
# Called by `make run` / `make stop` / `make status`; everything lives under .local/.
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
source "$ROOT/scripts/airflow-latency.env"
PID_FILE="$AIRFLOW_HOME/standalone.pid"
LOG_FILE="$AIRFLOW_HOME/standalone.log"
UI_URL="http://127.0.0.1:${AIRFLOW__API__PORT}"

airflow_running() {
  [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

wait_for_ui() {
  local deadline=$((SECONDS + ${1:-300}))
  until curl -fsS "$UI_URL/api/v2/monitor/health" >/dev/null 2>&1; do
    if ! airflow_running; then
      echo "airflow standalone exited; last lines of $LOG_FILE:" >&2
      tail -n 40 "$LOG_FILE" >&2 || true
      return 1
    fi
    if ((SECONDS > deadline)); then
      echo "Airflow UI not ready after ${1:-300}s; see $LOG_FILE" >&2
      return 1
    fi
    sleep 2
  done
}

print_access() {
  local password_file="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
  echo
  echo "Airflow UI:  $UI_URL"
  if [[ -f "$password_file" ]]; then
    echo "Login:       $(python -c 'import json,sys; d=json.load(open(sys.argv[1])); print(*(f"{u} / {p}" for u, p in d.items()))' "$password_file")"
    echo "             (generated on first start; kept in $password_file)"
  fi
  echo "Kafka:       $(python -c 'from tradeops.kafka.broker import bootstrap_servers; print(bootstrap_servers())')"
  echo "Stop with:   make stop"
}

up() {
  mkdir -p "$AIRFLOW_HOME"
  tradeops config check >/dev/null
  tradeops kafka up
  tradeops init
  # The Kafka watchers' connections (one consumer group each); Airflow reads AIRFLOW_CONN_*.
  eval "$(tradeops kafka connections --format env)"
  if airflow_running; then
    echo "airflow standalone already running (pid $(cat "$PID_FILE"))"
  else
    airflow db migrate >>"$AIRFLOW_HOME/migrate.log" 2>&1
    airflow pools set emergency 16 "emergency stop-loss: never queued behind other work" >/dev/null
    echo "starting airflow standalone (log: $LOG_FILE)"
    setsid nohup airflow standalone >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
  fi
  wait_for_ui 300
  print_access
}

down() {
  if airflow_running; then
    local pid
    pid="$(cat "$PID_FILE")"
    echo "stopping airflow standalone (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
  else
    echo "airflow standalone is not running"
  fi
  rm -f "$PID_FILE"
  tradeops kafka down
}

status() {
  if airflow_running; then
    echo "airflow standalone: running (pid $(cat "$PID_FILE")) at $UI_URL"
  else
    echo "airflow standalone: stopped"
  fi
  tradeops kafka status || true
  tradeops state show --history 0 || true
}

print_env() {
  # For `eval "$(scripts/local-stack.sh env)"`: point the airflow CLI at the local stack.
  local name
  for name in PATH TRADEOPS_STATE_DIR AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER AIRFLOW__CORE__PLUGINS_FOLDER \
    AIRFLOW__CORE__LOAD_EXAMPLES AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION AIRFLOW__API__HOST \
    AIRFLOW__API__PORT AIRFLOW__API__BASE_URL; do
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
