"""The Kafka -> Airflow bridge's filter: validation, conditions, dead letters with the reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sensors.kafka_events import RawMessage, TradeopsEventTrigger, event_asset
from tests.fixtures.events import run_filter
from tests.fixtures.kafka import end_offsets, read_from
from tradeops.config import settings
from tradeops.event_inbox import dead_letter_counts, recent_dead_letters
from tradeops.events import build_event, to_json

pytestmark = [pytest.mark.kafka]


def _raw(value: Any, topic: str, offset: int) -> RawMessage:
    data = value if isinstance(value, bytes) else (value if isinstance(value, str) else json.dumps(value)).encode()
    return RawMessage(data, topic, 0, offset)


def _run(trigger: TradeopsEventTrigger, messages: list[RawMessage], bootstrap: str) -> list[dict[str, Any]]:
    return run_filter(trigger, messages, bootstrap)


def _trigger(watcher: str) -> TradeopsEventTrigger:
    return event_asset(watcher).watchers[0].trigger


def _dead_letters(bootstrap: str, start: dict[int, int]) -> list[tuple[bytes, dict[str, str]]]:
    messages = read_from(bootstrap, settings().kafka.topics.dead_letter, start)
    return [(m.value(), {k: v.decode() for k, v in (m.headers() or [])}) for m in messages]


def _dlq_end(bootstrap: str) -> dict[int, int]:
    return end_offsets(bootstrap, settings().kafka.topics.dead_letter)


def _shock(move: str) -> dict[str, Any]:
    event = build_event("market-shock", {"symbol": "BTC/USDT", "move_pct": move, "window_seconds": 60, "price": "1"})
    return json.loads(to_json(event))


@pytest.fixture
def bridge(db_url: str, kafka_bootstrap: str) -> str:
    settings.cache_clear()
    return kafka_bootstrap


def test_filter_when_events_valid_then_fires_only_those_meeting_the_condition(bridge: str) -> None:
    topic = settings().kafka.topics.market_events
    big, small = _shock("-7.5"), _shock("2")

    fired = _run(_trigger("rebalance_shocks"), [_raw(big, topic, 1), _raw(small, topic, 2)], bridge)

    assert [p["event"]["event_id"] for p in fired] == [big["event_id"]]
    assert fired[0]["kafka"] == {"topic": topic, "partition": 0, "offset": 1}
    assert "moved -7.5%" in fired[0]["reason"]
    assert dead_letter_counts() == {}


def test_filter_when_messages_malformed_then_dead_lettered_with_reason_counted_and_stream_continues(
    bridge: str,
) -> None:
    topic = settings().kafka.topics.market_events
    good = _shock("-9")
    missing_field = {k: v for k, v in _shock("-9").items() if k != "price"}
    absurd = {**_shock("-9"), "move_pct": "-250"}
    alert_on_wrong_topic = json.loads(to_json(build_event("critical-alert", {"reason": "x"})))
    messages = [
        _raw(b"{not json", topic, 10),
        _raw({"event_type": "moon_landing"}, topic, 11),
        _raw(missing_field, topic, 12),
        _raw(absurd, topic, 13),
        _raw(alert_on_wrong_topic, topic, 14),
        _raw(good, topic, 15),
    ]
    start = _dlq_end(bridge)

    fired = _run(_trigger("rebalance_shocks"), messages, bridge)

    assert [p["event"]["event_id"] for p in fired] == [good["event_id"]]  # the next good event still fires
    letters = _dead_letters(bridge, start)
    assert [h["source_offset"] for _, h in letters] == ["10", "11", "12", "13", "14"]
    reasons = [h["reason"] for _, h in letters]
    assert "<json>" in reasons[0] and "event_type" in reasons[1] and "price" in reasons[2]
    assert "move_pct" in reasons[3] and "belongs on topic 'risk-alerts'" in reasons[4]
    assert letters[0][0] == b"{not json"  # the raw message is kept as it came
    assert dead_letter_counts() == {topic: 5}
    assert {d.field for d in recent_dead_letters()} == {"<json>", "event_type", "price", "move_pct"}


def test_filter_when_two_watchers_see_the_same_bad_message_then_dead_lettered_once(bridge: str) -> None:
    topic = settings().kafka.topics.market_events
    start = _dlq_end(bridge)

    _run(_trigger("rebalance_shocks"), [_raw(b"garbage", topic, 40)], bridge)
    _run(_trigger("stop_loss_shocks"), [_raw(b"garbage", topic, 40)], bridge)

    assert len(_dead_letters(bridge, start)) == 1
    assert dead_letter_counts() == {topic: 1}


def test_trigger_when_serialised_then_round_trips_with_its_watcher() -> None:
    trigger = _trigger("stop_loss_alerts")
    classpath, kwargs = trigger.serialize()

    assert classpath == "sensors.kafka_events.TradeopsEventTrigger"
    again = TradeopsEventTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert kwargs["kafka_config_id"] == "tradeops_kafka_stop_loss_alerts"
    assert kwargs["topics"] == ["risk-alerts"]
