"""Money-moving saga steps, each side by side with its named undo.

Every action uses the step's idempotency key as the venue's client order id / transfer id, so a
retried step finds its earlier effect instead of acting twice. Every undo asks the venue what
actually happened before acting, and derives its own key from the step's key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from tradeops.config import Settings
from tradeops.config import settings as load_settings
from tradeops.errors import (
    InvalidOrderError,
    OutcomeUnknownError,
    StillSettlingError,
    TemporaryVenueError,
    UndoIncompleteError,
)
from tradeops.model import (
    MarketKind,
    Order,
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
from tradeops.venues.factory import GuardedVenue, open_venue


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


MAX_REVERSE_ATTEMPTS = 5


def reverse_key(key: str, attempt: int) -> str:
    """The client order id of the ``attempt``-th order trading back the step ``key`` (1-based)."""
    return undo_key(key) if attempt == 1 else undo_key(f"{key}\x1f{attempt}")


def base_change(order: Order) -> Decimal:
    """The signed change of the account's base exposure caused by ``order``'s fills.

    Perps: the position moved by the filled size. Spot: what the account actually received or
    gave up, so a fee taken in the base asset is counted (a buy of 1 BTC paying 0.001 BTC fee
    brought 0.999 BTC).
    """
    base, _quote, kind = parse_symbol(order.symbol)
    signed = order.filled * order.side.sign
    if kind is MarketKind.PERP or order.fee_asset != base:
        return signed
    return signed - order.fee


def _settled_order(venue: GuardedVenue, key: str, symbol: str) -> Order | None:
    """The order ``key`` in a final state: an open one is canceled first; None if there is none."""
    order = venue.get_order(key, symbol)
    if order is None or order.status is not OrderStatus.OPEN:
        return order
    order = venue.cancel_order(key, symbol) or order
    if order.status is OrderStatus.OPEN:
        raise TemporaryVenueError(f"order {key} on {venue.name} is still open after a cancel; checking again later")
    return order


def _reverse_is_reduce_only(venue: GuardedVenue, symbol: str, side: Side, amount: Decimal) -> bool:
    """Reduce-only when the reverse order only shrinks the live perp position (a step that flipped
    the position through zero cannot be traded back reduce-only)."""
    if parse_symbol(symbol)[2] is not MarketKind.PERP:
        return False
    position = venue.exposure(symbol)
    return position != 0 and (position > 0) == (side is Side.SELL) and amount <= abs(position)


def _trade_back(venue: GuardedVenue, symbol: str, key: str, target: Decimal) -> tuple[Decimal, list[Order]]:
    """Trade ``target`` (signed base change to undo) back in up to MAX_REVERSE_ATTEMPTS orders.

    Each attempt has its own deterministic key, so a retried undo finds the attempts already
    made (and what they really filled) instead of trading again. A reverse order that expired,
    was rejected or filled only partly leaves the rest for the next attempt. Returns what is
    still left (signed; zero when done) and the reverse orders.
    """
    dust = load_settings().stop_loss.dust_of(parse_symbol(symbol)[0])  # below a lot: counts as done
    left = target
    reverses: list[Order] = []
    for attempt in range(1, MAX_REVERSE_ATTEMPTS + 1):
        if abs(left) <= dust:
            break
        attempt_key = reverse_key(key, attempt)
        order = _settled_order(venue, attempt_key, symbol)
        if order is None:
            side = Side.SELL if left > 0 else Side.BUY
            reverse = OrderRequest(
                venue=venue.name,
                symbol=symbol,
                side=side,
                amount=abs(left),
                client_order_id=attempt_key,
                reduce_only=_reverse_is_reduce_only(venue, symbol, side, abs(left)),
            )
            venue.place_order(reverse, exit_only=True)
            order = _settled_order(venue, attempt_key, symbol)
            if order is None:
                raise OutcomeUnknownError(f"reverse order {attempt_key} on {venue.name} was placed but cannot be found")
        reverses.append(order)
        left += base_change(order)
    return left, reverses


def trade_back_order(venue: GuardedVenue, key: str, symbol: str, what: str) -> UndoResult:
    """Undo the order with client id ``key``: report only what the venue confirms.

    Cancels what is still open, then trades back the fills (reduce-only for perps where that
    fits, exit-only so it passes while HALTED). "Undone" means the reverse orders' fills bring
    the exposure the order added back to zero (within the asset's ``stop_loss.dust``, what no
    order can trade); an expired, rejected or partly filled reverse order is followed by another
    attempt, and what is still left after them is an error for a human. An order the venue
    cannot find is "nothing to undo" only on a venue that finds every order by client id;
    elsewhere it is an unknown outcome. ``what`` describes the order for those messages.
    """
    order = _settled_order(venue, key, symbol)
    if order is None:
        if not venue.finds_orders_by_client_id:
            raise OutcomeUnknownError(
                f"{venue.name} cannot look orders up by client id beyond the open ones: whether order "
                f"{key} ({what}) was placed is unknown"
            )
        return UndoResult(UndoOutcome.NOTHING_TO_UNDO, {"reason": "venue has no such order"})
    target = base_change(order)
    if target == 0:
        return UndoResult(UndoOutcome.NOTHING_TO_UNDO, {"reason": f"order {order.status.value}, nothing filled"})
    left, reverses = _trade_back(venue, symbol, key, target)
    detail = {"original": to_jsonable(order), "reverses": to_jsonable(reverses), "left": to_jsonable(left)}
    if abs(left) > load_settings().stop_loss.dust_of(parse_symbol(symbol)[0]):
        raise UndoIncompleteError(
            f"undo of order {key} on {venue.name}: the step changed {symbol} exposure by {target}; "
            f"after {len(reverses)} reverse order(s) {left} is still not traded back "
            f"({', '.join(f'{o.client_order_id}: {o.status.value} {o.filled}/{o.amount}' for o in reverses)})"
        )
    summary = ", ".join(
        f"{o.side.value} {o.filled}/{o.amount} {o.symbol} {o.status.value} (order {o.order_id})" for o in reverses
    )
    return UndoResult(UndoOutcome.UNDONE, {"reason": f"traded back: {summary}", **detail})


def undo_place_order(params: Params, key: str) -> UndoResult:
    """Trade back what the step's order really did (see ``trade_back_order``)."""
    request = order_request(params, key)
    what = f"{request.side.value} {request.amount} {request.symbol}"
    return trade_back_order(open_venue(request.venue), key, request.symbol, what)


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


