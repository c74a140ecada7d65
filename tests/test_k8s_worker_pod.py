"""The worker pod the KubernetesExecutor would create for a real task of our DAGs.

The rendered ConfigMaps are loaded the way the scheduler sees them (the [kubernetes_executor]
settings from airflow-config as environment, the pod template written to a file), then the
cncf-kubernetes provider's own KubeConfig, template loader and PodGenerator build the pod, which
must validate strictly against the Kubernetes schema and carry our image, account and hardening.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from airflow.configuration import conf
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import get_base_pod_from_template
from airflow.providers.cncf.kubernetes.kube_config import KubeConfig
from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import create_unique_id
from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
from kubernetes.client import ApiClient

from operators.executors import LATENCY_CRITICAL_EXECUTOR
from tests.k8s_support import (
    OVERLAYS,
    ROOT,
    airflow_config,
    containers,
    find,
    pod_spec,
    render,
    worker_template,
    workloads,
)

# A Kubernetes-executed money-moving task: the first step of the rebalancing saga.
DAG_ID = "auto_rebalance_saga"


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


def _executor_settings(overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KubeConfig:
    objects = render(f"overlays/{overlay}")
    config = airflow_config(objects)
    template = tmp_path / "worker.yaml"
    template.write_text(yaml.safe_dump(worker_template(objects)))
    for key, value in config.items():
        if key.startswith("AIRFLOW__KUBERNETES_EXECUTOR__"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE", str(template))
    return KubeConfig()


def _build_worker_pod(kube_config: KubeConfig, task: Any) -> dict[str, Any]:
    pod = PodGenerator.construct_pod(
        dag_id=task.dag_id,
        task_id=task.task_id,
        pod_id=create_unique_id(task.dag_id, task.task_id),
        try_number=1,
        kube_image=kube_config.kube_image,
        date=None,
        args=["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", "{}"],
        pod_override_object=PodGenerator.from_obj(task.executor_config),
        base_worker_pod=get_base_pod_from_template(None, kube_config),
        namespace=kube_config.kube_namespace,
        scheduler_job_id="7",
        run_id="manual__2026-11-23T00:00:00+00:00",
        map_index=-1,
        with_mutation_hook=True,
    )
    return ApiClient().sanitize_for_serialization(pod)


def _kubernetes_tasks(dagbag: DagBag) -> list[Any]:
    return [t for dag in dagbag.dags.values() for t in dag.tasks if t.executor is None]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_pod_when_built_for_a_real_task_then_valid_with_our_image_account_and_hardening(
    overlay: str, dagbag: DagBag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube_config = _executor_settings(overlay, tmp_path, monkeypatch)
    task = dagbag.dags[DAG_ID].tasks[0]
    scheduler = find(render(f"overlays/{overlay}"), "Deployment", "airflow-scheduler")

    pod = _build_worker_pod(kube_config, task)

    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    base = pod["spec"]["containers"][0]
    assert base["name"] == "base"
    assert base["image"] == pod_spec(scheduler)["containers"][0]["image"]
    assert pod["spec"]["serviceAccountName"] == "airflow-worker"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["metadata"]["namespace"] == "tradeops"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 50000
    assert base["securityContext"]["readOnlyRootFilesystem"] is True
    assert base["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    assert pod["metadata"]["labels"]["dag_id"] == DAG_ID
    assert pod["metadata"]["annotations"]["task_id"] == task.task_id
    assert {"name": "AIRFLOW_IS_K8S_EXECUTOR_POD", "value": "True"} in base["env"]
    assert {"configMapRef": {"name": "airflow-config"}} in base["envFrom"]
    assert base["args"][:3] == ["python", "-m", "airflow.sdk.execution_time.execute_workload"]


def test_worker_pods_when_built_for_every_kubernetes_task_then_all_validate(
    dagbag: DagBag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube_config = _executor_settings("prod", tmp_path, monkeypatch)
    tasks = _kubernetes_tasks(dagbag)

    errors = []
    for task in tasks:
        try:
            kubernetes_validate.validate(
                _build_worker_pod(kube_config, task), kubernetes_validate.latest_version(), strict=True
            )
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{task.dag_id}.{task.task_id}: {exc.message}")

    assert errors == []
    assert len(tasks) >= 10


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_dag_executors_when_parsed_then_each_is_configured_in_the_cluster(overlay: str, dagbag: DagBag) -> None:
    configured = airflow_config(render(f"overlays/{overlay}"))["AIRFLOW__CORE__EXECUTOR"].split(",")

    named = {t.executor for dag in dagbag.dags.values() for t in dag.tasks if t.executor}

    assert named <= set(configured)
    assert named == {LATENCY_CRITICAL_EXECUTOR}


def test_stop_loss_when_parsed_then_every_task_skips_pod_startup(dagbag: DagBag) -> None:
    stop_loss = dagbag.dags["emergency_stop_loss_saga"]

    assert {t.executor for t in stop_loss.tasks} == {LATENCY_CRITICAL_EXECUTOR}
    assert {t.pool for t in stop_loss.tasks} == {"emergency"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_airflow_settings_when_rendered_then_every_key_is_a_known_option(overlay: str) -> None:
    # A misspelt AIRFLOW__SECTION__KEY is silently ignored by Airflow; catch it here.
    objects = render(f"overlays/{overlay}")
    names = set(airflow_config(objects))
    for workload in workloads(objects):
        for container in containers(workload):
            names |= {e["name"] for e in container.get("env", [])}
    known = conf.configuration_description

    unknown = []
    for name in sorted(n for n in names if n.startswith("AIRFLOW__")):
        section, key = name.removeprefix("AIRFLOW__").lower().split("__", 1)
        if key not in known.get(section, {}).get("options", {}):
            unknown.append(name)

    assert unknown == []
    assert len([n for n in names if n.startswith("AIRFLOW__")]) > 20
