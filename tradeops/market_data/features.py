"""Compute the registry's features for every instrument at once, vectorised.

The bar frame is sorted by instrument and time and handled as whole columns: rolling windows and
shifts run over the full column, then every value whose window reaches back past the
instrument's first bar is set to NaN (never borrowed from the previous instrument). Exponential
averages run per instrument through ``scipy.signal.lfilter`` (exact recursion, no leakage).
Give the previous days' bars as warm-up (``warmup_bars``) and ``keep_from`` the day's start: the
day's first bars then have complete windows, so there is no gap at midnight.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from tradeops.market_data.frames import instrument_starts
from tradeops.market_data.registry import FEATURE_NAMES, FEATURES

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_TREND_BAND = 0.001


class _Columns:
    """The bar columns as arrays plus each row's position within its instrument."""

    def __init__(self, bars: pd.DataFrame) -> None:
        import numpy as np

        self.starts = instrument_starts(bars)
        self.ends = np.concatenate((self.starts[1:], [len(bars)]))
        self.position = np.arange(len(bars)) - np.repeat(self.starts, self.ends - self.starts)
        self.open = bars["open"].to_numpy(dtype="float64")
        self.high = bars["high"].to_numpy(dtype="float64")
        self.low = bars["low"].to_numpy(dtype="float64")
        self.close = bars["close"].to_numpy(dtype="float64")
        self.volume = bars["volume"].to_numpy(dtype="float64")

    def shift(self, values: np.ndarray, lag: int) -> np.ndarray:
        import numpy as np

        out = np.full_like(values, np.nan)
        out[lag:] = values[:-lag]
        out[self.position < lag] = np.nan
        return out

    def rolling(self, values: np.ndarray, window: int, how: str, reach: int | None = None) -> np.ndarray:
        """Rolling ``how`` (sum, mean, std) over ``window`` rows within each instrument; rows whose
        window (plus ``reach`` earlier rows the values themselves needed) starts before it are NaN."""
        import numpy as np

        present = np.isfinite(values)
        clean = np.where(present, values, 0.0)
        total = _window_sum(clean, window, self.starts, self.position)
        masked = self.position < window - 1 + (reach or 0)
        # missing values past the masked rows invalidate the windows that hold them
        gaps = (
            None
            if present[~masked].all()
            else _window_sum((~present).astype("float64"), window, self.starts, self.position)
        )
        if how == "sum":
            out = total
        elif how == "mean":
            out = total / window
        else:  # sample standard deviation, from the sums of x and x squared
            squares = _window_sum(clean * clean, window, self.starts, self.position)
            variance = (squares - total * total / window) / (window - 1)
            out = np.sqrt(np.clip(variance, 0.0, None))
        if gaps is not None:
            out[gaps > 0] = np.nan
        out[masked] = np.nan
        return out

    def ema(self, values: np.ndarray, alpha: float) -> np.ndarray:
        """Exponential average (``y = a x + (1 - a) y_prev``, seeded with the first value) per
        instrument; NaN inputs are carried as the previous average."""
        import numpy as np
        from scipy.signal import lfilter

        out = np.empty_like(values)
        for start, end in zip(self.starts, self.ends, strict=True):
            chunk = values[start:end]
            valid = np.flatnonzero(np.isfinite(chunk))
            out[start:end] = np.nan
            if len(valid) == 0:
                continue
            first = valid[0]
            series = chunk[first:]
            if np.isnan(series).any():
                series = _ffill(series)
            filtered, _ = lfilter([alpha], [1.0, alpha - 1.0], series, zi=[(1 - alpha) * series[0]])
            out[start + first : end] = filtered
        return out


