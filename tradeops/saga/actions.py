"""Money-moving saga steps, each side by side with its named undo.

Every action uses the step's idempotency key as the venue's client order id / transfer id, so a
retried step finds its earlier effect instead of acting twice. Every undo asks the venue what
actually happened before acting, and derives its own key from the step's key.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from tradeops.config import settings as load_settings
from tradeops.errors import InvalidOrderError, TemporaryVenueError
from tradeops.model import (
    MarketKind,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    Transfer,
    TransferStatus,
    parse_symbol,
    to_jsonable,
)
from tradeops.saga.core import Params, UndoOutcome, UndoResult, saga_step
from tradeops.saga.keys import undo_key
from tradeops.venues.factory import open_venue


def _decimal(params: Params, name: str) -> Decimal:
    try:
        value = Decimal(str(params[name]))
    except KeyError:
        raise InvalidOrderError(f"step parameter '{name}' is missing") from None
    except InvalidOperation:
        raise InvalidOrderError(f"step parameter '{name}' is not a number: {params[name]!r}") from None
    if not value.is_finite() or value <= 0:
        raise InvalidOrderError(f"step parameter '{name}' must be a positive number, got {value}")
    return value


def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if not value:
        raise InvalidOrderError(f"step parameter '{name}' is missing")
    return str(value)


def order_request(params: Params, key: str) -> OrderRequest:
    """Build the order of a ``place_order`` step from its parameters."""
    try:
        side = Side(_required(params, "side"))
        order_type = OrderType(params.get("order_type", "market"))
    except ValueError as exc:
        raise InvalidOrderError(f"step parameter: {exc}") from None
    price = params.get("price")
    return OrderRequest(
        venue=_required(params, "venue"),
        symbol=_required(params, "symbol"),
        side=side,
        amount=_decimal(params, "amount"),
        client_order_id=key,
        order_type=order_type,
        price=_decimal(params, "price") if price is not None else None,
        reduce_only=bool(params.get("reduce_only", False)),
    )


@saga_step(undo="undo_place_order")
def place_order(params: Params, key: str) -> dict[str, Any]:
    """Place one order; the step's key is its client order id."""
    request = order_request(params, key)
    order = open_venue(request.venue).place_order(request)
    return to_jsonable(order)


def undo_place_order(params: Params, key: str) -> UndoResult:
    """Cancel what is still open and trade back what was filled (reduce-only for perps)."""
    request = order_request(params, key)
    venue = open_venue(request.venue)
    earlier = venue.get_order(undo_key(key), request.symbol)
    if earlier is not None:
        return UndoResult(
            UndoOutcome.UNDONE,
            {"reason": f"already undone by order {earlier.order_id}", "reverse": to_jsonable(earlier)},
        )
    order = venue.get_order(key, request.symbol)
    if order is None:
        return UndoResult(UndoOutcome.NOTHING_TO_UNDO, {"reason": "venue has no such order"})
    if order.status is OrderStatus.OPEN:
        order = venue.cancel_order(key, request.symbol) or order
    if order.filled == 0:
        return UndoResult(UndoOutcome.NOTHING_TO_UNDO, {"reason": f"order {order.status.value}, nothing filled"})
    is_perp = parse_symbol(request.symbol)[2] is MarketKind.PERP
    reverse = OrderRequest(
        venue=request.venue,
        symbol=request.symbol,
        side=request.side.opposite(),
        amount=order.filled,
        client_order_id=undo_key(key),
        reduce_only=is_perp and not request.reduce_only,
    )
    reversed_order = venue.place_order(reverse, exit_only=True)
    summary = f"{reverse.side} {reverse.amount} {reverse.symbol} (order {reversed_order.order_id})"
    return UndoResult(
        UndoOutcome.UNDONE,
        {"reason": f"traded back: {summary}", "original": to_jsonable(order), "reverse": to_jsonable(reversed_order)},
    )


