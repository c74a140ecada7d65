"""Training samples from the feature store: features, labels and what the backtest holds.

A sample is one instrument at one bar, every ``training.sample_every`` bars (on the minute grid,
so instruments share timestamps). Its label is 1 when the forward log return over
``training.horizon_bars`` bars beats the cost of a round trip (fees and slippage, both sides),
else 0. Returns come from the store's own ``ret_1`` (1-bar log returns), summed per instrument
across days, so no prices are needed and a label may span midnight (the features are
continuous there). Days are read one at a time and thinned before the next, so memory follows
the sample count, not the universe's minute bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from tradeops.config import Settings
from tradeops.market_data.calendars import calendar_for
from tradeops.market_data.frames import instrument_starts, sort_bars
from tradeops.market_data.registry import FEATURE_NAMES
from tradeops.market_data.store import FeatureStore

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


class NotEnoughData(ValueError):
    """The store does not hold enough days or samples to train on (the run says how many)."""


@dataclass(frozen=True, eq=False)
class Samples:
    """Samples sorted by time then instrument. ``hold_return``: the simple return of holding
    from the sample to the instrument's next sample (what the backtest earns per step)."""

    features: pd.DataFrame = field(repr=False)
    label: np.ndarray = field(repr=False)
    forward_log_return: np.ndarray = field(repr=False)
    hold_return: np.ndarray = field(repr=False)
    starts: np.ndarray = field(repr=False)  # the sample's bar (datetime64[us])
    ends: np.ndarray = field(repr=False)  # the bar at which its label is known
    venue: np.ndarray = field(repr=False)
    symbol: np.ndarray = field(repr=False)
    calendar: np.ndarray = field(repr=False)
    days: tuple[date, ...]
    manifests: tuple[dict[str, Any], ...] = field(repr=False)

    def __len__(self) -> int:
        return len(self.label)

    def take(self, rows: np.ndarray) -> Samples:
        """The samples at positions ``rows`` (kept in their order)."""
        return Samples(
            self.features.iloc[rows].reset_index(drop=True),
            self.label[rows],
            self.forward_log_return[rows],
            self.hold_return[rows],
            self.starts[rows],
            self.ends[rows],
            self.venue[rows],
            self.symbol[rows],
            self.calendar[rows],
            self.days,
            self.manifests,
        )

    @property
    def instruments(self) -> np.ndarray:
        import numpy as np

        return np.char.add(np.char.add(self.venue.astype(str), " "), self.symbol.astype(str))


def round_trip_cost(settings: Settings) -> float:
    """Fees and slippage of entering and leaving, as a log-return hurdle."""
    per_side = (settings.models.backtest.fee_bps + settings.models.backtest.slippage_bps) / 1e4
    return 2 * per_side


def training_days(store: FeatureStore, before: date, lookback_days: int) -> list[date]:
    """The stored days in ``[before - lookback_days, before)``, oldest first."""
    from datetime import timedelta

    first = before - timedelta(days=lookback_days)
    return [d for d in store.days() if first <= d < before]


def load_samples(settings: Settings, store: FeatureStore, days: Sequence[date]) -> Samples:
    """The samples of ``days`` (consecutive stored days, oldest first)."""
    import numpy as np
    import pandas as pd

    training = settings.models.training
    steps = training.horizon_bars // training.sample_every
    calendars = {venue: calendar_for(settings.venue(venue).asset_class) for venue in settings.venues}
    parts, manifests = [], []
    carried: dict[tuple[str, str], float] = {}
    for day in days:
        manifest = store.manifest(day)
        if manifest is None:
            continue
        frame = store.read_day(day, columns=["venue", "symbol", "ts", *FEATURE_NAMES])
        if len(frame):
            parts.append(_thin(frame, training.sample_every, carried))
            manifests.append(manifest)
    if not parts:
        raise NotEnoughData(f"no feature partitions among the {len(days)} days asked for")
    samples = pd.concat(parts, ignore_index=True)
    samples = samples.sort_values(["venue", "symbol", "ts"], kind="stable").reset_index(drop=True)
    key = samples["venue"].astype(str) + " " + samples["symbol"].astype(str)
    total = samples["cumulative"]
    grouped = total.groupby(key, sort=False)
    forward = grouped.shift(-steps) - total
    hold = np.expm1(grouped.shift(-1) - total)
    ends = samples.groupby(key, sort=False)["ts"].shift(-steps)
    keep = forward.notna() & hold.notna()
    samples, forward, hold, ends = samples[keep], forward[keep], hold[keep], ends[keep]
    order = np.lexsort((samples["symbol"].astype(str), samples["venue"].astype(str), samples["ts"].array.asi8))
    samples = samples.iloc[order].reset_index(drop=True)
    forward, hold, ends = (s.to_numpy()[order] for s in (forward, hold, ends))
    venue = samples["venue"].astype(str).to_numpy()
    return Samples(
        features=samples[list(FEATURE_NAMES)],
        label=(forward > round_trip_cost(settings)).astype("int64"),
        forward_log_return=forward.astype("float64"),
        hold_return=hold.astype("float64"),
        starts=samples["ts"].dt.tz_convert(None).to_numpy("datetime64[us]"),
        ends=pd.to_datetime(ends, utc=True).tz_convert(None).to_numpy("datetime64[us]"),
        venue=venue,
        symbol=samples["symbol"].astype(str).to_numpy(),
        calendar=np.array([calendars.get(v, "24/7") for v in venue], dtype=object),
        days=tuple(sorted(date.fromisoformat(m["day"]) for m in manifests)),
        manifests=tuple(manifests),
    )


def _thin(frame: pd.DataFrame, every: int, carried: dict[tuple[str, str], float]) -> pd.DataFrame:
    """One day's rows every ``every`` minutes, with each instrument's running sum of ``ret_1``
    (continued from the previous day through ``carried``) as ``cumulative``."""
    import numpy as np

    frame = sort_bars(frame)
    starts = instrument_starts(frame)
    lengths = np.diff(np.append(starts, len(frame)))
    names = list(
        zip(frame["venue"].astype(str).to_numpy()[starts], frame["symbol"].astype(str).to_numpy()[starts], strict=True)
    )
    step = frame["ret_1"].fillna(0.0).to_numpy()
    cumulative = np.empty(len(frame))
    for name, start, length in zip(names, starts, lengths, strict=True):
        np.cumsum(step[start : start + length], out=cumulative[start : start + length])
        cumulative[start : start + length] += carried.get(name, 0.0)
        carried[name] = float(cumulative[start + length - 1])
    minutes = frame["ts"].array.asi8 // 60_000_000
    chosen = minutes % every == 0
    out = frame.loc[chosen].copy()
    out["cumulative"] = cumulative[chosen]
    return out
