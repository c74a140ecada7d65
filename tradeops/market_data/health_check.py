"""The two health checks: nightly (the stored day) and hourly (the latest bars), plus their alerts.

Nightly, after ``load``: freshness per symbol and drift of the day against the previous days,
written into the day's manifest (``health``). Hourly: the last hour of features, computed by the
same code from the latest bars, against the reference; per calendar group the window takes more
of each instrument's latest bars until the group reaches ``feature_health.min_samples`` (a small
universe has few bars an hour). The
hourly check keeps its state (streaks for the k-consecutive-windows rule, recent summaries) in
``reports/health/state.json`` and writes a report per run: ``report.md``, PNG plots and
``summary.json`` under ``reports/health/<window end>/<group>/``.

Alerts are ``data_alert`` events (``data-alerts`` topic), never ``critical_alert``: drift must
not flatten the book.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tradeops.config import Settings
from tradeops.market_data import features as feature_code
from tradeops.market_data import frames
from tradeops.market_data.health import UNWELL, GroupHealth, assess_groups, freshness, reference, reference_days
from tradeops.market_data.pipeline import Instrument, calendars, fetch_universe, universe
from tradeops.market_data.store import FeatureStore, atomic_write

if TYPE_CHECKING:
    import pandas as pd
    from upath import UPath

    from tradeops.events import DataAlert
    from tradeops.venues.base import Venue

log = logging.getLogger(__name__)
STATE = "reports/health/state.json"
_HISTORY = 24  # past assessments kept for the "PSI over time" plot (one a run)
_PLOTTED = 24


@dataclass
class HealthResult:
    """What one check found: per group verdicts, freshness, the alerts to publish, report paths."""

    window_start: datetime | None
    window_end: datetime | None
    verdicts: list[GroupHealth]
    freshness: list[dict[str, Any]]
    alerts: list[DataAlert] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)
    reference: str = ""  # what the drift reference was drawn from
    model: dict[str, Any] | None = None  # the champion's recent predictions against what happened

    def summary(self) -> dict[str, Any]:
        return {
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "groups": {g.group: {"level": g.assessment.level, "summary": g.assessment.summary} for g in self.verdicts},
            "stale_symbols": [f"{f['venue']} {f['symbol']}" for f in self.freshness if f["status"] in UNWELL],
            "alerts": [{"level": a.level, "check": a.check, "scope": a.scope} for a in self.alerts],
            "reports": self.reports,
            "reference": self.reference,
            "model": self.model,
        }


def nightly(settings: Settings, root: UPath, day: Any) -> HealthResult:
    """The stored ``day`` against the samples of the previous days; recorded in its manifest."""
    store = FeatureStore(root)
    current = store.read_day(day)
    before = reference_days(store, day, settings.market_data.reference_days)
    verdicts = assess_groups(settings, current, reference(store, before))
    fresh = freshness(current, settings, day)
    result = HealthResult(None, None, verdicts, fresh)
    result.alerts = alerts(result, f"day {day.isoformat()}", report=None)
    store.update_manifest(
        day,
        health={
            "freshness": fresh,
            "drift": [g.to_dict() for g in verdicts],
            "reference_days": [d.isoformat() for d in before],
        },
    )
    return result


def window_bars(settings: Settings) -> dict[str, int]:
    """Bars per instrument in the current window, per calendar group: the last hour (60 bars),
    widened until the group's instruments together reach ``feature_health.min_samples`` (a small
    universe has few bars an hour; an equity window may then reach back into the last session)."""
    counts: dict[str, int] = {}
    for item in universe(settings):
        counts[item.calendar] = counts.get(item.calendar, 0) + 1
    floor = settings.feature_health.min_samples
    return {group: max(60, math.ceil(floor / n)) for group, n in counts.items()}


def latest_features(settings: Settings, end: datetime, open_venue: Callable[[str], Venue]) -> pd.DataFrame:
    """Features of each instrument's last ``window_bars`` bars before ``end``, from bars fetched now
    with the nightly warm-up before them (the same code as the nightly pipeline)."""
    sizes = window_bars(settings)
    warm = settings.market_data.warmup_bars

    def span(item: Instrument) -> tuple[datetime, datetime]:
        needed = sizes[item.calendar] + warm
        # 24/7: that many minutes; equities: enough sessions, across a weekend or a holiday
        reach = timedelta(minutes=needed) if item.calendar == "24/7" else timedelta(days=4 + needed // 390 * 2)
        return end - reach, end

    fetched = fetch_universe(settings, open_venue, span)
    bars = frames.concat([frames.with_keys(part, item.venue, item.symbol) for item, part in fetched])
    computed = feature_code.compute(bars, keep_until=end, created_at=end)
    of_venue = calendars(settings)
    size = computed["venue"].astype(str).map({v: sizes[c] for v, c in of_venue.items()})
    position = computed.groupby(["venue", "symbol"], observed=True).cumcount(ascending=False)
    return computed.loc[(position < size).to_numpy()].reset_index(drop=True)


def hourly(
    settings: Settings,
    root: UPath,
    end: datetime,
    open_venue: Callable[[str], Venue],
) -> HealthResult:
    """The window ending at ``end`` (the run's scheduled hour) against the reference."""
    from tradeops.market_data.drift import DriftState

    end = end.astimezone(UTC)
    current = latest_features(settings, end, open_venue)
    store = FeatureStore(root)
    from tradeops.models import monitoring

    days, described = monitoring.reference_days(settings, store, end.date() + timedelta(days=1))
    state = load_state(root)
    previous = {group: DriftState.from_dict(s) for group, s in state.get("groups", {}).items()}
    verdicts = assess_groups(settings, current, reference(store, days), previous)
    fresh = freshness(current, settings, (end - timedelta(minutes=1)).date(), until=end)
    start = current["ts"].min() if len(current) else None
    result = HealthResult(start.to_pydatetime() if start is not None else None, end, verdicts, fresh)
    result.reference = described
    result.model = monitoring.champion_performance(settings, end - timedelta(hours=1), end, open_venue)
    folder = root / "reports" / "health" / end.strftime("%Y-%m-%dT%H%M")
    result.reports = write_reports(folder, result, settings, state.get("history", []))
    result.alerts = alerts(result, f"window to {end:%Y-%m-%d %H:%M} UTC", report=str(folder))
    save_state(root, state, result)
    return result


def write_reports(
    folder: UPath, result: HealthResult, settings: Settings, history: list[dict[str, Any]]
) -> dict[str, str]:
    """``report.md``, PNGs and ``summary.json`` per group; returns group -> report path."""
    from tradeops.market_data.drift_report import render

    of_venue = calendars(settings)
    paths = {}
    for verdict in result.verdicts:
        past = [h["groups"][verdict.group] for h in history if verdict.group in h.get("groups", {})][-_PLOTTED:]
        files = render(verdict.assessment, verdict.reference, verdict.current, past)
        target = folder / _slug(verdict.group)
        target.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (target / name).write_bytes(data)
        summary = {
            **verdict.to_dict(),
            "freshness": [f for f in result.freshness if of_venue[f["venue"]] == verdict.group],
        }
        (target / "summary.json").write_bytes(json.dumps(summary, indent=2, default=str).encode())
        paths[verdict.group] = str(target / "report.md")
    return paths


def _slug(group: str) -> str:
    return "crypto-24x7" if group == "24/7" else group.lower()


def alerts(result: HealthResult, where: str, report: str | None) -> list[DataAlert]:
    """A ``data_alert`` per group at warning or critical, and one for stale or missing symbols."""
    from tradeops.events import DataAlert

    out = []
    for verdict in result.verdicts:
        level = verdict.assessment.level
        if level not in ("warning", "critical"):
            continue
        flagged = [f.name for f in verdict.assessment.flagged][:64]
        out.append(
            DataAlert(
                level=level,
                check="feature_drift",
                scope=verdict.group,
                message=f"{where}: {verdict.assessment.summary}"[:1000],
                features=tuple(flagged),
                report=report,
            )
        )
    stale = [f for f in result.freshness if f["status"] in UNWELL]
    if stale:
        names = ", ".join(f"{f['venue']} {f['symbol']} ({f['status']}, last {f['last_bar']})" for f in stale)
        out.append(
            DataAlert(
                level="warning", check="freshness", scope="universe", message=f"{where}: {names}"[:1000], report=report
            )
        )
    return out


def load_state(root: UPath) -> dict[str, Any]:
    path = root / STATE
    path.fs.invalidate_cache(path.parent.path)  # written by the previous run's process
    if not path.exists():
        return {}
    return dict(json.loads(path.read_bytes()))


def save_state(root: UPath, state: dict[str, Any], result: HealthResult) -> None:
    history = [*state.get("history", []), _history_entry(result)][-_HISTORY:]
    data = {
        "updated": result.window_end.isoformat() if result.window_end else None,
        "groups": {g.group: g.assessment.state.to_dict() for g in result.verdicts},
        "history": history,
    }
    atomic_write(root / STATE, json.dumps(data, indent=2).encode())


def _history_entry(result: HealthResult) -> dict[str, Any]:
    return {
        "window_end": result.window_end.isoformat() if result.window_end else None,
        "groups": {g.group: g.assessment.to_dict() for g in result.verdicts},
    }