@saga_step(undo="undo_withdraw")
def withdraw(params: Params, key: str) -> dict[str, Any]:
    """Move funds from one venue to another; the step's key is the transfer id."""
    transfer = open_venue(_required(params, "venue")).withdraw(
        transfer_id=key,
        asset=_required(params, "asset"),
        amount=_decimal(params, "amount"),
        to_venue=_required(params, "to_venue"),
        network=_required(params, "network"),
    )
    return to_jsonable(transfer)


def _arrived_transfer(source: str, key: str, what: str) -> Transfer | UndoResult:
    """The settled transfer ``key`` sent from ``source``, or the undo's answer when there is
    nothing (left) to send back; raises a temporary error while it is still on its way."""
    transfer = open_venue(source).get_transfer(key)
    if transfer is not None:
        earlier = open_venue(transfer.to_venue).get_transfer(undo_key(key))
        if earlier is not None:
            return UndoResult(
                UndoOutcome.UNDONE,
                {"reason": f"already sent back by transfer {earlier.transfer_id}", "reverse": to_jsonable(earlier)},
            )
    if transfer is None or transfer.status is TransferStatus.FAILED:
        return UndoResult(UndoOutcome.NOTHING_TO_UNDO, {"reason": f"no {what} left the venue"})
    if transfer.status is TransferStatus.PENDING:
        raise TemporaryVenueError(
            f"{what} {key} is still pending until {transfer.settles_at}; it can be sent back once settled"
        )
    return transfer


def _sent_back(original: Transfer, back: Transfer, how: str) -> UndoResult:
    summary = f"sent back {back.amount} {back.asset} from {back.from_venue} {how}"
    return UndoResult(
        UndoOutcome.UNDONE,
        {"reason": summary, "original": to_jsonable(original), "reverse": to_jsonable(back)},
    )


def undo_withdraw(params: Params, key: str) -> UndoResult:
    """Send back what arrived, once it has arrived (a pending transfer is retried later)."""
    source = _required(params, "venue")
    transfer = _arrived_transfer(source, key, "transfer")
    if isinstance(transfer, UndoResult):
        return transfer
    back = open_venue(transfer.to_venue).withdraw(
        transfer_id=undo_key(key),
        asset=transfer.asset,
        amount=transfer.received,
        to_venue=source,
        network=transfer.network,
    )
    return _sent_back(transfer, back, f"over {back.network}")


@saga_step(undo="undo_rebalance_transfer")
def rebalance_transfer(params: Params, key: str) -> dict[str, Any]:
    """One leg of a rebalance plan, with ``withdraw``'s parameters; the key is the transfer id.

    Network ``wise``: fiat between two fiat accounts through Wise (``asset`` is the currency).
    Any other network: handed to ``withdraw``. One action for every leg, so a plan's legs can
    run as one mapped saga step.
    """
    from tradeops import wise  # fiat legs only: not imported at DAG parse time

    if params.get("network") != wise.WISE_NETWORK:
        return withdraw(params, key)
    transfer = wise.send_transfer(
        load_settings(),
        transfer_id=key,
        from_venue=_required(params, "venue"),
        to_venue=_required(params, "to_venue"),
        currency=_required(params, "asset"),
        amount=_decimal(params, "amount"),
    )
    return to_jsonable(transfer)


def undo_rebalance_transfer(params: Params, key: str) -> UndoResult:
    """Send back what arrived, once it has arrived: through Wise for a fiat leg (paying a fee
    again), else as ``undo_withdraw`` does."""
    from tradeops import wise  # fiat legs only: not imported at DAG parse time

    if params.get("network") != wise.WISE_NETWORK:
        return undo_withdraw(params, key)
    source = _required(params, "venue")
    transfer = _arrived_transfer(source, key, "Wise transfer")
    if isinstance(transfer, UndoResult):
        return transfer
    back = wise.send_transfer(
        load_settings(),
        transfer_id=undo_key(key),
        from_venue=transfer.to_venue,
        to_venue=source,
        currency=transfer.asset,
        amount=transfer.received,
    )
    return _sent_back(transfer, back, "through Wise")
