"""Load a DAG file of dags/ the way the DAG processor does: as a fresh module from its path."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

DAGS = Path(__file__).resolve().parent.parent / "dags"


def load_dag_module(name: str) -> ModuleType:
    """Execute dags/<name>.py as a new module (never shared with an earlier load)."""
    spec = importlib.util.spec_from_file_location(f"_dag_{name}", DAGS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_dag(name: str) -> Any:
    """The ``dag`` object of dags/<name>.py."""
    return load_dag_module(name).dag
