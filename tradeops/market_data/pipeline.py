"""The stages of the nightly data pipeline, one function each, over one day.

``extract`` -> ``validate`` -> ``features`` -> ``load`` -> ``archive`` (-> the health check). The
Airflow tasks call these with the day of their run and hand the frames over through the store's
``staging/`` folder; the benchmark calls them in one process. A stage never looks at the clock to
decide which day it works on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tradeops.config import Settings
from tradeops.errors import ConfigError, TemporaryVenueError
from tradeops.market_data import features as feature_code
from tradeops.market_data import frames
from tradeops.market_data.calendars import CalendarName, calendar_for, day_bounds, trading_days_before
from tradeops.market_data.store import FeatureStore, archive_raw, read_parquet, write_parquet
from tradeops.market_data.validation import ValidationResult, validate_day

if TYPE_CHECKING:
    import pandas as pd
    from upath import UPath

    from tradeops.venues.base import Venue

log = logging.getLogger(__name__)
TIMEFRAME = "1m"
_FETCH_ATTEMPTS = 3


@dataclass(frozen=True)
class Instrument:
    venue: str
    symbol: str
    calendar: CalendarName


def universe(settings: Settings) -> list[Instrument]:
    """Every configured (venue, symbol) with its calendar; an empty universe is a config error."""
    configured = settings.market_data.universe
    if not any(configured.values()):
        raise ConfigError("market_data.universe", "no symbols configured: the data pipeline has nothing to fetch")
    return [
        Instrument(venue, symbol, calendar_for(settings.venue(venue).asset_class))
        for venue, symbols in sorted(configured.items())
        for symbol in symbols
    ]


def calendars(settings: Settings) -> dict[str, CalendarName]:
    return {venue: calendar_for(settings.venue(venue).asset_class) for venue in settings.market_data.universe}


def warmup_start(calendar: CalendarName, day: date, bars: int) -> datetime:
    """Where fetching starts so ``bars`` bars precede the day (whole previous trading days)."""
    if bars <= 0:
        return day_bounds(day)[0]
    per_day = 1440 if calendar == "24/7" else 390
    days = -(-bars // per_day) + (1 if calendar == "XNYS" else 0)  # one spare session: early closes
    return day_bounds(trading_days_before(calendar, day, days)[0])[0]


def fetch_universe(
    settings: Settings,
    open_venue: Callable[[str], Venue],
    span: Callable[[Instrument], tuple[datetime, datetime]],
    sleep: Callable[[float], None] = time.sleep,
) -> list[tuple[Instrument, pd.DataFrame]]:
    """Every instrument's 1-minute bars over ``span(instrument)``, each venue opened once and
    closed after. A temporary venue error is retried (1 s, 2 s) before it propagates."""
    venues: dict[str, Venue] = {}
    out = []
    try:
        for item in universe(settings):
            venue = venues.get(item.venue) or venues.setdefault(item.venue, open_venue(item.venue))
            start, end = span(item)
            out.append((item, _fetch(venue, item.symbol, start, end, sleep)))
    finally:
        for venue in venues.values():
            venue.close()
    return out


def extract(
    settings: Settings,
    day: date,
    open_venue: Callable[[str], Venue],
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """1-minute bars of every instrument for ``day`` plus its warm-up, through each ``Venue``.

    Temporary venue errors are retried (``fetch_universe``) before they fail the task (whose own
    retries, with backoff, then run the extract again). Rows before the day carry ``warmup = True``."""
    import pandas as pd

    day_start, day_end = day_bounds(day)
    warmup = settings.market_data.warmup_bars
    fetched = fetch_universe(
        settings, open_venue, lambda item: (warmup_start(item.calendar, day, warmup), day_end), sleep
    )
    parts = []
    for item, bars in fetched:
        early = bars["ts"] < pd.Timestamp(day_start)
        bars = pd.concat([bars.loc[early].tail(warmup), bars.loc[~early]], ignore_index=True)
        bars["warmup"] = bars["ts"] < pd.Timestamp(day_start)
        parts.append(frames.with_keys(bars, item.venue, item.symbol))
    out = frames.concat(parts)
    log.info(
        "extracted %d bars (%d warm-up) for %d instruments on %s",
        len(out),
        int(out["warmup"].sum()),
        len(parts),
        day.isoformat(),
    )
    return out


def _fetch(venue: Venue, symbol: str, start: datetime, end: datetime, sleep: Callable[[float], None]) -> pd.DataFrame:
    for attempt in range(1, _FETCH_ATTEMPTS + 1):
        try:
            return venue.bars(symbol, TIMEFRAME, start, end)
        except TemporaryVenueError as exc:
            if attempt == _FETCH_ATTEMPTS:
                raise
            log.warning("%s %s: temporary error fetching bars (attempt %d): %s", venue.name, symbol, attempt, exc)
            sleep(float(2 ** (attempt - 1)))
    raise AssertionError("unreachable")  # pragma: no cover


def validate(settings: Settings, day: date, raw: pd.DataFrame) -> ValidationResult:
    """Validate the day's bars (warm-up rows are context, not judged)."""
    day_bars = raw.loc[~raw["warmup"]].drop(columns=["warmup"]).reset_index(drop=True)
    pairs = [(i.venue, i.symbol) for i in universe(settings)]
    result = validate_day(day_bars, day, calendars(settings), settings.market_data.validation, universe=pairs)
    for finding in result.findings:
        level = logging.ERROR if finding.action == "fail" else logging.WARNING
        log.log(level, "validation %s: %s", finding.action, finding.message())
    result.raise_for_failures(settings.market_data.validation)
    return result


