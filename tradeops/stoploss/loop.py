"""Flatten one venue and keep at it: cancel, close both legs, re-check, back off, until flat.

Each round cancels every open order (except our own exit orders already waiting for an equity
open), reads the venue (its state is the truth, not ours), places the exits of every open leg
in one go and reads it again. An error ends the round, never the loop: a venue answering
429/503 for minutes is flattened when it comes back. The loop ends when the venue is flat, when
no further round can change anything (shares waiting for the open, an asset no market here can
sell), or at ``deadline`` (``stop_loss.max_duration_seconds`` from the start of the run).
Between rounds it waits ``stop_loss.backoff(round)`` and logs one progress line per round.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tradeops.config import Settings
from tradeops.db import utcnow
from tradeops.errors import VenueError
from tradeops.stoploss.exits import exit_orders
from tradeops.stoploss.exposure import VenueState, measure
from tradeops.venues.factory import GuardedVenue

log = logging.getLogger(__name__)

RoundCallback = Callable[[dict[str, Any]], None]


@dataclass
class FlattenReport:
    """How far one venue's flatten got; ``state`` is the last successful read."""

    venue: str
    rounds: int = 0
    orders_canceled: int = 0
    positions_closed: int = 0  # exit orders placed
    state: VenueState | None = None
    round_error: str | None = None  # the error of the latest round, None when it read the venue
    gave_up: bool = False  # the deadline came before the venue was flat
    errors: list[str] = field(default_factory=list)
    own_order_ids: set[str] = field(default_factory=set)

    @property
    def flat(self) -> bool:
        return self.state is not None and self.round_error is None and self.state.flat

    @property
    def status(self) -> str:
        if self.state is None or self.round_error is not None:
            return "not_flat"
        return self.state.status

    def to_dict(self) -> dict[str, Any]:
        state = self.state
        return {
            "venue": self.venue,
            "flat": self.flat,
            "status": self.status,
            "rounds": self.rounds,
            "orders_canceled": self.orders_canceled,
            "positions_closed": self.positions_closed,
            "open_positions": state.open_legs if state else 0,
            "open_orders": len(state.open_orders) if state else 0,
            "pending_open": sorted(o.symbol for o in state.pending_open) if state else [],
            "unsellable": list(state.unsellable) if state else [],
            "exposures": [e.to_dict() for e in state.exposures] if state else [],
            "measured": state is not None,
            "gave_up": self.gave_up,
            "errors": self.errors[-20:],
        }


def _cancel_open_orders(venue: GuardedVenue, state: VenueState, report: FlattenReport) -> None:
    for order in state.open_orders:
        venue.cancel_order(order.client_order_id, order.symbol)
        report.orders_canceled += 1


def _place_exits(
    venue: GuardedVenue, settings: Settings, state: VenueState, prefix: str, report: FlattenReport
) -> None:
    """Every exit of the round, one after another; a refused order does not stop the others."""
    failures = []
    for exit_order in exit_orders(state, settings, prefix, report.rounds):
        request = exit_order.request
        try:
            venue.place_order(request, exit_only=exit_order.exit_only)
        except VenueError as exc:
            failures.append(f"{request.side.value} {request.amount} {request.symbol}: {type(exc).__name__}: {exc}")
            continue
        report.own_order_ids.add(request.client_order_id)
        report.positions_closed += 1
    if failures:
        raise _RoundFailed("; ".join(failures))


class _RoundFailed(VenueError):
    """Some exit orders of a round were refused (their errors joined)."""


def _round(venue: GuardedVenue, settings: Settings, prefix: str, report: FlattenReport) -> None:
    state = measure(venue, settings, report.own_order_ids)
    if state.open_orders:
        _cancel_open_orders(venue, state, report)
        state = measure(venue, settings, report.own_order_ids)
    report.state = state
    if state.flat or not state.actionable:
        return
    _place_exits(venue, settings, state, prefix, report)
    report.state = measure(venue, settings, report.own_order_ids)


def _progress(report: FlattenReport, wait: float, left: float) -> None:
    state = report.state
    legs = "unknown" if state is None else f"{state.open_legs} open leg(s), {len(state.open_orders)} open order(s)"
    if report.round_error:
        log.warning(
            "Stop %s round %d: not flat (%s; error: %s); next round in %.1fs, %.0fs left",
            report.venue,
            report.rounds,
            legs,
            report.round_error,
            wait,
            left,
        )
    else:
        log.warning(
            "Stop %s round %d: %s (%s); next round in %.1fs, %.0fs left",
            report.venue,
            report.rounds,
            report.status,
            legs,
            wait,
            left,
        )


def flatten_venue(
    venue: GuardedVenue,
    settings: Settings,
    *,
    key_prefix: str,
    deadline: datetime,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    on_round: RoundCallback | None = None,
) -> FlattenReport:
    """Cancel every order and close every leg on ``venue``, re-checking until flat or ``deadline``.

    At least one round runs, even past the deadline. ``on_round`` gets ``to_dict()`` after each.
    """
    report = FlattenReport(venue=venue.name)
    while True:
        report.rounds += 1
        try:
            _round(venue, settings, key_prefix, report)
            report.round_error = None
        except Exception as exc:  # any failure (venue, database) ends the round, never the loop
            report.round_error = f"{type(exc).__name__}: {exc}"[:500]
            report.errors.append(f"round {report.rounds}: {report.round_error}")
        if on_round is not None:
            on_round(report.to_dict())
        done = report.round_error is None and report.state is not None and not report.state.actionable
        if report.flat or done:
            log.warning("Stop %s round %d: %s", venue.name, report.rounds, report.status)
            return report
        left = (deadline - clock()).total_seconds()
        if left <= 0:
            report.gave_up = True
            log.error("Stop %s: gave up after %d rounds, not flat: %s", venue.name, report.rounds, report.round_error)
            return report
        wait = min(settings.stop_loss.backoff(report.rounds), left)
        _progress(report, wait, left)
        sleep(wait)
