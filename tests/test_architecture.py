"""Architecture rules: tradeops never imports Airflow; DAG files only wire; config holds data."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_tradeops_sources_when_scanned_then_no_airflow_import() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if n.split(".")[0] == "airflow")
        for path in (ROOT / "tradeops").rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_tradeops_when_imported_then_airflow_not_loaded() -> None:
    """Importing every tradeops module in a fresh interpreter loads no airflow module."""
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "tradeops").rglob("*.py")
        # Alembic runs env.py and the revisions itself; they are scripts, not importable modules.
        if p.name != "__main__.py" and "migrations" not in p.relative_to(ROOT).parts
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


def test_dag_files_when_scanned_then_define_no_functions_or_classes() -> None:
    """DAG files only wire tasks: logic lives in tradeops/, operators/ and sensors/."""
    for path in (ROOT / "dags").glob("*.py"):
        tree = ast.parse(path.read_text())
        defined = [
            n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        ]
        assert not defined, f"{path.name} defines {defined}"


def test_config_and_plugins_folders_when_scanned_then_no_generic_modules() -> None:
    assert not list((ROOT / "config").rglob("*.py")), "config/ holds data, not Python"
    for path in (ROOT / "plugins").glob("*.py"):
        assert path.stem.startswith("tradeops_"), f"plugins/{path.name}: use a uniquely named module"
