"""The kill switch's Airflow latency settings: one list (scripts/airflow-latency.env) that the local
stack sources, and the same values in every rendered Kubernetes target."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.k8s_support import ROOT, TARGETS_ALL, airflow_config, render

ENV_FILE = ROOT / "scripts" / "airflow-latency.env"
# Each setting: export NAME="${NAME:-VALUE}" (a value already in the environment wins).
SETTING = re.compile(r'^export (?P<name>AIRFLOW__[A-Z0-9_]+)="\$\{(?P=name):-(?P<value>[^}"]*)\}"$')


def _latency_settings() -> dict[str, str]:
    settings = {}
    for number, line in enumerate(ENV_FILE.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = SETTING.match(line)
        assert match, f"{ENV_FILE.name}:{number} is not export NAME=\"${{NAME:-VALUE}}\": {line!r}"
        settings[match["name"]] = match["value"]
    return settings


def test_env_file_when_read_then_every_line_is_a_setting_and_there_are_some() -> None:
    settings = _latency_settings()

    assert "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME" in settings
    assert all(value.strip() for value in settings.values())


@pytest.mark.parametrize("target", TARGETS_ALL)
def test_latency_settings_when_rendered_then_k8s_carries_the_local_stack_values(target: str) -> None:
    config = airflow_config(render(target))

    assert {name: config.get(name) for name in _latency_settings()} == _latency_settings()


def test_local_stack_when_started_then_it_sources_the_latency_settings() -> None:
    lines = (ROOT / "scripts" / "local-stack.sh").read_text().splitlines()

    assert 'source "$ROOT/scripts/airflow-latency.env"' in lines


def test_env_file_when_sourced_then_defaults_set_and_a_value_already_given_wins() -> None:
    script = f'source "{ENV_FILE}"; printf "%s" "$AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"'

    default = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, env={})
    given = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1"},
    )

    assert default.stdout == _latency_settings()["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"]
    assert given.stdout == "1"
