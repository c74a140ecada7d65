"""Deterministic minute bars of paper venues, for any symbol and any universe size, with no storage.

A bar is a pure function of ``(paper.seed, venue, symbol, timeframe, time)``:
- the log price at the start of each UTC day follows a mean-reverting walk around the symbol's
  base price (``paper.prices`` of its base asset, else a price derived from its name), one seeded
  step per day since 2015-01-01;
- within a day, a seeded minute walk is bridged onto the next day's start, so the path is
  continuous at midnight and the same minute has the same price whichever range asks for it;
- wicks and volume are seeded per minute (volume follows the U shape of a trading day for
  equities); equity venues have bars only in NYSE regular sessions (holidays, early closes).
Longer timeframes aggregate the minute bars (first open, highest high, lowest low, last close,
summed volume) on boundaries aligned to the epoch.

``paper.data_faults`` damages the served bars on purpose (missing, high_below_low,
negative_volume, stale, spike, duplicate) so validation can be seen working end to end.
Prices here are float64 market data, not money: amounts traded stay Decimal elsewhere.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tradeops.errors import InvalidOrderError
from tradeops.market_data.calendars import CalendarName, expected_minutes

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from tradeops.config import DataFault

ORIGIN = date(2015, 1, 1)
MINUTES_PER_DAY = 1440
TIMEFRAME_MINUTES: dict[str, int] = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60}
BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
_DAILY_SIGMA = 0.025  # ~2.5 % a day
_REVERSION = 0.995  # AR(1) of the daily log price around its base: stays within a sensible range
_WICK = 0.35  # wick size in minute-sigmas
_CRYPTO_VOLUME = 40.0
_EQUITY_VOLUME = 2500.0


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def base_price(symbol: str, prices: dict[str, Any]) -> float:
    """The level the symbol's price reverts to: the configured price of its base asset, else a
    price between 5 and 505 derived from the symbol's name."""
    base = symbol.split("/")[0]
    if base in prices:
        return float(prices[base])
    return 5.0 + _stable_int(f"price|{symbol}") % 50_000 / 100


def _day_index(day: date) -> int:
    return (day - ORIGIN).days


def _day_starts(seed: int, key: tuple[int, int], first: int, last: int, level: float) -> np.ndarray:
    """Log price at the start of days ``first..last`` (day indexes since ORIGIN), inclusive."""
    import numpy as np
    from scipy.signal import lfilter

    if first < 0:
        raise InvalidOrderError(f"paper bars start on {ORIGIN.isoformat()}")
    steps = np.random.default_rng([seed, *key, 0]).normal(0.0, _DAILY_SIGMA, size=last + 1)
    walk = lfilter([1.0], [1.0, -_REVERSION], steps)
    return np.log(level) + walk[first : last + 1]


def _one_day(seed: int, key: tuple[int, int], index: int, start: float, end: float, equity: bool) -> np.ndarray:
    """Minute bars of one UTC day as rows (open, high, low, close, volume): 1440 x 5."""
    import numpy as np

    rng = np.random.default_rng([seed, *key, 1, index])
    sigma = _DAILY_SIGMA / np.sqrt(MINUTES_PER_DAY)
    walk = np.cumsum(rng.normal(0.0, sigma, size=MINUTES_PER_DAY))
    minutes = np.arange(1, MINUTES_PER_DAY + 1) / MINUTES_PER_DAY
    log_close = start + walk - minutes * (walk[-1] - (end - start))  # bridged onto the next day
    close = np.exp(log_close)
    opens = np.exp(np.concatenate(([start], log_close[:-1])))
    upper = np.exp(np.abs(rng.normal(0.0, _WICK * sigma, size=MINUTES_PER_DAY)))
    lower = np.exp(-np.abs(rng.normal(0.0, _WICK * sigma, size=MINUTES_PER_DAY)))
    high = np.maximum(opens, close) * upper
    low = np.minimum(opens, close) * lower
    noise = rng.lognormal(0.0, 0.6, size=MINUTES_PER_DAY)
    if equity:
        # volume is heaviest at the open and the close of the session (U shape over the day)
        shape = 1.0 + 2.5 * (np.cos(np.linspace(0.0, 2 * np.pi, MINUTES_PER_DAY)) + 1) / 2
        volume = _EQUITY_VOLUME * shape * noise
    else:
        volume = _CRYPTO_VOLUME * noise
    return np.column_stack([opens, high, low, close, np.round(volume, 4)])