def expected_arrival(transfer: Transfer, settings: Settings) -> datetime | None:
    """When ``transfer`` should have arrived: the venue's own estimate, else its route's settlement
    time from the configuration (Wise: ``wise.paper_settle_seconds``) after it was created."""
    from tradeops import wise  # fiat legs only: not imported at DAG parse time

    if transfer.settles_at is not None:
        return transfer.settles_at
    if transfer.created_at is None:
        return None
    if transfer.network == wise.WISE_NETWORK:
        return transfer.created_at + timedelta(seconds=settings.wise.paper_settle_seconds)
    source = settings.venues.get(transfer.from_venue)
    route = source.withdrawal.get(transfer.asset, {}).get(transfer.network) if source else None
    return transfer.created_at + timedelta(seconds=route.settle_seconds) if route else None


SendBack = Callable[[Transfer, str], Transfer]


def _undo_transfer(params: Params, key: str, what: str, send_back: SendBack) -> UndoResult:
    """Send back what arrived, and report it undone only once the money is back.

    The original still on its way, and then the reverse transfer on its way, raise
    ``StillSettlingError`` with the time it should arrive (the compensation waits for it). A
    reverse transfer that failed is an error for a human.
    """
    settings = load_settings()
    source = _required(params, "venue")
    transfer = open_venue(source).get_transfer(key)
    if transfer is None or transfer.status is TransferStatus.FAILED:
        return UndoResult(UndoOutcome.NOTHING_TO_UNDO, {"reason": f"no {what} left {source}"})
    if transfer.status is TransferStatus.PENDING:
        until = expected_arrival(transfer, settings)
        raise StillSettlingError(
            f"{what} {key} from {source} is still on its way (due {until}); it is sent back once it arrived",
            until=until,
        )
    back_key = undo_key(key)
    destination = open_venue(transfer.to_venue)
    if destination.get_transfer(back_key) is None:
        send_back(transfer, back_key)
    back = destination.get_transfer(back_key)  # read back: what the venue says happened
    if back is None:
        raise OutcomeUnknownError(f"reverse transfer {back_key} from {transfer.to_venue} was sent but cannot be found")
    if back.status is TransferStatus.FAILED:
        raise UndoIncompleteError(
            f"the reverse of {what} {key} ({back.amount} {back.asset} from {back.from_venue} to {source}, "
            f"transfer {back_key}) FAILED: the funds are still on {back.from_venue}"
        )
    if back.status is TransferStatus.PENDING:
        until = expected_arrival(back, settings)
        raise StillSettlingError(
            f"reverse transfer {back_key} ({back.amount} {back.asset} back to {source}) is on its way (due {until})",
            until=until,
        )
    summary = f"sent back {back.amount} {back.asset} from {back.from_venue} to {source} over {back.network}"
    return UndoResult(
        UndoOutcome.UNDONE,
        {"reason": summary, "original": to_jsonable(transfer), "reverse": to_jsonable(back)},
    )


def undo_withdraw(params: Params, key: str) -> UndoResult:
    """Send back what arrived over the same network, once it arrived (see ``_undo_transfer``)."""
    source = _required(params, "venue")

    def send_back(transfer: Transfer, back_key: str) -> Transfer:
        return open_venue(transfer.to_venue).withdraw(
            transfer_id=back_key,
            asset=transfer.asset,
            amount=transfer.received,
            to_venue=source,
            network=transfer.network,
            compensation=True,
        )

    return _undo_transfer(params, key, "transfer", send_back)


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
    """Send back what arrived, once it arrived: through Wise for a fiat leg (paying a fee
    again), else as ``undo_withdraw`` does."""
    from tradeops import wise  # fiat legs only: not imported at DAG parse time

    if params.get("network") != wise.WISE_NETWORK:
        return undo_withdraw(params, key)
    source = _required(params, "venue")

    def send_back(transfer: Transfer, back_key: str) -> Transfer:
        return wise.send_transfer(
            load_settings(),
            transfer_id=back_key,
            from_venue=transfer.to_venue,
            to_venue=source,
            currency=transfer.asset,
            amount=transfer.received,
            compensation=True,
        )

    return _undo_transfer(params, key, "Wise transfer", send_back)