def _window_sum(values: np.ndarray, window: int, starts: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Sum of each row and the ``window - 1`` rows before it within its instrument (NaN where the
    window starts before the instrument). Running sums restart at each instrument, so rounding
    depends on the instrument's own history only, not on the rows before it in the frame."""
    import numpy as np

    n = len(values)
    running = np.empty_like(values)
    ends = np.concatenate((starts[1:], [n]))
    for start, end in zip(starts, ends, strict=True):
        np.cumsum(values[start:end], out=running[start:end])
    out = np.empty_like(running)
    out[:window] = running[:window]
    np.subtract(running[window:], running[:-window], out=out[window:])
    first = starts + window - 1  # the first full window of each instrument starts at its first row
    first = first[(first >= window) & (first < n)]
    first = first[position[first] == window - 1]
    out[first] = running[first]
    out[position < window - 1] = np.nan
    return out


def _ffill(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.Series(values).ffill().to_numpy(dtype="float64")


# Instruments are computed in chunks of about this many rows: the arrays of a chunk stay in the
# CPU cache and reuse freed memory, instead of touching fresh pages for every temporary column.
CHUNK_ROWS = 131_072


def compute(
    bars: pd.DataFrame,
    keep_from: datetime | None = None,
    created_at: datetime | None = None,
    keep_until: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> pd.DataFrame:
    """Every registry feature for every bar of ``bars`` (sorted by venue, symbol, ts), keeping
    the rows in ``[keep_from, keep_until)``. Columns: venue, symbol, ts, created_at, filled, features.
    Instruments never share a chunk, so the result does not depend on ``chunk_rows``."""
    import pandas as pd

    bounds = _chunks(bars, chunk_rows)
    if len(bounds) <= 1:
        return _compute(bars, keep_from, created_at, keep_until)
    parts = [_compute(bars.iloc[start:end], keep_from, created_at, keep_until) for start, end in bounds]
    out = pd.concat(parts, ignore_index=True)
    for key in ("venue", "symbol"):
        out[key] = out[key].astype(str).astype("category") if out[key].dtype != "category" else out[key]
    return out


def _chunks(bars: pd.DataFrame, chunk_rows: int) -> list[tuple[int, int]]:
    """Row ranges of whole instruments, each about ``chunk_rows`` long (one instrument may exceed it)."""
    if len(bars) <= chunk_rows:
        return [(0, len(bars))]
    bounds, begin = [], 0
    for start in instrument_starts(bars)[1:]:
        if start - begin >= chunk_rows:
            bounds.append((begin, int(start)))
            begin = int(start)
    bounds.append((begin, len(bars)))
    return bounds


def _compute(
    bars: pd.DataFrame, keep_from: datetime | None, created_at: datetime | None, keep_until: datetime | None
) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    cols = _Columns(bars)
    log_close = np.log(cols.close)
    r1 = log_close - cols.shift(log_close, 1)
    values: dict[str, np.ndarray] = {"ret_1": r1}
    for horizon in (5, 15, 60):
        values[f"ret_{horizon}"] = log_close - cols.shift(log_close, horizon)
    for window in (30, 240):
        values[f"rv_{window}"] = np.sqrt(cols.rolling(r1 * r1, window, "sum", reach=1))
    values["rsi_14"] = _rsi(cols, cols.close, 14)
    fast, slow = cols.ema(cols.close, 2 / 13), cols.ema(cols.close, 2 / 27)
    macd_line = fast - slow
    signal = cols.ema(macd_line, 2 / 10)
    values["macd"] = _warm(cols, macd_line / cols.close, 26)
    values["macd_signal"] = _warm(cols, signal / cols.close, 34)
    values["macd_hist"] = _warm(cols, (macd_line - signal) / cols.close, 34)
    previous_close = cols.shift(cols.close, 1)
    true_range = np.fmax(
        cols.high - cols.low, np.fmax(np.abs(cols.high - previous_close), np.abs(cols.low - previous_close))
    )
    values["atr_14"] = _warm(cols, cols.ema(true_range, 1 / 14) / cols.close, 15)
    typical = (cols.high + cols.low + cols.close) / 3
    traded = cols.rolling(typical * cols.volume, 60, "sum")
    volume_sum = cols.rolling(cols.volume, 60, "sum")
    with np.errstate(divide="ignore", invalid="ignore"):
        values["vwap_dist_60"] = np.where(volume_sum > 0, cols.close / (traded / volume_sum) - 1, np.nan)
        mean = cols.shift(cols.rolling(cols.volume, 60, "mean"), 1)
        std = cols.shift(cols.rolling(cols.volume, 60, "std"), 1)
        values["volume_z_60"] = np.where(std > 0, (cols.volume - mean) / std, np.nan)
        dollar = cols.close * cols.volume
        impact = np.where(dollar > 0, np.abs(r1) / dollar * 1e6, np.nan)
        values["amihud_60"] = cols.rolling(impact, 60, "mean", reach=1)
        values["range_pct"] = (cols.high - cols.low) / cols.close
        span = cols.high - cols.low
        values["close_location"] = np.where(span > 0, (cols.close - cols.low) / span, 0.5)
    values["roll_spread_60"] = _roll_spread(cols)
    values["vol_regime"] = np.where(
        np.isfinite(values["rv_30"]) & np.isfinite(values["rv_240"]),
        (values["rv_30"] / np.sqrt(30) > values["rv_240"] / np.sqrt(240)).astype("float64"),
        np.nan,
    )
    trend = (cols.ema(cols.close, 2 / 61) - cols.ema(cols.close, 2 / 241)) / cols.close
    regime = np.where(trend > _TREND_BAND, 1.0, np.where(trend < -_TREND_BAND, -1.0, 0.0))
    values["trend_regime"] = _warm(cols, np.where(np.isfinite(trend), regime, np.nan), 240)
    missing = set(FEATURE_NAMES) - set(values)
    if missing:  # pragma: no cover - held by tests/test_market_data.py
        raise RuntimeError(f"features in the registry without an implementation: {sorted(missing)}")
    keep = np.ones(len(bars), dtype=bool)
    stamps = bars["ts"].array.asi8
    if keep_from is not None:
        keep &= stamps >= pd.Timestamp(keep_from).value // 1000  # .value is in ns, the column in us
    if keep_until is not None:
        keep &= stamps < pd.Timestamp(keep_until).value // 1000
    filled = bars["filled"].to_numpy(dtype=bool) if "filled" in bars.columns else np.zeros(len(bars), dtype=bool)
    keys = bars.loc[keep, ["venue", "symbol", "ts"]].reset_index(drop=True)
    for key in ("venue", "symbol"):
        keys[key] = keys[key].astype("category")
    keys["created_at"] = pd.Series(
        pd.Timestamp(created_at) if created_at is not None else pd.NaT, index=keys.index, dtype="datetime64[us, UTC]"
    )
    keys["filled"] = filled[keep]
    table = pd.DataFrame({spec.name: values.pop(spec.name)[keep] for spec in FEATURES}, copy=False)
    return pd.concat([keys, table], axis=1)


def _warm(cols: _Columns, values: np.ndarray, window: int) -> np.ndarray:
    """NaN where fewer than ``window`` bars of the instrument precede (exponential averages)."""
    values = values.copy()
    values[cols.position < window - 1] = float("nan")
    return values


def _rsi(cols: _Columns, close: np.ndarray, window: int) -> np.ndarray:
    import numpy as np

    change = close - cols.shift(close, 1)
    gains = cols.ema(np.where(change > 0, change, 0.0) * np.isfinite(change), 1 / window)
    losses = cols.ema(np.where(change < 0, -change, 0.0) * np.isfinite(change), 1 / window)
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = np.where(losses > 0, 100 - 100 / (1 + gains / losses), np.where(gains > 0, 100.0, 50.0))
    return _warm(cols, rsi, window + 1)


def _roll_spread(cols: _Columns) -> np.ndarray:
    """Roll (1984): 2 sqrt(-cov(dp_t, dp_t-1)) where the autocovariance is negative, else 0."""
    import numpy as np

    dp = cols.close - cols.shift(cols.close, 1)
    lagged = cols.shift(dp, 1)
    both = dp * lagged
    mean_both = cols.rolling(both, 60, "mean", reach=2)
    mean_dp = cols.rolling(dp, 60, "mean", reach=2)
    mean_lag = cols.rolling(lagged, 60, "mean", reach=2)
    cov = mean_both - mean_dp * mean_lag
    spread = np.where(np.isfinite(cov), 2 * np.sqrt(np.clip(-cov, 0, None)), np.nan)
    return spread / cols.close