def minute_bars(
    *,
    seed: int,
    venue: str,
    symbol: str,
    level: float,
    calendar: CalendarName,
    start: datetime,
    end: datetime,
) -> pd.DataFrame:
    """1-minute bars with ``start <= ts < end`` (both UTC), on the calendar's minutes."""
    import numpy as np
    import pandas as pd

    start, end = _utc(start), _utc(end)
    if end <= start:
        return _empty()
    key = (_stable_int(f"venue|{venue}"), _stable_int(f"symbol|{symbol}"))
    first_day, last_day = start.date(), (end - timedelta(microseconds=1)).date()
    first, last = _day_index(first_day), _day_index(last_day)
    anchors = _day_starts(seed, key, first, last + 1, level)
    frames = []
    for offset in range(last - first + 1):
        day = first_day + timedelta(days=offset)
        rows = _one_day(seed, key, first + offset, anchors[offset], anchors[offset + 1], calendar == "XNYS")
        day_start = pd.Timestamp(day, tz=UTC).as_unit("us")
        ts = pd.date_range(day_start, periods=MINUTES_PER_DAY, freq="min", unit="us")
        keep = np.ones(MINUTES_PER_DAY, dtype=bool) if calendar == "24/7" else ts.isin(expected_minutes(calendar, day))
        keep &= (ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))
        frames.append((ts[keep], rows[keep]))
    ts = frames[0][0].append([f[0] for f in frames[1:]]) if len(frames) > 1 else frames[0][0]
    values = np.concatenate([f[1] for f in frames]) if frames else np.empty((0, 5))
    frame = pd.DataFrame(values, columns=list(BAR_COLUMNS[1:]))
    frame.insert(0, "ts", ts)
    return frame


def aggregate(bars: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Minute bars rolled up to ``timeframe`` (boundaries aligned to the epoch)."""
    step = TIMEFRAME_MINUTES[timeframe]
    if step == 1 or bars.empty:
        return bars
    bucket = bars["ts"].dt.floor(f"{step}min")
    grouped = bars.groupby(bucket, sort=True)
    out = grouped.agg(open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"))
    out["volume"] = grouped["volume"].sum()
    return out.rename_axis("ts").reset_index()


def apply_faults(bars: pd.DataFrame, venue: str, symbol: str, faults: tuple[DataFault, ...]) -> pd.DataFrame:
    """Damage ``bars`` as ``paper.data_faults`` says for this venue and symbol."""
    import pandas as pd

    for fault in faults:
        if fault.venue != venue or fault.symbol != symbol:
            continue
        hit = (bars["ts"] >= pd.Timestamp(fault.start)) & (bars["ts"] < pd.Timestamp(fault.end))
        if not hit.any():
            continue
        bars = bars.copy()
        if fault.kind == "missing":
            bars = bars.loc[~hit]
        elif fault.kind == "high_below_low":
            bars.loc[hit, ["high", "low"]] = bars.loc[hit, ["low", "high"]].to_numpy()
        elif fault.kind == "negative_volume":
            bars.loc[hit, "volume"] = -bars.loc[hit, "volume"]
        elif fault.kind == "stale":
            first = bars.loc[hit, "close"].iloc[0]
            bars.loc[hit, ["open", "high", "low", "close"]] = first
        elif fault.kind == "spike":
            bars.loc[hit, ["high", "close"]] = bars.loc[hit, ["high", "close"]] * 1.5
        elif fault.kind == "duplicate":
            bars = pd.concat([bars, bars.loc[hit]]).sort_values("ts", kind="stable")
    return bars.reset_index(drop=True)


def _empty() -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame({name: pd.Series(dtype="float64") for name in BAR_COLUMNS[1:]})
    frame.insert(0, "ts", pd.DatetimeIndex([], dtype="datetime64[us, UTC]"))
    return frame


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InvalidOrderError("bar ranges need timezone-aware datetimes")
    return moment.astimezone(UTC)
