"""Which executor runs which tasks.

The executors themselves are configured per deployment: ``[core] executor`` in
k8s/base/configmap-airflow.yaml is ``KubernetesExecutor,LocalExecutor`` (the first is the
default); ``airflow standalone`` (``make run``) and the tests run the LocalExecutor alone. A DAG
naming an executor that is not configured fails to import, so only names configured everywhere
belong here (a test checks the Kubernetes ConfigMap against the DAGs).
"""

from __future__ import annotations

# The emergency stop-loss cannot wait for a worker pod to be scheduled and its image started
# (seconds to tens of seconds on a busy cluster, more if a node must scale up): on Kubernetes its
# tasks run in a LocalExecutor subprocess of the scheduler, which is already running, holds the
# PriorityClass tradeops-critical and reaches the venues and Kafka.
LATENCY_CRITICAL_EXECUTOR = "LocalExecutor"
