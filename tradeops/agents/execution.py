"""The agent's trade as a saga step, side by side with its undo.

``agent_order`` places a market order whose client order id is the step's idempotency key (a
retry finds the order the venue already has, never a second one), then checks what the venue
says it filled: an order still open is a temporary state (the step retries and looks again); a
fill worse than ``max_slippage_bps`` from the decision's price fails the step after the order,
and the saga's compensation runs ``undo_agent_order``, which trades back exactly what the venue
confirms was filled (``tradeops.saga.actions.trade_back_order``).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tradeops.errors import InvalidOrderError, OrderRejectedError, TemporaryVenueError
from tradeops.model import OrderStatus, Side, to_jsonable
from tradeops.saga.actions import order_request, trade_back_order
from tradeops.saga.core import Params, UndoResult, saga_step
from tradeops.venues.factory import open_venue


class FillOutsideLimitsError(OrderRejectedError):
    """The venue filled the order at a price the agent's limits do not accept: the step fails
    after the order, and compensation trades the fill back."""


def slippage_bps(side: Side, fill_price: Decimal, reference: Decimal) -> Decimal:
    """How much worse than ``reference`` the fill is, in basis points (negative: better)."""
    return (fill_price - reference) / reference * Decimal(10_000) * side.sign


@saga_step(undo="undo_agent_order")
def agent_order(params: Params, key: str) -> dict[str, Any]:
    """Place the agent's market order and accept it only within its slippage limit."""
    request = order_request({**params, "order_type": "market"}, key)
    try:
        reference = Decimal(str(params["reference_price"]))
        limit = Decimal(str(params["max_slippage_bps"]))
    except (KeyError, ArithmeticError) as exc:
        raise InvalidOrderError(f"step parameter reference_price / max_slippage_bps: {exc!r}") from None
    venue = open_venue(request.venue)
    order = venue.place_order(request)
    if order.status is OrderStatus.OPEN:
        raise TemporaryVenueError(
            f"order {key} ({request.side.value} {request.amount} {request.symbol}) is still open "
            f"({order.filled} filled): looking again"
        )
    result = to_jsonable(order)
    if order.filled > 0 and order.average_price is not None:
        slipped = slippage_bps(request.side, order.average_price, reference)
        result["slippage_bps"] = str(slipped.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))
        if slipped > limit:
            raise FillOutsideLimitsError(
                f"order {key} filled {order.filled} {request.symbol} at {order.average_price}, "
                f"{slipped.quantize(Decimal('0.1'), rounding=ROUND_HALF_EVEN)} bps worse than the decision's "
                f"{reference} (limit {limit} bps): trading it back"
            )
    return result


def undo_agent_order(params: Params, key: str) -> UndoResult:
    """Trade back what the agent's order really filled (what the venue confirms, nothing more)."""
    request = order_request({**params, "order_type": "market"}, key)
    what = f"agent {params.get('agent', '?')}: {request.side.value} {request.amount} {request.symbol}"
    return trade_back_order(open_venue(request.venue), key, request.symbol, what)
