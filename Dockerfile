# syntax=docker/dockerfile:1
# tradeops on the official Airflow image. One image for every component: api-server, scheduler,
# dag-processor, triggerer, the migration Job and the KubernetesExecutor worker pods.
# No secrets are baked in: everything sensitive arrives at runtime from Kubernetes Secrets.

# 0. The Desk's front end (ui/), built from its lockfile in a stage of its own: only the bundle
#    reaches the image, never Node or node_modules.
FROM node:20.20.2-bookworm-slim AS desk-ui
WORKDIR /ui
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY ui/ ./
RUN npm run typecheck && npm test && npm run build

FROM apache/airflow:3.3.2-python3.12

USER airflow

# 1. Dependencies first (the slow, rarely-changing layer). requirements.txt is the whole resolved,
#    pinned set (make lock), so it is also its own constraints file.
COPY --chown=airflow:0 requirements.txt /opt/airflow/tradeops-src/requirements.txt
RUN pip install --no-cache-dir \
        -r /opt/airflow/tradeops-src/requirements.txt \
        -c /opt/airflow/tradeops-src/requirements.txt

# 2. The project packages (tradeops, operators, sensors): a regular, non-editable install so they
#    are importable from site-packages in every component regardless of the working directory.
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/tradeops-src/
COPY --chown=airflow:0 tradeops/ /opt/airflow/tradeops-src/tradeops/
COPY --chown=airflow:0 operators/ /opt/airflow/tradeops-src/operators/
COPY --chown=airflow:0 sensors/ /opt/airflow/tradeops-src/sensors/
RUN pip install --no-deps --no-cache-dir /opt/airflow/tradeops-src

# 3. What changes most often last: DAGs, plugins and the desk configuration.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 config/ /opt/airflow/tradeops-config/
COPY --from=desk-ui --chown=airflow:0 /ui/dist/ /opt/airflow/tradeops-desk/

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    TRADEOPS_CONFIG=/opt/airflow/tradeops-config/tradeops.yaml \
    TRADEOPS_AGENTS_CONFIG=/opt/airflow/tradeops-config/agents.yaml \
    TRADEOPS_DESK_BUNDLE_DIR=/opt/airflow/tradeops-desk \
    TRADEOPS_STATE_DIR=/tmp/tradeops

USER 50000

# Import check only (no DB, no network): the project packages are installed and importable.
# Kubernetes ignores HEALTHCHECK and uses the probes in k8s/; this is for docker/compose runs.
HEALTHCHECK --interval=60s --timeout=30s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import tradeops, operators, sensors"]
