#!/usr/bin/env bash
# Deploy tradeops (Airflow 3.3 + the DAG suite) to Kubernetes with the kustomize overlays
# k8s/overlays/dev and k8s/overlays/prod. deploy.ps1 is the same script for PowerShell.
#
# The image is set WITHOUT editing the overlay and without sed: `apply` writes a throw-away
# kustomization into a temp dir (outside the repo) that has the overlay as its only resource plus
# `images: [{name: tradeops-airflow, newName/newTag: --image}]` and `namespace: --namespace`,
# renders it with `kubectl kustomize` and pipes the result to `kubectl apply -f -`. This retags
# every container, init container, Job and CronJob that uses `tradeops-airflow`, in one apply.
# Secrets are never in the overlay: `secrets` creates them once, from stdin (never on disk or argv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
cd "$ROOT"

IMAGE_NAME="tradeops-airflow"
# The UI user: AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS in k8s/base/configmap-airflow.yaml.
ADMIN_USER="tradeops"
# A second login, for approvals: going back to ACTIVE needs another user than the requester.
APPROVER_USER="approver"
MIGRATE_JOB="${TRADEOPS_MIGRATE_JOB:-airflow-migrate}"
API_SERVICE="${TRADEOPS_API_SERVICE:-airflow-api-server}"
WATCHERS=(stop_loss_alerts stop_loss_shocks rebalance_capital rebalance_shocks funding_deviation)
SECRET_NAMES=(airflow-secrets postgres-secrets tradeops-secrets tradeops-kafka-connections)

COMMAND=""
DRY_RUN=0
OVERLAY="dev"
NAMESPACE="tradeops"
IMAGE=""
YES=0
DELETE_SECRETS=0

usage() {
  cat <<EOF
Usage: deploy.sh COMMAND [flags]        (deploy.ps1 takes the same commands and flags)

Commands:
  check          prerequisites: kubectl, docker or podman (build/push), a cluster context;
                 prints the current context and the namespace
  build          docker build -t IMAGE .          (podman if docker is missing)
  push           docker push IMAGE
  secrets        create the Secrets once; existing ones are skipped, never overwritten:
                   airflow-secrets            fernet-key, jwt-secret, api-secret-key,
                                              admin-password, sql-alchemy-conn
                   postgres-secrets           password (dev only: the in-cluster Postgres)
                   tradeops-secrets           TRADEOPS_DB_URL
                   tradeops-kafka-connections AIRFLOW_CONN_TRADEOPS_KAFKA_<WATCHER>, one per watcher
                 prod needs AIRFLOW_SQL_ALCHEMY_CONN (or TRADEOPS_DB_URL) and KAFKA_BOOTSTRAP_SERVERS
  apply          render k8s/overlays/OVERLAY with IMAGE and NAMESPACE set, kubectl apply it
                 (the old migration Job is deleted first: a Job's template is immutable)
  render         print the manifests apply would send (IMAGE and NAMESPACE set); needs only
                 kubectl, no cluster: pipe it to 'kubectl diff -f -' to review a change
  migrate        delete the migration Job ($MIGRATE_JOB), apply, wait for it to complete
  status         pods, deployments, statefulsets and jobs in the namespace
  port-forward   svc/$API_SERVICE 8080:8080 on 127.0.0.1 only
  destroy        delete the overlay's objects (asks you to type the namespace; --yes skips);
                 the Namespace object is kept, and the Secrets unless --delete-secrets

Flags:
  --dry-run            print every command (prefixed '+ '), change nothing; secrets show as <generated>
  --overlay dev|prod   default: dev
  --namespace NS       default: tradeops
  --image IMAGE        default: $IMAGE_NAME:\$(git describe --always) or $IMAGE_NAME:latest
  --yes                no confirmation prompt (destroy)
  --delete-secrets     destroy also deletes the Secrets this script created
  -h, --help           this help

Environment: TRADEOPS_MIGRATE_JOB (default airflow-migrate), TRADEOPS_API_SERVICE
(default airflow-api-server), CONTAINER_ENGINE (docker|podman), and for secrets:
AIRFLOW_SQL_ALCHEMY_CONN, TRADEOPS_DB_URL, KAFKA_BOOTSTRAP_SERVERS.
EOF
}

die() {
  echo "deploy.sh: $*" >&2
  exit 1
}

# Echo a command as '+ cmd' and run it unless --dry-run.
run() {
  echo "+ $*"
  if ((DRY_RUN == 0)); then
    "$@"
  fi
}

# Like run, for commands that need stdin piped in: `producer | run_stdin kubectl apply -f -`.
run_stdin() {
  echo "+ $*"
  if ((DRY_RUN == 0)); then
    "$@"
  else
    cat >/dev/null
  fi
}

parse_args() {
  while (($#)); do
    case "$1" in
      -h | --help | help) usage; exit 0 ;;
      --dry-run) DRY_RUN=1 ;;
      --yes | -y) YES=1 ;;
      --delete-secrets) DELETE_SECRETS=1 ;;
      --overlay | --namespace | --image)
        (($# >= 2)) || die "$1 needs a value"
        set_option "$1" "$2"
        shift ;;
      --overlay=* | --namespace=* | --image=*) set_option "${1%%=*}" "${1#*=}" ;;
      -*) die "unknown flag: $1 (see --help)" ;;
      *)
        [[ -z "$COMMAND" ]] || die "more than one command: $COMMAND, $1"
        COMMAND="$1" ;;
    esac
    shift
  done
  [[ -n "$COMMAND" ]] || { usage >&2; exit 2; }
  [[ "$OVERLAY" == dev || "$OVERLAY" == prod ]] || die "--overlay must be dev or prod, not '$OVERLAY'"
  [[ -n "$NAMESPACE" ]] || die "--namespace must not be empty"
  if [[ -z "$IMAGE" ]]; then
    IMAGE="$IMAGE_NAME:$(git describe --always 2>/dev/null || echo latest)"
  fi
}

