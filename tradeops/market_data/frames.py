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
    import numpy as np
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
        frame[key] = as_sorted_category(frame[key])  # codes then sort like the names
    return sort_bars(frame)


def sort_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` in (venue, symbol, ts) order, with a fresh index; no sort when already in order."""
    import numpy as np

    frame = frame.reset_index(drop=True)
    if len(frame) < 2:
        return frame
    codes, ts = instrument_codes(frame), frame["ts"].array.asi8
    if ((codes[1:] > codes[:-1]) | ((codes[1:] == codes[:-1]) & (ts[1:] >= ts[:-1]))).all():
        return frame
    return frame.take(np.lexsort((ts, codes))).reset_index(drop=True)


def instrument_codes(frame: pd.DataFrame) -> np.ndarray:
    """One integer per row naming its (venue, symbol), ordered like the names."""
    return _pair_codes(frame)[0]


def instrument_starts(frame: pd.DataFrame) -> np.ndarray:
    """The first row of each instrument in a frame sorted by (venue, symbol, ts)."""
    import numpy as np

    codes = instrument_codes(frame)
    if len(codes) == 0:
        return np.zeros(0, dtype="int64")
    return np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))


def instrument_cuts(frame: pd.DataFrame, rows: int, starts: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Row ranges of whole instruments of a sorted frame, each about ``rows`` long (an
    instrument longer than that is one range): chunks for computing, parts for writing.
    ``starts``: the frame's ``instrument_starts`` when already known."""
    if len(frame) <= rows:
        return [(0, len(frame))]
    cuts, begin = [], 0
    for start in (instrument_starts(frame) if starts is None else starts)[1:]:
        if start - begin >= rows:
            cuts.append((begin, int(start)))
            begin = int(start)
    cuts.append((begin, len(frame)))
    return cuts


def _pair_codes(frame: pd.DataFrame) -> tuple[np.ndarray, pd.Index, pd.Index]:
    venue, symbol = key_codes(frame)
    venues = as_sorted_category(frame["venue"]).cat.categories
    symbols = as_sorted_category(frame["symbol"]).cat.categories
    return venue * (len(symbols) + 1) + symbol, venues, symbols


def instruments(frame: pd.DataFrame) -> set[tuple[str, str]]:
    """Every (venue, symbol) with a row in ``frame``."""
    import numpy as np

    codes, venues, symbols = _pair_codes(frame)
    width = len(symbols) + 1
    return {(str(venues[c // width]), str(symbols[c % width])) for c in np.unique(codes)}


def rows_of(frame: pd.DataFrame, wanted: set[tuple[str, str]]) -> np.ndarray:
    """A boolean mask of the rows whose (venue, symbol) is in ``wanted`` (vectorised)."""
    import numpy as np

    codes, venues, symbols = _pair_codes(frame)
    width = len(symbols) + 1
    keep = [c for c in np.unique(codes) if (str(venues[c // width]), str(symbols[c % width])) in wanted]
    return np.isin(codes, keep)


def as_sorted_category(column: pd.Series) -> pd.Series:
    """``column`` as a categorical whose categories are sorted (cheap when it already is one)."""
    import pandas as pd

    if not isinstance(column.dtype, pd.CategoricalDtype):
        return column.astype("category")
    categories = column.cat.categories
    if categories.is_monotonic_increasing:
        return column
    return column.cat.reorder_categories(sorted(categories))


def key_codes(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of ``venue`` and ``symbol`` that sort like the names."""
    venue = as_sorted_category(frame["venue"]).cat.codes.to_numpy("int64")
    symbol = as_sorted_category(frame["symbol"]).cat.codes.to_numpy("int64")
    return venue, symbol
