"""Deploying a challenger: pre-deploy checks, the blue/green shadow replay, rollback, finalize.

Blue is the champion, green the version being deployed. Pre-deploy loads green from the
registry, predicts on recent stored features (finite, within [0, 1]) and compares the
requirements it was logged with against the running environment. The shadow replay sends the
last ``deployment.shadow_days`` stored days through both (thinned like the training samples):
at least ``min_valid_share`` valid predictions, p99 single-prediction latency at most
``max_p99_ms``, and green's per-bar PnL against blue's on identical bars (never "worse").
The canary (``tradeops.models.canary``) comes next. A breach anywhere rolls back: every
instrument routed to the champion again, ``challenger`` removed, the reason recorded and
published. Finalize moves ``champion`` to green and ``previous`` to blue.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import TYPE_CHECKING, Any

from tradeops.config import Settings
from tradeops.errors import TradeopsError
from tradeops.models.registry import CHALLENGER, CHAMPION, PREVIOUS

if TYPE_CHECKING:
    import numpy as np

    from tradeops.market_data.store import FeatureStore

log = logging.getLogger(__name__)
_LATENCY_ROWS = 200  # single-row predictions timed per model in the shadow replay
_SMOKE_ROWS = 500


class DeploymentError(TradeopsError):
    """A check refused the version; the message names the check and the figures."""


@dataclass(frozen=True)
class Release:
    green: str  # the version being deployed
    blue: str | None  # the champion it would replace (None: the first deployment)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve(settings: Settings, version: str | None) -> Release:
    """The version to deploy (given, else the ``challenger`` alias) and the current champion."""
    from tradeops.models import registry

    green = str(version) if version else registry.alias_version(settings, CHALLENGER)
    if not green:
        raise DeploymentError("no version given (conf 'version') and no 'challenger' alias: nothing to deploy")
    blue = registry.alias_version(settings, CHAMPION)
    if blue == green:
        raise DeploymentError(f"version {green} is already the champion")
    _previous_kept(settings)
    return Release(green, blue)


def _previous_kept(settings: Settings, now: datetime | None = None) -> None:
    """Refuse while ``previous`` is younger than ``deployment.keep_previous_hours``: finishing
    another rollout would replace it, and the one-command rollback would lose its target."""
    from tradeops.models import registry

    hours = settings.models.deployment.keep_previous_hours
    previous = registry.alias_version(settings, PREVIOUS)
    if not hours or previous is None:
        return
    history = registry.alias_history(settings, limit=500)
    moves = [c for c in history if c.alias == PREVIOUS and c.new_version == previous]
    if not moves:
        return
    since = moves[0].at if moves[0].at.tzinfo else moves[0].at.replace(tzinfo=UTC)
    until = since + timedelta(hours=hours)
    if (now or datetime.now(UTC)) < until:
        raise DeploymentError(
            f"version {previous} became 'previous' at {since:%Y-%m-%d %H:%M} UTC and stays the rollback target"
            f" until {until:%Y-%m-%d %H:%M} UTC (models.deployment.keep_previous_hours = {hours:g}): deploy after"
            " that, or `tradeops models rollback` first"
        )


def model_uri(settings: Settings, version: str) -> str:
    return f"models:/{settings.models.registered_model}/{version}"


def requirement_mismatches(settings: Settings, version: str) -> list[str]:
    """Each pinned requirement the version was logged with that the environment does not meet."""
    import mlflow.pyfunc

    from tradeops.models import tracking

    tracking.client(settings)
    path = mlflow.pyfunc.get_model_dependencies(model_uri(settings, version))
    out = []
    for line in open(path).read().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")) or "==" not in line:
            continue
        name, wanted = (part.strip() for part in line.split("==", 1))
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            out.append(f"{name}=={wanted}: not installed")
            continue
        if installed != wanted:
            out.append(f"{name}=={wanted}: {installed} installed")
    return out


def load(settings: Settings, version: str) -> Any:
    import mlflow.sklearn

    from tradeops.models import tracking

    tracking.client(settings)
    return mlflow.sklearn.load_model(model_uri(settings, version))


def feature_columns(settings: Settings, version: str) -> list[str]:
    from tradeops.models import registry

    columns = registry.version_features(settings, version)
    if not columns:
        raise DeploymentError(
            f"version {version} has no 'features' tag: it was not registered by the training pipeline"
        )
    return list(columns)


def pre_deploy(settings: Settings, store: FeatureStore, version: str) -> dict[str, Any]:
    """Load ``version``, smoke-test it on the latest stored day, check its requirements."""
    import numpy as np

    mismatches = requirement_mismatches(settings, version)
    if mismatches:
        raise DeploymentError(f"version {version} needs another environment: " + "; ".join(mismatches))
    days = store.days()
    if not days:
        raise DeploymentError("the feature store holds no day to smoke-test the model on")
    columns = feature_columns(settings, version)
    sample = store.read_sample(days[-1])
    missing = sorted(set(columns) - set(sample.columns))
    if missing:
        raise DeploymentError(f"the store's features lack the model's inputs {missing}")
    rows = sample[columns].head(_SMOKE_ROWS)
    probability = load(settings, version).predict_proba(rows)[:, 1]
    bad = int((~np.isfinite(probability) | (probability < 0) | (probability > 1)).sum())
    if bad:
        raise DeploymentError(f"version {version}: {bad} of {len(rows)} smoke predictions not a probability")
    return {"version": version, "smoke_rows": len(rows), "day": days[-1].isoformat(), "requirements": "match"}


@dataclass(frozen=True)
class ShadowReport:
    days: list[str]
    bars: int
    valid_share: dict[str, float]  # version -> share of valid predictions
    p99_ms: dict[str, float]
    pnl: str  # worse / not_worse / inconclusive / n/a (no champion)
    mean_difference: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def shadow(settings: Settings, store: FeatureStore, release: Release) -> ShadowReport:
    """Replay the last stored days through green (and blue); raises ``DeploymentError`` on a breach."""
    from tradeops.models.backtest import backtest, positions_from_probabilities
    from tradeops.models.dataset import load_samples
    from tradeops.models.metrics import paired_pnl_test

    deployment, costs = settings.models.deployment, settings.models.backtest
    days = store.days()[-deployment.shadow_days :]
    if not days:
        raise DeploymentError("the feature store holds no day to replay")
    samples = load_samples(settings, store, days)
    versions = [release.green, *([release.blue] if release.blue else [])]
    valid, p99, returns = {}, {}, {}
    for version in versions:
        model = load(settings, version)
        rows = samples.features[feature_columns(settings, version)]
        probability = model.predict_proba(rows)[:, 1]
        valid[version] = _valid_share(probability)
        p99[version] = _p99_single_row_ms(model, rows)
        result = backtest(
            samples.starts,
            samples.instruments,
            positions_from_probabilities(probability, costs.threshold),
            samples.hold_return,
            costs.fee_bps,
            costs.slippage_bps,
        )
        returns[version] = result.returns
    if release.blue:
        verdict = paired_pnl_test(
            returns[release.green],
            returns[release.blue],
            margin=deployment.pnl_margin,
            min_samples=deployment.min_samples,
        )
        pnl, difference, reason = verdict.outcome, verdict.mean_difference, verdict.reason
    else:
        pnl, difference, reason = "n/a", float("nan"), "no champion to compare with (first deployment)"
    report = ShadowReport([d.isoformat() for d in days], len(samples), valid, p99, pnl, difference, reason)
    problems = [
        f"{v}: {s:.1%} valid predictions < {deployment.min_valid_share:.0%}"
        for v, s in valid.items()
        if v == release.green and s < deployment.min_valid_share
    ]
    if p99[release.green] > deployment.max_p99_ms:
        problems.append(f"p99 latency {p99[release.green]:.1f} ms > {deployment.max_p99_ms:g} ms")
    if pnl == "worse":
        problems.append(f"per-bar PnL worse than the champion on identical bars ({reason})")
    if problems:
        raise DeploymentError(f"shadow replay of version {release.green}: " + "; ".join(problems))
    return report


def _valid_share(probability: np.ndarray) -> float:
    import numpy as np

    if not len(probability):
        return 0.0
    return float((np.isfinite(probability) & (probability >= 0) & (probability <= 1)).mean())


def _p99_single_row_ms(model: Any, rows: Any) -> float:
    import numpy as np

    timings = []
    for index in range(min(_LATENCY_ROWS, len(rows))):
        started = time.perf_counter()
        model.predict_proba(rows.iloc[index : index + 1])
        timings.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(timings, 99)) if timings else float("nan")


def rollback(settings: Settings, release: Release, reason: str, actor: str) -> None:
    """Every instrument back on the champion (or unrouted when there is none), ``challenger``
    removed; the reason recorded with each change."""
    from tradeops.models import registry, routing

    why = f"rollback of version {release.green}: {reason}"
    if release.blue:
        routing.route_all(release.blue, "champion", actor=actor, reason=why, universe=settings.market_data.universe)
    else:
        on_green = [i for i, route in routing.routes().items() if route.version == release.green]
        routing.unroute(on_green, actor=actor, reason=why)
    registry.remove_alias(settings, CHALLENGER, actor=actor, reason=why)
    log.error("deployment of version %s rolled back: %s", release.green, reason)


def finalize(settings: Settings, release: Release, actor: str) -> None:
    """Green becomes the champion on every instrument; blue stays registered as ``previous``."""
    from tradeops.models import registry, routing

    why = f"version {release.green} passed every canary stage"
    routing.route_all(release.green, "champion", actor=actor, reason=why, universe=settings.market_data.universe)
    if release.blue:
        registry.set_alias(settings, PREVIOUS, release.blue, actor=actor, reason=f"replaced by {release.green}")
    registry.set_alias(settings, CHAMPION, release.green, actor=actor, reason=why)
    registry.remove_alias(settings, CHALLENGER, actor=actor, reason=why)
