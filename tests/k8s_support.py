"""Rendering and reading the Kubernetes manifests for the offline deployment tests.

Everything here works without a cluster: `kubectl kustomize` (client side) renders the overlays,
and `deploy.sh render` renders what `deploy.sh apply` would send.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
TARGETS_ALL = ("base", "overlays/dev", "overlays/prod")
IMAGE_NAME = "tradeops-airflow"
WORKER_REPO_KEY = "AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY"
WORKER_TAG_KEY = "AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG"

Manifest = dict[str, Any]


def kubectl() -> str:
    """The kubectl binary; its absence is a failure, not a skip (the suite must validate k8s/)."""
    path = shutil.which("kubectl")
    if path is None:
        raise AssertionError("kubectl is not on PATH: the k8s tests render k8s/ with `kubectl kustomize`")
    return path


@functools.cache
def render(target: str) -> tuple[Manifest, ...]:
    """Render k8s/<target> (``base``, ``overlays/dev``, ``overlays/prod``) into objects."""
    out = subprocess.run([kubectl(), "kustomize", str(K8S / target)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"kubectl kustomize k8s/{target} failed:\n{out.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


@functools.cache
def deploy_render(overlay: str, namespace: str, image: str) -> tuple[Manifest, ...]:
    """What `deploy.sh apply --overlay O --namespace N --image I` would send to the cluster."""
    out = run_deploy_sh("render", "--overlay", overlay, "--namespace", namespace, "--image", image)
    assert out.returncode == 0, f"deploy.sh render failed:\n{out.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def run_deploy_sh(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "TRADEOPS_", "AIRFLOW_"))}
    return subprocess.run(
        ["bash", str(ROOT / "deploy.sh"), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**base_env, **(env or {})},
        input=stdin if stdin is not None else "",
        cwd=ROOT,
        timeout=120,
    )


@functools.cache
def secrets_created_by_deploy() -> dict[str, frozenset[str]]:
    """Secret name -> its keys, as `deploy.sh secrets --dry-run` announces them (dev creates all)."""
    out = run_deploy_sh("secrets", "--dry-run", "--overlay", "dev")
    assert out.returncode == 0, out.stderr
    return {
        name: frozenset(item.removesuffix("=<generated>") for item in keys.split())
        for name, keys in re.findall(r"# Secret (\S+): (.+)$", out.stdout, re.M)
    }


def find(objects: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def of_kind(objects: tuple[Manifest, ...], *kinds: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] in kinds]


def pod_spec(obj: Manifest) -> Manifest:
    """The pod spec of a Pod, a workload (Deployment, StatefulSet, Job) or a CronJob."""
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def containers(obj: Manifest) -> Iterator[Manifest]:
    """Every container of a workload, init containers included."""
    spec = pod_spec(obj)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def workloads(objects: tuple[Manifest, ...]) -> list[Manifest]:
    return of_kind(objects, "Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet")


def worker_template(objects: tuple[Manifest, ...]) -> Manifest:
    """The KubernetesExecutor's worker pod template, as the scheduler reads it from its ConfigMap."""
    config_maps = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("airflow-pod-template")
    ]
    assert len(config_maps) == 1, "expected one airflow-pod-template ConfigMap"
    return yaml.safe_load(config_maps[0]["data"]["worker.yaml"])


def pods(objects: tuple[Manifest, ...]) -> list[Manifest]:
    """Every workload plus the worker pod (as a Pod named "worker")."""
    worker = {"kind": "Pod", "metadata": {"name": "worker"}, "spec": worker_template(objects)["spec"]}
    return [*workloads(objects), worker]


def airflow_config(objects: tuple[Manifest, ...]) -> dict[str, str]:
    return find(objects, "ConfigMap", "airflow-config")["data"]


def env_value(container: Manifest, name: str) -> Manifest:
    """The env entry NAME of a container (value or valueFrom)."""
    matches = [e for e in container.get("env", []) if e["name"] == name]
    assert len(matches) == 1, f"container {container['name']} has {len(matches)} env entries named {name}"
    return matches[0]


def project_images(objects: tuple[Manifest, ...]) -> set[str]:
    """The images of every container that runs our image (not postgres or kafka)."""
    images = set()
    for workload in workloads(objects):
        for container in containers(workload):
            if IMAGE_NAME in container["image"]:
                images.add(container["image"])
    return images
