"""The Dockerfile bakes in what every component runs, as non-root, and agrees with the manifests.

There is no container engine here, so the image itself is never built in this suite; the policy
scanner (tests/test_k8s_policy.py) also reads the Dockerfile.
"""

from __future__ import annotations

import fnmatch
import re

from tests.k8s_support import ROOT, airflow_config, render

DOCKERFILE = (ROOT / "Dockerfile").read_text()
BAKED = ("dags", "plugins", "operators", "sensors", "tradeops", "config")


def _stages() -> list[list[tuple[str, str]]]:
    """Per build stage, (INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        name, args = line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else ""
        if name == "FROM":
            stages.append([])
        stages[-1].append((name, args))
    return stages


def _instructions() -> list[tuple[str, str]]:
    """The image's own stage (the last): what runs in the cluster."""
    return _stages()[-1]


def _args(instruction: str) -> list[str]:
    return [args for name, args in _instructions() if name == instruction]


def _copied_sources() -> list[str]:
    sources = []
    for args in _args("COPY"):
        if "--from=" in args:
            continue
        parts = [p for p in args.split() if not p.startswith("--")]
        sources += parts[:-1]
    return sources


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _args("ENV"):
        env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def test_dockerfile_when_read_then_official_airflow_base_matching_the_pinned_version() -> None:
    pinned = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)

    assert _args("FROM") == ["apache/airflow:3.3.2-python3.12"]
    assert pinned is not None and pinned.group(1) == "3.3.2"


def test_dockerfile_when_read_then_runs_as_uid_50000_with_a_health_check() -> None:
    assert _args("USER")[-1] == "50000"
    assert len(_args("HEALTHCHECK")) == 1 and "CMD" in _args("HEALTHCHECK")[0]


def test_dockerfile_when_read_then_pinned_dependencies_first_and_every_code_folder_baked() -> None:
    sources = _copied_sources()
    runs = " ".join(_args("RUN"))

    assert sources[0] == "requirements.txt", "the dependency layer must come first (cache)"
    assert "-r /opt/airflow/tradeops-src/requirements.txt" in runs
    for folder in BAKED:
        assert f"{folder}/" in sources, folder
    assert all(p not in sources for p in (".", "./")), "never COPY the whole context"


def test_dockerfile_when_read_then_no_secret_is_baked() -> None:
    names = [*_env(), *(a.split("=")[0] for a in _args("ARG"))]

    assert not [n for n in names if re.search(r"PASSWORD|SECRET|FERNET|TOKEN|CONN|KEY", n, re.I)]
    assert "AIRFLOW_CONN_" not in DOCKERFILE and "TRADEOPS_DB_URL" not in DOCKERFILE


def test_dockerignore_when_read_then_keeps_state_and_tools_out_and_baked_code_in() -> None:
    patterns = [
        p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in patterns)

    for path in (".git", ".venv", ".venv-checkov", ".local", "tests", "k8s", "deploy.sh"):
        assert ignored(path), path
    for source in _copied_sources():
        assert not ignored(source.rstrip("/")), f"{source} is copied but excluded by .dockerignore"


def test_image_paths_when_compared_then_match_the_cluster_configuration() -> None:
    config = airflow_config(render("overlays/prod"))
    env = _env()

    for key in ("AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER", "TRADEOPS_CONFIG"):
        assert env[key] == config[key], key
    copied_to = {
        args.split()[-1].rstrip("/") for args in _args("COPY") if args.split()[-2] in ("dags/", "plugins/", "config/")
    }
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] in copied_to
    assert env["TRADEOPS_CONFIG"].rsplit("/", 1)[0] in copied_to
    assert (ROOT / "config" / env["TRADEOPS_CONFIG"].rsplit("/", 1)[1]).is_file()


def test_dockerfile_when_read_then_the_desk_bundle_is_built_from_the_lockfile_in_its_own_stage() -> None:
    (builder,) = _stages()[:-1]
    runs = " ".join(args for name, args in builder if name == "RUN")
    first_copy = next(args for name, args in builder if name == "COPY")
    from_builder = [args for args in _args("COPY") if "--from=desk-ui" in args]

    assert builder[0][1].startswith("node:20.") and builder[0][1].endswith(" AS desk-ui")
    assert first_copy.split()[:-1] == ["ui/package.json", "ui/package-lock.json"]  # the npm ci layer is cached
    assert "npm ci" in runs and "npm install" not in runs and "npm run build" in runs
    assert from_builder == ["--from=desk-ui --chown=airflow:0 /ui/dist/ /opt/airflow/tradeops-desk/"]
    assert _env()["TRADEOPS_DESK_BUNDLE_DIR"] == "/opt/airflow/tradeops-desk"
