"""Saga step pair that moves one venue's perp position to a target size: sized when it runs.

A hedge leg planned as a delta from a snapshot doubles when the position moved in between (a
second hedge run, a retried leg after a race). ``set_perp_position`` carries the *target* signed
size instead: when it runs it reads the live position and orders only the difference (client
order id = the step's key; reduce-only when it only shrinks the position; nothing when the
difference is below ``hedge.min_adjustment``). A retry first looks its own order up by key, so an
order that went through before an error is never placed again.

``undo_set_perp_position`` looks the step's order up by key and trades back what it actually
filled, as every order undo does (``tradeops.saga.actions.trade_back_order``): reverse orders
that expire or fill partly are followed by new attempts, UNDONE only when the fills add up, and
what is still left after them raises an operational error (a human must look).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from tradeops.config import settings as load_settings
from tradeops.errors import InvalidOrderError
from tradeops.model import MarketKind, OrderRequest, Side, parse_symbol, to_jsonable
from tradeops.saga.core import Params, UndoResult, saga_step
from tradeops.venues.base import Venue
from tradeops.venues.factory import open_venue

ZERO = Decimal(0)
SET_PERP_POSITION_ACTION = "tradeops.position_steps.set_perp_position"


def _text(params: Params, name: str) -> str:
    value = params.get(name)
    if not value:
        raise InvalidOrderError(f"step parameter '{name}' is missing")
    return str(value)


def leg_params(params: Params) -> tuple[str, str, Decimal]:
    """(venue, perp symbol, target signed size) of a ``set_perp_position`` step."""
    venue, symbol = _text(params, "venue"), _text(params, "symbol")
    if parse_symbol(symbol)[2] is not MarketKind.PERP:
        raise InvalidOrderError(f"step parameter 'symbol': '{symbol}' is not a perpetual")
    try:
        target = Decimal(str(params["target"]))
    except KeyError:
        raise InvalidOrderError("step parameter 'target' is missing") from None
    except InvalidOperation:
        raise InvalidOrderError(f"step parameter 'target' is not a number: {params['target']!r}") from None
    if not target.is_finite():
        raise InvalidOrderError(f"step parameter 'target' must be finite, got {target}")
    return venue, symbol, target


def live_position(venue: Venue, symbol: str) -> Decimal:
    """The signed position ``venue`` holds in ``symbol`` right now."""
    return sum((p.size for p in venue.positions() if p.symbol == symbol), ZERO)


def only_reduces(before: Decimal, after: Decimal) -> bool:
    """True when going from ``before`` to ``after`` shrinks the position without crossing zero."""
    same_side = after == 0 or (after > 0) == (before > 0)
    return same_side and abs(after) < abs(before)


def adjustment_order(
    venue: str, symbol: str, key: str, *, live: Decimal, target: Decimal, tolerance: Decimal
) -> OrderRequest | None:
    """The order taking ``live`` to ``target``; None when the gap is zero or below ``tolerance``."""
    gap = target - live
    if gap == 0 or abs(gap) < tolerance:
        return None
    return OrderRequest(
        venue=venue,
        symbol=symbol,
        side=Side.BUY if gap > 0 else Side.SELL,
        amount=abs(gap),
        client_order_id=key,
        reduce_only=only_reduces(live, target),
    )


def _check_notional(request: OrderRequest, mark: Decimal, limit: Decimal) -> None:
    notional = request.amount * mark
    if notional > limit:
        raise InvalidOrderError(
            f"{request.venue} {request.symbol}: adjustment of {request.amount} (notional {notional}) exceeds "
            f"hedge.max_adjustment_notional {limit}; the live position moved far from the plan: not trimmed"
        )


@saga_step(undo="undo_set_perp_position")
def set_perp_position(params: Params, key: str) -> dict[str, Any]:
    """Take the venue's position in the symbol to ``target``, ordering only the live difference."""
    name, symbol, target = leg_params(params)
    venue = open_venue(name)
    summary: dict[str, Any] = {"venue": name, "symbol": symbol, "target": str(target)}
    earlier = venue.get_order(key, symbol)
    if earlier is not None:  # a retry after the order went through: never order twice
        return {**summary, "found_by_key": True, "order": to_jsonable(earlier)}
    live = live_position(venue, symbol)
    hedge = load_settings().hedge
    tolerance = hedge.min_adjustment.get(parse_symbol(symbol)[0], ZERO)
    request = adjustment_order(name, symbol, key, live=live, target=target, tolerance=tolerance)
    summary["before"] = str(live)
    if request is None:
        return {**summary, "order": None, "reason": f"within min_adjustment {tolerance} of the target"}
    _check_notional(request, venue.mark_price(symbol), hedge.max_adjustment_notional)
    return {**summary, "order": to_jsonable(venue.place_order(request))}


def undo_set_perp_position(params: Params, key: str) -> UndoResult:
    """Trade back what the step's order actually filled, verified as every undo is
    (``tradeops.saga.actions.trade_back_order``); nothing to undo when it filled nothing."""
    from tradeops.saga.actions import trade_back_order

    name, symbol, target = leg_params(params)
    return trade_back_order(open_venue(name), key, symbol, f"hedge leg to {target} {symbol}")


__all__ = [
    "SET_PERP_POSITION_ACTION",
    "adjustment_order",
    "leg_params",
    "live_position",
    "only_reduces",
    "set_perp_position",
    "undo_set_perp_position",
]
