"""The feature registry: every feature's name, description, inputs, window and version.

Training, the health check and the model card read this list; ``features.compute`` implements
exactly these names (a test holds them together). Features are scale-free (returns, ratios,
z-scores) so the same feature is comparable across instruments and can be pooled for drift.
Windows count bars of the instrument (an equity's overnight gap is one bar step). Changing a
feature's definition means bumping its ``version``: ``REGISTRY_VERSION`` changes with it and is
written into every partition's manifest, so data made by different definitions never mixes
silently.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    description: str
    inputs: tuple[str, ...]
    window: int  # bars of history the value needs (its warm-up)
    version: int = 1


FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("ret_1", "log return over 1 bar", ("close",), 1),
    FeatureSpec("ret_5", "log return over 5 bars", ("close",), 5),
    FeatureSpec("ret_15", "log return over 15 bars", ("close",), 15),
    FeatureSpec("ret_60", "log return over 60 bars", ("close",), 60),
    FeatureSpec("rv_30", "realised volatility: root of the summed squared 1-bar log returns, 30 bars", ("close",), 31),
    FeatureSpec(
        "rv_240", "realised volatility: root of the summed squared 1-bar log returns, 240 bars", ("close",), 241
    ),
    FeatureSpec("rsi_14", "relative strength index, Wilder smoothing over 14 bars (0-100)", ("close",), 15),
    FeatureSpec("macd", "MACD line (EMA 12 - EMA 26) divided by the close", ("close",), 26),
    FeatureSpec("macd_signal", "EMA 9 of the MACD line (divided by the close)", ("close",), 34),
    FeatureSpec("macd_hist", "MACD line minus its signal (divided by the close)", ("close",), 34),
    FeatureSpec(
        "atr_14",
        "average true range, Wilder smoothing over 14 bars, divided by the close",
        ("high", "low", "close"),
        15,
    ),
    FeatureSpec(
        "vwap_dist_60",
        "close over the 60-bar volume-weighted average price, minus 1",
        ("high", "low", "close", "volume"),
        60,
    ),
    FeatureSpec("volume_z_60", "volume z-score against the previous 60 bars", ("volume",), 61),
    FeatureSpec(
        "amihud_60",
        "Amihud illiquidity: mean |1-bar return| per million of traded value, 60 bars",
        ("close", "volume"),
        61,
    ),
    FeatureSpec("range_pct", "bar range (high - low) divided by the close", ("high", "low", "close"), 1),
    FeatureSpec(
        "close_location",
        "where the close sits in the bar's range (0 = low, 1 = high; 0.5 if flat)",
        ("high", "low", "close"),
        1,
    ),
    FeatureSpec(
        "roll_spread_60",
        "Roll's effective spread estimate from 60 bars of price changes, over the close",
        ("close",),
        62,
    ),
    FeatureSpec("vol_regime", "1 when 30-bar volatility is above 240-bar volatility, else 0", ("close",), 241),
    FeatureSpec(
        "trend_regime", "1 / -1 when EMA 60 is above / below EMA 240 by more than 0.1 %, else 0", ("close",), 240
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURES)
MAX_WINDOW: int = max(spec.window for spec in FEATURES)


def registry_version() -> str:
    """A short hash of every spec: the version written into manifests and model cards."""
    blob = json.dumps([asdict(spec) for spec in FEATURES], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


REGISTRY_VERSION = registry_version()


def spec(name: str) -> FeatureSpec:
    for item in FEATURES:
        if item.name == name:
            return item
    raise KeyError(f"no feature '{name}' in the registry; known: {list(FEATURE_NAMES)}")
