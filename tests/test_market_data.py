"""The market-data stages on the paper venue: bars, calendar-aware validation, features, the store.

Real parts: the paper venue's seeded bars, exchange_calendars' NYSE calendar, pandera, Parquet
files in a local object store (fsspec ``file://``). The Airflow DAG is in tests/test_data_dags.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.fixtures.paper import data_fault, set_data_faults
from tradeops.config import settings
from tradeops.errors import ConfigError, DataValidationError
from tradeops.market_data import features, frames, pipeline
from tradeops.market_data.calendars import expected_minutes
from tradeops.market_data.registry import FEATURE_NAMES, FEATURES, REGISTRY_VERSION
from tradeops.market_data.settings import ValidationConfig
from tradeops.market_data.store import FeatureStore
from tradeops.market_data.validation import validate_day
from tradeops.venues.factory import open_raw_venue
from tradeops.venues.paper import PaperVenue

DAY = date(2026, 11, 24)  # a Tuesday: a full NYSE session
THANKSGIVING = date(2026, 11, 26)
EARLY_CLOSE = date(2026, 11, 27)  # NYSE closes at 13:00 New York time (18:00 UTC)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _day_bars(venue: str, symbol: str, day: date) -> pd.DataFrame:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    bars = PaperVenue(venue, settings()).bars(symbol, "1m", start, start + timedelta(days=1))
    return frames.concat([frames.with_keys(bars, venue, symbol)])


def _store(tmp_path: Path) -> FeatureStore:
    from upath import UPath

    return FeatureStore(UPath((tmp_path / "store").as_uri()))


# -- paper bars --------------------------------------------------------------------------------


def test_paper_bars_when_asked_again_or_in_pieces_then_the_same_bars_and_continuous_at_midnight(
    paper_world: None,
) -> None:
    venue = PaperVenue("binance", settings())
    whole = venue.bars("BTC/USDT", "1m", _utc("2026-11-23T20:00"), _utc("2026-11-24T04:00"))
    again = venue.bars("BTC/USDT", "1m", _utc("2026-11-23T20:00"), _utc("2026-11-24T04:00"))
    late = venue.bars("BTC/USDT", "1m", _utc("2026-11-24T00:00"), _utc("2026-11-24T04:00"))

    pd.testing.assert_frame_equal(whole, again)
    pd.testing.assert_frame_equal(whole.iloc[240:].reset_index(drop=True), late)
    assert len(whole) == 480 and whole["ts"].is_monotonic_increasing
    assert whole["open"].iloc[240] == whole["close"].iloc[239]  # no jump at midnight
    assert (whole["high"] >= whole[["open", "close"]].max(axis=1)).all()
    assert (whole["low"] <= whole[["open", "close"]].min(axis=1)).all() and (whole["volume"] > 0).all()
    other = PaperVenue("bybit", settings()).bars("BTC/USDT", "1m", _utc("2026-11-24T00:00"), _utc("2026-11-24T04:00"))
    assert not np.allclose(other["close"], late["close"])  # each venue has its own path


def test_paper_bars_when_equity_venue_then_only_nyse_session_minutes(paper_world: None) -> None:
    alpaca = PaperVenue("alpaca", settings())

    normal = alpaca.bars("TSLA/USD", "1m", _utc("2026-11-24T00:00"), _utc("2026-11-25T00:00"))
    holiday = alpaca.bars("TSLA/USD", "1m", _utc("2026-11-26T00:00"), _utc("2026-11-27T00:00"))
    early = alpaca.bars("TSLA/USD", "1m", _utc("2026-11-27T00:00"), _utc("2026-11-28T00:00"))

    assert len(normal) == 390 and normal["ts"].iloc[0] == pd.Timestamp("2026-11-24T14:30Z")
    assert holiday.empty
    assert len(early) == 210 and early["ts"].iloc[-1] == pd.Timestamp("2026-11-27T17:59Z")


def test_paper_bars_when_hourly_then_aggregates_of_the_minutes(paper_world: None) -> None:
    venue = PaperVenue("binance", settings())
    minutes = venue.bars("ETH/USDT", "1m", _utc("2026-11-24T00:00"), _utc("2026-11-24T03:00"))
    hours = venue.bars("ETH/USDT", "1h", _utc("2026-11-24T00:00"), _utc("2026-11-24T03:00"))

    assert len(hours) == 3
    first = minutes.iloc[:60]
    assert hours["open"].iloc[0] == first["open"].iloc[0] and hours["close"].iloc[0] == first["close"].iloc[-1]
    assert hours["high"].iloc[0] == first["high"].max() and hours["volume"].iloc[0] == pytest.approx(
        first["volume"].sum()
    )


# -- extract -----------------------------------------------------------------------------------


def test_extract_when_a_day_then_every_instrument_with_warmup_before_it(paper_world: None) -> None:
    raw = pipeline.extract(settings(), DAY, lambda name: open_raw_venue(name))

    day_rows = raw.loc[~raw["warmup"]].groupby("symbol", observed=True).size().to_dict()
    assert day_rows == {"BTC/USDT": 1440, "ETH/USDT": 1440, "IWM/USD": 390, "TSLA/USD": 390}
    warm = raw.loc[raw["warmup"]].groupby("symbol", observed=True).size().to_dict()
    assert set(warm.values()) == {settings().market_data.warmup_bars}
    assert (raw.loc[raw["warmup"], "ts"] < pd.Timestamp("2026-11-24T00:00Z")).all()


def test_extract_when_temporary_venue_errors_then_retried_and_when_they_persist_then_raised(
    paper_world: None,
) -> None:
    from tradeops.errors import TemporaryVenueError

    PaperVenue("binance", settings()).inject_fault("bars", "temporary", times=2)
    waits: list[float] = []
    raw = pipeline.extract(settings(), DAY, lambda name: open_raw_venue(name), sleep=waits.append)
    assert waits == [1.0, 2.0] and len(raw.loc[~raw["warmup"]]) == 2 * 1440 + 2 * 390

    PaperVenue("binance", settings()).inject_fault("bars", "temporary", times=3)
    with pytest.raises(TemporaryVenueError):
        pipeline.extract(settings(), DAY, lambda name: open_raw_venue(name), sleep=waits.append)


def test_universe_when_empty_or_unknown_then_config_error_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from tradeops.config import load_settings

    with pytest.raises(ConfigError, match=r"market_data\.universe"):
        pipeline.universe(load_settings(env={"TRADEOPS__MARKET_DATA__UNIVERSE": "{}"}))
    with pytest.raises(ConfigError, match=r"market_data\.universe\.binance: not markets of the venue.*DOGE/USDT"):
        load_settings(env={"TRADEOPS__MARKET_DATA__UNIVERSE__BINANCE": "[BTC/USDT, DOGE/USDT]"})


# -- validation --------------------------------------------------------------------------------


def test_validate_when_an_hour_is_missing_then_a_gap_names_symbol_and_its_timestamps(
    paper_world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_data_faults(
        monkeypatch,
        data_fault("alpaca", "TSLA/USD", "missing", "2026-11-24T15:00:00Z", "2026-11-24T16:00:00Z"),
    )
    bars = _day_bars("alpaca", "TSLA/USD", DAY)

    result = validate_day(bars, DAY, {"alpaca": "XNYS"}, ValidationConfig())

    gap = next(f for f in result.findings if f.check == "gap")
    assert (gap.venue, gap.symbol, gap.action, gap.count) == ("alpaca", "TSLA/USD", "quarantine", 60)
    assert gap.first == ("2026-11-24T15:00:00+00:00",) and "longest 60 min" in gap.detail
    missing = next(f for f in result.findings if f.check == "missing")
    assert missing.first[:2] == ("2026-11-24T15:00:00+00:00", "2026-11-24T15:01:00+00:00")
    assert "60 of 390" in missing.detail
    assert "alpaca TSLA/USD" in result.quarantined and result.bars.empty


def test_validate_when_nyse_holiday_or_early_close_then_nothing_is_missing(paper_world: None) -> None:
    for day, expected in ((THANKSGIVING, 0), (EARLY_CLOSE, 210)):
        bars = _day_bars("alpaca", "IWM/USD", day)
        result = validate_day(bars, day, {"alpaca": "XNYS"}, ValidationConfig(), universe=[("alpaca", "IWM/USD")])
        assert result.findings == [], [f.message() for f in result.findings]
        assert result.completeness["alpaca IWM/USD"] == {"expected": expected, "present": expected, "missing": 0}
    assert len(expected_minutes("24/7", THANKSGIVING)) == 1440  # crypto trades through it


def test_validate_when_high_below_low_and_negative_volume_then_each_named_with_timestamps(
    paper_world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_data_faults(
        monkeypatch,
        data_fault("binance", "BTC/USDT", "high_below_low", "2026-11-24T10:00:00Z", "2026-11-24T10:03:00Z"),
        data_fault("binance", "BTC/USDT", "negative_volume", "2026-11-24T11:30:00Z", "2026-11-24T11:31:00Z"),
    )
    bars = _day_bars("binance", "BTC/USDT", DAY)

    result = validate_day(bars, DAY, {"binance": "24/7"}, ValidationConfig())

    by_check = {f.check: f for f in result.findings}
    assert by_check["ohlc"].count == 3 and by_check["ohlc"].first[0] == "2026-11-24T10:00:00+00:00"
    assert by_check["negative_volume"].first == ("2026-11-24T11:30:00+00:00",)
    assert "binance BTC/USDT: ohlc:" in by_check["ohlc"].message()


def test_validate_when_one_symbol_is_quarantined_then_the_others_go_on(
    paper_world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_data_faults(
        monkeypatch,
        data_fault("binance", "ETH/USDT", "duplicate", "2026-11-24T08:00:00Z", "2026-11-24T08:10:00Z"),
    )
    raw = pipeline.extract(settings(), DAY, lambda name: open_raw_venue(name))

    result = pipeline.validate(settings(), DAY, raw)

    assert list(result.quarantined) == ["binance ETH/USDT"]
    assert "duplicates" in result.quarantined["binance ETH/USDT"][0]
    assert set(result.bars["symbol"].astype(str)) == {"BTC/USDT", "TSLA/USD", "IWM/USD"}


def test_validate_when_a_fail_check_or_too_many_quarantined_then_raises_naming_each(
    paper_world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_data_faults(
        monkeypatch,
        data_fault("binance", "BTC/USDT", "negative_volume", "2026-11-24T09:00:00Z", "2026-11-24T09:02:00Z"),
    )
    bars = _day_bars("binance", "BTC/USDT", DAY)
    strict = ValidationConfig(policy={"negative_volume": "fail"})

    with pytest.raises(DataValidationError, match=r"binance BTC/USDT: negative_volume.*2026-11-24T09:00:00\+00:00"):
        validate_day(bars, DAY, {"binance": "24/7"}, strict).raise_for_failures(strict)
    with pytest.raises(DataValidationError, match="1 of 1 symbols quarantined"):
        validate_day(bars, DAY, {"binance": "24/7"}, ValidationConfig()).raise_for_failures(ValidationConfig())
    set_data_faults(
        monkeypatch,
        data_fault("binance", "BTC/USDT", "missing", "2026-11-24T09:00:00Z", "2026-11-24T12:00:00Z"),
        data_fault("binance", "ETH/USDT", "missing", "2026-11-24T09:00:00Z", "2026-11-24T12:00:00Z"),
        data_fault("alpaca", "TSLA/USD", "missing", "2026-11-24T15:00:00Z", "2026-11-24T16:00:00Z"),
    )
    raw = pipeline.extract(settings(), DAY, lambda name: open_raw_venue(name))
    with pytest.raises(DataValidationError, match=r"3 of 4 symbols quarantined \(75% > .*50%\)"):
        pipeline.validate(settings(), DAY, raw)


def test_validate_when_stale_prices_or_a_spike_then_warned_not_quarantined(
    paper_world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_data_faults(
        monkeypatch,
        data_fault("binance", "BTC/USDT", "stale", "2026-11-24T02:00:00Z", "2026-11-24T03:00:00Z"),
        data_fault("binance", "BTC/USDT", "spike", "2026-11-24T05:00:00Z", "2026-11-24T05:01:00Z"),
    )
    result = validate_day(_day_bars("binance", "BTC/USDT", DAY), DAY, {"binance": "24/7"}, ValidationConfig())

    by_check = {f.check: f for f in result.findings}
    assert by_check["stale"].first == ("2026-11-24T02:00:00+00:00",) and by_check["stale"].action == "warn"
    assert by_check["outliers"].first[0] == "2026-11-24T05:00:00+00:00"
    assert result.quarantined == {} and len(result.bars) == 1440


def test_validate_when_fill_configured_then_short_holes_filled_and_marked_never_silently(
    paper_world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_data_faults(
        monkeypatch,
        data_fault("binance", "BTC/USDT", "missing", "2026-11-24T06:00:00Z", "2026-11-24T06:03:00Z"),
    )
    bars = _day_bars("binance", "BTC/USDT", DAY)

    unfilled = validate_day(bars, DAY, {"binance": "24/7"}, ValidationConfig())
    filled = validate_day(bars, DAY, {"binance": "24/7"}, ValidationConfig(fill="ffill", max_fill_bars=5))

    assert len(unfilled.bars) == 1437 and not unfilled.bars["filled"].any()
    assert len(filled.bars) == 1440 and filled.filled == 3
    marked = filled.bars.loc[filled.bars["filled"]]
    assert list(marked["ts"].dt.strftime("%H:%M")) == ["06:00", "06:01", "06:02"]
    assert (marked["volume"] == 0).all() and (
        marked["close"] == bars.set_index("ts").loc["2026-11-24T05:59Z", "close"]
    ).all()
    assert any(f.check == "missing" for f in filled.findings)  # still reported


# -- features ----------------------------------------------------------------------------------


def test_features_when_computed_then_every_registry_feature_and_nothing_else() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURES) and len(REGISTRY_VERSION) == 12
    bars = _synthetic(2, 400)
    out = features.compute(bars)
    assert list(out.columns) == ["venue", "symbol", "ts", "created_at", "filled", *FEATURE_NAMES]


def test_features_when_warmup_given_then_the_day_equals_a_continuous_computation(paper_world: None) -> None:
    """No gap at midnight: the day's first rows have full windows and match a longer history."""
    raw = pipeline.extract(settings(), DAY, lambda name: open_raw_venue(name))
    result = pipeline.validate(settings(), DAY, raw)
    day = pipeline.compute_features(raw, result.bars, DAY, created_at=_utc("2026-11-25T02:00"))

    venue = PaperVenue("binance", settings())
    longer = venue.bars("BTC/USDT", "1m", _utc("2026-11-22T00:00"), _utc("2026-11-25T00:00"))
    reference = features.compute(
        frames.concat([frames.with_keys(longer, "binance", "BTC/USDT")]), keep_from=_utc("2026-11-24T00:00")
    )
    ours = day.loc[day["symbol"] == "BTC/USDT"].reset_index(drop=True)
    windowed = [s.name for s in FEATURES if s.window <= settings().market_data.warmup_bars]
    assert ours[windowed].notna().all().all()  # first bar after midnight included
    rolling = [s.name for s in FEATURES if not s.name.startswith(("macd", "rsi", "atr", "trend"))]
    # equal up to rounding (running sums start at a different bar): far below any signal
    np.testing.assert_allclose(ours[rolling].to_numpy(), reference[rolling].to_numpy(), rtol=1e-7, atol=1e-10)
    # exponential averages differ only by their seed, 600 bars back: negligible
    np.testing.assert_allclose(ours["rsi_14"].to_numpy(), reference["rsi_14"].to_numpy(), atol=1e-6)


