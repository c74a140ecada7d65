"""The sweeper's choice of stranded events, and the unclaimed-event lookup it relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from operators.sweeper import stranded
from tradeops.event_inbox import claim_events, unhandled

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _payload(event_id: str) -> dict:
    return {"event": {"event_id": event_id, "event_type": "critical_alert"}, "reason": "r"}


def test_stranded_when_unclaimed_and_past_grace_then_replayed_oldest_first_once() -> None:
    events = [
        (_payload("b"), NOW - timedelta(seconds=50)),
        (_payload("a"), NOW - timedelta(seconds=90)),
        (_payload("a"), NOW - timedelta(seconds=80)),  # the same event stored twice (redelivery)
        (_payload("fresh"), NOW - timedelta(seconds=5)),  # its run may simply not have started yet
        (_payload("done"), NOW - timedelta(seconds=120)),
    ]
    chosen = stranded(events, {"a", "b", "fresh"}, NOW, timedelta(seconds=30))
    assert [e["event_id"] for e in chosen] == ["a", "b"]


def test_unhandled_when_some_claimed_then_only_the_others(db_url: str) -> None:
    claim_events("emergency_stop_loss_saga", [("x", "critical_alert")], "run-1")
    assert unhandled("emergency_stop_loss_saga", ["x", "y"]) == {"y"}
    assert unhandled("auto_rebalance_saga", ["x"]) == {"x"}  # claims are per consumer
    assert unhandled("emergency_stop_loss_saga", []) == set()
