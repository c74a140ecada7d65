"""Served predictions: the probability that an instrument goes "up", from the model version the
routing table names for it, each prediction recorded in ``model_predictions``.

``Predictor.predict`` reads the instrument's route on every call (a rollback takes effect on the
next bar), loads that version from the registry once (``models:/<name>/<version>``, cached per
version; concurrent first calls wait for one load) and feeds it the last row of the given
features, in the columns of the version's ``features`` tag. Anything that goes wrong (no route,
a version that does not load, missing columns, a model that raises or returns no probability)
comes back as a ``Prediction`` with ``error`` set and is recorded like any other: the caller's
loop never crashes on a model, and the canary gates count every failure. ``latency_ms`` is the
time from features to probability; a version's one-off load is logged, not counted in it.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select

from tradeops.db import get_engine, transaction, utcnow
from tradeops.models import registry, routing, tracking
from tradeops.models.model_tables import model_predictions

if TYPE_CHECKING:
    import pandas as pd

    from tradeops.config import Settings

log = logging.getLogger(__name__)

SHADOW = "shadow"  # the role recorded for ``predict_with`` (a version asked for by name, not routed)
_POSITIVE_CLASSES = (1, "up")  # True == 1, so a boolean label is found too


@dataclass(frozen=True, kw_only=True)
class Prediction:
    venue: str
    symbol: str
    model: str
    version: str | None
    role: str | None
    probability: float | None  # of "up"; None when ``error`` is set
    latency_ms: float
    error: str | None
    bar_ts: datetime | None


@dataclass(frozen=True, kw_only=True)
class PredictionRecord(Prediction):
    id: int
    at: datetime
    features: dict[str, Any]  # the values the model was given (NaN as None)


@dataclass(frozen=True)
class _Loaded:
    estimator: Any
    features: tuple[str, ...]
    positive: int  # column of "up" in predict_proba


class _PredictionError(Exception):
    """Why one prediction has no probability (recorded, never raised to the caller)."""


class Predictor:
    """Predictions through the routing table, with the loaded versions cached (thread-safe)."""

    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self._settings = settings
        self._engine = engine
        self._models: dict[tuple[str, str], _Loaded] = {}
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self._loads = 0

    @property
    def loads(self) -> int:
        """How many times this predictor loaded a model version from the registry."""
        return self._loads

    def cached_versions(self) -> tuple[tuple[str, str], ...]:
        """(model, version) of every version loaded so far."""
        with self._lock:
            return tuple(sorted(self._models))

    def predict(self, venue: str, symbol: str, features: pd.DataFrame, *, bar_ts: datetime | None = None) -> Prediction:
        """Predict the last row of ``features`` with the version routed to (venue, symbol)."""
        route = routing.route_for(venue, symbol, self._engine)
        if route is None:
            return self._attempt(
                venue, symbol, features, bar_ts, model=self._settings.models.registered_model, version=None, role=None
            ).failed(f"no model is routed to {venue} {symbol}")
        return self._run(route.model, route.version, route.role, venue, symbol, features, bar_ts)

    def predict_with(
        self,
        version: str,
        venue: str,
        symbol: str,
        features: pd.DataFrame,
        *,
        role: str = SHADOW,
        bar_ts: datetime | None = None,
    ) -> Prediction:
        """Predict with ``version`` of the registered model whatever the routing says (shadow
        replay); recorded with ``role`` (default ``shadow``)."""
        model = self._settings.models.registered_model
        return self._run(model, str(version), role, venue, symbol, features, bar_ts)

    def _run(
        self,
        model: str,
        version: str,
        role: str,
        venue: str,
        symbol: str,
        features: pd.DataFrame,
        bar_ts: datetime | None,
    ) -> Prediction:
        attempt = self._attempt(venue, symbol, features, bar_ts, model=model, version=version, role=role)
        try:
            loaded = self._load(model, version)
        except Exception as exc:  # any failure to load is this prediction's error, recorded
            return attempt.failed(f"cannot load models:/{model}/{version}: {type(exc).__name__}: {exc}")
        started = time.perf_counter()
        try:
            row = _input_row(features, loaded.features, venue, symbol)
            attempt.used = _jsonable_row(row)
            probability = _probability(loaded, row)
        except Exception as exc:  # a model or input failure is this prediction's error, recorded
            return attempt.failed(_describe(exc), latency_ms=_ms_since(started))
        return attempt.succeeded(probability, latency_ms=_ms_since(started))

    def _attempt(
        self,
        venue: str,
        symbol: str,
        features: pd.DataFrame,
        bar_ts: datetime | None,
        *,
        model: str,
        version: str | None,
        role: str | None,
    ) -> _Attempt:
        return _Attempt(
            engine=self._engine,
            venue=venue,
            symbol=symbol,
            model=model,
            version=version,
            role=role,
            bar_ts=bar_ts if bar_ts is not None else _bar_ts(features),
            used=_jsonable_row(features.iloc[-1] if len(features) else None),
        )

    def _load(self, model: str, version: str) -> _Loaded:
        key = (model, version)
        loaded = self._models.get(key)
        if loaded is not None:
            return loaded
        with self._lock:
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            loaded = self._models.get(key)
            if loaded is None:
                loaded = self._fetch(model, version)
                with self._lock:
                    self._models[key] = loaded
                    self._loads += 1
        return loaded

    def _fetch(self, model: str, version: str) -> _Loaded:
        import mlflow.sklearn

        started = time.perf_counter()
        columns = registry.version_features(self._settings, version, model=model)
        if not columns:
            raise _PredictionError("the version has no 'features' tag naming its input columns")
        tracking.client(self._settings)  # points mlflow's model loading at the configured registry
        estimator = mlflow.sklearn.load_model(f"models:/{model}/{version}")
        classes = list(getattr(estimator, "classes_", []))
        positive = next((i for i, c in enumerate(classes) if c in _POSITIVE_CLASSES), None)
        if positive is None or not hasattr(estimator, "predict_proba"):
            raise _PredictionError(f"the model gives no probability of 'up' (classes {classes})")
        log.info("loaded models:/%s/%s (%d features) in %.0f ms", model, version, len(columns), _ms_since(started))
        return _Loaded(estimator=estimator, features=columns, positive=positive)


@dataclass(kw_only=True)
class _Attempt:
    """One prediction on its way to the table: what is known before the model answers."""

    engine: Engine | None
    venue: str
    symbol: str
    model: str
    version: str | None
    role: str | None
    bar_ts: datetime | None
    used: dict[str, Any]

    def failed(self, error: str, *, latency_ms: float = 0.0) -> Prediction:
        log.warning(
            "prediction for %s %s (models:/%s/%s) failed: %s", self.venue, self.symbol, self.model, self.version, error
        )
        return self._record(None, latency_ms, error)

    def succeeded(self, probability: float, *, latency_ms: float) -> Prediction:
        return self._record(probability, latency_ms, None)

    def _record(self, probability: float | None, latency_ms: float, error: str | None) -> Prediction:
        prediction = Prediction(
            venue=self.venue,
            symbol=self.symbol,
            model=self.model,
            version=self.version,
            role=self.role,
            probability=probability,
            latency_ms=latency_ms,
            error=error,
            bar_ts=self.bar_ts,
        )
        with transaction(self.engine or get_engine()) as conn:
            conn.execute(
                insert(model_predictions).values(
                    at=utcnow(),
                    bar_ts=self.bar_ts,
                    venue=self.venue,
                    symbol=self.symbol,
                    model=self.model,
                    version=self.version,
                    role=self.role,
                    probability=probability,
                    latency_ms=latency_ms,
                    error=error,
                    features=json.dumps(self.used, sort_keys=True, allow_nan=False),
                )
            )
        return prediction


def predictions(
    venue: str | None = None,
    symbol: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    version: str | None = None,
    *,
    model: str | None = None,
    role: str | None = None,
    limit: int | None = None,
    engine: Engine | None = None,
) -> list[PredictionRecord]:
    """Recorded predictions, oldest first, filtered on what is given (``since`` inclusive,
    ``until`` exclusive, on the time the prediction was made)."""
    table = model_predictions
    query = select(table).order_by(table.c.id)
    for column, value in (
        (table.c.venue, venue),
        (table.c.symbol, symbol),
        (table.c.version, None if version is None else str(version)),
        (table.c.model, model),
        (table.c.role, role),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(table.c.at >= since)
    if until is not None:
        query = query.where(table.c.at < until)
    if limit is not None:
        query = query.limit(limit)
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(query).all()
    return [
        PredictionRecord(
            id=r.id,
            at=r.at,
            venue=r.venue,
            symbol=r.symbol,
            model=r.model,
            version=r.version,
            role=r.role,
            probability=r.probability,
            latency_ms=r.latency_ms,
            error=r.error,
            bar_ts=r.bar_ts,
            features=json.loads(r.features),
        )
        for r in rows
    ]


def _input_row(features: pd.DataFrame, columns: tuple[str, ...], venue: str, symbol: str) -> pd.DataFrame:
    """The last row of ``features`` in the model's columns (a one-row frame, so the names reach
    the model); refuses a frame of another instrument or one lacking columns."""
    if not len(features):
        raise _PredictionError("no features given (empty frame)")
    last = features.iloc[-1]
    for key, expected in (("venue", venue), ("symbol", symbol)):
        if key in features.columns and last[key] != expected:
            raise _PredictionError(f"the features are of {key} {last[key]!r}, not {expected!r}")
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise _PredictionError(f"features missing columns the model needs: {missing}")
    return features.iloc[[-1]][list(columns)]


def _probability(loaded: _Loaded, row: pd.DataFrame) -> float:
    value = float(loaded.estimator.predict_proba(row)[0, loaded.positive])
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise _PredictionError(f"the model returned {value} as a probability")
    return value


def _bar_ts(features: pd.DataFrame) -> datetime | None:
    """The time of the bar predicted: the last ``ts``, else the last index entry if it is a time."""
    import pandas as pd

    if not len(features):
        return None
    value = features["ts"].iloc[-1] if "ts" in features.columns else features.index[-1]
    if not isinstance(value, datetime) or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def _jsonable_row(row: pd.Series | pd.DataFrame | None) -> dict[str, Any]:
    """A row as JSON-safe values: numbers as floats or ints, NaN, NaT, NA and infinities as None,
    times as ISO text."""
    if row is None:
        return {}
    series = row.iloc[0] if hasattr(row, "columns") else row
    return {str(name): _jsonable(value) for name, value in series.items()}


def _jsonable(value: Any) -> Any:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, _PredictionError) else f"{type(exc).__name__}: {exc}"


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
