"""Event conditions with thresholds from config."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradeops.conditions import condition, funding_deviation_bps, normalised_rate
from tradeops.config import load_settings
from tradeops.events import build_event

SETTINGS = load_settings(env={})


def _shock(move: str) -> object:
    return build_event("market-shock", {"symbol": "BTC/USDT", "move_pct": move, "window_seconds": 60, "price": "1"})


@pytest.mark.parametrize(
    ("move", "shock", "extreme"),
    [("4.99", False, False), ("5", True, False), ("-5", True, False), ("-14.9", True, False), ("15", True, True)],
)
def test_shock_conditions_when_move_crosses_thresholds_then_fire(move: str, shock: bool, extreme: bool) -> None:
    assert condition("market_shock")(_shock(move), SETTINGS).fire is shock
    assert condition("extreme_shock")(_shock(move), SETTINGS).fire is extreme


def test_capital_condition_when_balance_under_configured_floor_then_fires_whatever_event_floor_says() -> None:
    below = build_event("capital-threshold", {"venue": "bybit", "asset": "USDT", "balance": "74999", "floor": "1"})
    above = build_event("capital-threshold", {"venue": "bybit", "asset": "USDT", "balance": "75000", "floor": "9e9"})
    unconfigured = build_event("capital-threshold", {"venue": "bybit", "asset": "BTC", "balance": "1", "floor": "2"})
    check = condition("capital_below_floor")
    assert check(below, SETTINGS).fire and not check(above, SETTINGS).fire
    assert check(unconfigured, SETTINGS).fire  # no configured floor: the event's floor applies


def test_normalised_rate_when_intervals_differ_then_scaled_to_period() -> None:
    assert normalised_rate(Decimal("0.0001"), 4, 8) == Decimal("0.0002")
    assert normalised_rate(Decimal("0.0003"), 1, 8) == Decimal("0.0024")


@pytest.mark.parametrize(
    ("bybit_rate", "fires"),
    [
        # binance quotes 1 bp per 8 h; bybit quotes per 4 h, so its rate counts double per 8 h.
        ("0.00106", True),  # bybit 21.2 bps per 8 h: gap 20.2 bps
        ("0.00105", False),  # bybit 21 bps per 8 h: gap exactly 20 bps, not above
        ("0.00100", False),  # gap 19 bps
    ],
)
def test_funding_condition_when_normalised_gap_vs_20_bps_then_fires_only_above(bybit_rate: str, fires: bool) -> None:
    event = build_event(
        "funding-rate-deviation",
        {
            "symbol": "BTC/USDT:USDT",
            "deviation_bps": "1",  # the publisher's figure is not trusted
            "rates": [
                {"venue": "binance", "rate": "0.0001", "interval_hours": 8},
                {"venue": "bybit", "rate": bybit_rate, "interval_hours": 4},
            ],
        },
    )
    assert condition("funding_deviation")(event, SETTINGS).fire is fires


def test_funding_gap_when_three_venues_then_largest_pair_reported() -> None:
    event = build_event(
        "funding-rate-deviation",
        {
            "symbol": "BTC/USDT:USDT",
            "deviation_bps": "30",
            "rates": [
                {"venue": "binance", "rate": "0.0001", "interval_hours": 8},
                {"venue": "bybit", "rate": "-0.0001", "interval_hours": 4},
                {"venue": "okx", "rate": "0.0003", "interval_hours": 1},
            ],
        },
    )
    gap, a, b = funding_deviation_bps(event, 8)
    assert gap == Decimal("26") and {a, b} == {"bybit", "okx"}  # okx +24 bps vs bybit -2 bps per 8 h


def test_condition_when_name_unknown_then_value_error() -> None:
    with pytest.raises(ValueError, match="unknown event condition"):
        condition("moon_landing")