def test_features_when_checked_against_independent_pandas_formulas_then_equal() -> None:
    bars = _synthetic(3, 500)
    out = features.compute(bars)
    for symbol, group in bars.groupby("symbol", observed=True):
        mine = out.loc[out["symbol"] == symbol].reset_index(drop=True)
        close = group["close"].reset_index(drop=True)
        r1 = np.log(close).diff()
        np.testing.assert_allclose(mine["ret_15"], np.log(close / close.shift(15)), equal_nan=True)
        np.testing.assert_allclose(mine["rv_30"], np.sqrt((r1**2).rolling(30).sum()), equal_nan=True)
        change = close.diff()
        gain = change.clip(lower=0).fillna(0).ewm(alpha=1 / 14, adjust=False).mean()
        loss = (-change.clip(upper=0)).fillna(0).ewm(alpha=1 / 14, adjust=False).mean()
        rsi = 100 - 100 / (1 + gain / loss)
        np.testing.assert_allclose(mine["rsi_14"][20:], rsi[20:], rtol=1e-9)
        macd = close.ewm(span=12, adjust=False).mean() - close.ewm(span=26, adjust=False).mean()
        np.testing.assert_allclose(mine["macd"][30:], (macd / close)[30:], rtol=1e-9, atol=1e-15)
        volume = group["volume"].reset_index(drop=True)
        z = (volume - volume.rolling(60).mean().shift(1)) / volume.rolling(60).std().shift(1)
        np.testing.assert_allclose(mine["volume_z_60"], z, rtol=1e-7, equal_nan=True)
        assert mine["ret_1"].isna().sum() == 1  # never borrowed across instruments


