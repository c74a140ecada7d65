"""Data health: is every symbol fresh, and do today's features still look like the reference?

Shared by the nightly ``check_data_health`` task (the day against the previous days) and the
hourly ``feature_health_check`` (the last hour against the reference). Features are pooled per
calendar group (``24/7`` crypto, ``XNYS`` equities): the registry's features are scale-free, and
pooling gives the statistics enough samples. The reference is the store's per-day samples of the
previous ``market_data.reference_days`` days (a champion model's training window once models
exist). The statistics and the false-alarm control are in ``tradeops.market_data.drift``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tradeops.config import Settings
from tradeops.market_data.calendars import CalendarName, session_bounds
from tradeops.market_data.pipeline import calendars
from tradeops.market_data.registry import FEATURE_NAMES
from tradeops.market_data.store import FeatureStore

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from tradeops.market_data.drift import DriftAssessment, DriftState

# Every registry feature is checked. The discrete regimes (0/1, -1/0/1) fall into few of the
# reference's quantile bins; a regime held all window long counts as one observation.
DRIFT_FEATURES: tuple[str, ...] = FEATURE_NAMES
DISCRETE_FEATURES = frozenset({"vol_regime", "trend_regime"})


@dataclass(frozen=True, eq=False)
class GroupHealth:
    """One calendar group's verdict, with the pooled frames it was drawn from (for the report)."""

    group: CalendarName
    assessment: DriftAssessment
    reference: pd.DataFrame = field(repr=False)
    current: pd.DataFrame = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, **self.assessment.to_dict()}


# Freshness statuses that need a look (the others: fresh, closed, not open yet).
UNWELL = frozenset({"stale", "no data"})


def groups(settings: Settings) -> dict[CalendarName, list[str]]:
    """Calendar group -> the universe's venues in it."""
    out: dict[CalendarName, list[str]] = {}
    for venue, calendar in sorted(calendars(settings).items()):
        out.setdefault(calendar, []).append(venue)
    return out


def of_group(frame: pd.DataFrame, venues: Sequence[str]) -> pd.DataFrame:
    """The feature columns of the rows of ``venues`` (pooled across their symbols)."""
    import pandas as pd

    if "venue" not in frame.columns or len(frame) == 0:  # no reference yet: every feature, no rows
        return pd.DataFrame({name: pd.Series(dtype="float64") for name in DRIFT_FEATURES})
    rows = frame.loc[frame["venue"].astype(str).isin(list(venues))]
    return rows[list(DRIFT_FEATURES)].astype("float64").reset_index(drop=True)


def effective_shares(frame: pd.DataFrame, venues: Sequence[str]) -> dict[str, float]:
    """Per feature, the effective share of the rows of ``venues`` in ``frame``: each instrument's
    rows in time order are an autocorrelated series whose lag-1 autocorrelation rho leaves
    ``(1 - rho) / (1 + rho)`` of them independent (never more than all of them)."""
    import numpy as np

    if "venue" not in frame.columns or len(frame) == 0:
        return {}
    rows = frame.loc[frame["venue"].astype(str).isin(list(venues))]
    rows = rows.sort_values(["venue", "symbol", "ts"], kind="stable")
    total = {name: 0.0 for name in DRIFT_FEATURES}
    count = {name: 0 for name in DRIFT_FEATURES}
    for _key, part in rows.groupby(["venue", "symbol"], observed=True, sort=False):
        values = part[list(DRIFT_FEATURES)].to_numpy(dtype="float64")
        for j, name in enumerate(DRIFT_FEATURES):
            series = values[:, j][np.isfinite(values[:, j])]
            count[name] += len(series)
            total[name] += len(series) * _independent_share(series, discrete=name in DISCRETE_FEATURES)
    return {name: total[name] / count[name] for name in DRIFT_FEATURES if count[name]}


def _independent_share(series: np.ndarray, discrete: bool) -> float:
    import numpy as np

    if len(series) < 3:
        return 1.0
    if float(np.std(series)) == 0.0:
        # a regime that holds all window long is one observation; a continuous feature stuck at one
        # value (a frozen feed) is no autocorrelated noise: count every row
        return 1.0 / len(series) if discrete else 1.0
    centred = series - series.mean()
    rho = float(np.dot(centred[1:], centred[:-1]) / np.dot(centred, centred))
    rho = min(max(rho, 0.0), 0.9999)
    return (1 - rho) / (1 + rho)


def reference_days(store: FeatureStore, before: date, days: int) -> list[date]:
    """Up to ``days`` stored days before ``before``, oldest first (the drift reference)."""
    return [d for d in store.days() if d < before][-days:]


def reference(store: FeatureStore, days: Sequence[date]) -> pd.DataFrame:
    """The stored samples of ``days``, pooled."""
    import pandas as pd

    parts = [store.read_sample(d) for d in days]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["venue", "symbol", "ts"])


def assess_groups(
    settings: Settings,
    current: pd.DataFrame,
    ref: pd.DataFrame,
    previous: Mapping[str, DriftState] | None = None,
) -> list[GroupHealth]:
    """One drift assessment per calendar group of the universe."""
    from tradeops.market_data.drift import assess

    out = []
    for group, venues in groups(settings).items():
        pooled_ref, pooled_cur = of_group(ref, venues), of_group(current, venues)
        verdict = assess(
            pooled_ref,
            pooled_cur,
            settings.feature_health,
            (previous or {}).get(group),
            effective_current=effective_shares(current, venues),
            effective_reference=effective_shares(ref, venues),
        )
        out.append(GroupHealth(group, verdict, pooled_ref, pooled_cur))
    return out


def freshness(
    frame: pd.DataFrame, settings: Settings, day: date, until: datetime | None = None
) -> list[dict[str, Any]]:
    """Per instrument: its last bar against the last bar its calendar expects by ``until`` (the
    session's close when None). ``lag_minutes`` 0 is fresh; an instrument with no bar at all on a
    trading day is reported with ``last_bar: None``."""
    import pandas as pd

    last = frame.groupby(["venue", "symbol"], observed=True)["ts"].max() if len(frame) else pd.Series(dtype=object)
    out = []
    of_venue = calendars(settings)
    for venue, symbols in sorted(settings.market_data.universe.items()):
        bounds = session_bounds(of_venue[venue], day)
        for symbol in symbols:
            seen = last.get((venue, symbol)) if len(last) else None
            if bounds is None:
                out.append(_fresh(venue, symbol, seen, None, "closed"))
                continue
            expected = bounds[1] - timedelta(minutes=1)
            if until is not None:
                expected = min(expected, until - timedelta(minutes=1))
            if until is not None and until <= bounds[0]:
                out.append(_fresh(venue, symbol, seen, None, "not open yet"))
                continue
            out.append(_fresh(venue, symbol, seen, pd.Timestamp(expected), None))
    return out


def _fresh(venue: str, symbol: str, seen: Any, expected: Any, note: str | None) -> dict[str, Any]:
    if expected is None:
        return {"venue": venue, "symbol": symbol, "last_bar": _iso(seen), "lag_minutes": 0, "status": note}
    if seen is None:
        return {"venue": venue, "symbol": symbol, "last_bar": None, "lag_minutes": None, "status": "no data"}
    lag = max(0, int((expected - seen).total_seconds() // 60))
    return {
        "venue": venue,
        "symbol": symbol,
        "last_bar": _iso(seen),
        "lag_minutes": lag,
        "status": "fresh" if lag == 0 else "stale",
    }


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()
