"""The per-instrument canary: which instruments go first, and the verdict on a stage's window.

Stages take growing shares of the universe (``models.deployment.canary_stages``); the first takes
the most liquid, least volatile instruments (lowest Amihud illiquidity, then lowest 240-bar
realised volatility, on the latest stored day). A stage's verdict comes from the live
predictions the canary instruments logged in its window, against the champion on the same bars:

- error rate and p99 latency of the challenger's predictions;
- a paired PnL test: each challenger prediction's position times the instrument's realised return
  over the next ``training.sample_every`` bars, against the champion's position on the same logged
  features and the same return (``metrics.paired_pnl_test``: worse / not worse / inconclusive);
- a critical feature-health finding during the window fails the stage.

Too few realised pairs or an inconclusive test extends the window up to ``max_window_factor``
times its length, then holds: a stage never passes on thin evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from tradeops.config import Settings

if TYPE_CHECKING:
    import pandas as pd

    from tradeops.market_data.store import FeatureStore
    from tradeops.venues.base import Venue

Instrument = tuple[str, str]
Outcome = Literal["pass", "fail", "extend", "hold"]


def order(settings: Settings, store: FeatureStore) -> list[Instrument]:
    """The universe, most liquid and least volatile first (from the latest stored day's sample);
    instruments without stored features go last, by name."""
    from tradeops.models.routing import instruments_of

    universe = instruments_of(settings.market_data.universe)
    days = store.days()
    if not days:
        return sorted(universe)
    sample = store.read_sample(days[-1])
    if not len(sample):
        return sorted(universe)
    means = (
        sample.assign(venue=sample["venue"].astype(str), symbol=sample["symbol"].astype(str))
        .groupby(["venue", "symbol"])[["amihud_60", "rv_240"]]
        .mean()
    )
    ranked = {
        key: (float(row["amihud_60"]), float(row["rv_240"]))
        for key, row in means.iterrows()
        if math.isfinite(row["amihud_60"]) and math.isfinite(row["rv_240"])
    }
    known = sorted((i for i in universe if i in ranked), key=lambda i: (*ranked[i], i))
    return known + sorted(i for i in universe if i not in ranked)


def stages(instruments: Sequence[Instrument], shares: Sequence[float]) -> list[list[Instrument]]:
    """The instruments on the challenger at each stage (cumulative; at least one)."""
    return [list(instruments[: max(1, math.ceil(share * len(instruments)))]) for share in shares]


@dataclass(frozen=True)
class StageVerdict:
    outcome: Outcome
    reason: str
    predictions: int
    errors: int
    error_rate: float
    p99_ms: float
    pairs: int  # realised paired samples in the PnL test
    pnl: str  # the paired test's outcome
    mean_difference: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def judge(
    settings: Settings,
    green: str,
    blue: str | None,
    instruments: Iterable[Instrument],
    since: datetime,
    now: datetime,
    window_end: datetime,
    latest_end: datetime,
    open_venue: Callable[[str], Venue],
    critical: Sequence[str] = (),
) -> StageVerdict:
    """The stage's verdict at ``now`` on the predictions logged since ``since``.

    ``window_end``: the stage's planned end (no pass before it); ``latest_end``: the longest it
    may be extended to (then hold). ``critical``: critical feature-health findings seen during
    the window (any one fails the stage)."""
    import numpy as np

    from tradeops.models import serving
    from tradeops.models.metrics import paired_pnl_test

    deployment = settings.models.deployment
    wanted = set(instruments)
    logged = [p for p in serving.predictions(since=since, until=now, version=green) if (p.venue, p.symbol) in wanted]
    errors = sum(1 for p in logged if p.error)
    rate = errors / len(logged) if logged else float("nan")
    latencies = np.array([p.latency_ms for p in logged if p.latency_ms is not None], dtype="float64")
    p99 = float(np.percentile(latencies, 99)) if len(latencies) else float("nan")
    pairs = _paired_pnl(settings, blue, [p for p in logged if not p.error], now, open_venue) if blue else None
    pnl = (
        paired_pnl_test(pairs[0], pairs[1], margin=deployment.pnl_margin, min_samples=deployment.min_samples)
        if pairs is not None
        else None
    )

    def verdict(outcome: Outcome, reason: str) -> StageVerdict:
        count = 0 if pairs is None else len(pairs[0])
        return StageVerdict(
            outcome,
            reason,
            len(logged),
            errors,
            rate,
            p99,
            count,
            pnl.outcome if pnl else "n/a",
            pnl.mean_difference if pnl else float("nan"),
        )

    if critical:
        return verdict("fail", "critical feature health during the canary: " + "; ".join(critical))
    if logged and rate > deployment.max_error_rate:
        return verdict("fail", f"error rate {rate:.2%} > {deployment.max_error_rate:.2%} ({errors} of {len(logged)})")
    if math.isfinite(p99) and p99 > deployment.max_p99_ms:
        return verdict("fail", f"p99 latency {p99:.1f} ms > {deployment.max_p99_ms:g} ms")
    if pnl is not None and pnl.outcome == "worse":
        return verdict("fail", f"paired PnL: worse than the champion ({pnl.reason})")
    thin = len(logged) < deployment.min_samples or (pnl is not None and pnl.outcome == "inconclusive")
    if thin or now < window_end:
        if now < latest_end:
            why = "window not over yet" if not thin else _thin_reason(len(logged), deployment.min_samples, pnl)
            return verdict("extend", why)
        return verdict(
            "hold",
            "evidence still thin at the longest window: " + _thin_reason(len(logged), deployment.min_samples, pnl),
        )
    compared = pnl.outcome if pnl else "n/a (first model)"
    return verdict("pass", f"{len(logged)} predictions, error rate {rate:.2%}, p99 {p99:.1f} ms, paired PnL {compared}")


def _thin_reason(count: int, needed: int, pnl: Any) -> str:
    if count < needed:
        return f"{count} predictions, {needed} needed"
    return f"paired PnL inconclusive ({pnl.reason})"


def _paired_pnl(
    settings: Settings, blue: str, logged: Sequence[Any], now: datetime, open_venue: Callable[[str], Venue]
) -> tuple[Any, Any]:
    """Per realised prediction: (challenger PnL, champion PnL) on the same bar and features."""
    import numpy as np
    import pandas as pd

    from tradeops.models import serving
    from tradeops.models.backtest import positions_from_probabilities

    hold = timedelta(minutes=settings.models.training.sample_every)
    realised = [p for p in logged if p.bar_ts + hold <= now and p.probability is not None]
    if not realised:
        return np.zeros(0), np.zeros(0)
    returns = realised_returns(settings, [(p.venue, p.symbol, p.bar_ts) for p in realised], hold, open_venue)
    predictor = serving.Predictor(settings)
    green_p, blue_p, kept = [], [], []
    for p, r in zip(realised, returns, strict=True):
        if not math.isfinite(r):
            continue
        row = pd.DataFrame([p.features]).astype("float64")  # null (a NaN input) back to NaN
        baseline = predictor.predict_with(blue, p.venue, p.symbol, row, role="shadow", bar_ts=p.bar_ts)
        if baseline.error or baseline.probability is None:
            continue
        green_p.append(p.probability)
        blue_p.append(baseline.probability)
        kept.append(r)
    threshold = settings.models.backtest.threshold
    r = np.array(kept, dtype="float64")
    green = positions_from_probabilities(np.array(green_p, dtype="float64"), threshold) * r
    baseline_pnl = positions_from_probabilities(np.array(blue_p, dtype="float64"), threshold) * r
    return green, baseline_pnl


def realised_returns(
    settings: Settings,
    bars: Sequence[tuple[str, str, datetime]],
    hold: timedelta,
    open_venue: Callable[[str], Venue],
) -> list[float]:
    """The simple return from each (venue, symbol, bar start) to ``hold`` later, from the venue's
    1-minute closes; NaN where a bar is missing."""
    by_instrument: dict[Instrument, list[datetime]] = {}
    for venue, symbol, ts in bars:
        by_instrument.setdefault((venue, symbol), []).append(ts)
    closes: dict[Instrument, pd.Series] = {}
    venues: dict[str, Venue] = {}
    try:
        for (venue, symbol), stamps in by_instrument.items():
            handle = venues.get(venue) or venues.setdefault(venue, open_venue(venue))
            frame = handle.bars(symbol, "1m", min(stamps), max(stamps) + hold + timedelta(minutes=1))
            closes[(venue, symbol)] = frame.set_index("ts")["close"]
    finally:
        for handle in venues.values():
            handle.close()
    out = []
    for venue, symbol, ts in bars:
        series = closes[(venue, symbol)]
        start, end = _at(series, ts), _at(series, ts + hold)
        out.append(end / start - 1 if math.isfinite(start) and math.isfinite(end) and start > 0 else float("nan"))
    return out


def _at(series: pd.Series, ts: datetime) -> float:
    import pandas as pd

    key = pd.Timestamp(ts).tz_convert(UTC) if pd.Timestamp(ts).tzinfo else pd.Timestamp(ts, tz=UTC)
    value = series.get(key)
    return float(value) if value is not None else float("nan")


def critical_findings(history: Sequence[dict[str, Any]], since: datetime, until: datetime) -> list[str]:
    """Critical feature-health verdicts in the health check's history between the two times."""
    out = []
    for entry in history:
        end = entry.get("window_end")
        if not end:
            continue
        at = datetime.fromisoformat(end)
        if not since <= at.astimezone(UTC) <= until:
            continue
        for group, verdict in entry.get("groups", {}).items():
            if verdict.get("level") == "critical":
                out.append(f"{group} at {end}: {verdict.get('summary', 'critical')}")
    return out