@pytest.mark.parametrize("fill", [None, "ffill"], ids=["quarantine", "quarantine-and-fill"])
def test_compute_features_when_a_symbol_quarantined_or_bars_filled_then_features_of_warmup_and_validated_bars(
    paper_world: None, monkeypatch: pytest.MonkeyPatch, fill: str | None
) -> None:
    """The nightly features are those of each kept instrument's warm-up followed by its validated
    day, whether the raw frame is used as it is (nothing added) or rebuilt (filled rows)."""
    set_data_faults(
        monkeypatch,
        data_fault("binance", "ETH/USDT", "duplicate", "2026-11-24T08:00:00Z", "2026-11-24T08:10:00Z"),
        data_fault("binance", "BTC/USDT", "missing", "2026-11-24T06:00:00Z", "2026-11-24T06:03:00Z"),
    )
    if fill:
        monkeypatch.setenv("TRADEOPS__MARKET_DATA__VALIDATION__FILL", fill)
        settings.cache_clear()
    raw = pipeline.extract(settings(), DAY, lambda name: open_raw_venue(name))
    result = pipeline.validate(settings(), DAY, raw)
    assert list(result.quarantined) == ["binance ETH/USDT"] and result.filled == (3 if fill else 0)

    got = pipeline.compute_features(raw, result.bars, DAY, created_at=_utc("2026-11-25T02:00"))

    warm = raw.loc[raw["warmup"] & (raw["symbol"] != "ETH/USDT")].drop(columns=["warmup"]).assign(filled=False)
    bars = pd.concat([warm, result.bars]).sort_values(["venue", "symbol", "ts"], kind="stable")
    expected = features.compute(
        frames.concat([bars]),
        keep_from=_utc("2026-11-24T00:00"),
        keep_until=_utc("2026-11-25T00:00"),
        created_at=_utc("2026-11-25T02:00"),
    )
    as_text = {"venue": str, "symbol": str}
    pd.testing.assert_frame_equal(got.astype(as_text), expected.astype(as_text), check_exact=True)
    assert len(got) == len(result.bars) and int(got["filled"].sum()) == result.filled
    assert "ETH/USDT" not in set(got["symbol"].astype(str))