set_option() {
  case "$1" in
    --overlay) OVERLAY="$2" ;;
    --namespace) NAMESPACE="$2" ;;
    --image) IMAGE="$2" ;;
  esac
}

container_engine() {
  if [[ -n "${CONTAINER_ENGINE:-}" ]]; then
    echo "$CONTAINER_ENGINE"
  elif command -v docker >/dev/null 2>&1; then
    echo docker
  elif command -v podman >/dev/null 2>&1; then
    echo podman
  elif ((DRY_RUN)); then
    echo docker
  else
    die "neither docker nor podman found (needed for build/push); install one or set CONTAINER_ENGINE"
  fi
}

need_kubectl() {
  command -v kubectl >/dev/null 2>&1 || die "kubectl not found on PATH (https://kubernetes.io/docs/tasks/tools/)"
}

# ---- commands -------------------------------------------------------------------------------

cmd_check() {
  local missing=0 context
  if command -v kubectl >/dev/null 2>&1; then
    echo "kubectl:   $(command -v kubectl)"
  else
    echo "MISSING:   kubectl (https://kubernetes.io/docs/tasks/tools/)" >&2
    missing=1
  fi
  if command -v docker >/dev/null 2>&1; then
    echo "engine:    docker ($(command -v docker))"
  elif command -v podman >/dev/null 2>&1; then
    echo "engine:    podman ($(command -v podman))"
  else
    echo "MISSING:   docker or podman (only needed for build/push)" >&2
  fi
  ((missing == 0)) || exit 1
  if ((DRY_RUN)); then
    echo "+ kubectl config current-context"
    echo "+ kubectl get namespace $NAMESPACE"
  else
    context="$(kubectl config current-context 2>/dev/null)" \
      || die "no current kubectl context: set one with 'kubectl config use-context NAME' (or KUBECONFIG)"
    echo "context:   $context"
    if kubectl get namespace "$NAMESPACE" >/dev/null 2>&1; then
      echo "namespace: $NAMESPACE (exists)"
    else
      echo "namespace: $NAMESPACE (not found, or the cluster is unreachable; apply creates it if the overlay has it)"
    fi
  fi
  echo "overlay:   k8s/overlays/$OVERLAY"
  echo "image:     $IMAGE"
  [[ -d "k8s/overlays/$OVERLAY" ]] || echo "warning:   k8s/overlays/$OVERLAY does not exist yet" >&2
}

cmd_build() {
  run "$(container_engine)" build -t "$IMAGE" .
}

cmd_push() {
  run "$(container_engine)" push "$IMAGE"
}

# Random tokens, never printed in dry-run and never written to disk.
rand_b64url() { head -c "$1" /dev/urandom | base64 | tr -d '\n' | tr '+/' '-_'; }
rand_alnum() { head -c 48 /dev/urandom | base64 | tr -d '\n+/=' | cut -c "1-$1"; }
b64() { printf '%s' "$1" | base64 | tr -d '\n'; }

secret_exists() {
  kubectl get secret "$1" -n "$NAMESPACE" >/dev/null 2>&1
}

