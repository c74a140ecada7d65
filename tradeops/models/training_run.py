"""One weekly training run end to end: samples from the store, evaluation, MLflow, registry.

Everything a reviewer needs is logged to one MLflow run: parameters (the config used), CV and
held-out metrics, the model (an sklearn pipeline with signature, input example and pinned
requirements) registered as a new version of ``models.registered_model``, the model card, the
manifests of the feature partitions read and the code version. The version's tags carry the gate
results (``gate.<name>`` = pass/fail, ``.value``, ``.limit``), ``passed``, the input ``features``
and the training window, which serving, the CLI and the deployment read. Nothing here moves an
alias: promotion is a separate step (``promote``), after an approval when one is required.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from tradeops.config import Settings
from tradeops.market_data.registry import REGISTRY_VERSION
from tradeops.market_data.store import FeatureStore, code_version, open_root
from tradeops.models import tracking
from tradeops.models.dataset import NotEnoughData, Samples, load_samples, training_days
from tradeops.models.training import Evaluation, evaluate

log = logging.getLogger(__name__)
# Below this many distinct sample times the folds and the test window would be a handful of
# bars each: too thin to judge anything.
MIN_SAMPLE_TIMES = 300


@dataclass(frozen=True)
class TrainingOutcome:
    """What the run produced, small and JSON-safe (the task's XCom)."""

    version: str
    run_id: str
    passed: bool
    chosen: str
    gates: list[dict[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "sharpe_24x7 = 0.31, needs > 2"
    days: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def samples_for(settings: Settings, before: date, root: Any = None) -> Samples:
    """The lookback's samples, or ``NotEnoughData`` saying what is missing. ``root``: the store's
    root (an ``ObjectStoragePath`` with its connection in a task), else from the config."""
    import numpy as np

    store = FeatureStore(root if root is not None else open_root(settings))
    days = training_days(store, before, settings.models.training.lookback_days)
    if len(days) < 2:
        raise NotEnoughData(
            f"{len(days)} day(s) of features before {before.isoformat()} in the store (lookback"
            f" {settings.models.training.lookback_days} days): training needs at least 2"
        )
    samples = load_samples(settings, store, days)
    times = len(np.unique(samples.starts))
    if times < MIN_SAMPLE_TIMES:
        raise NotEnoughData(f"{times} sample times over {len(days)} days: training needs {MIN_SAMPLE_TIMES}")
    return samples


def run_training(settings: Settings, before: date, root: Any = None) -> TrainingOutcome:
    """Train on the days before ``before``, log and register the result (never promotes)."""
    samples = samples_for(settings, before, root)
    evaluation = evaluate(settings, samples)
    outcome = record(settings, evaluation, samples, before)
    if outcome.passed:
        log.info("model version %s (%s) passed every gate", outcome.version, outcome.chosen)
    else:
        log.warning(
            "model version %s (%s) failed gates: %s", outcome.version, outcome.chosen, "; ".join(outcome.failed)
        )
    return outcome


def promote(settings: Settings, version: str, actor: str, reason: str) -> None:
    """Point ``challenger`` at ``version`` (recorded with who and why)."""
    from tradeops.models.registry import CHALLENGER, set_alias

    set_alias(settings, CHALLENGER, version, actor=actor, reason=reason)


def record(settings: Settings, evaluation: Evaluation, samples: Samples, before: date) -> TrainingOutcome:
    """Log ``evaluation`` to MLflow, register its model and tag the version."""
    import mlflow

    from tradeops.models import model_card

    client = tracking.client(settings)
    name = settings.models.registered_model
    facts = _facts(evaluation, samples)
    with mlflow.start_run(experiment_id=tracking.experiment_id(settings), run_name=f"weekly {before}") as run:
        mlflow.log_params(_params(settings, evaluation, samples))
        mlflow.log_metrics(_metrics(evaluation))
        mlflow.set_tags(
            {"code_version": facts["code_version"], "run_day": before.isoformat(), "chosen": evaluation.chosen}
        )
        version = _log_model(settings, evaluation)
        facts["version"] = version
        with tempfile.TemporaryDirectory(prefix="tradeops-card-") as tmp:
            folder = Path(tmp) / "model_card"
            model_card.write(settings, evaluation, folder, facts)
            mlflow.log_artifacts(str(folder), artifact_path="model_card")
            manifests = Path(tmp) / "manifests.json"
            manifests.write_text(json.dumps(list(samples.manifests), indent=2, sort_keys=True, default=str))
            mlflow.log_artifact(str(manifests), artifact_path="data")
        run_id = run.info.run_id
    for key, value in _version_tags(evaluation, facts).items():
        client.set_model_version_tag(name, version, key, value)
    return TrainingOutcome(
        version=version,
        run_id=run_id,
        passed=evaluation.passed,
        chosen=evaluation.chosen,
        gates=[g.to_dict() for g in evaluation.gates],
        failed=[f"{g.name} = {g.value:.4g}, needs {g.rule}" for g in evaluation.failed()],
        days=[d.isoformat() for d in samples.days],
    )


def _log_model(settings: Settings, evaluation: Evaluation) -> str:
    import mlflow.sklearn
    import numpy
    import pandas
    import sklearn
    from mlflow.models import infer_signature

    features = evaluation.train.features
    complete = features.dropna()
    example = (complete if len(complete) else features.fillna(0.0)).head(5)
    signature = infer_signature(example, evaluation.model.predict_proba(example)[:, 1])
    info = mlflow.sklearn.log_model(
        sk_model=evaluation.model,
        name="model",
        signature=signature,
        input_example=example,
        registered_model_name=settings.models.registered_model,
        # saved with skops (no pickle); the boosted trees' bin mapper holds numpy dtypes
        skops_trusted_types=["numpy.dtype"],
        # recorded, not inferred (inference imports the model in a subprocess): the deployment
        # checks these against the environment that will serve it
        pip_requirements=[
            f"scikit-learn=={sklearn.__version__}",
            f"numpy=={numpy.__version__}",
            f"pandas=={pandas.__version__}",
        ],
    )
    return str(info.registered_model_version)


def _facts(evaluation: Evaluation, samples: Samples) -> dict[str, Any]:
    return {
        "first_day": samples.days[0].isoformat(),
        "last_day": samples.days[-1].isoformat(),
        "days": len(samples.days),
        "test_start": str(evaluation.test.starts.min()) if len(evaluation.test) else "",
        "feature_registry_version": REGISTRY_VERSION,
        "code_version": code_version(),
    }


def _params(settings: Settings, evaluation: Evaluation, samples: Samples) -> dict[str, Any]:
    config = settings.models
    params: dict[str, Any] = {
        "chosen": evaluation.chosen,
        "samples": len(samples),
        "instruments": len(set(samples.instruments)),
    }
    for section in ("training", "backtest", "gates"):
        params.update({f"{section}.{k}": v for k, v in getattr(config, section).model_dump().items()})
    model = evaluation.model.steps[-1][1]
    params.update({f"model.{k}": v for k, v in model.get_params().items() if isinstance(v, int | float | str | bool)})
    return params


def _metrics(evaluation: Evaluation) -> dict[str, float]:
    import math

    from tradeops.models.training import group_slug

    metrics = {f"test.{k}": v for k, v in evaluation.classification.items()}
    for group in evaluation.groups:
        metrics.update({f"test.{group_slug(group.calendar)}.{k}": v for k, v in group.metrics.items()})
    for name, figures in evaluation.cv.items():
        metrics.update({f"cv.{name}.{k}": v for k, v in figures.items()})
    return {k: float(v) for k, v in metrics.items() if not math.isnan(float(v)) and not math.isinf(float(v))}


def _version_tags(evaluation: Evaluation, facts: dict[str, Any]) -> dict[str, str]:
    tags = {
        "passed": "true" if evaluation.passed else "false",
        "chosen": evaluation.chosen,
        "features": json.dumps(list(evaluation.train.features.columns)),
        "calendars": json.dumps([g.calendar for g in evaluation.groups]),
        "train_first_day": facts["first_day"],
        "train_last_day": facts["last_day"],
        "test_start": facts["test_start"],
        "feature_registry_version": facts["feature_registry_version"],
        "code_version": facts["code_version"],
    }
    for gate in evaluation.gates:
        tags[f"gate.{gate.name}"] = "pass" if gate.passed else "fail"
        tags[f"gate.{gate.name}.value"] = repr(gate.value)
        tags[f"gate.{gate.name}.limit"] = repr(gate.limit)
    return tags
