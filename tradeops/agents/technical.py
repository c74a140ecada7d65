"""The technical picture of one instrument from the feature registry's values on its last bar.

Three components, each in [-1, 1], computed from features the market-data pipeline defines (the
same code, ``tradeops.market_data.features.compute``, fed the bars the agent fetched):
- ``rsi``: mean reversion on RSI 14: +1 at RSI 30 or below (oversold), -1 at 70 or above;
- ``macd``: the MACD histogram in units of the bar's volatility (``rv_30 / sqrt(30)``), squashed
  by tanh: momentum;
- ``trend``: the moving-average crossover regime (EMA 60 against EMA 240: +1 / 0 / -1).

The signal is their weighted mean (weights ``COMPONENT_WEIGHTS``). Confidence is how much the
components agree (``|sum w c| / sum w |c|``: 1 when all point the same way) times a volatility
damper: when the short-term volatility per bar (``rv_30``) exceeds the long-term one (``rv_240``)
by a factor ``k``, confidence is divided by ``k``. A missing feature drops its component (named
in ``missing``); with no component left the signal and confidence are 0. Pure: the same feature
values give the same floats (the replay relies on it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

COMPONENT_WEIGHTS: dict[str, float] = {"rsi": 0.3, "macd": 0.35, "trend": 0.35}
# The feature values the technical picture reads (all from tradeops.market_data.registry).
INPUTS: tuple[str, ...] = ("rsi_14", "macd", "macd_signal", "macd_hist", "trend_regime", "rv_30", "rv_240")


@dataclass(frozen=True, kw_only=True)
class TechnicalResult:
    signal: float
    confidence: float
    components: dict[str, float]
    volatility_ratio: float | None
    features: dict[str, float | None]  # the inputs, as read (None: missing)
    missing: tuple[str, ...] = ()
    bar_ts: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "confidence": self.confidence,
            "components": dict(self.components),
            "volatility_ratio": self.volatility_ratio,
            "features": dict(self.features),
            "missing": list(self.missing),
            "bar_ts": self.bar_ts,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TechnicalResult:
        return cls(
            signal=float(data["signal"]),
            confidence=float(data["confidence"]),
            components={k: float(v) for k, v in data["components"].items()},
            volatility_ratio=None if data["volatility_ratio"] is None else float(data["volatility_ratio"]),
            features=dict(data["features"]),
            missing=tuple(data.get("missing", ())),
            bar_ts=data.get("bar_ts"),
            notes=tuple(data.get("notes", ())),
        )


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _clip(value: float) -> float:
    return max(-1.0, min(1.0, value))


def analyze(features: Mapping[str, Any], *, bar_ts: str | None = None) -> TechnicalResult:
    """The technical signal and its confidence from one bar's feature values."""
    values = {name: _number(features.get(name)) for name in INPUTS}
    components: dict[str, float] = {}
    notes: list[str] = []
    rsi = values["rsi_14"]
    if rsi is not None:
        components["rsi"] = _clip((50.0 - rsi) / 20.0)
        notes.append(f"RSI {rsi:.1f} -> {components['rsi']:+.2f}")
    hist, rv_30 = values["macd_hist"], values["rv_30"]
    if hist is not None and rv_30 is not None and rv_30 > 0:
        per_bar = rv_30 / math.sqrt(30)
        components["macd"] = math.tanh(hist / per_bar)
        notes.append(f"MACD histogram {hist / per_bar:+.2f} bar sigmas -> {components['macd']:+.2f}")
    trend = values["trend_regime"]
    if trend is not None:
        components["trend"] = _clip(trend)
        words = {1.0: "EMA 60 above EMA 240", -1.0: "EMA 60 below EMA 240"}.get(components["trend"], "EMAs level")
        notes.append(f"MA crossover: {words} -> {components['trend']:+.0f}")
    missing = tuple(sorted(set(COMPONENT_WEIGHTS) - set(components)))
    ratio = _volatility_ratio(values["rv_30"], values["rv_240"])
    if not components:
        return TechnicalResult(
            signal=0.0,
            confidence=0.0,
            components={},
            volatility_ratio=ratio,
            features=values,
            missing=missing,
            bar_ts=bar_ts,
            notes=("no technical component could be computed",),
        )
    weights = {name: COMPONENT_WEIGHTS[name] for name in components}
    total = sum(weights.values())
    signal = sum(weights[name] * components[name] for name in components) / total
    spread = sum(weights[name] * abs(components[name]) for name in components)
    agreement = abs(signal * total) / spread if spread > 0 else 0.0
    damper = 1.0 / ratio if ratio is not None and ratio > 1.0 else 1.0
    if ratio is not None:
        notes.append(f"volatility ratio {ratio:.2f} -> confidence x {damper:.2f}")
    return TechnicalResult(
        signal=signal,
        confidence=agreement * damper,
        components=components,
        volatility_ratio=ratio,
        features=values,
        missing=missing,
        bar_ts=bar_ts,
        notes=tuple(notes),
    )


def _volatility_ratio(rv_30: float | None, rv_240: float | None) -> float | None:
    """Short- over long-term volatility per bar (rv_n is the root of n squared returns)."""
    if rv_30 is None or rv_240 is None or rv_240 <= 0:
        return None
    return (rv_30 / math.sqrt(30)) / (rv_240 / math.sqrt(240))
