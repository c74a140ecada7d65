"""Configuration: YAML + TRADEOPS__ overrides, validated with the offending key named."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tradeops.config import load_settings
from tradeops.errors import ConfigError


def test_load_when_shipped_config_then_valid_with_decimal_thresholds() -> None:
    loaded = load_settings(env={})
    assert loaded.thresholds.funding_deviation_bps == Decimal(20)
    assert loaded.thresholds.market_shock_pct == Decimal(5)
    assert loaded.venues["bybit"].funding_interval_hours == 4
    assert isinstance(loaded.venues["binance"].initial_balances["USDT"], Decimal)


def test_override_when_env_sets_nested_key_then_applied_case_insensitively() -> None:
    loaded = load_settings(
        env={
            "TRADEOPS__THRESHOLDS__FUNDING_DEVIATION_BPS": "25",
            "TRADEOPS__VENUES__OKX__WITHDRAWAL__USDT__TRC20__FEE": "0.5",
        }
    )
    assert loaded.thresholds.funding_deviation_bps == Decimal(25)
    assert loaded.venues["okx"].withdrawal["USDT"]["TRC20"].fee == Decimal("0.5")


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"TRADEOPS__THRESHOLDS__FUNDING_DEVIATION_BP": "3"}, "thresholds.funding_deviation_bp"),
        ({"TRADEOPS__THRESHOLDS__MARKET_SHOCK_PCT": "-1"}, "thresholds.market_shock_pct"),
        ({"TRADEOPS__KAFKA__PARTITIONS": "many"}, "kafka.partitions"),
        ({"TRADEOPS__VENUES__BYBIT__TAKER_FEE_BPS": "cheap"}, "venues.bybit.taker_fee_bps"),
        ({"TRADEOPS__NOPE": "1"}, "nope"),
    ],
)
def test_load_when_bad_override_then_config_error_names_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env=env)
    assert caught.value.key == key


def test_load_when_yaml_has_unknown_key_then_rejected(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parent.parent / "config" / "tradeops.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(source.read_text().replace("  seed: 7\n", "  seed: 7\n  sede: 8\n"))
    with pytest.raises(ConfigError) as caught:
        load_settings(bad, env={})
    assert caught.value.key == "paper.sede" and "unknown key" in str(caught.value)


def test_load_when_capital_floor_names_unknown_venue_then_rejected(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parent.parent / "config" / "tradeops.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(source.read_text().replace('    okx: {USDT: "75000"}\n', '    kraken: {USDT: "1"}\n'))
    with pytest.raises(ConfigError, match="kraken"):
        load_settings(bad, env={})


def test_load_when_file_missing_then_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "missing.yaml", env={})
    assert caught.value.key == "TRADEOPS_CONFIG"


def test_deposit_addresses_when_configured_then_keyed_by_venue_asset_network() -> None:
    loaded = load_settings(env={"TRADEOPS__VENUES__BINANCE__DEPOSIT_ADDRESSES": "{USDT: {TRC20: TXabc}}"})
    assert loaded.deposit_addresses() == {("binance", "USDT", "TRC20"): "TXabc"}
