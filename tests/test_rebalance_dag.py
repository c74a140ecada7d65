"""The auto-rebalance saga DAG end to end (``dag.test()``) on the paper venue."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from operators.rebalance import venue_balances
from tests.dag_files import load_dag
from tests.fixtures.events import deliver
from tradeops import leases, risk
from tradeops.config import settings
from tradeops.events import build_event, to_json
from tradeops.rebalance import plan_rebalance, to_saga_steps
from tradeops.saga import ledger

DAG_ID = "auto_rebalance_saga"
pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _venue(name: str) -> Any:
    from tradeops.venues.paper import PaperVenue

    return PaperVenue(name, settings())


def _usdt() -> dict[str, Decimal]:
    return {name: _venue(name).balances()["USDT"].total for name in ("binance", "bybit", "okx")}


def _move(source: str, target: str, amount: str, key: str) -> None:
    _venue(source).withdraw(transfer_id=key, asset="USDT", amount=Decimal(amount), to_venue=target, network="TRC20")


def _event() -> dict[str, Any]:
    fields = {"venue": "bybit", "asset": "USDT", "balance": "200000", "floor": "75000"}
    return json.loads(to_json(build_event("capital-threshold", fields)))


def test_rebalance_when_capital_event_published_then_watcher_fires_only_under_the_floor(
    paper_world: None, kafka_bootstrap: str
) -> None:
    under = {"venue": "bybit", "asset": "USDT", "balance": "70000", "floor": "75000"}
    over = {"venue": "bybit", "asset": "USDT", "balance": "200000", "floor": "75000"}
    _move("bybit", "binance", "100000", "skew1")

    assert deliver(kafka_bootstrap, "rebalance_capital", "capital-threshold", over) == []
    fired = deliver(kafka_bootstrap, "rebalance_capital", "capital-threshold", under)
    run = load_dag(DAG_ID).test(run_conf={"events": fired})

    assert run.state == "success"
    assert _within_tolerance(_usdt())


def _within_tolerance(balances: dict[str, Decimal]) -> bool:
    total = sum(balances.values())
    weights = settings().rebalance.targets["USDT"]
    band = total * settings().rebalance.tolerance_pct / 100
    return all(abs(balances[v] - weights[v] * total) <= band for v in weights)


def test_rebalance_when_funds_skewed_then_cheapest_transfers_restore_targets(paper_world: None) -> None:
    _move("bybit", "binance", "100000", "skew1")
    _move("okx", "binance", "100000", "skew2")  # binance 600k, bybit and okx ~200k: 40/30/30 wanted
    assert not _within_tolerance(_usdt())

    run = load_dag(DAG_ID).test(run_conf={"events": [_event()]})

    assert run.state == "success"
    assert _within_tolerance(_usdt())
    moved = [e for e in ledger.entries(run.run_id, "auto_rebalance_saga") if e.outcome == "succeeded"]
    assert [e.detail["result"]["network"] for e in moved] == ["TRC20", "TRC20"]  # the cheapest network
    assert leases.current("auto_rebalance") is None  # the teardown gave the lease back


@pytest.mark.parametrize("failing", [0, 1])
def test_rebalance_when_a_transfer_fails_then_completed_transfers_reversed_and_run_failed(
    paper_world: None, failing: int
) -> None:
    _move("bybit", "binance", "100000", "skew1")
    _move("okx", "binance", "100000", "skew2")
    before = _usdt()
    steps = to_saga_steps(plan_rebalance(venue_balances(settings()), settings()))
    assert len(steps) == 2
    sender = steps[failing]["venue"]
    earlier_from_sender = sum(1 for step in steps[:failing] if step["venue"] == sender)
    _venue(sender).inject_fault("withdraw", "insufficient_funds", skip=earlier_from_sender)

    run = load_dag(DAG_ID).test(run_conf={"events": [_event()]})

    assert run.state == "failed"
    entries = ledger.entries(run.run_id, "auto_rebalance_saga")
    assert len([e for e in entries if e.kind == "undo" and e.outcome == "undone"]) == failing
    after = _usdt()
    # Every completed transfer was sent back; only the network fees of both legs are lost.
    routes = {name: settings().venues[name].withdrawal["USDT"]["TRC20"].fee for name in after}
    expected = sum((routes[s["venue"]] + routes[s["to_venue"]] for s in steps[:failing]), Decimal(0))
    assert sum(before.values()) - sum(after.values()) == expected
    assert leases.current("auto_rebalance") is None


def test_rebalance_when_trading_halted_then_nothing_moves(paper_world: None) -> None:
    _move("bybit", "binance", "100000", "skew1")
    before = _usdt()
    risk.set_state(risk.TradingState.HALTED, reason="test", changed_by="test")

    run = load_dag(DAG_ID).test(run_conf={"events": [_event()]})

    assert run.state == "success"
    assert _usdt() == before


def test_rebalance_plan_when_perp_position_holds_margin_then_planned_on_free_balances(paper_world: None) -> None:
    from tradeops.model import OrderRequest, Side

    short = OrderRequest(venue="bybit", symbol="BTC/USDT:USDT", side=Side.SELL, amount=Decimal(4), client_order_id="m1")
    _venue("bybit").place_order(short)  # initial margin 4 x 65019.5 / 5 = 52015.6 USDT, not movable
    usdt = _venue("bybit").balances()["USDT"]
    assert _within_tolerance(_usdt())  # on totals nothing would move

    balances = venue_balances(settings())
    plan = plan_rebalance(balances, settings())

    assert balances["bybit"]["USDT"] == usdt.free == usdt.total - Decimal("52015.6")
    assert {a.venue: a.before for a in plan.allocations}["bybit"] == usdt.free
    assert [(t.from_venue, t.to_venue) for t in plan.transfers] == [("binance", "bybit")]


def _task_instances(run_id: str) -> dict[str, Any]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run_id)
        return {(ti.task_id, ti.map_index): (ti.state, ti.start_date, ti.end_date) for ti in rows}


def test_rebalance_when_a_transfer_fails_then_lease_released_only_after_compensation_finished(
    paper_world: None,
) -> None:
    _move("bybit", "binance", "100000", "skew1")
    _move("okx", "binance", "100000", "skew2")
    steps = to_saga_steps(plan_rebalance(venue_balances(settings()), settings()))
    earlier_from_sender = sum(1 for step in steps[:1] if step["venue"] == steps[1]["venue"])
    _venue(steps[1]["venue"]).inject_fault("withdraw", "insufficient_funds", skip=earlier_from_sender)

    dag = load_dag(DAG_ID)
    run = dag.test(run_conf={"events": [_event()]})

    assert run.state == "failed"
    assert "compensate" in dag.get_task("release_lease").upstream_task_ids
    tis = _task_instances(run.run_id)
    compensate, release = tis[("compensate", -1)], tis[("release_lease", -1)]
    assert (str(compensate[0]), str(release[0])) == ("failed", "success")
    assert release[1] >= compensate[2]  # started after compensation ended
    assert leases.current("auto_rebalance") is None
