"""Every configured venue at once: reachable or not, its account (``venue_account``), its breaker.

All venues of the configuration are shown, not only those that have a breaker row (a venue
never used yet shows its breaker ``closed`` with 0 failures; breakers are read, never created).
The venues are read in parallel, one daemon thread each (``tradeops.desk.bounded``), and the
answer never waits longer than ``timeout_seconds``: a venue that has not answered by then is
``reachable: false`` with "no answer within N s", while its read carries on in the background
and closes the venue when it ends (the next poll waits for that read instead of starting another).

The body is cached for ``CACHE_SECONDS`` (3 s) per process and project database, because the
desk page polls every few seconds from every open browser: within that time every caller gets
the same body (its ``generated_at`` says when it was built), and concurrent callers wait for one
build instead of each asking every venue. One read per venue and database runs at a time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from tradeops.config import Settings
from tradeops.db import default_db_url, utcnow
from tradeops.desk.bounded import Read, Reads
from tradeops.desk.venue_account import open_for_reading, read_account
from tradeops.model import to_jsonable
from tradeops.saga import breaker
from tradeops.venues.base import Venue

CACHE_SECONDS = 3.0

_reads = Reads("desk-venue")
_cache_lock = threading.Lock()
_cache: tuple[Settings, tuple[Any, ...], float, dict[str, Any]] | None = None  # settings, key, built at, body


def snapshot(
    settings: Settings,
    timeout_seconds: float = 5,
    *,
    open_one: Callable[[str], Venue] | None = None,
    max_age_seconds: float = CACHE_SECONDS,
) -> dict[str, Any]:
    """``{"generated_at": time, "venues": [Venue, ...]}``: one per configured venue, by name.

    ``open_one`` opens a venue by name (default: ``venue_account.open_for_reading``, the factory
    without the breaker), as ``flatten_desk`` takes it; ``max_age_seconds`` is how old a cached
    body may be (0: read the venues now)."""
    global _cache
    key = (default_db_url(), timeout_seconds, open_one)
    with _cache_lock:
        cached = _cache
        if cached is not None and cached[1] == key and time.monotonic() - cached[2] < max_age_seconds:
            if cached[0] is settings or cached[0] == settings:
                return cached[3]
        body = _build(settings, timeout_seconds, open_one or partial(open_for_reading, settings=settings))
        _cache = (settings, key, time.monotonic(), body)
        return body


def _build(settings: Settings, timeout_seconds: float, open_one: Callable[[str], Venue]) -> dict[str, Any]:
    asked = time.monotonic()
    deadline = asked + timeout_seconds
    names = sorted(settings.venues)
    database = hashlib.sha256(default_db_url().encode()).hexdigest()[:12]  # no credentials in thread names
    reads = {
        name: _reads.start(f"{name}-{database}", partial(read_account, name, settings, open_one)) for name in names
    }
    breakers = {status.venue: status for status in breaker.all_statuses()}
    venues = []
    for name in names:
        read = reads[name]
        line = _line(read, read.wait(deadline - time.monotonic()), asked, timeout_seconds)
        venues.append(
            {"venue": name, "kind": settings.venues[name].kind, **line, "breaker": _breaker(breakers.get(name))}
        )
    return {"generated_at": to_jsonable(utcnow()), "venues": venues}


def _line(read: Read, answered: bool, asked: float, timeout_seconds: float) -> dict[str, Any]:
    """The venue's part of the body: its account, or why there is none."""
    if not answered:
        waiting = ""
        if read.started < asked:  # a read an earlier request started, still without an answer
            waiting = f" (still waiting for the read started {time.monotonic() - read.started:.0f} s ago)"
        return _unreachable(f"no answer within {timeout_seconds:g} s{waiting}")
    try:
        account = read.result()
    except Exception as exc:
        return _unreachable(f"{type(exc).__name__}: {exc}"[:1000])
    return {"reachable": True, "error": None, **account}


def _unreachable(error: str) -> dict[str, Any]:
    return {
        "reachable": False,
        "error": error,
        "checked_at": to_jsonable(utcnow()),
        "latency_ms": None,
        "balances": [],
        "positions": [],
        "exposure": [],
        "open_orders": [],
        "pnl": None,
    }


def _breaker(status: breaker.BreakerStatus | None) -> dict[str, Any]:
    """The venue's breaker; a venue never called through it has no row: closed, no failure.
    ``last_error`` is always None: the breaker records counts and times, not the error text."""
    return {
        "state": status.state.value if status else breaker.BreakerState.CLOSED.value,
        "consecutive_failures": status.consecutive_failures if status else 0,
        "opened_until": to_jsonable(status.opened_until) if status else None,
        "last_error": None,
    }