def compute_features(raw: pd.DataFrame, validated: pd.DataFrame, day: date, created_at: datetime) -> pd.DataFrame:
    """Features of the validated day bars, with the raw warm-up rows of the kept symbols before them."""
    start, end = day_bounds(day)
    kept = frames.instruments(validated)
    if not validated["filled"].any():
        # validation only dropped quarantined instruments: the validated bars are the raw day
        # rows of the kept ones, and raw is already in (instrument, time) order with each
        # instrument's warm-up first, so its rows are used as they are (no copy, no sort)
        everyone = len(kept) == len(frames.instruments(raw))
        bars = raw if everyone else raw.loc[frames.rows_of(raw, kept)].reset_index(drop=True)
        if int((~bars["warmup"]).sum()) == len(validated):
            return feature_code.compute(bars, keep_from=start, keep_until=end, created_at=created_at)
    warm = raw.loc[raw["warmup"].to_numpy()].drop(columns=["warmup"])
    warm = warm.loc[frames.rows_of(warm, kept)]
    bars = frames.concat([warm.assign(filled=False), validated]) if len(warm) else frames.concat([validated])
    return feature_code.compute(bars, keep_from=start, keep_until=end, created_at=created_at)


def load(root: UPath, day: date, features: pd.DataFrame, validation: dict[str, Any]) -> dict[str, Any]:
    """Replace the day's partition in the feature store; returns its manifest. ``validation`` is
    ``ValidationResult.summary()`` (kept in the manifest: quarantined symbols and why, findings)."""
    manifest = FeatureStore(root).write_day(day, features, {"validation": validation})
    log.info(
        "feature partition %s: %d rows, %d symbols, version %s, quarantined %s",
        day.isoformat(),
        manifest["rows"],
        len(manifest["symbols"]),
        manifest["version"],
        sorted(validation["quarantined"]),
    )
    return manifest


def archive(root: UPath, day: date, raw: pd.DataFrame) -> list[dict[str, Any]]:
    """The day's raw bars (as fetched, quarantined symbols included) into ``raw/date=...``."""
    entries = archive_raw(root, day, raw.loc[~raw["warmup"]].drop(columns=["warmup"]))
    store = FeatureStore(root)
    if store.manifest(day) is not None:
        store.update_manifest(day, archive=entries)
    return entries


# -- hand-over between the tasks of one run ------------------------------------------------------


def staging_dir(root: UPath, run_key: str) -> UPath:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_key)
    return root / "staging" / safe


def stage(root: UPath, run_key: str, name: str, frame: pd.DataFrame) -> str:
    path = staging_dir(root, run_key) / f"{name}.parquet"
    write_parquet(path, frame, compression="lz4")
    return str(path)


def staged(root: UPath, run_key: str, name: str) -> pd.DataFrame:
    path = staging_dir(root, run_key) / f"{name}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the earlier task of this run did not hand it over (clear it to re-run)")
    frame = read_parquet(path)
    frame["ts"] = frame["ts"].astype("datetime64[us, UTC]")
    return frame


def stage_json(root: UPath, run_key: str, name: str, value: Any) -> None:
    path = staging_dir(root, run_key) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(json.dumps(value).encode())


def staged_json(root: UPath, run_key: str, name: str) -> Any:
    path = staging_dir(root, run_key) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the earlier task of this run did not hand it over (clear it to re-run)")
    return json.loads(path.read_bytes())


def clean_staging(root: UPath, run_key: str) -> None:
    path = staging_dir(root, run_key)
    if path.exists():
        path.fs.rm(path.path, recursive=True)


def resolve_day(partition_key: str | None, conf: dict[str, Any] | None, logical_date: datetime | None) -> date:
    """The day a run is for: its partition key, else ``conf["day"]``, else the day before its
    logical date (a 02:00 run processes the day that just ended). Never the wall clock."""
    for value, source in ((partition_key, "partition key"), ((conf or {}).get("day"), "conf 'day'")):
        if value:
            try:
                return date.fromisoformat(str(value)[:10])
            except ValueError as exc:
                raise ValueError(f"{source} {value!r} is not a YYYY-MM-DD day") from exc
    if logical_date is None:
        raise ValueError("this run has no partition key, no conf 'day' and no logical date: which day is it for?")
    return (logical_date.astimezone(UTC) - timedelta(days=1)).date()
