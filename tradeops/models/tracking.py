"""Where MLflow keeps runs, models and the registry: one place that turns ``models.*`` config
into URIs and a client, so training, serving and the CLI all talk to the same store.

``models.tracking_uri`` is a path under the project (a SQLite file, the default) or any MLflow
URI. A local store keeps artifacts under ``models.artifact_root``. mlflow is imported inside the
functions (it is heavy and DAG files must parse fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tradeops.config import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT = "tradeops-training"


def tracking_uri(settings: Settings) -> str:
    """``models.tracking_uri`` as an MLflow URI: a bare path becomes ``sqlite:///<absolute>``."""
    configured = settings.models.tracking_uri
    if "://" in configured or configured.startswith(("databricks", "file:")):
        return configured
    return f"sqlite:///{_under_project(configured)}"


def artifact_location(settings: Settings) -> str | None:
    """Where a new experiment stores artifacts: the local ``artifact_root`` for a SQLite
    tracking store, the server's default otherwise (None)."""
    if not tracking_uri(settings).startswith("sqlite:///"):
        return None
    path = _under_project(settings.models.artifact_root)
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def client(settings: Settings) -> MlflowClient:
    """An MLflow client on the configured tracking and registry store; also points the fluent
    API (``mlflow.start_run``, ``mlflow.sklearn.log_model``) at it."""
    import mlflow

    uri = tracking_uri(settings)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(settings: Settings, name: str = EXPERIMENT) -> str:
    """The training experiment, created on first use with the configured artifact location."""
    mlflow_client = client(settings)
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    return str(mlflow_client.create_experiment(name, artifact_location=artifact_location(settings)))


def _under_project(configured: str) -> Path:
    path = Path(configured)
    return (path if path.is_absolute() else PROJECT_ROOT / path).resolve()
