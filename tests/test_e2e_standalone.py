"""End to end through a running Airflow (``airflow standalone``: scheduler, triggerer, executor).

- A critical alert published with ``tradeops publish`` reaches the stop-loss DAG through the
  Kafka watcher in the real triggerer, and the paper venue ends flat; a malformed message on the
  same topic lands in the dead-letter topic with its reason and the next good event still runs.
- A saga whose run Airflow ends itself, by ``dagrun_timeout``, by "Mark run as failed" or by a
  deleted run (Airflow sets ``compensate`` SKIPPED or removes it), is compensated from the saga
  ledger by the ``saga_recovery`` DAG, which the ledger names as the compensator.

The standalone runs the repository's DAGs plus the test-only sagas in tests/e2e_dags/.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Producer

from tests.fixtures.kafka import end_offsets, read_from
from tests.fixtures.standalone import api, wait_for
from tests.fixtures.standalone import standalone as run_standalone
from tradeops import risk
from tradeops.config import settings
from tradeops.model import OrderRequest, Side

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.airflow, pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def standalone(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``airflow standalone`` on this repository's DAGs plus tests/e2e_dags/."""
    # Not the trading agents: at start every unpaused DAG runs its latest interval, and three
    # agent runs (25 task processes) on top overloaded the api-server on 2 cores (HTTP 500s).
    # They are tested with dag.test() and on `make run` (tests/test_agents_dags.py, bench-agents).
    files = [
        f
        for f in [*(ROOT / "dags").glob("*.py"), *(ROOT / "tests" / "e2e_dags").glob("*.py")]
        if f.name != "agent_trading.py"
    ]
    with run_standalone(tmp_path_factory.mktemp("airflow-e2e"), kafka_bootstrap, files) as env:
        yield env


