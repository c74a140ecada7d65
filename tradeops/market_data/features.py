"""Compute the registry's features for every instrument at once, vectorised.

The bar frame is sorted by instrument and time and handled as whole columns: rolling windows and
shifts run over the full column, then every value whose window reaches back past the
instrument's first bar is set to NaN (never borrowed from the previous instrument). Running sums
and exponential averages (recursions, in blocks) run on a grid of the instruments side by side
(``_Grid``): each instrument's values depend on its own bars only, bit for bit.
Give the previous days' bars as warm-up (``warmup_bars``) and ``keep_from`` the day's start: the
day's first bars then have complete windows, so there is no gap at midnight.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tradeops.market_data.frames import instrument_cuts, instrument_starts
from tradeops.market_data.registry import FEATURE_NAMES, FEATURES

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_TREND_BAND = 0.001


class _Columns:
    """The bar columns as arrays, each row's instrument and its position within it, and the
    instruments laid out side by side (see ``_Grid``)."""

    def __init__(self, bars: pd.DataFrame, starts: np.ndarray | None = None) -> None:
        self.grid = _Grid(instrument_starts(bars) if starts is None else starts, len(bars))
        self.position = self.grid.position
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
        total = self.grid.window_sum(clean, window)
        masked = self.position < window - 1 + (reach or 0)
        # a missing value invalidates every window that holds it; the first ``reach`` rows of an
        # instrument are missing by construction and only reach masked windows
        known = present[self.position >= (reach or 0)].all()
        gaps = None if known else self.grid.window_sum((~present).astype("float64"), window)
        if how == "sum":
            out = total
        elif how == "mean":
            out = total / window
        else:  # sample standard deviation, from the sums of x and x squared
            squares = self.grid.window_sum(clean * clean, window)
            variance = (squares - total * total / window) / (window - 1)
            out = np.sqrt(np.clip(variance, 0.0, None))
        if gaps is not None:
            out[gaps > 0] = np.nan
        out[masked] = np.nan
        return out

    def emas(self, *inputs: tuple[np.ndarray, float]) -> list[np.ndarray]:
        """Exponential averages ``y = a x + (1 - a) y_prev`` of each ``(values, a)`` per instrument,
        seeded with the instrument's first finite value (NaN before it); a NaN after it counts
        as a repeat of the last finite value (forward fill). Equal, up to a few ulps, to
        ``scipy.signal.lfilter([a], [1, a - 1], x, zi=[(1 - a) x0])`` on each instrument alone."""
        return self.grid.emas(inputs)


class _Grid:
    """Rows sorted by instrument then time, as a grid with one row per instrument (``depth``
    columns: the longest instrument; shorter ones padded at their end). Running sums go along an
    instrument's row and restart at each instrument, so rounding depends on its own history
    only. A recursion over time (an exponential average) advances every instrument, and several
    averages, one time step per numpy call instead of one Python loop per instrument. When all
    instruments have the same length the grid is the column reshaped: no copy."""

    def __init__(self, starts: np.ndarray, rows: int) -> None:
        import numpy as np

        self.starts = starts
        self.rows = rows
        lengths = np.diff(np.append(starts, rows))
        self.count = len(starts)
        self.depth = int(lengths.max()) if self.count else 0
        self.regular = bool(self.count == 0 or (lengths == self.depth).all())
        self.instrument = np.repeat(np.arange(self.count), lengths)
        self.position = np.arange(rows) - np.repeat(starts, lengths)

    def by_instrument(self, values: np.ndarray) -> np.ndarray:
        """``values`` as a (instrument, time) array, zero past each instrument's last row."""
        import numpy as np

        if self.regular:
            return np.ascontiguousarray(values).reshape(self.count, self.depth)
        out = np.zeros((self.count, self.depth))
        out[self.instrument, self.position] = values
        return out

    def column(self, grid: np.ndarray) -> np.ndarray:
        """The inverse of ``by_instrument``: one value per row of the frame."""
        if self.regular:
            return grid.reshape(-1)
        return grid[self.instrument, self.position]

    def window_sum(self, values: np.ndarray, window: int) -> np.ndarray:
        """Sum of each row and the ``window - 1`` rows before it within its instrument (NaN where
        the window starts before the instrument)."""
        import numpy as np

        running = np.cumsum(self.by_instrument(values), axis=1)
        out = np.full_like(running, np.nan)
        if window <= self.depth:
            out[:, window - 1] = running[:, window - 1]
            np.subtract(running[:, window:], running[:, :-window], out=out[:, window:])
        return self.column(out)

    def emas(self, inputs: Sequence[tuple[np.ndarray, float]]) -> list[np.ndarray]:
        import numpy as np

        width = self.count * len(inputs)
        # time-major: row t holds bar t (counted from each instrument's first finite value) of
        # every instrument of every input; zero rows pad the end to whole blocks (``_average``)
        depth = -(-self.depth // _BLOCK) * _BLOCK
        steps = np.zeros((depth, width))
        placed = []
        for index, (values, _) in enumerate(inputs):
            columns = slice(index * self.count, (index + 1) * self.count)
            finite = np.isfinite(values)
            if finite.all():
                offset = None
                if self.regular:
                    steps[: self.depth, columns] = values.reshape(self.count, self.depth).T
                else:
                    steps[self.position, self.instrument + columns.start] = values
            else:
                first = np.minimum.reduceat(np.where(finite, self.position, self.depth), self.starts)
                offset = self.position - first[self.instrument]
                taken = offset >= 0
                steps[offset[taken], self.instrument[taken] + columns.start] = values[taken]
                _forward_fill(steps[: self.depth, columns])
            placed.append(offset)
        gain = np.repeat(np.array([alpha for _, alpha in inputs], dtype="float64"), self.count)
        averages = _average(steps, gain)
        out = []
        for index, offset in enumerate(placed):
            columns = slice(index * self.count, (index + 1) * self.count)
            if offset is None:
                if self.regular:
                    out.append(np.ascontiguousarray(averages[: self.depth, columns].T).reshape(-1))
                else:
                    out.append(averages[self.position, self.instrument + columns.start])
                continue
            result = np.full(self.rows, np.nan)
            taken = offset >= 0
            result[taken] = averages[offset[taken], self.instrument[taken] + columns.start]
            out.append(result)
        return out


# Time steps per block of ``_average``: a constant, so an instrument's blocks (and its rounding)
# are the same whatever it is computed with.
_BLOCK = 48


def _average(steps: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """``y_t = a x_t + (1 - a) y_t-1`` down each column of ``steps`` (time-major, finite, a whole
    number of ``_BLOCK`` rows), seeded ``y_-1 = x_0``; ``gain`` is each column's ``a``. Overwrites
    ``steps``.

    In blocks: first the recursion inside every block at once, from zero (``_BLOCK`` steps over
    all blocks), then the value before each block (one step per block), then each block's rows
    get that value decayed by ``(1 - a)^(i+1)``. Two short loops of numpy calls instead of one
    per bar; the same result up to rounding (a few ulps)."""
    import numpy as np

    depth, width = steps.shape
    if depth == 0:
        return steps
    keep = 1.0 - gain
    first = steps[0].copy()
    blocks = steps.reshape(depth // _BLOCK, _BLOCK, width)
    np.multiply(blocks, gain, out=blocks)
    carried = np.empty(blocks[:, 0].shape)
    for i in range(1, _BLOCK):
        np.multiply(blocks[:, i - 1], keep, out=carried)
        np.add(blocks[:, i], carried, out=blocks[:, i])
    decay = keep ** np.arange(1, _BLOCK + 1, dtype="float64")[:, None]  # (1 - a)^(i+1)
    before = np.empty((len(blocks), width))  # the average just before each block
    before[0] = first
    for b in range(1, len(blocks)):
        before[b] = blocks[b - 1, -1] + decay[-1] * before[b - 1]
    blocks += decay[None, :, :] * before[:, None, :]
    return steps


def _forward_fill(block: np.ndarray) -> None:
    """Replace each NaN of ``block`` (time-major) by the last finite value above it, in place."""
    import numpy as np

    finite = np.isfinite(block)
    if finite.all():
        return
    last = np.where(finite, np.arange(block.shape[0])[:, None], 0)
    np.maximum.accumulate(last, axis=0, out=last)
    block[...] = np.take_along_axis(block, last, axis=0)


# Instruments are computed in chunks of about this many rows: the arrays of a chunk stay in the
# CPU cache and reuse freed memory, instead of touching fresh pages for every temporary column
# (on a 2-core VM the whole-universe version of the same code is about twice as slow).
CHUNK_ROWS = 65_536


def compute(
    bars: pd.DataFrame,
    keep_from: datetime | None = None,
    created_at: datetime | None = None,
    keep_until: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> pd.DataFrame:
    """Every registry feature for every bar of ``bars`` (sorted by venue, symbol, ts), keeping
    the rows in ``[keep_from, keep_until)``. Columns: venue, symbol, ts, created_at, filled,
    features. An instrument's values depend on its own bars only, bit for bit: instruments never
    share a chunk, so the result does not depend on ``chunk_rows`` either."""
    import numpy as np
    import pandas as pd

    keep = np.ones(len(bars), dtype=bool)
    stamps = bars["ts"].array.asi8
    if keep_from is not None:
        keep &= stamps >= pd.Timestamp(keep_from).value // 1000  # .value is in ns, the column in us
    if keep_until is not None:
        keep &= stamps < pd.Timestamp(keep_until).value // 1000
    everything = bool(keep.all())
    rows = pd.RangeIndex(int(keep.sum()))

    def kept(column: Any) -> Any:
        return column if everything else column[keep]

    out: dict[str, Any] = {}
    for key in ("venue", "symbol"):
        column = bars[key] if isinstance(bars[key].dtype, pd.CategoricalDtype) else bars[key].astype("category")
        out[key] = pd.Categorical.from_codes(kept(column.cat.codes.to_numpy()), dtype=column.dtype)
    out["ts"] = pd.Series(kept(bars["ts"].array), index=rows)
    stamp = pd.Timestamp(created_at) if created_at is not None else pd.NaT
    out["created_at"] = pd.Series(stamp, index=rows, dtype="datetime64[us, UTC]")
    filled = bars["filled"].to_numpy(dtype=bool) if "filled" in bars.columns else np.zeros(len(bars), dtype=bool)
    out["filled"] = kept(filled)
    table = {spec.name: np.empty(len(rows)) for spec in FEATURES}
    done = 0
    starts = instrument_starts(bars)
    for start, end in instrument_cuts(bars, chunk_rows, starts):
        inside = starts[(starts >= start) & (starts < end)] - start
        values = _values(_Columns(bars.iloc[start:end], inside))
        missing = set(FEATURE_NAMES) - set(values)
        if missing:  # pragma: no cover - held by tests/test_market_data.py
            raise RuntimeError(f"features in the registry without an implementation: {sorted(missing)}")
        chosen = keep[start:end]
        count = int(chosen.sum())
        for name, column in table.items():
            column[done : done + count] = values[name][chosen]
        done += count
    return pd.DataFrame({**out, **table}, copy=False)


def _values(cols: _Columns) -> dict[str, np.ndarray]:
    import numpy as np

    log_close = np.log(cols.close)
    r1 = log_close - cols.shift(log_close, 1)
    values: dict[str, np.ndarray] = {"ret_1": r1}
    for horizon in (5, 15, 60):
        values[f"ret_{horizon}"] = log_close - cols.shift(log_close, horizon)
    for window in (30, 240):
        values[f"rv_{window}"] = np.sqrt(cols.rolling(r1 * r1, window, "sum", reach=1))
    previous_close = cols.shift(cols.close, 1)
    change = cols.close - previous_close
    true_range = np.fmax(
        cols.high - cols.low, np.fmax(np.abs(cols.high - previous_close), np.abs(cols.low - previous_close))
    )
    known = np.isfinite(change)
    fast, slow, trend_fast, trend_slow, atr, gains, losses = cols.emas(
        (cols.close, 2 / 13),
        (cols.close, 2 / 27),
        (cols.close, 2 / 61),
        (cols.close, 2 / 241),
        (true_range, 1 / 14),
        (np.where(change > 0, change, 0.0) * known, 1 / 14),
        (np.where(change < 0, -change, 0.0) * known, 1 / 14),
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = np.where(losses > 0, 100 - 100 / (1 + gains / losses), np.where(gains > 0, 100.0, 50.0))
    values["rsi_14"] = _warm(cols, rsi, 15)
    macd_line = fast - slow
    (signal,) = cols.emas((macd_line, 2 / 10))
    values["macd"] = _warm(cols, macd_line / cols.close, 26)
    values["macd_signal"] = _warm(cols, signal / cols.close, 34)
    values["macd_hist"] = _warm(cols, (macd_line - signal) / cols.close, 34)
    values["atr_14"] = _warm(cols, atr / cols.close, 15)
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
    trend = (trend_fast - trend_slow) / cols.close
    regime = np.where(trend > _TREND_BAND, 1.0, np.where(trend < -_TREND_BAND, -1.0, 0.0))
    values["trend_regime"] = _warm(cols, np.where(np.isfinite(trend), regime, np.nan), 240)
    return values


def _warm(cols: _Columns, values: np.ndarray, window: int) -> np.ndarray:
    """NaN where fewer than ``window`` bars of the instrument precede (exponential averages)."""
    values = values.copy()
    values[cols.position < window - 1] = float("nan")
    return values


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
