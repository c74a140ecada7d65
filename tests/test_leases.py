"""Named leases: one holder at a time, renewable, expiring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradeops import leases


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_lease_when_held_then_others_wait_until_release_or_expiry(db_url: str) -> None:
    clock = _Clock()
    ttl = timedelta(minutes=10)
    assert leases.acquire("rebalance", "run-a", ttl, clock=clock) is not None
    assert leases.acquire("rebalance", "run-b", ttl, clock=clock) is None
    assert leases.acquire("rebalance", "run-a", ttl, clock=clock) is not None  # renewal by the holder

    assert not leases.release("rebalance", "run-b")
    assert leases.release("rebalance", "run-a")
    assert leases.acquire("rebalance", "run-b", ttl, clock=clock).holder == "run-b"

    clock.now += ttl + timedelta(seconds=1)  # run-b died without releasing
    assert leases.acquire("rebalance", "run-c", ttl, clock=clock).holder == "run-c"
    assert leases.current("rebalance").holder == "run-c"
    assert leases.acquire("other", "run-b", ttl, clock=clock) is not None  # names are independent