@pytest.mark.parametrize("ragged", [False, True], ids=["equal-lengths", "ragged-with-gaps"])
def test_features_when_computed_alone_among_many_or_in_chunks_then_bit_identical(ragged: bool) -> None:
    """An instrument's features depend on its own bars only: the nightly run (whole universe, in
    chunks) and the hourly check (fetched again) compute exactly the same values, also when the
    instruments have different lengths and missing prices (the padded grid path)."""
    bars = _ragged(6, 700) if ragged else _synthetic(6, 700)
    whole = features.compute(bars, chunk_rows=10**9)
    chunked = features.compute(bars, chunk_rows=1_000)
    as_text = {"venue": str, "symbol": str}
    pd.testing.assert_frame_equal(whole.astype(as_text), chunked.astype(as_text), check_exact=True)
    for symbol in ("S1/USD", "S4/USD"):
        alone = features.compute(bars.loc[bars["symbol"] == symbol].reset_index(drop=True))
        mine = whole.loc[whole["symbol"] == symbol].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine.astype(as_text), alone.astype(as_text), check_exact=True)


def test_exponential_averages_when_ragged_with_gaps_then_equal_a_plain_recursion() -> None:
    """The blocked recursion on the instrument grid against the textbook loop, per instrument:
    seeded with the first finite value, NaN before it, a missing value repeats the last one."""
    bars = _ragged(5, 400)
    cols = features._Columns(bars)
    close = cols.close
    alphas = (2 / 13, 1 / 14, 2 / 241)
    got = cols.emas(*((close, alpha) for alpha in alphas))
    ends = np.append(cols.grid.starts[1:], len(bars))
    for alpha, average in zip(alphas, got, strict=True):
        for start, end in zip(cols.grid.starts, ends, strict=True):
            expected = np.full(end - start, np.nan)
            level, last = None, None
            for i, x in enumerate(close[start:end]):
                if np.isfinite(x):
                    last = x
                if last is None:
                    continue
                level = last if level is None else level
                level = alpha * last + (1 - alpha) * level
                expected[i] = level
            np.testing.assert_allclose(average[start:end], expected, rtol=1e-12, equal_nan=True)
    assert np.isnan(got[0][cols.grid.starts[4] : ends[4]]).all()  # an instrument without a price


