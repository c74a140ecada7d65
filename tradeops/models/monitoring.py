"""What the hourly feature health check asks of the models, once a champion exists.

- The drift reference: the champion's training window (its version's ``train_first_day`` ..
  ``train_last_day`` tags), as at most ``market_data.reference_days`` stored days spread evenly
  over it; without a champion (or when the registry cannot be read) the previous days of the
  store, as before.
- How the champion did: its predictions logged in the window whose outcome is known by now (the
  instrument's return over the next ``training.sample_every`` bars, from the venue): hit rate of
  the positions it implied, their mean return, and the log loss against the label.

A local SQLite registry that does not exist yet means "no champion": nothing is created.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradeops.config import Settings

if TYPE_CHECKING:
    from tradeops.market_data.store import FeatureStore
    from tradeops.venues.base import Venue

log = logging.getLogger(__name__)


def registry_exists(settings: Settings) -> bool:
    """False for a local SQLite tracking store that was never created (no model trained yet)."""
    from tradeops.models import tracking

    uri = tracking.tracking_uri(settings)
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists()


def champion(settings: Settings) -> tuple[str, dict[str, str]] | None:
    """The champion's version and tags, or None (no registry, no champion, registry unreadable)."""
    if not registry_exists(settings):
        return None
    try:
        from tradeops.models import registry, tracking

        version = registry.alias_version(settings, registry.CHAMPION)
        if version is None:
            return None
        tags = tracking.client(settings).get_model_version(settings.models.registered_model, version).tags
    except Exception:
        log.warning("model registry not readable; drift reference from the store's previous days", exc_info=True)
        return None
    return version, dict(tags)


def reference_days(settings: Settings, store: FeatureStore, before: date) -> tuple[list[date], str]:
    """The days the drift reference is drawn from, and a description of them for the report."""
    import numpy as np

    from tradeops.market_data.health import reference_days as previous_days

    count = settings.market_data.reference_days
    found = champion(settings)
    if found is not None:
        version, tags = found
        try:
            first, last = date.fromisoformat(tags["train_first_day"]), date.fromisoformat(tags["train_last_day"])
        except (KeyError, ValueError):
            first = last = None
        if first is not None and last is not None:
            window = [d for d in store.days() if first <= d <= last]
            if window:
                picks = np.unique(np.linspace(0, len(window) - 1, min(count, len(window))).round().astype(int))
                chosen = [window[i] for i in picks]
                return (
                    chosen,
                    f"the champion's (version {version}) training window {first} to {last}, {len(chosen)} days",
                )
    days = previous_days(store, before, count)
    return (
        days,
        f"the store's previous {len(days)} days (no champion)"
        if found is None
        else f"the store's previous {len(days)} days",
    )


def champion_performance(
    settings: Settings, since: datetime, until: datetime, open_venue: Callable[[str], Venue]
) -> dict[str, Any] | None:
    """How the champion's predictions made in ``[since, until)`` did, where already known."""
    import numpy as np

    from tradeops.models.backtest import positions_from_probabilities
    from tradeops.models.canary import realised_returns
    from tradeops.models.dataset import round_trip_cost
    from tradeops.models.serving import predictions

    found = champion(settings)
    if found is None:
        return None
    version = found[0]
    logged = predictions(since=since, until=until, version=version, role="champion")
    hold = timedelta(minutes=settings.models.training.sample_every)
    known = [p for p in logged if not p.error and p.probability is not None and p.bar_ts + hold <= until]
    out: dict[str, Any] = {
        "version": version,
        "predictions": len(logged),
        "errors": sum(1 for p in logged if p.error),
        "realised": 0,
    }
    if not known:
        return out
    returns = np.array(realised_returns(settings, [(p.venue, p.symbol, p.bar_ts) for p in known], hold, open_venue))
    probability = np.array([p.probability for p in known], dtype="float64")
    ok = np.isfinite(returns)
    returns, probability = returns[ok], probability[ok]
    positions = positions_from_probabilities(probability, settings.models.backtest.threshold)
    traded = positions != 0
    label = (np.log1p(returns) > round_trip_cost(settings)).astype(float)
    clipped = np.clip(probability, 1e-6, 1 - 1e-6)
    out.update(
        realised=int(ok.sum()),
        traded=int(traded.sum()),
        hit_rate=float(np.mean(positions[traded] * returns[traded] > 0)) if traded.any() else None,
        mean_return=float(np.mean(positions[traded] * returns[traded])) if traded.any() else None,
        log_loss=float(-np.mean(label * np.log(clipped) + (1 - label) * np.log(1 - clipped))) if len(label) else None,
    )
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}
