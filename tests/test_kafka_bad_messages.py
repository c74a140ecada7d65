"""No message can break a watcher: a corpus of bad messages produced as raw bytes to the real
broker, read by the real watcher (consumer, batches, Airflow's shared-stream manager, the batch
handler). Every one is dead-lettered once with its reason, the watcher keeps running, and the
valid event produced after them still fires."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fixtures.watch import LiveWatcher, committed, fresh_topics, produce_raw, read_all, wait_until
from tradeops import risk
from tradeops.event_inbox import dead_letter_counts, recent_dead_letters
from tradeops.events import build_event, to_json

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def topics(db_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with fresh_topics(kafka_bootstrap, monkeypatch) as created:
        yield created


def _alert(**overrides: Any) -> dict[str, Any]:
    event = json.loads(to_json(build_event("critical-alert", {"reason": "keys revoked", "scope": "okx"})))
    event.update(overrides)
    return event


def _j(value: Any) -> bytes:
    return json.dumps(value).encode()


def _nested(depth: int, open_: bytes, close: bytes) -> bytes:
    return open_ * depth + close * depth


def _corpus() -> list[tuple[str, bytes | None, str]]:
    """(kind, raw value, the field the dead letter must name)."""
    alert = _alert()
    shock = json.loads(
        to_json(
            build_event("market-shock", {"symbol": "BTC/USDT", "move_pct": "-9", "window_seconds": 60, "price": "1"})
        )
    )
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    return [
        ("empty value", b"", "<value>"),
        ("tombstone (no value)", None, "<value>"),
        ("whitespace only", b"  \n\t ", "<value>"),
        ("not JSON", b"{not json", "<json>"),
        ("truncated JSON", b'{"event_type": "market_shock", "reason": ', "<json>"),
        ("invalid UTF-8", b"\xff\xfe\x00garbage", "<json>"),
        ("UTF-16 JSON", json.dumps(alert).encode("utf-16"), "<json>"),
        ("UTF-8 BOM before JSON", b"\xef\xbb\xbf" + _j(alert), "<json>"),
        ("top-level array", b"[1, 2, 3]", "<json>"),
        ("top-level string", b'"critical"', "<json>"),
        ("top-level number", b"42", "<json>"),
        ("JSON null", b"null", "<json>"),
        ("trailing garbage", _j(alert) + b" xyz", "<json>"),
        ("deeply nested array", _nested(100_000, b"[", b"]"), "<json>"),
        ("deeply nested object", b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "<json>"),
        (
            "nesting just past the cap",
            _j({"event_type": "market_shock", "x": json.loads(_nested(17, b"[", b"]"))}),
            "<json>",
        ),
        ("integer of 5000 digits", b'{"event_type": "market_shock", "schema_version": ' + b"9" * 5000 + b"}", "<json>"),
        ("integer of 3000 digits", _j({**shock, "window_seconds": int("9" * 3000)}), "window_seconds"),
        ("message near the broker's 1 MB limit", _j({**alert, "reason": "x" * 1_000_000}), "<size>"),
        ("NaN literal", _j(shock).replace(b'"move_pct": "-9"', b'"move_pct": NaN'), "move_pct"),
        ("unknown event type", _j({**alert, "event_type": "moon_landing"}), "event_type"),
        ("no event type", _j({k: v for k, v in alert.items() if k != "event_type"}), "event_type"),
        ("event type not a string", _j({**alert, "event_type": 7}), "event_type"),
        ("event on the wrong topic", _j(shock), "event_type"),
        ("required field missing", _j({k: v for k, v in alert.items() if k != "reason"}), "reason"),
        ("unknown field", _j({**alert, "leverage": 100}), "leverage"),
        ("unsupported schema version", _j({**alert, "schema_version": 99}), "schema_version"),
        ("event_id not a UUID", _j({**alert, "event_id": "12345"}), "event_id"),
        ("occurred_at a day ahead", _j({**alert, "occurred_at": future}), "occurred_at"),
        ("occurred_at without a timezone", _j({**alert, "occurred_at": "2026-12-01T10:00:00"}), "occurred_at"),
        ("occurred_at not a time", _j({**alert, "occurred_at": "yesterday"}), "occurred_at"),
        ("reason blank", _j({**alert, "reason": "   "}), "reason"),
        ("reason too long", _j({**alert, "reason": "x" * 5000}), "reason"),
        ("severity not critical", _j({**alert, "severity": "low"}), "severity"),
        ("lone surrogate in a string", _j(alert).replace(b"keys revoked", b"keys \\ud800 revoked"), "<json>"),
        ("stop-loss report without venues", _j({"event_type": "stop_loss_report", "all_flat": True}), "trading_state"),
        ("binary noise", bytes(range(256)) * 8, "<json>"),
    ]


# Refused by the size and nesting caps before any parser saw them (the reason names the cap).
CAPPED_BEFORE_PARSING = {
    "deeply nested array": "max_nesting_depth",
    "deeply nested object": "max_nesting_depth",
    "nesting just past the cap": "max_nesting_depth",
    "message near the broker's 1 MB limit": "max_message_bytes",
}


def _dead_letter_copies(bootstrap: str, topic: str) -> list[Any]:
    return read_all(bootstrap, topic)


def test_watcher_when_corpus_of_bad_messages_read_then_each_dead_lettered_once_with_reason_and_the_valid_one_fires(
    topics: Any, kafka_bootstrap: str
) -> None:
    corpus = _corpus()
    assert len(corpus) >= 30
    valid = _alert(reason="after the corpus")
    with LiveWatcher("stop_loss_alerts", kafka_bootstrap) as watcher:
        produce_raw(
            kafka_bootstrap,
            topics.risk_alerts,
            [value for _, value, _ in corpus],
            partition=0,
            headers_each=[[("corpus", str(number).encode())] for number in range(len(corpus))],
        )
        produce_raw(kafka_bootstrap, topics.risk_alerts, [_j(valid)], partition=0)
        watcher.wait_for(lambda: len(watcher.events()) == 1, timeout=60, what="the valid alert after the corpus")
        watcher.wait_for(
            lambda: committed(kafka_bootstrap, watcher.group_id, topics.risk_alerts).get(0) == len(corpus) + 1,
            what="the commit past the corpus",
        )
    assert watcher.events()[0]["event"]["event_id"] == valid["event_id"]
    rows = {letter.offset: letter for letter in recent_dead_letters(limit=100)}
    assert len(rows) == len(corpus) and all(row.status == "stored" for row in rows.values())
    assert dead_letter_counts() == {topics.risk_alerts: len(corpus)}
    copies = _dead_letter_copies(kafka_bootstrap, topics.dead_letter)
    kinds = sorted(int(dict(m.headers())["corpus"]) for m in copies)  # the original headers are kept
    assert kinds == list(range(len(corpus)))  # each once in the dead-letter topic
    wrong = {}
    for copy in copies:
        headers = dict(copy.headers())
        kind, _, field = corpus[int(headers["corpus"])]
        row = rows[int(headers["dlq.source_offset"])]
        if headers["dlq.field"].decode() != field or row.field != field:
            wrong[kind] = (row.field, row.reason)
        if kind in CAPPED_BEFORE_PARSING and CAPPED_BEFORE_PARSING[kind] not in row.reason:
            wrong[kind] = (row.field, row.reason)  # refused by the cap, not by a parser that tried
    assert not wrong, wrong


def test_dead_letter_when_message_too_big_for_the_topic_then_stored_truncated_with_size_and_digest(
    topics: Any, kafka_bootstrap: str
) -> None:
    huge = _j({**_alert(), "reason": "y" * 1_000_000})
    with LiveWatcher("stop_loss_alerts", kafka_bootstrap) as watcher:
        produce_raw(kafka_bootstrap, topics.risk_alerts, [huge], key=b"okx", headers=[("trace", b"abc")], partition=1)
        watcher.wait_for(lambda: dead_letter_counts().get(topics.risk_alerts) == 1, what="the dead letter")
    [copy] = _dead_letter_copies(kafka_bootstrap, topics.dead_letter)
    headers = dict(copy.headers())
    assert copy.key() == b"okx" and headers["trace"] == b"abc"  # the original key and headers
    assert headers["dlq.truncated"] == b"true"
    assert int(headers["dlq.original_size"]) == len(huge) and len(copy.value()) < len(huge)
    assert headers["dlq.original_sha256"].decode() == hashlib.sha256(huge).hexdigest()
    assert huge.startswith(copy.value())
    assert (headers["dlq.source_topic"].decode(), headers["dlq.source_partition"]) == (topics.risk_alerts, b"1")
    assert b"max_message_bytes" in headers["dlq.reason"]
    [row] = recent_dead_letters()
    assert row.truncated and row.size == len(huge) and row.dlq_offset == copy.offset()


def test_watcher_when_unreadable_critical_alert_then_halted_without_flattening_and_dead_lettered(
    topics: Any, kafka_bootstrap: str
) -> None:
    risk.set_state(risk.TradingState.ACTIVE, reason="test", changed_by="test")
    broken = _j(_alert(schema_version=2))
    with LiveWatcher("stop_loss_alerts", kafka_bootstrap) as watcher:
        produce_raw(kafka_bootstrap, topics.risk_alerts, [broken], partition=0)
        watcher.wait_for(lambda: dead_letter_counts().get(topics.risk_alerts) == 1, what="the dead letter")
    state = risk.get_state()
    assert state.state is risk.TradingState.HALTED and state.changed_by == "watcher:stop_loss_alerts"
    assert "unreadable critical alert" in state.reason and "schema version 2" in state.reason
    assert watcher.events() == []  # no asset event: nothing is flattened on a message we cannot read
    [letter] = recent_dead_letters()
    assert letter.field == "schema_version"


def test_watcher_when_bad_message_does_not_claim_to_be_an_alert_then_trading_not_halted(
    topics: Any, kafka_bootstrap: str
) -> None:
    risk.set_state(risk.TradingState.ACTIVE, reason="test", changed_by="test")
    with LiveWatcher("stop_loss_alerts", kafka_bootstrap) as watcher:
        produce_raw(kafka_bootstrap, topics.risk_alerts, [b"{not json", _j({"event_type": "stop_loss_report"})])
        watcher.wait_for(lambda: dead_letter_counts().get(topics.risk_alerts) == 2, what="the dead letters")
    assert risk.get_state().state is risk.TradingState.ACTIVE


def test_watcher_when_event_id_reused_with_another_body_then_conflict_dead_lettered_and_not_fired(
    topics: Any, kafka_bootstrap: str
) -> None:
    first = _alert(reason="first body")
    other = {**first, "reason": "another body"}
    with LiveWatcher("stop_loss_alerts", kafka_bootstrap) as watcher:
        produce_raw(kafka_bootstrap, topics.risk_alerts, [_j(first)], partition=0)
        watcher.wait_for(lambda: len(watcher.events()) == 1)
        produce_raw(kafka_bootstrap, topics.risk_alerts, [_j(other), _j(first)], partition=0)
        watcher.wait_for(lambda: len(watcher.events()) == 2, what="the exact redelivery to fire again")
    assert [e["event"]["reason"] for e in watcher.events()] == ["first body", "first body"]
    [letter] = recent_dead_letters()
    assert (letter.field, letter.offset, letter.event_id) == ("event_id", 1, first["event_id"])
    assert "reused with a different body" in letter.reason and f"{topics.risk_alerts}[0]@0" in letter.reason


def test_watcher_when_event_older_than_its_max_age_then_recorded_stale_not_fired_not_halted(
    topics: Any, kafka_bootstrap: str
) -> None:
    from tradeops.kafka.watch_store import recent_stale

    risk.set_state(risk.TradingState.ACTIVE, reason="test", changed_by="test")
    old = _alert(occurred_at=(datetime.now(UTC) - timedelta(hours=2)).isoformat(), event_id=str(uuid.uuid4()))
    fresh = _alert(reason="fresh")
    with LiveWatcher("stop_loss_alerts", kafka_bootstrap) as watcher:
        produce_raw(kafka_bootstrap, topics.risk_alerts, [_j(old)], partition=0)
        watcher.wait_for(lambda: len(recent_stale()) == 1, what="the stale record")
        assert risk.get_state().state is risk.TradingState.ACTIVE
        produce_raw(kafka_bootstrap, topics.risk_alerts, [_j(fresh)], partition=0)
        watcher.wait_for(lambda: len(watcher.events()) == 1)
    assert [e["event"]["reason"] for e in watcher.events()] == ["fresh"]
    [stale] = recent_stale()
    assert (stale.event_id, stale.watcher, stale.offset) == (old["event_id"], "stop_loss_alerts", 0)
    assert 7100 < stale.age_seconds < 7300
    assert dead_letter_counts() == {}


def test_dead_letter_when_two_watchers_read_the_same_bad_message_then_one_copy_counted_once(
    topics: Any, kafka_bootstrap: str
) -> None:
    with LiveWatcher("stop_loss_shocks", kafka_bootstrap) as a, LiveWatcher("rebalance_shocks", kafka_bootstrap) as b:
        produce_raw(kafka_bootstrap, topics.market_events, [b"{broken", b"[[]]"], partition=2)
        for watcher in (a, b):
            watcher.wait_for(
                lambda w=watcher: committed(kafka_bootstrap, w.group_id, topics.market_events).get(2) == 2,
                what=f"{watcher.group_id} to commit past both",
            )
    copies = _dead_letter_copies(kafka_bootstrap, topics.dead_letter)
    assert sorted(int(dict(m.headers())["dlq.source_offset"]) for m in copies) == [0, 1]
    assert dead_letter_counts() == {topics.market_events: 2}


def test_dead_letter_when_the_topic_cannot_take_it_then_not_counted_not_committed_and_stored_once_it_can(
    topics: Any, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradeops.config import settings
    from tradeops.kafka.topics import ensure_topics

    missing = f"{topics.dead_letter}-later"
    monkeypatch.setenv("TRADEOPS__KAFKA__TOPICS__DEAD_LETTER", missing)  # not created: the broker refuses
    monkeypatch.setenv("TRADEOPS__KAFKA__DELIVERY_TIMEOUT_SECONDS", "2")
    settings.cache_clear()
    with LiveWatcher("stop_loss_alerts", kafka_bootstrap) as watcher:
        produce_raw(kafka_bootstrap, topics.risk_alerts, [b"{broken"], partition=0)
        watcher.wait_for(lambda: [r.status for r in recent_dead_letters()] == ["pending"], what="the pending row")
        time.sleep(5)  # at least one delivery attempt timed out
        assert dead_letter_counts() == {}  # never counted before the broker confirmed the copy
        assert committed(kafka_bootstrap, watcher.group_id, topics.risk_alerts).get(0, -1001) < 0
        ensure_topics(kafka_bootstrap, settings().kafka.topics)
        watcher.wait_for(lambda: dead_letter_counts() == {topics.risk_alerts: 1}, timeout=60, what="the stored copy")
        watcher.wait_for(lambda: committed(kafka_bootstrap, watcher.group_id, topics.risk_alerts).get(0) == 1)
    assert len(read_all(kafka_bootstrap, missing)) == 1


def test_kill_switch_when_the_watcher_is_stuck_on_earlier_dead_letters_then_still_halts_at_once(
    topics: Any, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradeops.config import settings

    monkeypatch.setenv("TRADEOPS__KAFKA__TOPICS__DEAD_LETTER", f"{topics.dead_letter}-missing")  # copies fail
    monkeypatch.setenv("TRADEOPS__KAFKA__DELIVERY_TIMEOUT_SECONDS", "5")
    settings.cache_clear()
    risk.set_state(risk.TradingState.ACTIVE, reason="test", changed_by="test")
    with LiveWatcher("stop_loss_alerts", kafka_bootstrap) as watcher:
        produce_raw(kafka_bootstrap, topics.risk_alerts, [b"{garbage"] * 100, partition=0)
        watcher.wait_for(lambda: len(recent_dead_letters(limit=200)) == 100, what="the batch to be pending")
        produce_raw(kafka_bootstrap, topics.risk_alerts, [_j(_alert(reason="behind the garbage"))], partition=0)
        sent = time.monotonic()
        watcher.wait_for(lambda: risk.get_state().state is risk.TradingState.HALTED, timeout=10, what="HALTED")
        halted_after = time.monotonic() - sent
        assert dead_letter_counts() == {}  # the garbage is still not stored: the filter is stuck on it
        assert watcher.events() == []  # nor has the alert's asset event gone out yet
    assert halted_after < 3  # not behind the stuck dead letters (each attempt waits 5 s)
    assert "behind the garbage" in risk.get_state().reason
    # A stopped trigger stops retrying: its batch thread ends (the batch is read again by the next).
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("tradeops-stop_loss_alerts")],
        timeout=20,
        what="the stopped watcher's batch thread to end",
    )
