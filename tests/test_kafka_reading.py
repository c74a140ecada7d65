"""The pieces of a watcher that need no broker: reading caps, the fail-safe claim, staleness,
dead-letter copies, the halt write, the health state machine, stale and conflicting replays."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from tradeops import risk
from tradeops.config import settings
from tradeops.errors import EventValidationError
from tradeops.events import build_event, to_json
from tradeops.kafka.dead_letters import DeadLetterItem, build_copy
from tradeops.kafka.monitor import WatcherMonitor
from tradeops.kafka.reading import Message, claims_critical, nested_deeper_than, read_message, staleness
from tradeops.watchers import WATCHERS

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _alert(**overrides: Any) -> dict[str, Any]:
    event = json.loads(to_json(build_event("critical-alert", {"reason": "r"})))
    return {**event, **overrides}


def _message(value: bytes | None, topic: str | None = None, **kwargs: Any) -> Message:
    return Message(topic=topic or settings().kafka.topics.risk_alerts, partition=0, offset=7, value=value, **kwargs)


def test_nesting_when_at_the_cap_then_accepted_and_one_deeper_refused_with_brackets_in_strings_ignored() -> None:
    at_cap = b'{"a": ' + b"[" * 15 + b"]" * 15 + b"}"  # 16 levels
    assert not nested_deeper_than(at_cap, 16)
    assert nested_deeper_than(b'{"a": ' + b"[" * 16 + b"]" * 16 + b"}", 16)
    assert not nested_deeper_than(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "b": "\\"[[[[[[[[[[[[[[[[[[[[[["}', 2)


def test_read_when_event_at_and_past_its_max_age_then_only_the_older_is_stale() -> None:
    limit = settings().kafka.watch.max_event_age_seconds["critical_alert"]
    assert staleness("critical_alert", NOW - timedelta(seconds=limit), settings(), NOW) is None
    why = staleness("critical_alert", NOW - timedelta(seconds=limit + 1), settings(), NOW)
    assert why is not None and "max_event_age_seconds" in why
    assert staleness("stop_loss_report", NOW - timedelta(days=30), settings(), NOW) is None  # no limit set

    old = _alert(occurred_at=(datetime.now(UTC) - timedelta(seconds=limit + 60)).isoformat())
    reading = read_message(_message(json.dumps(old).encode()), WATCHERS["stop_loss_alerts"], settings())
    assert reading.stale and not reading.fire and reading.error is None


def test_read_when_unreadable_message_on_risk_alerts_claims_to_be_an_alert_then_flagged_for_the_fail_safe() -> None:
    watcher = WATCHERS["stop_loss_alerts"]
    cases = {
        b'{"event_type": "critical_alert", "reason": ': True,  # truncated, says so in the text
        json.dumps(_alert(schema_version=3)).encode(): True,
        json.dumps({"event_type": "stop_loss_report"}).encode(): False,
        b"\xff\xfe": False,
    }
    for value, expected in cases.items():
        assert read_message(_message(value), watcher, settings()).claims_critical is expected, value
    header_only = _message(b"garbage", headers=(("event_type", b"critical_alert"),))
    assert claims_critical(header_only)
    market = settings().kafka.topics.market_events
    assert not read_message(
        _message(b'{"event_type": "critical_alert"', topic=market), watcher, settings()
    ).claims_critical


def test_read_when_condition_raises_then_dead_letter_reason_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    import tradeops.conditions as conditions

    def broken(event: Any, loaded: Any) -> Any:
        raise ZeroDivisionError("bad threshold")

    monkeypatch.setitem(conditions.CONDITIONS, "critical_alert", broken)
    reading = read_message(_message(json.dumps(_alert()).encode()), WATCHERS["stop_loss_alerts"], settings())

    assert reading.error is not None and reading.error.field == "<condition>"
    assert "ZeroDivisionError: bad threshold" in reading.error.reason and not reading.fire


def test_copy_when_value_and_headers_fit_then_kept_whole_else_cut_with_hostile_headers_dropped() -> None:
    error = EventValidationError("<json>", "not valid JSON")
    small = DeadLetterItem(message=_message(b"abc", key=b"k", headers=(("h", b"v"),)), error=error)
    copy = build_copy(small, "stop_loss_alerts", 900_000)
    assert copy.value == b"abc" and not copy.truncated and copy.headers[0] == ("h", b"v")

    hostile = DeadLetterItem(message=_message(b"x" * 50_000, headers=(("h", b"y" * 30_000),)), error=error)
    cut = build_copy(hostile, "stop_loss_alerts", 40_000)
    names = [name for name, _ in cut.headers]
    assert cut.truncated and "h" not in names and dict(cut.headers)["dlq.headers_dropped"] == b"1"
    assert cut.size == 50_000 and len(cut.value) + sum(len(n) + len(v) for n, v in cut.headers) < 40_000


def test_ensure_halted_when_already_halted_then_nothing_written_else_one_record(db_url: str) -> None:
    first = risk.ensure_halted(reason="alert 1", changed_by="watcher:a")  # never set before: creates the row
    assert first is not None and risk.get_state().state is risk.TradingState.HALTED
    assert risk.ensure_halted(reason="alert 2", changed_by="watcher:b") is None
    assert risk.get_state().reason == "alert 1"
    risk.set_state(risk.TradingState.ACTIVE, reason="resume", changed_by="ops")
    assert risk.ensure_halted(reason="alert 3", changed_by="watcher:a") is not None
    assert [h.reason for h in risk.history(10)] == ["alert 3", "resume", "alert 1"]


def test_monitor_when_broker_unreachable_past_threshold_then_one_error_down_and_one_notice_when_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tradeops.kafka.monitor")
    monitor = WatcherMonitor(watcher="w", topic="t", group_id="g", outage_alert_seconds=30)
    monitor.on_messages(1)
    assert monitor.tick().broker_state == "up"

    monitor.on_error("_ALL_BROKERS_DOWN", "1/1 brokers are down")
    since = monitor.broker_state()[1]
    assert since is not None
    assert monitor.tick(since + timedelta(seconds=29)).broker_state == "connecting"
    for seconds in (31, 35, 60):
        health = monitor.tick(since + timedelta(seconds=seconds))
    assert health.broker_state == "down" and health.broker_down_since == since
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "unreachable" in r.getMessage()]
    assert len(errors) == 1

    monitor.on_messages(2)
    monitor.on_messages(1)
    assert monitor.tick().broker_state == "up"
    back = [r for r in caplog.records if "reachable again" in r.getMessage()]
    assert len(back) == 1 and monitor.tick().messages == 4


def test_monitor_when_stats_report_lag_then_recorded_over_assigned_partitions() -> None:
    monitor = WatcherMonitor(watcher="w", topic="t", group_id="g", outage_alert_seconds=30)
    stats = {
        "brokers": {"127.0.0.1:1/1": {"nodeid": 1, "state": "UP"}},
        "topics": {
            "t": {
                "partitions": {
                    "0": {"fetch_state": "active", "consumer_lag": 3},
                    "1": {"fetch_state": "active", "consumer_lag": 4},
                    "2": {"fetch_state": "none", "consumer_lag": 99},  # not assigned to us
                    "-1": {"fetch_state": "none", "consumer_lag": -1},
                }
            }
        },
    }
    monitor.on_stats(json.dumps(stats))
    health = monitor.tick()
    assert health.lag == 7 and health.broker_state == "up"


def _context(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"triggering_asset_events": {}, "dag_run": SimpleNamespace(conf={"events": events}), "run_id": "manual-1"}


def test_claim_when_event_id_was_first_seen_with_another_body_then_refused(db_url: str) -> None:
    from operators.events import claim_new_events
    from tradeops.kafka.reading import event_digest
    from tradeops.kafka.watch_store import Fingerprint, first_fingerprints

    original = build_event("critical-alert", {"reason": "original"})
    first_fingerprints(
        [
            Fingerprint(
                event_id=original.event_id,
                event_type="critical_alert",
                digest=event_digest(original),
                topic="risk-alerts",
                partition=0,
                offset=1,
            )
        ]
    )
    forged = {**json.loads(to_json(original)), "reason": "forged"}

    with pytest.raises(EventValidationError, match="reused with a different body"):
        claim_new_events(_context([forged]), consumer="emergency_stop_loss_saga")
    assert claim_new_events(_context([json.loads(to_json(original))]), consumer="emergency_stop_loss_saga")


def test_sweeper_when_stranded_event_is_stale_then_recorded_and_not_replayed(db_url: str) -> None:
    from operators.sweeper import SweepStrandedEventsOperator
    from sensors.kafka_events import event_asset
    from tradeops.kafka.watch_store import recent_stale

    sweep = SweepStrandedEventsOperator(
        task_id="sweep", target_dag_id="emergency_stop_loss_saga", assets=[event_asset("stop_loss_alerts")]
    )
    now = datetime.now(UTC)
    old = _alert(occurred_at=(now - timedelta(hours=3)).isoformat())
    fresh = _alert()
    kafka = {"topic": "risk-alerts", "partition": 1, "offset": 9}
    recent = [({"event": old, "kafka": kafka}, now), ({"event": fresh}, now)]

    kept = sweep._drop_stale([old, fresh], recent, now)

    assert [e["event_id"] for e in kept] == [fresh["event_id"]]
    [stale] = recent_stale()
    assert (stale.event_id, stale.watcher, stale.offset) == (old["event_id"], "sweeper:emergency_stop_loss_saga", 9)
