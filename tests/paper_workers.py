"""Process entry points for the paper venue's multi-process tests (importable by 'spawn' children).

Each worker opens its own engine on the shared SQLite file, waits at a barrier so the racing
calls start together, and reports through a queue (never raising, so the parent sees errors).
"""

from __future__ import annotations

import multiprocessing
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradeops.config import load_settings
from tradeops.db import get_engine
from tradeops.model import OrderRequest, Side, to_jsonable
from tradeops.venues.paper import PaperVenue

SPAWN = multiprocessing.get_context("spawn")


def _venue(db_url: str, name: str) -> PaperVenue:
    return PaperVenue(name, load_settings(), engine=get_engine(db_url))


def place_order_at_barrier(db_url: str, barrier: Any, results: Any, client_order_id: str) -> None:
    venue = _venue(db_url, "binance")
    request = OrderRequest(
        venue="binance",
        symbol="BTC/USDT",
        side=Side.BUY,
        amount=Decimal("0.1"),
        client_order_id=client_order_id,
    )
    try:
        barrier.wait(timeout=120)
        results.put(("ok", to_jsonable(venue.place_order(request))))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(("error", repr(exc)))


def withdraw_at_barrier(db_url: str, barrier: Any, results: Any, transfer_id: str) -> None:
    venue = _venue(db_url, "binance")
    try:
        barrier.wait(timeout=120)
        transfer = venue.withdraw(
            transfer_id=transfer_id, asset="USDT", amount=Decimal(1000), to_venue="okx", network="TRC20"
        )
        results.put(("ok", to_jsonable(transfer)))
    except Exception as exc:
        results.put(("error", repr(exc)))


def ohlcv_in_process(db_url: str, now_iso: str, symbol: str, results: Any) -> None:
    now = datetime.fromisoformat(now_iso)
    venue = PaperVenue("binance", load_settings(), engine=get_engine(db_url), clock=lambda: now)
    try:
        results.put(("ok", to_jsonable(venue.ohlcv(symbol))))
    except Exception as exc:
        results.put(("error", repr(exc)))


def run_racers(target: Any, count: int, db_url: str, *args: Any) -> list[tuple[str, Any]]:
    """Run ``target(db_url, barrier, queue, *args)`` in ``count`` spawned processes at once."""
    barrier = SPAWN.Barrier(count)
    results = SPAWN.Queue()
    processes = [SPAWN.Process(target=target, args=(db_url, barrier, results, *args)) for _ in range(count)]
    return _collect(processes, results, count)


def run_once(target: Any, *args: Any) -> tuple[str, Any]:
    """Run ``target(*args, queue)`` in one spawned process and return what it reported."""
    results = SPAWN.Queue()
    return _collect([SPAWN.Process(target=target, args=(*args, results))], results, 1)[0]


def _collect(processes: list[Any], results: Any, count: int) -> list[tuple[str, Any]]:
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=180) for _ in range(count)]
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()
    return outcomes
