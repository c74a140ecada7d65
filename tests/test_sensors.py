"""Sensors over the paper venue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from sensors.transfers import TransferFailedError, TransferSettledSensor
from tradeops.config import settings
from tradeops.venues.paper import PaperVenue, seed_paper_world


def test_transfer_sensor_when_pending_then_false_and_when_settled_then_true(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.cache_clear()
    seed_paper_world(settings())
    start = datetime.now(UTC)
    PaperVenue("okx", settings(), clock=lambda: start).withdraw(
        transfer_id="to-sensor-1", asset="USDT", amount=Decimal("100"), to_venue="bybit", network="TRC20"
    )
    sensor = TransferSettledSensor(task_id="wait", venue="okx", transfer_id="to-sensor-1")

    assert sensor.poke({}) is False  # TRC20 settles 60 s after it was sent

    later = start + timedelta(seconds=61)
    PaperVenue("okx", settings(), clock=lambda: later).settle_transfers()
    assert sensor.poke({}) is True
    assert PaperVenue("bybit", settings()).balances()["USDT"].total == Decimal("300000") + Decimal("99.2")


def test_transfer_sensor_when_unknown_transfer_then_fails_at_once(db_url: str) -> None:
    settings.cache_clear()
    seed_paper_world(settings())
    with pytest.raises(TransferFailedError, match="no transfer"):
        TransferSettledSensor(task_id="wait", venue="okx", transfer_id="nope").poke({})