def _ragged(symbols: int, rows: int) -> pd.DataFrame:
    """Instruments of different lengths; missing closes inside one, a leading run in another, and
    an instrument with no close at all (the last)."""
    bars = _synthetic(symbols, rows)
    starts = frames.instrument_starts(bars)
    drop = np.concatenate([np.arange(start, start + 37 * index) for index, start in enumerate(starts)])
    bars = bars.drop(index=drop).reset_index(drop=True)
    starts = frames.instrument_starts(bars)
    bars.loc[starts[1] + np.array([50, 51, 52, 300]), "close"] = np.nan
    bars.loc[starts[2] : starts[2] + 9, "close"] = np.nan
    bars.loc[starts[-1] :, "close"] = np.nan
    return bars


def _synthetic(symbols: int, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    parts = []
    for index in range(symbols):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, rows)))
        opens = np.concatenate(([100.0], close[:-1]))
        parts.append(
            pd.DataFrame(
                {
                    "venue": "paperx",
                    "symbol": f"S{index}/USD",
                    "ts": pd.date_range("2026-11-24", periods=rows, freq="min", tz="UTC", unit="us"),
                    "open": opens,
                    "high": np.maximum(opens, close) * 1.0005,
                    "low": np.minimum(opens, close) * 0.9995,
                    "close": close,
                    "volume": rng.lognormal(3, 0.5, rows),
                }
            )
        )
    return frames.concat(parts)


