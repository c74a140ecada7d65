"""Flatten every venue at once (a thread each) and hand out the first snapshot within seconds.

A venue that fails never holds up the others. ``on_started`` is called once, from the calling
thread, right after every venue thread is started: the caller's bookkeeping (recording the
claimed events) runs while the venues are being flattened instead of before, so a slow or
failing record never delays the exit; its error is raised once every venue has finished.
``on_first_report`` is called once, from the calling thread, as soon as every venue finished
its first round or after ``stop_loss.first_report_after_seconds``, whichever comes first; a
venue still in its first round then shows as not flat. Its failure is logged, never raised:
the report informs, the flatten matters.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from tradeops.config import Settings
from tradeops.stoploss.loop import flatten_venue
from tradeops.venues.factory import GuardedVenue

log = logging.getLogger(__name__)

Snapshot = list[dict[str, Any]]


def not_measured(venue: str, error: str) -> dict[str, Any]:
    """The report line of a venue whose state was never read."""
    return {
        "venue": venue,
        "flat": False,
        "status": "not_flat",
        "rounds": 0,
        "orders_canceled": 0,
        "positions_closed": 0,
        "open_positions": 0,
        "open_orders": 0,
        "pending_open": [],
        "unsellable": [],
        "exposures": [],
        "measured": False,
        "gave_up": False,
        "errors": [error],
    }


class _Board:
    """The latest report of each venue, shared by the venue threads."""

    def __init__(self, venues: list[str]) -> None:
        self._venues = venues
        self._latest: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.first_round_done = threading.Event()

    def post(self, report: dict[str, Any]) -> None:
        with self._lock:
            self._latest[report["venue"]] = report
            if len(self._latest) == len(self._venues):
                self.first_round_done.set()

    def snapshot(self) -> Snapshot:
        with self._lock:
            return [self._latest.get(venue, not_measured(venue, "first round still running")) for venue in self._venues]


def flatten_desk(
    venues: list[str],
    open_one: Callable[[str], GuardedVenue],
    settings: Settings,
    *,
    key_prefix: str,
    deadline: datetime,
    on_first_report: Callable[[Snapshot], None],
    on_started: Callable[[], None] | None = None,
    **loop_kwargs: Any,
) -> Snapshot:
    """Flatten ``venues`` in parallel until each is flat (or stuck, or out of time); their reports.

    Raises what ``on_started`` raised, after every venue has finished."""
    board = _Board(venues)

    def one(name: str) -> dict[str, Any]:
        try:
            venue = open_one(name)
            report = flatten_venue(
                venue,
                settings,
                key_prefix=f"{key_prefix}/{name}",
                deadline=deadline,
                on_round=board.post,
                **loop_kwargs,
            )
            return report.to_dict()
        except Exception as exc:  # a venue that cannot even be opened is reported, never fatal
            log.exception("Stop %s failed", name)
            line = not_measured(name, f"{type(exc).__name__}: {exc}"[:500])
            board.post(line)
            return line

    started_error: Exception | None = None
    with ThreadPoolExecutor(max_workers=max(1, len(venues)), thread_name_prefix="flatten") as pool:
        futures = [pool.submit(one, name) for name in venues]
        if on_started is not None:
            try:
                on_started()
            except Exception as exc:  # raised below, once the venues are done: never abandon a flatten
                log.exception("Bookkeeping while flattening failed; flattening goes on")
                started_error = exc
        board.first_round_done.wait(settings.stop_loss.first_report_after_seconds)
        try:
            on_first_report(board.snapshot())
        except Exception:
            log.exception("The first stop-loss report could not be sent; flattening goes on")
        reports = [future.result() for future in futures]
    if started_error is not None:
        raise started_error
    return reports