# True when NAME must be created; says so when it already exists. Dry-run checks nothing.
want_secret() {
  echo "+ kubectl get secret $1 -n $NAMESPACE"
  if ((DRY_RUN)); then
    return 0
  fi
  if secret_exists "$1"; then
    echo "  Secret $1 exists in $NAMESPACE: skipped (never overwritten)"
    return 1
  fi
  return 0
}

# create_secret NAME KEY VALUE [KEY VALUE ...]: the manifest goes to kubectl on stdin;
# `kubectl create` (not apply) refuses to replace a Secret that appeared meanwhile.
create_secret() {
  local name="$1" keys=() manifest k
  shift
  manifest="apiVersion: v1
kind: Secret
type: Opaque
metadata:
  name: $name
  namespace: $NAMESPACE
  labels:
    app.kubernetes.io/part-of: tradeops
    app.kubernetes.io/managed-by: deploy.sh
data:"
  while (($#)); do
    k="$1"
    keys+=("$k=<generated>")
    manifest+=$'\n'"  $k: $(b64 "$2")"
    shift 2
  done
  echo "+ kubectl create -n $NAMESPACE -f -   # Secret $name: ${keys[*]}"
  if ((DRY_RUN == 0)); then
    printf '%s\n' "$manifest" | kubectl create -n "$NAMESPACE" -f - >/dev/null
    echo "  created Secret $name"
  fi
}

kafka_conn_json() {
  local watcher="$1" bootstrap="$2"
  printf '{"conn_type":"kafka","extra":{"bootstrap.servers":"%s","group.id":"tradeops-%s","enable.auto.commit":"false","auto.offset.reset":"earliest","fetch.wait.max.ms":"50","session.timeout.ms":"10000"}}' \
    "$bootstrap" "${watcher//_/-}"
}

cmd_secrets() {
  local sql_conn db_url bootstrap pg_password="" admin_password="" w upper args=()
  ((DRY_RUN)) || need_kubectl
  # Validate every input before creating anything.
  if [[ "$OVERLAY" == prod ]]; then
    sql_conn="${AIRFLOW_SQL_ALCHEMY_CONN:-${TRADEOPS_DB_URL:-}}"
    db_url="${TRADEOPS_DB_URL:-${AIRFLOW_SQL_ALCHEMY_CONN:-}}"
    [[ -n "$sql_conn" ]] || die "prod needs AIRFLOW_SQL_ALCHEMY_CONN (Airflow metadata DB URL; TRADEOPS_DB_URL is used if only that is set)"
    bootstrap="${KAFKA_BOOTSTRAP_SERVERS:-}"
    [[ -n "$bootstrap" ]] || die "prod needs KAFKA_BOOTSTRAP_SERVERS (e.g. broker-1:9092,broker-2:9092)"
  else
    bootstrap="kafka:9092"   # in-cluster; KAFKA_BOOTSTRAP_SERVERS may point at the local stack
    # The in-cluster Postgres password: reuse the existing one so the URLs stay valid.
    if ((DRY_RUN == 0)) && secret_exists postgres-secrets; then
      pg_password="$(kubectl get secret postgres-secrets -n "$NAMESPACE" -o jsonpath='{.data.password}' | base64 -d)"
      [[ -n "$pg_password" ]] || die "Secret postgres-secrets exists but has no 'password' key"
    else
      pg_password="$(rand_alnum 32)"
    fi
    # Airflow's metadata DB through psycopg2 (shipped with the Airflow image); the project DB
    # (database tradeops, created by the postgres-init ConfigMap) through psycopg 3 (pinned).
    sql_conn="postgresql+psycopg2://airflow:${pg_password}@postgres:5432/airflow"
    db_url="postgresql+psycopg://airflow:${pg_password}@postgres:5432/tradeops"
  fi
  echo "Secrets for overlay $OVERLAY in namespace $NAMESPACE (Kafka: $bootstrap)"

  if [[ "$OVERLAY" == dev ]] && want_secret postgres-secrets; then
    create_secret postgres-secrets password "$pg_password"
  fi
  if want_secret airflow-secrets; then
    admin_password="$(rand_alnum 24)"
    approver_password="$(rand_alnum 24)"
    create_secret airflow-secrets \
      fernet-key "$(rand_b64url 32)" \
      jwt-secret "$(rand_b64url 48)" \
      api-secret-key "$(rand_b64url 48)" \
      admin-password "$admin_password" \
      approver-password "$approver_password" \
      sql-alchemy-conn "$sql_conn"
  fi
  if want_secret tradeops-secrets; then
    create_secret tradeops-secrets TRADEOPS_DB_URL "$db_url"
  fi
  if want_secret tradeops-kafka-connections; then
    for w in "${WATCHERS[@]}"; do
      upper="$(printf '%s' "$w" | tr '[:lower:]' '[:upper:]')"
      args+=("AIRFLOW_CONN_TRADEOPS_KAFKA_$upper" "$(kafka_conn_json "$w" "$bootstrap")")
    done
    create_secret tradeops-kafka-connections "${args[@]}"
  fi
  if ((DRY_RUN == 0)) && [[ -n "$admin_password" ]]; then
    echo
    echo "Airflow login: $ADMIN_USER / $admin_password"
    echo "Approver login: $APPROVER_USER / $approver_password"
    echo "  shown only now; stored in Secret airflow-secrets (keys admin-password, approver-password), namespace $NAMESPACE:"
    echo "  kubectl get secret airflow-secrets -n $NAMESPACE -o jsonpath='{.data.admin-password}' | base64 -d"
  fi
}

# Physical path of DIR relative to the physical path of FROM (both existing directories).
relative_path() {
  local to from up=""
  to="$(cd "$1" && pwd -P)"
  from="$(cd "$2" && pwd -P)"
  while [[ "$from" != / && "$to" != "$from" && "$to" != "$from"/* ]]; do
    from="$(dirname "$from")"
    up="../$up"
  done
  if [[ "$to" == "$from" ]]; then
    echo "${up:-.}"
  elif [[ "$from" == / ]]; then
    echo "$up${to#/}"
  else
    echo "$up${to#"$from"/}"
  fi
}

# Split IMAGE into the kustomize `images:` fields and the KubernetesExecutor's worker image
# (repository + tag, which Airflow joins with ':'). A registry port is not a tag: only a ':' after
# the last '/' starts one. A digest becomes repository "NAME@sha256" + tag "HEX", which Airflow
# joins back into NAME@sha256:HEX.
IMG_NAME="" IMG_TAG="" IMG_DIGEST="" WORKER_REPO="" WORKER_TAG=""
split_image() {
  IMG_NAME="$IMAGE" IMG_TAG="" IMG_DIGEST=""
  if [[ "$IMAGE" == *@* ]]; then
    IMG_NAME="${IMAGE%%@*}" IMG_DIGEST="${IMAGE#*@}"
  elif [[ "${IMAGE##*/}" == *:* ]]; then
    IMG_NAME="${IMAGE%:*}" IMG_TAG="${IMAGE##*:}"
  else
    IMG_TAG="latest"   # as docker reads a name without a tag
  fi
  if [[ -n "$IMG_DIGEST" ]]; then
    [[ "$IMG_DIGEST" == *:* ]] || die "--image digest must look like NAME@sha256:HEX, not '$IMAGE'"
    WORKER_REPO="$IMG_NAME@${IMG_DIGEST%%:*}" WORKER_TAG="${IMG_DIGEST#*:}"
  else
    WORKER_REPO="$IMG_NAME" WORKER_TAG="$IMG_TAG"
  fi
}

# Write the throw-away kustomization into $1: the overlay, with --namespace and --image set on
# every object, including the values kustomize does not reach by itself: the worker image and the
# executor namespace in ConfigMap airflow-config, and the scheduler RoleBinding's subject.
write_wrapper() {
  local dir="$1" overlay_dir="k8s/overlays/$OVERLAY" image_lines overlay_name
  [[ -d "$overlay_dir" ]] || die "$overlay_dir does not exist"
  split_image
  # The overlay may already have renamed tradeops-airflow (prod: its registry): match that name.
  overlay_name="$(awk -v want="$IMAGE_NAME" '
    $1 == "-" && $2 == "name:" { current = $3 }
    $1 == "newName:" && current == want { print $2; exit }' "$overlay_dir/kustomization.yaml")"
  overlay_name="${overlay_name:-$IMAGE_NAME}"
  image_lines="  - name: $overlay_name
    newName: $IMG_NAME"
  [[ -z "$IMG_TAG" ]] || image_lines+=$'\n'"    newTag: \"$IMG_TAG\""
  [[ -z "$IMG_DIGEST" ]] || image_lines+=$'\n'"    digest: $IMG_DIGEST"
  cat >"$dir/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: $NAMESPACE
resources:
  - $(relative_path "$overlay_dir" "$dir")
images:
$image_lines
patches:
  - target:
      kind: ConfigMap
      name: airflow-config
    patch: |-
      - op: replace
        path: /data/AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY
        value: "$WORKER_REPO"
      - op: replace
        path: /data/AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG
        value: "$WORKER_TAG"
      - op: replace
        path: /data/AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE
        value: "$NAMESPACE"
  # kustomize's namespace setting leaves RoleBinding subjects alone (each of ours has one).
  - target:
      kind: RoleBinding
    patch: |-
      - op: replace
        path: /subjects/0/namespace
        value: "$NAMESPACE"
EOF
}

WRAPPER_DIR=""
cleanup() { [[ -z "$WRAPPER_DIR" ]] || rm -rf "$WRAPPER_DIR"; }

# Render the overlay with the image and namespace set into $MANIFESTS (kept in memory only).
MANIFESTS=""
render() {
  WRAPPER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tradeops-deploy.XXXXXX")"
  trap cleanup EXIT
  write_wrapper "$WRAPPER_DIR"
  MANIFESTS="$(kubectl kustomize "$WRAPPER_DIR")"
}

echo_render() {
  echo "+ kubectl kustomize \$TMP   # \$TMP/kustomization.yaml: resources [k8s/overlays/$OVERLAY], namespace $NAMESPACE, images [$IMAGE_NAME -> $IMAGE]"
}

apply_overlay() {
  ((DRY_RUN)) || need_kubectl
  # A Job's pod template is immutable: drop the finished migration Job so apply recreates it
  # with the new image (Airflow's `db migrate` is idempotent).
  run kubectl delete job "$MIGRATE_JOB" -n "$NAMESPACE" --ignore-not-found --wait=true
  echo_render
  if ((DRY_RUN)); then
    echo "+ kubectl apply -f -   # stdin: the rendered manifests"
  else
    render
    echo "+ kubectl apply -f -   # stdin: the rendered manifests"
    printf '%s\n' "$MANIFESTS" | kubectl apply -f -
  fi
}

cmd_apply() {
  apply_overlay
}

cmd_migrate() {
  apply_overlay
  run kubectl wait --for=condition=complete "job/$MIGRATE_JOB" -n "$NAMESPACE" --timeout=600s || {
    echo "migration Job did not complete; its log:" >&2
    kubectl logs "job/$MIGRATE_JOB" -n "$NAMESPACE" --all-containers --tail=100 >&2 || true
    exit 1
  }
}

cmd_render() {
  if ((DRY_RUN)); then
    echo_render
  else
    need_kubectl
    render
    printf '%s\n' "$MANIFESTS"
  fi
}

cmd_status() {
  run kubectl get pods,deployments,statefulsets,jobs -n "$NAMESPACE" -o wide
}

cmd_port_forward() {
  echo "Airflow UI on http://127.0.0.1:8080 (Ctrl-C stops)"
  run kubectl port-forward --address 127.0.0.1 -n "$NAMESPACE" "svc/$API_SERVICE" 8080:8080
}

# Drop Namespace objects from a rendered stream: deleting the Namespace would delete the Secrets.
without_namespaces() {
  awk 'BEGIN { RS = "\n---\n"; ORS = "\n---\n" } !/(^|\n)kind: Namespace(\n|$)/ { print }'
}

cmd_destroy() {
  local answer
  ((DRY_RUN)) || need_kubectl
  if ((YES == 0 && DRY_RUN == 0)); then
    [[ -t 0 ]] || die "destroy needs confirmation: run it in a terminal or pass --yes"
    read -r -p "This deletes the $OVERLAY overlay's objects in namespace '$NAMESPACE'. Type the namespace name to confirm: " answer
    [[ "$answer" == "$NAMESPACE" ]] || die "confirmation did not match '$NAMESPACE'; nothing deleted"
  fi
  echo_render
  echo "+ kubectl delete --ignore-not-found -f -   # stdin: the rendered manifests without the Namespace object"
  if ((DRY_RUN == 0)); then
    render
    printf '%s\n' "$MANIFESTS" | without_namespaces | kubectl delete --ignore-not-found -f -
  fi
  if ((DELETE_SECRETS)); then
    run kubectl delete secret "${SECRET_NAMES[@]}" -n "$NAMESPACE" --ignore-not-found
  else
    echo "Secrets kept (${SECRET_NAMES[*]}); --delete-secrets deletes them too."
  fi
}

main() {
  parse_args "$@"
  case "$COMMAND" in
    check) cmd_check ;;
    build) cmd_build ;;
    push) cmd_push ;;
    secrets) cmd_secrets ;;
    apply) cmd_apply ;;
    migrate) cmd_migrate ;;
    render) cmd_render ;;
    status) cmd_status ;;
    port-forward) cmd_port_forward ;;
    destroy) cmd_destroy ;;
    *) die "unknown command: $COMMAND (see --help)" ;;
  esac
}

main "$@"