# -- store and archive -------------------------------------------------------------------------


def _load_day(tmp_path: Path) -> tuple[FeatureStore, dict[str, Any], pd.DataFrame]:
    raw = pipeline.extract(settings(), DAY, lambda name: open_raw_venue(name))
    result = pipeline.validate(settings(), DAY, raw)
    feats = pipeline.compute_features(raw, result.bars, DAY, created_at=_utc("2026-11-25T02:00"))
    store = _store(tmp_path)
    return store, pipeline.load(store.root, DAY, feats, result.summary()), raw


def test_load_when_the_day_is_rerun_then_the_partition_is_replaced_not_duplicated(
    paper_world: None, tmp_path: Path
) -> None:
    store, first, _raw = _load_day(tmp_path)
    _store_again, second, _raw = _load_day(tmp_path)

    assert first["rows"] == second["rows"] == 2 * 1440 + 2 * 390
    assert first["version"] != second["version"]
    stored = store.read_day(DAY, verify=True)
    assert len(stored) == second["rows"] and not stored.duplicated(["venue", "symbol", "ts"]).any()
    versions = [p.name for p in store.day_dir(DAY).iterdir() if p.name.startswith("v=")]
    assert versions == [f"v={second['version']}"]
    assert second["feature_registry_version"] == REGISTRY_VERSION and second["code_version"].startswith("0.1.0+")
    assert {f["venue"] for f in second["files"]} == {"alpaca", "binance"}
    assert all(len(f["sha256"]) == 64 for f in second["files"]) and isinstance(second["schema_hash"], str)
    assert second["validation"]["completeness"]["alpaca TSLA/USD"]["expected"] == 390
    assert store.days() == [DAY]


