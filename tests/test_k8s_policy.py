"""The policy scanner (checkov) finds nothing in the rendered manifests, the worker pod or the Dockerfile.

Offline checkov reports no severities, so the bar is stricter than "no high-severity issue": no
failed check at all. Each exception is a `checkov.io/skipN` annotation on the object, carrying its
reason, and the reason is checked here too. A deliberately insecure pod proves the scanner runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s_support import ROOT, TARGETS_ALL, airflow_config, render, worker_template

CONTROL_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "control"},
    "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]},
}


def _checkov() -> str:
    path = os.environ.get("TRADEOPS_CHECKOV") or str(ROOT / ".venv-checkov" / "bin" / "checkov")
    if not Path(path).exists():
        raise AssertionError(f"checkov not found at {path}: `make test` installs it into .venv-checkov")
    return path


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """One checkov run over everything; results per scanned file name, then per outcome."""
    work = tmp_path_factory.mktemp("checkov")
    for target in TARGETS_ALL:
        objects = render(target)
        # The worker pod as the executor submits it: in the executor's namespace, next to the
        # NetworkPolicies that select it.
        worker = worker_template(objects)
        worker["metadata"]["namespace"] = airflow_config(objects)["AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE"]
        (work / f"{target.replace('/', '-')}.yaml").write_text(yaml.safe_dump_all([*objects, worker]))
    (work / "control.yaml").write_text(yaml.safe_dump(CONTROL_POD))
    shutil.copy(ROOT / "Dockerfile", work / "Dockerfile")
    result = subprocess.run(
        [_checkov(), "-d", str(work), "--framework", "kubernetes", "dockerfile", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        check=False,
    )
    assert result.stdout.strip(), result.stderr[-3000:]
    reports = json.loads(result.stdout)
    by_file: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for report in reports if isinstance(reports, list) else [reports]:
        for outcome in ("passed_checks", "failed_checks", "skipped_checks"):
            for check in report["results"].get(outcome, []):
                name = Path(check["file_path"]).name
                by_file.setdefault(name, {}).setdefault(outcome, []).append(check)
    return by_file


def _failures(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    return [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results.get("failed_checks", [])]


@pytest.mark.parametrize("name", [*(f"{t.replace('/', '-')}.yaml" for t in TARGETS_ALL), "Dockerfile"])
def test_policy_scan_when_run_then_nothing_fails(scan: dict, name: str) -> None:
    results = scan[name]

    assert _failures(results) == []
    assert len(results["passed_checks"]) > 20


@pytest.mark.parametrize("name", [f"{t.replace('/', '-')}.yaml" for t in TARGETS_ALL])
def test_policy_exceptions_when_skipped_then_each_carries_its_reason(scan: dict, name: str) -> None:
    skipped = scan[name].get("skipped_checks", [])

    unjustified = [
        f"{c['check_id']} {c['resource']}"
        for c in skipped
        if len(c["check_result"].get("suppress_comment", "").split()) < 6
    ]

    assert unjustified == []
    assert any(c["resource"].startswith("Pod.") for c in skipped), "the worker pod was not scanned"


def test_policy_scan_when_pod_is_privileged_then_it_fails(scan: dict) -> None:
    failed = {c["check_id"] for c in scan["control.yaml"]["failed_checks"]}

    assert "CKV_K8S_16" in failed  # privileged container
