"""The Kafka -> Airflow bridge's filter on one batch: validation, conditions, one asset event per
batch, dead letters with the reason (real broker, real project database)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sensors.kafka_events import TradeopsEventTrigger, batch_positions, commit_plan, event_asset
from tests.fixtures.events import fired_events, run_filter
from tests.fixtures.watch import read_all
from tradeops.config import settings
from tradeops.event_inbox import dead_letter_counts, recent_dead_letters
from tradeops.events import build_event, to_json
from tradeops.kafka.reading import Message

pytestmark = [pytest.mark.kafka]


def _raw(value: Any, topic: str, offset: int, partition: int = 0) -> Message:
    data = value if isinstance(value, bytes) else (value if isinstance(value, str) else json.dumps(value)).encode()
    return Message(topic=topic, partition=partition, offset=offset, value=data)


def _trigger(watcher: str) -> TradeopsEventTrigger:
    return event_asset(watcher).watchers[0].trigger


def _shock(move: str) -> dict[str, Any]:
    event = build_event("market-shock", {"symbol": "BTC/USDT", "move_pct": move, "window_seconds": 60, "price": "1"})
    return json.loads(to_json(event))


def _dlq(bootstrap: str) -> list[tuple[bytes, dict[str, str]]]:
    messages = read_all(bootstrap, settings().kafka.topics.dead_letter)
    return [(m.value(), {k: v.decode() for k, v in (m.headers() or [])}) for m in messages]


@pytest.fixture
def bridge(db_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> str:
    from tests.fixtures.watch import fresh_topics

    with fresh_topics(kafka_bootstrap, monkeypatch):
        yield kafka_bootstrap


def test_filter_when_batch_has_valid_events_then_one_asset_event_carries_those_meeting_the_condition(
    bridge: str,
) -> None:
    topic = settings().kafka.topics.market_events
    big, small, bigger = _shock("-7.5"), _shock("2"), _shock("9")

    payloads = run_filter(
        _trigger("rebalance_shocks"), [[_raw(big, topic, 1), _raw(small, topic, 2), _raw(bigger, topic, 3)]], bridge
    )

    assert len(payloads) == 1  # one asset event for the batch
    fired = fired_events(payloads)
    assert [p["event"]["event_id"] for p in fired] == [big["event_id"], bigger["event_id"]]
    assert fired[0]["kafka"] == {"topic": topic, "partition": 0, "offset": 1}
    assert "moved -7.5%" in fired[0]["reason"]
    assert payloads[0]["batch"] == {"messages": 3, "first": f"{topic}[0]@1", "last": f"{topic}[0]@3"}
    assert payloads[0]["watcher"] == "rebalance_shocks"
    assert dead_letter_counts() == {}


def test_filter_when_batch_fires_nothing_then_no_asset_event(bridge: str) -> None:
    topic = settings().kafka.topics.market_events

    assert run_filter(_trigger("rebalance_shocks"), [[_raw(_shock("1"), topic, 1)]], bridge) == []


def test_filter_when_messages_malformed_then_dead_lettered_with_reason_counted_and_good_ones_still_fire(
    bridge: str,
) -> None:
    topic = settings().kafka.topics.market_events
    good = _shock("-9")
    missing_field = {k: v for k, v in _shock("-9").items() if k != "price"}
    absurd = {**_shock("-9"), "move_pct": "-250"}
    alert_on_wrong_topic = json.loads(to_json(build_event("critical-alert", {"reason": "x"})))
    batch = [
        _raw(b"{not json", topic, 10),
        _raw({"event_type": "moon_landing"}, topic, 11),
        _raw(missing_field, topic, 12),
        _raw(absurd, topic, 13),
        _raw(alert_on_wrong_topic, topic, 14),
        _raw(good, topic, 15),
    ]

    fired = fired_events(run_filter(_trigger("rebalance_shocks"), [batch], bridge))

    assert [p["event"]["event_id"] for p in fired] == [good["event_id"]]
    letters = sorted(_dlq(bridge), key=lambda item: int(item[1]["dlq.source_offset"]))
    assert [h["dlq.source_offset"] for _, h in letters] == ["10", "11", "12", "13", "14"]
    reasons = [h["dlq.reason"] for _, h in letters]
    assert "<json>" in reasons[0] and "event_type" in reasons[1] and "price" in reasons[2]
    assert "move_pct" in reasons[3] and f"belongs on topic '{settings().kafka.topics.risk_alerts}'" in reasons[4]
    assert letters[0][0] == b"{not json"  # the raw message is kept as it came
    assert {h["dlq.watcher"] for _, h in letters} == {"rebalance_shocks"}
    assert dead_letter_counts() == {topic: 5}
    assert {d.field for d in recent_dead_letters()} == {"<json>", "event_type", "price", "move_pct"}


def test_filter_when_the_same_bad_message_is_redelivered_then_dead_lettered_once(bridge: str) -> None:
    topic = settings().kafka.topics.market_events

    run_filter(_trigger("rebalance_shocks"), [[_raw(b"garbage", topic, 40)]], bridge)
    run_filter(_trigger("rebalance_shocks"), [[_raw(b"garbage", topic, 40)]], bridge)
    run_filter(_trigger("stop_loss_shocks"), [[_raw(b"garbage", topic, 40)]], bridge)

    assert len(_dlq(bridge)) == 1
    assert dead_letter_counts() == {topic: 1}


def test_trigger_when_serialised_then_round_trips_with_its_watcher() -> None:
    trigger = _trigger("stop_loss_alerts")
    classpath, kwargs = trigger.serialize()

    assert classpath == "sensors.kafka_events.TradeopsEventTrigger"
    again = TradeopsEventTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert kwargs["kafka_config_id"] == "tradeops_kafka_stop_loss_alerts"
    assert kwargs["topics"] == [settings().kafka.topics.risk_alerts]
    assert trigger.shared_stream_key() != _trigger("stop_loss_shocks").shared_stream_key()


def _positions(*spans: tuple[int, int, int]) -> Any:
    return batch_positions([Message(topic="t", partition=p, offset=o, value=b"") for p, a, b in spans for o in (a, b)])


def test_commit_plan_when_batches_handled_then_commits_past_the_last_of_each_partition() -> None:
    floors: dict[tuple[str, int], int] = {}

    commits, seeks = commit_plan([(_positions((0, 0, 4), (1, 0, 2)), False), (_positions((0, 5, 9)), False)], floors)

    assert commits == {("t", 0): 10, ("t", 1): 3} and seeks == {} and floors == {}


def test_commit_plan_when_a_batch_is_held_then_nothing_past_it_is_committed_until_it_is_read_again() -> None:
    floors: dict[tuple[str, int], int] = {}

    commits, seeks = commit_plan([(_positions((0, 0, 4)), False), (_positions((0, 5, 9)), True)], floors)
    assert commits == {("t", 0): 5} and seeks == {("t", 0): 5} and floors == {("t", 0): 5}

    # a batch polled before the seek, after the held one, resolves: still not committed past 5
    commits, seeks = commit_plan([(_positions((0, 10, 12)), False)], floors)
    assert commits == {("t", 0): 5} and floors == {("t", 0): 5}

    # the held offsets read again and handled: the floor lifts
    commits, seeks = commit_plan([(_positions((0, 5, 12)), False)], floors)
    assert commits == {("t", 0): 13} and seeks == {} and floors == {}
