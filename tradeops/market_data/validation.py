"""Validate a day of bars: every finding names venue, symbol, check and the first offending bars.

Row checks are a pandera schema (types, positive prices, OHLC consistency, non-negative volume,
no duplicate bars), run lazily so every failure is collected, not just the first. Calendar checks
follow each instrument's calendar: bars outside its session (``off_calendar``), ``missing`` bars,
``gap`` (a run of at least ``gap_minutes`` missing), robust ``outliers`` in the 1-minute log
returns (median absolute deviation) and ``stale`` prices (``stale_bars`` flat bars in a row).

The policy says what each check does: ``fail`` the run, ``quarantine`` the symbol (left out of the
day, with the reasons in the manifest; the rest go on), or ``warn``. Nothing is filled silently:
with ``fill: ffill`` short runs of missing minutes become flat bars marked ``filled``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from tradeops.errors import DataValidationError
from tradeops.market_data.calendars import CalendarName, expected_minutes
from tradeops.market_data.frames import (
    as_sorted_category,
    instrument_starts,
    instruments,
    key_codes,
    rows_of,
    sort_bars,
)
from tradeops.market_data.settings import Action, CheckName, ValidationConfig

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_MAD_SCALE = 1.4826  # MAD of a normal distribution x this = its standard deviation
_ROW_CHECKS = ("ohlc", "negative_volume", "duplicates")


@dataclass(frozen=True)
class Finding:
    """One check that one instrument did not pass."""

    venue: str
    symbol: str
    check: CheckName
    action: Action
    count: int
    first: tuple[str, ...]
    detail: str

    def message(self) -> str:
        where = ", ".join(self.first) if self.first else "-"
        return f"{self.venue} {self.symbol}: {self.check}: {self.detail} ({self.count} bar(s); first: {where})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "first": list(self.first)}


@dataclass
class ValidationResult:
    """What validation kept and why: the bars to build features from, and every finding."""

    bars: pd.DataFrame
    findings: list[Finding] = field(default_factory=list)
    quarantined: dict[str, list[str]] = field(default_factory=dict)  # "venue symbol" -> reasons
    completeness: dict[str, dict[str, int]] = field(default_factory=dict)  # per instrument
    filled: int = 0
    universe_size: int = 0

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.action == "fail"]

    def raise_for_failures(self, config: ValidationConfig) -> None:
        """``DataValidationError`` naming every ``fail`` finding, and too many quarantined symbols."""
        problems = [f.message() for f in self.failures]
        share = len(self.quarantined) / max(self.universe_size, 1)
        if share > config.max_quarantined_share:
            problems.append(
                f"{len(self.quarantined)} of {self.universe_size} symbols quarantined ({share:.0%} > "
                f"validation.max_quarantined_share {config.max_quarantined_share:.0%}): "
                + "; ".join(sorted(self.quarantined))
            )
        if problems:
            raise DataValidationError("bar validation failed: " + " | ".join(problems))

    def summary(self) -> dict[str, Any]:
        return {
            "findings": [f.to_dict() for f in self.findings],
            "quarantined": self.quarantined,
            "completeness": self.completeness,
            "filled_bars": self.filled,
        }


def validate_day(
    bars: pd.DataFrame,
    day: date,
    calendars: Mapping[str, CalendarName],
    config: ValidationConfig,
    universe: Sequence[tuple[str, str]] | None = None,
) -> ValidationResult:
    """Check ``bars`` (one day, the bar frame of ``tradeops.market_data.frames``) per instrument.

    ``calendars`` maps each venue to its calendar; ``universe`` lists every (venue, symbol) that
    should be there (an instrument with no bars at all is then a gap, not silently absent).
    Never raises for the data: ``ValidationResult.raise_for_failures`` does, once it is logged.
    """
    import numpy as np
    import pandas as pd

    bars = sort_bars(bars)
    findings: list[Finding] = []
    findings += _row_findings(bars, config)
    keys = list(universe) if universe is not None else sorted(instruments(bars))
    screen = _Screen(bars, day, calendars, config)
    completeness: dict[str, dict[str, int]] = {}
    fills = []
    filled = 0
    for venue, symbol in keys:
        calendar = calendars[venue]
        expected = screen.expected[calendar]
        index = screen.index.get((venue, symbol))
        present = 0 if index is None else int(screen.present[index])
        completeness[f"{venue} {symbol}"] = {
            "expected": len(expected),
            "present": present,
            "missing": len(expected) - present,
        }
        if index is not None and not screen.suspect[index] and present == len(expected):
            continue  # nothing to look at closer: the common case
        frame = bars.iloc[0:0] if index is None else bars.iloc[screen.starts[index] : screen.ends[index]]
        missing = expected.difference(pd.DatetimeIndex(frame["ts"].unique()))
        findings += _calendar_findings(venue, symbol, calendar, frame, expected, missing, config)
        findings += _series_findings(venue, symbol, frame, config)
        if config.fill == "ffill" and len(missing):
            extra = _fill_rows(frame, missing, config.max_fill_bars)
            filled += len(extra)
            fills.append(extra)
    quarantined = _quarantine(findings)
    out = {(f.venue, f.symbol) for f in findings if f.action == "quarantine"}
    kept = bars.loc[~rows_of(bars, out)] if out else bars
    kept = kept.assign(filled=np.zeros(len(kept), dtype=bool)) if "filled" not in kept.columns else kept
    if fills:
        extra = pd.concat(fills, ignore_index=True)
        extra = extra.loc[~rows_of(extra, out)] if out else extra
        kept = sort_bars(pd.concat([kept, extra], ignore_index=True))
    kept = kept.reset_index(drop=True)
    return ValidationResult(kept, findings, quarantined, completeness, filled, len(keys))


def validate_window(bars: pd.DataFrame, config: ValidationConfig) -> list[Finding]:
    """The checks that need no day's calendar, on any window of one or more instruments' bars:
    the row checks (types, prices, OHLC consistency, volume, duplicates), outliers and stale
    prices. A trading agent runs them on the bars it fetched before it trusts them."""
    bars = sort_bars(bars)
    findings = _row_findings(bars, config)
    for venue, symbol in sorted(instruments(bars)):
        frame = bars.loc[rows_of(bars, {(venue, symbol)})]
        findings += _series_findings(venue, symbol, frame, config)
    return findings


class _Screen:
    """One vectorised pass over every instrument: which ones need a closer look.

    Per instrument (rows sorted by venue, symbol, ts): distinct bars inside its session, whether
    any bar is off-calendar or duplicated, whether a robust outlier or a stale run appears."""

    def __init__(
        self, bars: pd.DataFrame, day: date, calendars: Mapping[str, CalendarName], config: ValidationConfig
    ) -> None:
        import numpy as np
        import pandas as pd

        self.expected = {cal: expected_minutes(cal, day) for cal in set(calendars.values())}
        if len(bars) == 0:
            self.starts = self.ends = np.zeros(0, dtype="int64")
            self.index: dict[tuple[str, str], int] = {}
            self.present = self.suspect = np.zeros(0)
            return
        venue_codes = key_codes(bars)[0]
        n = len(bars)
        self.starts = instrument_starts(bars)
        breaks = np.zeros(n, dtype=bool)
        breaks[self.starts] = True
        self.ends = np.concatenate((self.starts[1:], [n])).astype("int64")
        ids = np.cumsum(breaks) - 1
        groups = len(self.starts)
        first_rows = bars.iloc[self.starts]
        pairs = zip(first_rows["venue"].astype(str), first_rows["symbol"].astype(str), strict=True)
        self.index = {(str(v), str(s)): i for i, (v, s) in enumerate(pairs)}
        ts = bars["ts"].array.asi8
        session = np.zeros(n, dtype=bool)
        names = list(as_sorted_category(bars["venue"]).cat.categories)
        for cal, minutes in self.expected.items():
            rows = np.isin(venue_codes, [names.index(v) for v, c in calendars.items() if c == cal and v in names])
            session[rows] = np.isin(ts[rows], minutes.asi8)
        repeat = np.concatenate(([False], (ts[1:] == ts[:-1]) & ~breaks[1:]))
        self.present = np.bincount(ids, weights=(session & ~repeat), minlength=groups)
        suspect = np.bincount(ids, weights=(~session | repeat), minlength=groups) > 0
        close = bars["close"].to_numpy("float64")
        with np.errstate(divide="ignore", invalid="ignore"):
            returns = np.concatenate(([np.nan], np.diff(np.log(close))))
        returns[breaks] = np.nan
        returns[~np.isfinite(returns)] = np.nan
        series = pd.Series(returns)
        centre = series.groupby(ids).median().reindex(range(groups)).to_numpy()
        spread = _MAD_SCALE * (series - centre[ids]).abs().groupby(ids).median().reindex(range(groups)).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.abs(returns - centre[ids]) / spread[ids]
        suspect |= np.bincount(ids, weights=np.nan_to_num(z, nan=0.0) > config.outlier_sigmas, minlength=groups) > 0
        suspect |= np.bincount(ids, weights=_stale_flags(bars, breaks, config.stale_bars), minlength=groups) > 0
        self.suspect = suspect


def _stale_flags(bars: pd.DataFrame, breaks: np.ndarray, length: int) -> np.ndarray:
    """1.0 on the first bar of each stale run of at least ``length`` bars (runs end at instruments)."""
    import numpy as np

    prices = bars[["open", "high", "low", "close"]].to_numpy(dtype="float64")
    if len(prices) == 0:
        return np.zeros(0)
    same = np.concatenate(([False], prices[1:, 3] == prices[:-1, 3])) & ~breaks
    flat = (prices.max(axis=1) == prices.min(axis=1)) & same
    flat[:-1] |= flat[1:] & ~breaks[1:]
    edges = np.diff(np.concatenate(([0], flat.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = np.zeros(len(prices))
    out[starts[(ends - starts) >= length]] = 1.0
    return out


def _schema(config: ValidationConfig) -> Any:
    import pandas as pd
    import pandera.pandas as pa

    price = pa.Column("float64", checks=pa.Check.gt(0), nullable=False)
    return pa.DataFrameSchema(
        {
            "venue": pa.Column(nullable=False),
            "symbol": pa.Column(nullable=False),
            "ts": pa.Column(pd.DatetimeTZDtype(unit="us", tz="UTC"), nullable=False),
            "open": price,
            "high": price,
            "low": price,
            "close": price,
            "volume": pa.Column("float64", checks=pa.Check.ge(0), nullable=False),
        },
        checks=[
            pa.Check(
                _ohlc_consistent,
                name="ohlc",
            ),
            pa.Check(
                _first_of_each_bar,
                name="duplicates",
            ),
        ],
        strict=False,
        coerce=False,
    )


def _ohlc_consistent(df: pd.DataFrame) -> pd.Series:
    """High at or above open and close, low at or below them (so high >= low too)."""
    import numpy as np
    import pandas as pd

    opens, closes = df["open"].to_numpy(), df["close"].to_numpy()
    ok = (df["high"].to_numpy() >= np.maximum(opens, closes)) & (df["low"].to_numpy() <= np.minimum(opens, closes))
    return pd.Series(ok, index=df.index)


def _first_of_each_bar(df: pd.DataFrame) -> pd.Series:
    """False for a repeat of a bar (same venue, symbol and start) already seen above it."""
    import numpy as np
    import pandas as pd

    venue, symbol = key_codes(df)
    ts = df["ts"].array.asi8
    order = np.lexsort((ts, symbol, venue)) if len(df) > 1 else np.arange(len(df))
    repeat = np.zeros(len(df), dtype=bool)
    same = (venue[order][1:] == venue[order][:-1]) & (symbol[order][1:] == symbol[order][:-1])
    repeat[order[1:]] = same & (ts[order][1:] == ts[order][:-1])
    return pd.Series(~repeat, index=df.index)


def _row_findings(bars: pd.DataFrame, config: ValidationConfig) -> list[Finding]:
    """Run the pandera schema lazily and turn its failure cases into findings per instrument."""
    import pandera.errors

    try:
        _schema(config).validate(bars, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        return _from_failure_cases(bars, exc.failure_cases, config)
    return []


def _from_failure_cases(bars: pd.DataFrame, cases: pd.DataFrame, config: ValidationConfig) -> list[Finding]:
    import pandas as pd

    findings: list[Finding] = []
    cases = cases.copy()
    cases["name"] = [_check_name(str(c), str(col)) for c, col in zip(cases["check"], cases["column"], strict=True)]
    for name, group in cases.groupby("name", sort=True):
        rows = pd.to_numeric(group["index"], errors="coerce").dropna().astype("int64").unique()
        rows = rows[(rows >= 0) & (rows < len(bars))]
        if len(rows) == 0:  # a column-level failure (wrong type, missing column): every instrument
            detail = "; ".join(sorted({f"{c}: {k}" for c, k in zip(group["column"], group["check"], strict=False)}))
            for venue, symbol in sorted(instruments(bars)) or [("?", "?")]:
                findings.append(_finding(venue, symbol, "schema", config, 0, (), detail))
            continue
        hit = bars.iloc[rows]
        for (venue, symbol), frame in hit.groupby(["venue", "symbol"], observed=True, sort=True):
            detail = _ROW_DETAIL.get(str(name), "values outside the schema (null, non-positive price or wrong type)")
            findings.append(
                _finding(str(venue), str(symbol), name, config, len(frame), _first(frame["ts"], config), detail)
            )
    return findings


_ROW_DETAIL = {
    "ohlc": "high below open/close or low above them (high < low included)",
    "negative_volume": "negative volume",
    "duplicates": "the same bar more than once",
}


def _check_name(check: str, column: str) -> CheckName:
    """Our check for a pandera failure case (its built-in checks are named by their test)."""
    for name in _ROW_CHECKS:
        if check.startswith(name):
            return name  # type: ignore[return-value]
    if column == "volume" and check.startswith("greater_than_or_equal_to"):
        return "negative_volume"
    return "schema"


def _calendar_findings(
    venue: str,
    symbol: str,
    calendar: CalendarName,
    frame: pd.DataFrame,
    expected: pd.DatetimeIndex,
    missing: pd.DatetimeIndex,
    config: ValidationConfig,
) -> list[Finding]:
    findings: list[Finding] = []
    off = frame.loc[~frame["ts"].isin(expected), "ts"]
    if len(off):
        detail = f"bars outside the {calendar} session"
        findings.append(_finding(venue, symbol, "off_calendar", config, len(off), _first(off, config), detail))
    if len(missing) == 0:
        return findings
    share = len(missing) / max(len(expected), 1)
    runs = _runs(missing)
    gaps = [(start, length) for start, length in runs if length >= config.gap_minutes]
    if gaps:
        longest = max(length for _start, length in gaps)
        detail = f"{len(gaps)} gap(s) of {config.gap_minutes}+ missing minutes, longest {longest} min"
        starts = tuple(start.isoformat() for start, _length in gaps[: config.examples])
        findings.append(_finding(venue, symbol, "gap", config, sum(n for _s, n in gaps), starts, detail))
    detail = f"{len(missing)} of {len(expected)} expected bars missing ({share:.1%}) on the {calendar} calendar"
    findings.append(_finding(venue, symbol, "missing", config, len(missing), _first(missing, config), detail))
    return findings


def _series_findings(venue: str, symbol: str, frame: pd.DataFrame, config: ValidationConfig) -> list[Finding]:
    """Outliers and stale prices, on the instrument's bars in time order."""
    import numpy as np

    findings: list[Finding] = []
    if len(frame) < 3:
        return findings
    frame = frame.sort_values("ts", kind="stable")
    close = frame["close"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.diff(np.log(close))
    returns = np.where(np.isfinite(returns), returns, np.nan)
    centre = np.nanmedian(returns)
    spread = _MAD_SCALE * np.nanmedian(np.abs(returns - centre))
    if np.isfinite(spread) and spread > 0:
        z = np.abs(returns - centre) / spread
        hits = np.flatnonzero(z > config.outlier_sigmas) + 1
        if len(hits):
            ts = frame["ts"].iloc[hits]
            detail = f"1-minute returns beyond {config.outlier_sigmas:g} robust sigmas (max {np.nanmax(z):.0f})"
            findings.append(_finding(venue, symbol, "outliers", config, len(hits), _first(ts, config), detail))
    stale = _stale_starts(frame, config.stale_bars)
    if len(stale):
        detail = f"{len(stale)} run(s) of {config.stale_bars}+ bars with one unchanged price"
        findings.append(
            _finding(venue, symbol, "stale", config, len(stale), _first(frame["ts"].iloc[stale], config), detail)
        )
    return findings


def _stale_starts(frame: pd.DataFrame, length: int) -> np.ndarray:
    """Positions where a run of at least ``length`` flat, unchanged bars starts."""
    import numpy as np

    prices = frame[["open", "high", "low", "close"]].to_numpy(dtype="float64")
    flat = (prices.max(axis=1) == prices.min(axis=1)) & np.concatenate(([False], prices[1:, 3] == prices[:-1, 3]))
    # a flat bar equal to the previous close continues the run that the previous bar is in
    flat[:-1] |= flat[1:]
    edges = np.diff(np.concatenate(([0], flat.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return starts[(ends - starts) >= length]


def _runs(missing: pd.DatetimeIndex) -> list[tuple[pd.Timestamp, int]]:
    """Consecutive-minute runs in ``missing`` as (first minute, length)."""
    import numpy as np

    values = missing.asi8
    if len(values) == 0:
        return []
    step = 60 * 10**6  # one minute in microseconds
    breaks = np.flatnonzero(np.diff(values) != step) + 1
    bounds = np.concatenate(([0], breaks, [len(values)]))
    return [(missing[bounds[i]], int(bounds[i + 1] - bounds[i])) for i in range(len(bounds) - 1)]


def _fill_rows(frame: pd.DataFrame, missing: pd.DatetimeIndex, max_run: int) -> pd.DataFrame:
    """Flat bars at the previous close (volume 0, ``filled``) for missing runs up to ``max_run``."""
    import pandas as pd

    frame = frame.sort_values("ts", kind="stable")
    rows = []
    for start, length in _runs(missing):
        if length > max_run:
            continue
        before = frame.loc[frame["ts"] < start]
        if before.empty:
            continue
        last = before.iloc[-1]
        price = float(last["close"])
        for offset in range(length):
            rows.append(
                {
                    "venue": str(last["venue"]),
                    "symbol": str(last["symbol"]),
                    "ts": start + pd.Timedelta(minutes=offset),
                    "open": price,
                    "high": price,
                    "low": price,
                    "close": price,
                    "volume": 0.0,
                    "filled": True,
                }
            )
    out = pd.DataFrame(rows, columns=["venue", "symbol", "ts", "open", "high", "low", "close", "volume", "filled"])
    out["ts"] = out["ts"].astype("datetime64[us, UTC]")
    return out


def _finding(
    venue: str, symbol: str, check: CheckName, config: ValidationConfig, count: int, first: tuple[str, ...], detail: str
) -> Finding:
    return Finding(venue, symbol, check, config.policy[check], count, first, detail)


def _first(ts: Any, config: ValidationConfig) -> tuple[str, ...]:
    import pandas as pd

    values = pd.DatetimeIndex(ts).sort_values()[: config.examples]
    return tuple(v.isoformat() for v in values)


def _quarantine(findings: Sequence[Finding]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in findings:
        if f.action == "quarantine":
            out.setdefault(f"{f.venue} {f.symbol}", []).append(f.message())
    return out
