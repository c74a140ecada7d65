"""A broker outage: seen (one ERROR after 30 s, the watcher's health says down, one notice when
back), quiet (the log stays readable), and survived (events after it are handled). Stops this
test session's broker for 60 s, so it lives in its own file (pytest-xdist runs files apart)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.fixtures.watch import LiveWatcher, fresh_topics, produce_raw, wait_until
from tradeops.events import build_event, to_json
from tradeops.kafka.watch_store import watcher_healths

pytestmark = [pytest.mark.kafka]

OUTAGE_SECONDS = 60


@pytest.fixture
def topics(db_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("TRADEOPS__KAFKA__WATCH__HEARTBEAT_SECONDS", "1")
    with fresh_topics(kafka_bootstrap, monkeypatch) as created:
        yield created


def _alert(reason: str) -> bytes:
    return to_json(build_event("critical-alert", {"reason": reason})).encode()


def _health() -> Any:
    [health] = [h for h in watcher_healths() if h.watcher == "stop_loss_alerts"]
    return health


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def clear(self) -> None:
        self.records = []


@pytest.fixture
def caplog(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Records]:
    """Our loggers' records at INFO and above (Airflow reconfigures the root logger when it loads)."""
    handler = _Records()
    loggers = [logging.getLogger(name) for name in ("tradeops", "sensors")]
    for logger in loggers:
        monkeypatch.setattr(logger, "level", logging.INFO)
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def test_watcher_when_broker_down_60s_then_one_alert_health_down_one_notice_back_and_events_handled(
    topics: Any, kafka_bootstrap: str, caplog: _Records
) -> None:
    from tradeops.kafka import broker

    with LiveWatcher("stop_loss_alerts", kafka_bootstrap) as watcher:
        produce_raw(kafka_bootstrap, topics.risk_alerts, [_alert("before the outage")])
        watcher.wait_for(lambda: len(watcher.events()) == 1)
        wait_until(lambda: _health().broker_state == "up", what="a heartbeat saying up")
        caplog.clear()

        before = datetime.now(UTC)
        stopped = time.monotonic()
        broker.down()
        stop_took = time.monotonic() - stopped
        try:
            wait_until(lambda: _health().broker_state == "down", timeout=60, what="the health to say down")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; stopping took {stop_took:.1f} s; last health {_health()}") from None
        first_down = _health()
        assert first_down.broker_down_since is not None and first_down.broker_down_since >= before
        assert (first_down.heartbeat_at - first_down.broker_down_since).total_seconds() > 30  # not before 30 s
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        during = [r for r in caplog.records if r.levelno >= logging.INFO]
        broker.up(wait_seconds=120, stop_with_caller=True)

        produce_raw(kafka_bootstrap, topics.risk_alerts, [_alert("after the outage")])
        watcher.wait_for(lambda: len(watcher.events()) == 2, timeout=90, what="the event after the outage")
        wait_until(lambda: _health().broker_state == "up", what="the health to say up again")

    assert [e["event"]["reason"] for e in watcher.events()] == ["before the outage", "after the outage"]
    alerts = [r for r in during if r.levelno == logging.ERROR and "unreachable" in r.getMessage()]
    assert len(alerts) == 1, [r.getMessage() for r in during]
    assert len(during) <= 10, [r.getMessage() for r in during]  # the log stays readable
    back = [r for r in caplog.records if "reachable again" in r.getMessage()]
    assert len(back) == 1 and back[0].levelno == logging.WARNING