def test_load_when_a_rerun_dies_before_the_swap_then_readers_still_see_the_old_day(
    paper_world: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradeops.market_data import store as store_module

    store, first, _raw = _load_day(tmp_path)

    def crash(path: Any, data: bytes) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(store_module, "atomic_write", crash)
    with pytest.raises(OSError, match="disk gone"):
        _load_day(tmp_path)

    assert store.manifest(DAY)["version"] == first["version"]
    assert len(store.read_day(DAY, verify=True)) == first["rows"]


def test_archive_when_run_twice_then_same_files_kept_and_gzip_parquet(paper_world: None, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    store, _manifest, raw = _load_day(tmp_path)

    first = pipeline.archive(store.root, DAY, raw)
    second = pipeline.archive(store.root, DAY, raw)

    assert [e["sha256"] for e in first] == [e["sha256"] for e in second]
    assert [e["unchanged"] for e in first] == [False, False] and [e["unchanged"] for e in second] == [True, True]
    path = tmp_path / "store" / "raw" / "date=2026-11-24" / "binance.parquet"
    meta = pq.ParquetFile(path).metadata
    assert meta.row_group(0).column(0).compression == "GZIP" and meta.num_rows == 2 * 1440
    assert store.manifest(DAY)["archive"] == second


def test_resolve_day_when_partition_conf_or_logical_date_then_that_day_never_the_clock() -> None:
    assert pipeline.resolve_day("2026-11-20", {"day": "2026-01-01"}, None) == date(2026, 11, 20)
    assert pipeline.resolve_day(None, {"day": "2026-11-21"}, _utc("2026-12-01T02:00")) == date(2026, 11, 21)
    assert pipeline.resolve_day(None, None, _utc("2026-12-01T02:00")) == date(2026, 11, 30)
    with pytest.raises(ValueError, match="which day"):
        pipeline.resolve_day(None, {}, None)
    with pytest.raises(ValueError, match="not a YYYY-MM-DD"):
        pipeline.resolve_day(None, {"day": "yesterday"}, None)


def test_feature_store_when_on_s3_then_a_rerun_replaces_the_day_and_the_archive_is_idempotent(
    paper_world: None, s3_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The s3:// path end to end: Airflow's ObjectStoragePath with the AWS connection, a local S3 server."""
    import secrets

    from airflow.sdk import ObjectStoragePath

    monkeypatch.setenv("TRADEOPS__MARKET_DATA__STORE_URL", s3_store.url(f"store-{secrets.token_hex(4)}"))
    monkeypatch.setenv("TRADEOPS__MARKET_DATA__STORE_CONN_ID", s3_store.conn_id)
    settings.cache_clear()
    from operators.market_data import store_root

    root = store_root(settings())
    assert isinstance(root, ObjectStoragePath) and root.protocol == "s3"
    raw = pipeline.extract(settings(), DAY, lambda name: open_raw_venue(name))
    result = pipeline.validate(settings(), DAY, raw)
    feats = pipeline.compute_features(raw, result.bars, DAY, created_at=_utc("2026-11-25T02:00"))

    first = pipeline.load(root, DAY, feats, result.summary())
    second = pipeline.load(root, DAY, feats, result.summary())
    archived = [pipeline.archive(root, DAY, raw), pipeline.archive(root, DAY, raw)]

    store = FeatureStore(store_root(settings()))  # a new path object: nothing cached from the writes
    assert store.days() == [DAY] and store.manifest(DAY)["version"] == second["version"] != first["version"]
    stored = store.read_day(DAY, verify=True)
    assert len(stored) == second["rows"] == 2 * 1440 + 2 * 390
    assert [p.name for p in store.day_dir(DAY).iterdir() if p.name.startswith("v=")] == [f"v={second['version']}"]
    assert [e["unchanged"] for e in archived[1]] == [True, True]
    assert len(store.read_sample(DAY)) == second["sample"]["rows"]
