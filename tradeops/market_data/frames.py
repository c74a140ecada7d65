"""The bar frame every stage of the market-data pipeline passes on, and conversions into it.

One row per bar: ``venue``, ``symbol`` (categoricals), ``ts`` (bar start, UTC, microseconds),
float64 ``open, high, low, close, volume``, and ``filled`` (True only for bars a configured fill
added). Prices are float64 market data here; money is Decimal elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tradeops.model import Candle

if TYPE_CHECKING:
    import pandas as pd

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = ("ts", *PRICE_COLUMNS, "volume")
KEY_COLUMNS = ("venue", "symbol")


def candles_to_frame(candles: Sequence[Candle]) -> pd.DataFrame:
    """``Candle`` objects (Decimal) as a bar frame without the key columns."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "ts": pd.DatetimeIndex([c.ts for c in candles], dtype="datetime64[us, UTC]"),
            **{
                name: pd.Series([float(getattr(c, name)) for c in candles], dtype="float64") for name in BAR_COLUMNS[1:]
            },
        }
    )
    return frame


def with_keys(bars: pd.DataFrame, venue: str, symbol: str) -> pd.DataFrame:
    """``bars`` of one instrument with its ``venue`` and ``symbol`` columns in front."""
    bars = bars.copy()
    bars.insert(0, "symbol", symbol)
    bars.insert(0, "venue", venue)
    return bars


def concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One bar frame from many, sorted by venue, symbol and time, keys as categoricals."""
    import pandas as pd

    if not frames:
        empty = candles_to_frame([])
        empty.insert(0, "symbol", pd.Series(dtype="str"))
        empty.insert(0, "venue", pd.Series(dtype="str"))
        frames = [empty]
    frame = pd.concat(frames, ignore_index=True)
    frame["ts"] = frame["ts"].astype("datetime64[us, UTC]")
    for key in KEY_COLUMNS:
        frame[key] = frame[key].astype("category")
    return frame.sort_values(["venue", "symbol", "ts"], kind="stable", ignore_index=True)
