"""Event schemas: round trips, the field named for each kind of bad input, unique ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from tradeops.config import KafkaTopics
from tradeops.errors import EventValidationError
from tradeops.events import (
    REGISTRY,
    CapitalThreshold,
    CriticalAlert,
    DataAlert,
    FundingRateDeviation,
    MarketShock,
    ModelDeployment,
    NewsHeadline,
    StopLossReport,
    build_event,
    cli_name,
    event_type_name,
    parse_event,
    partition_key,
    to_json,
    topic_for,
)

EVENT_TYPES = sorted(REGISTRY)


def _raw(event_type: str, **changes: Any) -> dict[str, Any]:
    """The registry example of ``event_type`` as a wire dict, with ``changes`` applied."""
    return {**REGISTRY[event_type].example, "event_type": event_type, **changes}


def _field_of(raw: bytes | str | dict[str, Any]) -> str:
    with pytest.raises(EventValidationError) as caught:
        parse_event(raw)
    return caught.value.field


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_round_trip_when_event_serialised_then_parsed_back_equal(event_type: str) -> None:
    event = build_event(event_type, REGISTRY[event_type].example)

    wire = to_json(event)

    assert parse_event(wire) == event
    assert parse_event(wire.encode()) == event
    assert parse_event(json.loads(wire)) == event
    assert json.loads(wire)["event_type"] == event_type


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_build_when_cli_name_hyphenated_then_same_type(event_type: str) -> None:
    event = build_event(cli_name(event_type), REGISTRY[event_type].example)

    assert event.event_type == event_type
    assert "-" in cli_name(event_type)
    assert event_type_name(cli_name(event_type)) == event_type


def test_envelope_when_defaults_used_then_uuid_version_and_aware_time() -> None:
    before = datetime.now(UTC)

    event = build_event("critical-alert", {"reason": "keys revoked"})

    assert event.schema_version == 1
    assert event.source == "tradeops"
    assert event.occurred_at.tzinfo is not None and before <= event.occurred_at <= datetime.now(UTC)
    assert len(event.event_id) == 36 and event.event_id.count("-") == 4


def test_event_id_when_many_events_built_then_all_unique() -> None:
    ids = {build_event("market_shock", REGISTRY["market_shock"].example).event_id for _ in range(500)}

    assert len(ids) == 500


def test_event_id_when_given_then_kept_in_canonical_form() -> None:
    event = parse_event(_raw("market_shock", event_id="4B6E1E9A-3C52-4B4F-9D0B-2C5E3F0A1B2C"))

    assert event.event_id == "4b6e1e9a-3c52-4b4f-9d0b-2c5e3f0a1b2c"


def test_decimals_when_serialised_then_strings_and_exact() -> None:
    event = parse_event(
        '{"event_type": "capital_threshold", "venue": "okx", "asset": "USDT", "balance": 0.1, "floor": "75000.10"}'
    )

    wire = json.loads(to_json(event))

    assert event.balance == Decimal("0.1") and isinstance(event.balance, Decimal)
    assert wire["balance"] == "0.1"
    assert wire["floor"] == "75000.10"


def test_occurred_at_when_other_timezone_then_normalised_to_utc() -> None:
    moment = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))

    event = parse_event(_raw("market_shock", occurred_at=moment.isoformat()))

    assert event.occurred_at == moment
    assert event.occurred_at.utcoffset() == timedelta(0)


def test_event_when_modified_then_refused_because_frozen() -> None:
    event = build_event("market_shock", REGISTRY["market_shock"].example)

    with pytest.raises(ValidationError):
        event.move_pct = Decimal(1)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("event_type", "changes", "field"),
    [
        ("market_shock", {"move_pct": "100.01"}, "move_pct"),
        ("market_shock", {"move_pct": "-250"}, "move_pct"),
        ("market_shock", {"move_pct": "NaN"}, "move_pct"),
        ("market_shock", {"move_pct": "a lot"}, "move_pct"),
        ("market_shock", {"price": "0"}, "price"),
        ("market_shock", {"window_seconds": 0}, "window_seconds"),
        ("market_shock", {"symbol": "BTCUSDT"}, "symbol"),
        ("market_shock", {"symbol": ""}, "symbol"),
        ("market_shock", {"occurred_at": "2024-05-01T12:00:00"}, "occurred_at"),
        ("market_shock", {"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
        ("market_shock", {"schema_version": 2}, "schema_version"),
        ("market_shock", {"event_id": "not-a-uuid"}, "event_id"),
        ("market_shock", {"leverage": 3}, "leverage"),
        ("capital_threshold", {"balance": "-1"}, "balance"),
        ("capital_threshold", {"floor": "-0.01"}, "floor"),
        ("capital_threshold", {"asset": "usdt!"}, "asset"),
        ("funding_rate_deviation", {"deviation_bps": "0"}, "deviation_bps"),
        ("funding_rate_deviation", {"deviation_bps": "10001"}, "deviation_bps"),
        ("funding_rate_deviation", {"symbol": "BTC/USDT"}, "symbol"),
        ("critical_alert", {"severity": "warning"}, "severity"),
        ("critical_alert", {"reason": "   "}, "reason"),
    ],
)
def test_parse_when_field_invalid_then_error_names_field(event_type: str, changes: dict[str, Any], field: str) -> None:
    assert _field_of(_raw(event_type, **changes)) == field
    assert _field_of(json.dumps(_raw(event_type, **changes))) == field


def test_parse_when_required_field_missing_then_error_names_it() -> None:
    raw = _raw("capital_threshold")
    del raw["floor"]

    with pytest.raises(EventValidationError) as caught:
        parse_event(raw)

    assert caught.value.field == "floor"
    assert "missing" in caught.value.reason


@pytest.mark.parametrize(
    ("rates", "field"),
    [
        (
            [
                {"venue": "binance", "rate": "0.0001", "interval_hours": 0},
                {"venue": "bybit", "rate": "0.0002", "interval_hours": 4},
            ],
            "rates.0.interval_hours",
        ),
        (
            [
                {"venue": "binance", "rate": "0.0001", "interval_hours": 8},
                {"venue": "bybit", "rate": "0.0002", "interval_hours": -4},
            ],
            "rates.1.interval_hours",
        ),
        (
            [
                {"venue": "binance", "rate": "0.0001", "interval_hours": 8},
                {"venue": "bybit", "rate": "0.5", "interval_hours": 4},
            ],
            "rates.1.rate",
        ),
        (
            [
                {"venue": "binance", "rate": "0.0001", "interval_hours": 8},
                {"venue": "bybit", "rate": "0.0002", "interval_hours": 4, "extra": 1},
            ],
            "rates.1.extra",
        ),
        ([{"venue": "binance", "rate": "0.0001", "interval_hours": 8}], "rates"),
        (
            [
                {"venue": "binance", "rate": "0.0001", "interval_hours": 8},
                {"venue": "binance", "rate": "0.0002", "interval_hours": 8},
            ],
            "rates",
        ),
    ],
)
def test_parse_when_nested_rate_invalid_then_dotted_path_named(rates: list[dict[str, Any]], field: str) -> None:
    raw = json.dumps(_raw("funding_rate_deviation", rates=rates))

    assert _field_of(raw) == field


@pytest.mark.parametrize("raw", [b"{not json", "", b"\xff\xfe", "[1, 2]", "42"])
def test_parse_when_not_a_json_object_then_json_field_named(raw: bytes | str) -> None:
    assert _field_of(raw) == "<json>"


@pytest.mark.parametrize("event_type", ["market_crash", None, 7, "market-shock"])
def test_parse_when_event_type_unknown_or_missing_then_event_type_named(event_type: Any) -> None:
    raw = _raw("market_shock")
    raw["event_type"] = event_type

    assert _field_of(raw) == "event_type"


def test_build_when_fields_contradict_requested_type_then_event_type_named() -> None:
    with pytest.raises(EventValidationError) as caught:
        build_event("market-shock", {**REGISTRY["market_shock"].example, "event_type": "critical_alert"})

    assert caught.value.field == "event_type"


def test_topic_for_when_each_type_then_its_configured_topic() -> None:
    topics = KafkaTopics(market_events="m", capital_events="c", funding_rate_events="f", risk_alerts="r")

    assert topic_for("market_shock", topics) == "m"
    assert topic_for("capital-threshold", topics) == "c"
    assert topic_for("funding_rate_deviation", topics) == "f"
    assert topic_for("critical_alert", topics) == "r"
    with pytest.raises(EventValidationError):
        topic_for("nope", topics)


def test_registry_when_listed_then_every_model_type_present() -> None:
    models = {spec.model for spec in REGISTRY.values()}

    assert models == {
        MarketShock,
        CapitalThreshold,
        FundingRateDeviation,
        CriticalAlert,
        StopLossReport,
        DataAlert,
        ModelDeployment,
        NewsHeadline,
    }
    assert {spec.topic_attr for spec in REGISTRY.values()} <= set(KafkaTopics.model_fields)


@pytest.mark.parametrize(
    ("event_type", "key"),
    [
        ("market_shock", "BTC/USDT"),
        ("capital_threshold", "bybit"),
        ("funding_rate_deviation", "BTC/USDT:USDT"),
        ("critical_alert", "okx"),
        ("model_deployment", "tradeops_direction"),  # one model's rollout stays in order
        ("news_headline", "TSLA"),  # one symbol's headlines stay in order
    ],
)
def test_partition_key_when_event_then_symbol_else_venue_else_scope(event_type: str, key: str) -> None:
    assert partition_key(build_event(event_type, REGISTRY[event_type].example)) == key


def test_partition_key_when_alert_has_no_scope_then_none() -> None:
    assert partition_key(build_event("critical_alert", {"reason": "x"})) is None
