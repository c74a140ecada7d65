"""k8s/: every overlay renders, validates against the strict Kubernetes schemas, and is consistent.

No cluster is needed: `kubectl kustomize` renders, kubernetes-validate checks every object against
the JSON schema of a current Kubernetes release with unknown fields rejected.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from tests.k8s_support import (
    IMAGE_NAME,
    K8S,
    OVERLAYS,
    TARGETS_ALL,
    WORKER_REPO_KEY,
    WORKER_TAG_KEY,
    Manifest,
    airflow_config,
    containers,
    deploy_render,
    env_value,
    find,
    of_kind,
    pod_spec,
    pods,
    project_images,
    render,
    secrets_created_by_deploy,
    worker_template,
    workloads,
)

KUBERNETES_VERSION = kubernetes_validate.latest_version()
TARGETS = TARGETS_ALL
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
CLUSTER_SCOPED = {"Namespace", "PriorityClass"}


def _strict_errors(obj: Manifest) -> str | None:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{obj['kind']}/{obj['metadata'].get('name')}: {exc.message} at {list(exc.absolute_path)}"
    return None


@pytest.mark.parametrize("target", TARGETS)
def test_render_when_built_then_every_component_and_guard_is_present(target: str) -> None:
    objects = render(target)

    for component in COMPONENTS:
        find(objects, "Deployment", f"airflow-{component}")
        find(objects, "PodDisruptionBudget", f"airflow-{component}")
        find(objects, "ServiceAccount", f"airflow-{component}")
    for name in ("airflow-worker", "airflow-migrate"):
        find(objects, "ServiceAccount", name)
    find(objects, "Job", "airflow-migrate")
    find(objects, "Service", "airflow-api-server")
    find(objects, "PriorityClass", "tradeops-critical")
    deny = find(objects, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"]["podSelector"] == {} and deny["spec"]["policyTypes"] == ["Ingress"]
    assert worker_template(objects)["spec"]["containers"][0]["name"] == "base"


@pytest.mark.parametrize("target", TARGETS)
def test_render_when_built_then_every_namespaced_object_is_in_the_namespace(target: str) -> None:
    objects = render(target)

    misplaced = [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in objects
        if o["kind"] not in CLUSTER_SCOPED and o["metadata"].get("namespace") != "tradeops"
    ]

    assert misplaced == []
    assert {o["kind"] for o in objects if "namespace" not in o["metadata"]} <= CLUSTER_SCOPED


@pytest.mark.parametrize("target", TARGETS)
def test_schema_when_rendered_then_every_object_validates_strictly(target: str) -> None:
    objects = render(target)

    errors = [e for e in map(_strict_errors, (*objects, worker_template(objects))) if e]

    assert errors == []
    assert len(objects) > 25


def test_schema_when_object_has_unknown_field_then_strict_validation_rejects_it() -> None:
    # The control for the test above: strict mode really rejects what Kubernetes would drop.
    scheduler = find(render("overlays/dev"), "Deployment", "airflow-scheduler")
    broken = yaml.safe_load(yaml.safe_dump(scheduler))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}

    assert _strict_errors(broken) is not None
    assert _strict_errors(scheduler) is None


@pytest.mark.parametrize("target", TARGETS)
def test_rbac_when_rendered_then_namespaced_least_privilege_only(target: str) -> None:
    objects = render(target)

    assert of_kind(objects, "ClusterRole", "ClusterRoleBinding") == []
    scheduler = find(objects, "Role", "airflow-scheduler")["rules"]
    assert {(tuple(r["resources"]), tuple(sorted(r["verbs"]))) for r in scheduler} == {
        (("pods",), ("create", "delete", "get", "list", "patch", "watch")),
        (("pods/log",), ("get",)),
        (("events",), ("list",)),
    }
    api_server = find(objects, "Role", "airflow-api-server")["rules"]
    assert all(set(r["verbs"]) <= {"get", "list"} for r in api_server)
    for name in ("airflow-scheduler", "airflow-api-server"):
        binding = find(objects, "RoleBinding", name)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": "tradeops"}]


@pytest.mark.parametrize("target", TARGETS)
def test_service_accounts_when_rendered_then_only_api_users_mount_a_token(target: str) -> None:
    objects = render(target)
    every_pod = pods(objects)

    mounting = {o["metadata"]["name"] for o in every_pod if pod_spec(o).get("automountServiceAccountToken", True)}

    assert mounting == {"airflow-scheduler", "airflow-api-server"}
    for obj in every_pod:
        assert pod_spec(obj).get("serviceAccountName"), f"{obj['metadata']['name']} runs as the default account"


@pytest.mark.parametrize("target", TARGETS)
def test_containers_when_rendered_then_non_root_hardened_with_resources(target: str) -> None:
    objects = render(target)
    for obj in pods(objects):
        assert pod_spec(obj)["securityContext"]["runAsNonRoot"] is True
        for container in containers(obj):
            where = f"{obj['metadata']['name']}/{container['name']}"
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert "memory" in container["resources"]["limits"], where
            if IMAGE_NAME in container["image"]:
                assert sc["runAsUser"] == 50000 and sc["runAsNonRoot"] is True, where
                assert sc["readOnlyRootFilesystem"] is True, where
        for container in pod_spec(obj)["containers"]:
            if IMAGE_NAME in container["image"]:
                mounts = {m["mountPath"] for m in container["volumeMounts"]}
                assert "/tmp" in mounts, f"{obj['metadata']['name']}: read-only root needs a writable /tmp"


@pytest.mark.parametrize("target", TARGETS)
def test_components_when_rendered_then_probed_and_wait_for_migrations(target: str) -> None:
    objects = render(target)

    for component in COMPONENTS:
        spec = pod_spec(find(objects, "Deployment", f"airflow-{component}"))
        main = spec["containers"][0]
        assert "livenessProbe" in main and "startupProbe" in main, component
        assert spec["initContainers"][0]["name"] == "wait-for-migrations", component
        strategy = find(objects, "Deployment", f"airflow-{component}")["spec"]["strategy"]
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0, component
        assert spec["initContainers"][0]["args"][:3] == ["airflow", "db", "check-migrations"]
    api = pod_spec(find(objects, "Deployment", "airflow-api-server"))["containers"][0]
    assert api["readinessProbe"]["httpGet"]["port"] in ("http", 8080)


@pytest.mark.parametrize("target", TARGETS)
def test_secrets_when_rendered_then_only_referenced_never_defined(target: str) -> None:
    objects = render(target)

    created = secrets_created_by_deploy()

    assert of_kind(objects, "Secret") == []
    assert set(created) == {"airflow-secrets", "postgres-secrets", "tradeops-secrets", "tradeops-kafka-connections"}
    for obj in pods(objects):
        for container in containers(obj):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in created.get(ref["name"], ()), f"{ref} is not created by deploy.sh secrets"
                elif "value" in env:
                    assert not any(w in env["name"].upper() for w in ("PASSWORD", "SECRET", "FERNET", "TOKEN")), env
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in created


def test_manifests_and_scripts_when_searched_then_no_default_credentials() -> None:
    texts = [p.read_text() for p in K8S.rglob("*.yaml")]
    texts += [(K8S.parent / name).read_text() for name in ("deploy.sh", "deploy.ps1", "Dockerfile")]

    for text in texts:
        lowered = text.lower()
        assert "admin:admin" not in lowered and "admin/admin" not in lowered


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_execution_api_url_when_rendered_then_names_the_api_server_service_and_port(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    url = urlsplit(airflow_config(objects)["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    service = find(objects, "Service", url.hostname)
    api = pod_spec(find(objects, "Deployment", "airflow-api-server"))["containers"][0]

    port = next(p for p in service["spec"]["ports"] if p["port"] == url.port)
    container_port = next(p for p in api["ports"] if p["name"] == port["targetPort"])

    assert url.scheme == "http" and url.path == "/execution/"
    api_labels = find(objects, "Deployment", "airflow-api-server")["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == api_labels
    assert container_port["containerPort"] == int(airflow_config(objects)["AIRFLOW__API__PORT"]) == url.port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_jwt_secret_when_rendered_then_one_secret_wired_into_scheduler_and_api_server(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")

    refs = {}
    for component in COMPONENTS:
        main = pod_spec(find(objects, "Deployment", f"airflow-{component}"))["containers"][0]
        refs[component] = env_value(main, "AIRFLOW__API_AUTH__JWT_SECRET")["valueFrom"]["secretKeyRef"]

    assert refs["scheduler"] == refs["api-server"] == {"name": "airflow-secrets", "key": "jwt-secret"}
    assert all(ref == refs["api-server"] for ref in refs.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_image_when_rendered_then_one_tag_everywhere_workers_included(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    kustomization = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    entry = next(i for i in kustomization["images"] if i["name"] == IMAGE_NAME)
    config = airflow_config(objects)

    images = project_images(objects)

    assert images == {f"{entry['newName']}:{entry['newTag']}"}
    assert f"{config[WORKER_REPO_KEY]}:{config[WORKER_TAG_KEY]}" in images
    # The overlay derives the worker image by splitting on ':', so a registry port would break it.
    assert ":" not in entry["newName"], "use deploy.sh --image for a registry with a port"


@pytest.mark.parametrize(
    "image",
    [
        "registry.internal:5000/desk/tradeops-airflow:2026.11.23",
        "ghcr.io/desk/tradeops-airflow@sha256:" + "ab" * 32,
        "tradeops-airflow",
    ],
)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deploy_render_when_image_and_namespace_given_then_they_reach_every_place(overlay: str, image: str) -> None:
    objects = deploy_render(overlay, "desk-b", image)
    config = airflow_config(objects)
    expected = image if ("@" in image or ":" in image.rsplit("/", 1)[-1]) else f"{image}:latest"

    assert project_images(objects) == {expected}
    assert f"{config[WORKER_REPO_KEY]}:{config[WORKER_TAG_KEY]}" == expected
    assert config["AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE"] == "desk-b"
    assert find(objects, "Namespace", "desk-b")
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == "desk-b", obj["metadata"]["name"]
        for subject in obj.get("subjects", []):
            assert subject["namespace"] == "desk-b"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_template_when_rendered_then_mounted_where_the_executor_reads_it(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    path = airflow_config(objects)["AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE"]
    directory, filename = path.rsplit("/", 1)
    spec = pod_spec(find(objects, "Deployment", "airflow-scheduler"))

    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == directory)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    config_map = find(objects, "ConfigMap", volume["configMap"]["name"])

    assert filename in config_map["data"]
    assert config_map["metadata"]["name"].startswith("airflow-pod-template-"), "hash suffix rolls the scheduler"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_executors_when_rendered_then_kubernetes_first_and_local_for_the_stop_loss(overlay: str) -> None:
    config = airflow_config(render(f"overlays/{overlay}"))

    executors = config["AIRFLOW__CORE__EXECUTOR"].split(",")

    assert executors == ["KubernetesExecutor", "LocalExecutor"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_priority_when_rendered_then_stop_loss_path_is_critical_and_workers_are_not(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")

    critical = {
        o["metadata"]["name"] for o in workloads(objects) if pod_spec(o).get("priorityClassName") == "tradeops-critical"
    }

    assert critical == {"airflow-scheduler", "airflow-triggerer"}
    assert "priorityClassName" not in worker_template(objects)["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_when_rendered_then_every_service_port_is_allowed_explicitly(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    policies = of_kind(objects, "NetworkPolicy")

    for service in of_kind(objects, "Service"):
        selector = service["spec"]["selector"]
        allowing = [
            p
            for p in policies
            if p["spec"]["podSelector"].get("matchLabels")
            and p["spec"]["podSelector"]["matchLabels"].items() <= selector.items()
            and p["spec"].get("ingress")
        ]
        assert allowing, f"no ingress policy for Service {service['metadata']['name']}"
    egress = find(objects, "NetworkPolicy", "airflow-egress")
    assert egress["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "airflow"}


def test_dev_when_rendered_then_postgres_and_kraft_kafka_run_in_cluster() -> None:
    objects = render("overlays/dev")

    postgres = find(objects, "StatefulSet", "postgres")
    kafka = find(objects, "StatefulSet", "kafka")
    kafka_env = {e["name"]: e.get("value") for e in pod_spec(kafka)["containers"][0]["env"]}

    assert postgres["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert kafka["spec"]["replicas"] == 1
    assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert pod_spec(kafka)["containers"][0]["image"].startswith("apache/kafka:4.")
    assert find(objects, "ConfigMap", "tradeops-external")["data"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_prod_when_rendered_then_nothing_stateful_and_control_plane_is_redundant() -> None:
    objects = render("overlays/prod")

    assert of_kind(objects, "StatefulSet", "PersistentVolumeClaim") == []
    bootstrap = find(objects, "ConfigMap", "tradeops-external")["data"]["KAFKA_BOOTSTRAP_SERVERS"]
    assert "kafka:9092" not in bootstrap.split(",")
    for component in ("scheduler", "triggerer"):
        assert find(objects, "Deployment", f"airflow-{component}")["spec"]["replicas"] == 2
        assert find(objects, "PodDisruptionBudget", f"airflow-{component}")["spec"]["minAvailable"] == 1
    assert find(objects, "ConfigMap", "airflow-config")["data"]["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True"


@pytest.mark.parametrize("target", TARGETS)
def test_migration_job_when_rendered_then_migrates_then_bootstraps_the_suite(target: str) -> None:
    job = find(render(target), "Job", "airflow-migrate")
    spec = pod_spec(job)

    assert [c["args"] for c in spec["initContainers"]] == [["airflow", "db", "migrate"]]
    script = spec["containers"][0]["args"][0]
    steps = [line.split()[:2] for line in script.strip().splitlines()]
    assert steps == [["airflow", "pools"], ["tradeops", "config"], ["tradeops", "init"], ["tradeops", "kafka"]]
    assert spec["restartPolicy"] == "OnFailure" and job["spec"]["backoffLimit"] >= 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_login_when_rendered_then_the_configured_user_gets_the_generated_password(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    users = dict(u.split(":") for u in airflow_config(objects)["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(","))
    spec = pod_spec(find(objects, "Deployment", "airflow-api-server"))
    writer = next(c for c in spec["initContainers"] if c["name"] == "write-auth-passwords")

    script = writer["args"][0]

    assert users == {"tradeops": "admin", "approver": "admin"}
    assert '{"tradeops": os.environ["ADMIN_PASSWORD"]}' in script and 'users["approver"]' in script
    assert env_value(writer, "ADMIN_PASSWORD")["valueFrom"]["secretKeyRef"] == {
        "name": "airflow-secrets",
        "key": "admin-password",
    }
    assert env_value(writer, "APPROVER_PASSWORD")["valueFrom"]["secretKeyRef"] == {
        "name": "airflow-secrets",
        "key": "approver-password",
        "optional": True,
    }
    assert airflow_config(objects)["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] in script