def _use_db(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEOPS_DB_URL", env["TRADEOPS_DB_URL"])
    settings.cache_clear()


def _positions() -> list[object]:
    from tradeops.venues.paper import PaperVenue

    return [p for name in ("binance", "bybit", "okx") for p in PaperVenue(name, settings()).positions()]


def test_critical_alert_when_published_then_triggerer_runs_stop_loss_and_venue_ends_flat(
    standalone: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradeops.venues.paper import PaperVenue

    _use_db(standalone, monkeypatch)
    for number, venue in enumerate(("binance", "okx")):
        PaperVenue(venue, settings()).place_order(
            OrderRequest(
                venue=venue,
                symbol="BTC/USDT:USDT",
                side=Side.BUY,
                amount=Decimal("0.1"),
                client_order_id=f"e2e{number}",
            )
        )
    assert len(_positions()) >= 2  # ours, plus whatever the hedge cron opened meanwhile
    risk.set_state(risk.TradingState.ACTIVE, reason="e2e: armed", changed_by="test")

    published = subprocess.run(
        [str(BIN / "tradeops"), "publish", "critical-alert", "--json", '{"reason": "e2e kill switch"}'],
        env=standalone,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert published.returncode == 0, published.stderr

    wait_for(lambda: not _positions(), 180, "every position to be closed")
    assert risk.get_state().state is risk.TradingState.HALTED
    # the watcher halted on reading the alert, before the DAG's run (which halts again, idempotently)
    halts = [h for h in reversed(risk.history(20)) if h.state is risk.TradingState.HALTED and "e2e kill" in h.reason]
    assert halts and halts[0].changed_by == "watcher:stop_loss_alerts", halts


def test_malformed_message_when_on_watched_topic_then_dead_lettered_and_next_good_event_handled(
    standalone: dict[str, str], monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str
) -> None:
    from tradeops.event_inbox import dead_letter_counts, handled_count

    _use_db(standalone, monkeypatch)
    topics = settings().kafka.topics
    start = end_offsets(kafka_bootstrap, topics.dead_letter)
    handled_before = handled_count("emergency_stop_loss_saga")
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topics.risk_alerts, value=b'{"event_type": "critical_alert", "reason": ')
    producer.flush(10)
    good = subprocess.run(
        [str(BIN / "tradeops"), "publish", "critical-alert", "--json", '{"reason": "after the bad one"}'],
        env=standalone,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr

    wait_for(lambda: handled_count("emergency_stop_loss_saga") == handled_before + 1, 180, "the good event's run")
    letters = read_from(kafka_bootstrap, topics.dead_letter, start)
    reasons = [dict(m.headers())["dlq.reason"].decode() for m in letters]
    assert any("<json>" in reason for reason in reasons), reasons
    assert dead_letter_counts().get(topics.risk_alerts, 0) >= 1


def _api(env: dict[str, str], method: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
    return api(env, method, path, body)


def _run_state(env: dict[str, str], dag_id: str, run_id: str) -> str | None:
    try:
        return str(_api(env, "GET", f"dags/{dag_id}/dagRuns/{run_id}")["state"])
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def _dag_known(env: dict[str, str], dag_id: str) -> bool:
    try:
        _api(env, "GET", f"dags/{dag_id}")
    except urllib.error.HTTPError:
        return False
    return True


@pytest.mark.parametrize(
    ("dag_id", "ending"),
    [
        ("saga_probe_timeout", "dagrun_timeout"),
        ("saga_probe_stall", "mark_failed"),
        ("saga_probe_stall", "deleted"),
    ],
)
def test_saga_when_airflow_ends_the_run_without_compensate_then_recovery_compensates_from_the_ledger(
    standalone: dict[str, str], monkeypatch: pytest.MonkeyPatch, dag_id: str, ending: str
) -> None:
    from tradeops.saga import ledger, store
    from tradeops.venues.paper import PaperVenue

    _use_db(standalone, monkeypatch)
    risk.set_state(risk.TradingState.ACTIVE, reason="e2e saga probe", changed_by="test")
    alpaca = PaperVenue("alpaca", settings())
    before = {asset: b.total for asset, b in alpaca.balances().items()}
    fills_before = len(alpaca.fills())
    # The first order (buy_tsla) goes through; buy_iwm then keeps hitting temporary errors.
    alpaca.inject_fault("place_order", "temporary", times=1000, skip=1)
    try:
        wait_for(lambda: _dag_known(standalone, dag_id), 180, f"{dag_id} to be parsed", interval=2)
        run_id = str(_api(standalone, "POST", f"dags/{dag_id}/dagRuns", {"logical_date": None})["dag_run_id"])

        def stalled() -> bool:
            entries = ledger.entries(run_id, dag_id)
            acted = any(e.step == "buy_tsla" and e.kind == "action" and e.outcome == "succeeded" for e in entries)
            retrying = any(e.step == "buy_iwm" and e.outcome == "failed" for e in entries)
            # on a loaded machine the timeout may end the run before buy_iwm's first attempt
            return acted and (
                retrying or (ending == "dagrun_timeout" and _run_state(standalone, dag_id, run_id) != "running")
            )

        wait_for(stalled, 180, "buy_tsla to act and buy_iwm to be retrying", interval=1)
        if ending == "deleted":
            # Airflow deletes only finished runs: mark it failed and delete it at once, away from
            # the minute boundary where saga_recovery runs, so the run is gone when it looks.
            wait_for(lambda: 10 <= datetime.now(UTC).second <= 40, 60, "the middle of a minute", interval=0.5)
        if ending in ("mark_failed", "deleted"):
            _api(standalone, "PATCH", f"dags/{dag_id}/dagRuns/{run_id}", {"state": "failed"})
        if ending == "deleted":
            _api(standalone, "DELETE", f"dags/{dag_id}/dagRuns/{run_id}")
        expected = None if ending == "deleted" else "failed"
        wait_for(lambda: _run_state(standalone, dag_id, run_id) == expected, 120, f"the run to be {expected}")

        def attempts_settled() -> bool:
            # An attempt of buy_iwm starting now sees the run ended and refuses before acting; one
            # that already started hits the armed fault. Only then may the faults go.
            tries = {}
            for e in ledger.entries(run_id, dag_id):
                if e.step == "buy_iwm" and e.kind == "action":
                    tries.setdefault(e.try_number, set()).add(e.outcome)
            return all(outcomes != {"started"} for outcomes in tries.values())

        wait_for(attempts_settled, 60, "the last attempt of buy_iwm to end", interval=1)
    finally:
        alpaca.clear_faults()

    def compensated() -> bool:
        saga = store.get_run(dag_id, run_id)
        return saga is not None and saga.status is store.SagaStatus.COMPENSATED

    wait_for(compensated, 240, "saga_recovery to compensate the run", interval=2)
    saga = store.get_run(dag_id, run_id)
    assert saga.closed_by == "airflow:saga_recovery"
    assert ("deleted" if ending == "deleted" else "ended FAILED") in (saga.close_reason or "")
    undone = [e.step for e in ledger.entries(run_id, dag_id) if e.kind == "undo" and e.outcome == "undone"]
    assert undone == ["buy_tsla"]
    after = {asset: b.total for asset, b in alpaca.balances().items()}
    new_fills = alpaca.fills()[fills_before:]
    assert [(f.symbol, f.side.value, f.amount) for f in new_fills] == [
        ("TSLA/USD", "buy", Decimal(2)),
        ("TSLA/USD", "sell", Decimal(2)),
    ]
    assert after.get("TSLA", Decimal(0)) == before.get("TSLA", Decimal(0))
    assert after.get("IWM", Decimal(0)) == before.get("IWM", Decimal(0))
    assert (
        after["USD"]
        == before["USD"] - sum((f.fee for f in new_fills), Decimal(0)) + (new_fills[1].price - new_fills[0].price) * 2
    )
