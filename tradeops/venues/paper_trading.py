"""Order matching of the paper exchange: place, fill, rest, cancel (one connection, venue locked).

Market orders and marketable limit orders fill at once at the mark price as taker. A limit
order that is not marketable rests as OPEN with its funds reserved (balance ``used``) and fills
at its limit price as maker when a new mark price crosses it. On an equity venue outside
regular hours (``paper.equity_sessions``) every order rests, queued for the open: nothing fills
until a mark price set in regular hours (a queued market order then fills at that mark as taker).
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, Row, insert, select, update

from tradeops.errors import InsufficientFundsError, InvalidOrderError
from tradeops.model import Fill, MarketKind, Order, OrderRequest, OrderStatus, OrderType, Side
from tradeops.venues import paper_book as book
from tradeops.venues import paper_faults as faults
from tradeops.venues.paper_book import ZERO, PositionState, VenueSpec
from tradeops.venues.paper_tables import fills_table, orders_table

log = logging.getLogger(__name__)


def order_from_row(row: Row) -> Order:
    return Order(
        venue=row.venue,
        order_id=row.order_id,
        client_order_id=row.client_order_id,
        symbol=row.symbol,
        side=Side(row.side),
        order_type=OrderType(row.order_type),
        amount=row.amount,
        filled=row.filled,
        status=OrderStatus(row.status),
        price=row.price,
        average_price=row.average_price,
        fee=row.fee,
        fee_asset=row.fee_asset,
        reduce_only=row.reduce_only,
        created_at=row.created_at,
    )


def fill_from_row(row: Row) -> Fill:
    return Fill(
        venue=row.venue,
        order_id=row.order_id,
        symbol=row.symbol,
        side=Side(row.side),
        amount=row.amount,
        price=row.price,
        fee=row.fee,
        fee_asset=row.fee_asset,
        at=row.at,
    )


def find_order_row(conn: Connection, venue: str, client_order_id: str) -> Row | None:
    return conn.execute(
        select(orders_table).where(orders_table.c.venue == venue, orders_table.c.client_order_id == client_order_id)
    ).first()


def _order_row(conn: Connection, order_id: str) -> Row:
    return conn.execute(select(orders_table).where(orders_table.c.order_id == order_id)).one()


def position_after(state: PositionState, delta: Decimal, price: Decimal) -> tuple[PositionState, Decimal]:
    """The position after trading signed ``delta`` at ``price``, and the PnL realised by it."""
    size, entry = state.size, state.entry_price
    if size == 0 or (size > 0) == (delta > 0):
        new_size = size + delta
        new_entry = (abs(size) * entry + abs(delta) * price) / abs(new_size)
        return PositionState(new_size, new_entry, state.realized_pnl), ZERO
    closed = min(abs(delta), abs(size))
    realised = closed * (price - entry) * (1 if size > 0 else -1)
    new_size = size + delta
    if new_size == 0:
        new_entry = ZERO
    elif (new_size > 0) == (size > 0):
        new_entry = entry
    else:
        new_entry = price
    return PositionState(new_size, new_entry, state.realized_pnl + realised), realised


def check_reduce_only(spec: VenueSpec, size: Decimal, side: Side, amount: Decimal, label: str) -> None:
    """Reject a reduce-only order that would open, increase or flip the position."""
    if size == 0 or (size > 0) == (side is Side.BUY):
        raise InvalidOrderError(
            f"{spec.name}: reduce-only order {label} ({side.value} {amount}) would increase the "
            f"position (current size {size}); reduce-only may only shrink it"
        )
    if amount > abs(size):
        raise InvalidOrderError(
            f"{spec.name}: reduce-only order {label} amount {amount} exceeds the position size "
            f"{abs(size)} and would flip it; send at most {abs(size)}"
        )


def _is_marketable(side: Side, limit: Decimal, mark: Decimal) -> bool:
    return mark <= limit if side is Side.BUY else mark >= limit


def _reservation(spec: VenueSpec, request: OrderRequest, price: Decimal | None) -> tuple[str | None, Decimal]:
    """(asset, amount) a resting order holds: enough to pay its fill at ``price`` plus the fee."""
    base, quote, kind = spec.market(request.symbol)
    if price is None:
        raise InvalidOrderError(f"{spec.name}: limit order {request.client_order_id} has no price")
    notional = request.amount * price
    fee = notional * spec.fee_rate(maker=request.order_type is OrderType.LIMIT)
    if kind is MarketKind.PERP:
        if request.reduce_only:
            return None, ZERO
        return quote, notional / spec.config.leverage + fee
    if request.side is Side.BUY:
        return quote, notional + fee
    return base, request.amount


def place(conn: Connection, spec: VenueSpec, request: OrderRequest, now: datetime) -> Order:
    """Create the order and fill it or rest it. Raises before anything is written on rejection."""
    kind = spec.market(request.symbol)[2]
    if kind is MarketKind.PERP and request.reduce_only:
        size = book.get_position(conn, spec.name, request.symbol).size
        check_reduce_only(spec, size, request.side, request.amount, request.client_order_id)
    mark = book.mark_of(conn, spec.name, request.symbol)
    seq = book.next_order_seq(conn, spec.name)
    order_id = f"paper-{spec.name}-{seq}"
    conn.execute(
        insert(orders_table).values(
            order_id=order_id,
            venue=spec.name,
            seq=seq,
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side.value,
            order_type=request.order_type.value,
            amount=request.amount,
            filled=ZERO,
            price=request.price,
            average_price=None,
            fee=ZERO,
            fee_asset=fee_asset(spec, request),
            status=OrderStatus.OPEN.value,
            reduce_only=request.reduce_only,
            reserved_asset=None,
            reserved_amount=ZERO,
            created_at=now,
            updated_at=now,
        )
    )
    row = _order_row(conn, order_id)
    if spec.queues_for_open(now):
        _reserve(conn, spec, request, order_id, request.price or mark)
        log.info("%s queued %s for the open (outside regular trading hours)", spec.name, order_id)
    elif request.order_type is OrderType.MARKET or _is_marketable(request.side, request.price or mark, mark):
        _take(conn, spec, row, mark, now)
    else:
        _reserve(conn, spec, request, order_id, request.price)
    return order_from_row(_order_row(conn, order_id))


def fee_asset(spec: VenueSpec, request: OrderRequest) -> str:
    """The asset an order's fee is taken in: the quote, except spot buys on a venue that takes
    fees from what the account receives (``spot_fee_asset: received``), which pay in the base."""
    base, quote, kind = spec.market(request.symbol)
    if kind is MarketKind.SPOT and request.side is Side.BUY and spec.config.spot_fee_asset == "received":
        return base
    return quote


def _take(conn: Connection, spec: VenueSpec, row: Row, mark: Decimal, now: datetime) -> None:
    """Fill a taker order at the mark, unless a scripted fill outcome (``fill`` fault) says the
    venue expired it, rejected it after accepting it, or filled only half of it."""
    outcome = faults.pop(conn, spec.name, faults.FILL)
    if outcome is None:
        _execute(conn, spec, row, price=mark, maker=False, now=now, check_funds=True)
        return
    if outcome.error == "partial":
        _execute(conn, spec, row, price=mark, maker=False, now=now, check_funds=True, amount=row.amount / 2)
        status = OrderStatus.EXPIRED
    else:
        status = OrderStatus.EXPIRED if outcome.error == "expire" else OrderStatus.REJECTED
    log.warning("%s order %s %s (scripted fill outcome '%s')", spec.name, row.order_id, status.value, outcome.error)
    conn.execute(
        update(orders_table).where(orders_table.c.order_id == row.order_id).values(status=status.value, updated_at=now)
    )


def _reserve(conn: Connection, spec: VenueSpec, request: OrderRequest, order_id: str, price: Decimal | None) -> None:
    asset, amount = _reservation(spec, request, price)
    if asset is None:
        return
    book.require_available(conn, spec, asset, amount, f"limit order {request.client_order_id}")
    book.change_balance(conn, spec.name, asset, free=-amount, used=amount)
    conn.execute(
        update(orders_table)
        .where(orders_table.c.order_id == order_id)
        .values(reserved_asset=asset, reserved_amount=amount)
    )


def _release(conn: Connection, spec: VenueSpec, row: Row) -> None:
    if row.reserved_asset is None or row.reserved_amount == 0:
        return
    book.change_balance(conn, spec.name, row.reserved_asset, free=row.reserved_amount, used=-row.reserved_amount)
    conn.execute(update(orders_table).where(orders_table.c.order_id == row.order_id).values(reserved_amount=ZERO))


def _execute(
    conn: Connection,
    spec: VenueSpec,
    row: Row,
    *,
    price: Decimal,
    maker: bool,
    now: datetime,
    check_funds: bool,
    amount: Decimal | None = None,
) -> None:
    """Fill the order (or ``amount`` of it) at ``price``: move balances / position, record the fill."""
    side = Side(row.side)
    amount = row.amount if amount is None else amount
    base = spec.market(row.symbol)[0]
    rate = spec.fee_rate(maker=maker)
    fee = amount * rate if row.fee_asset == base else amount * price * rate
    if spec.market(row.symbol)[2] is MarketKind.PERP:
        _apply_perp(conn, spec, row.symbol, side.sign * amount, price, fee, check_funds=check_funds)
    else:
        in_base = row.fee_asset == base
        _apply_spot(conn, spec, row.symbol, side, amount, price, fee, check_funds=check_funds, fee_in_base=in_base)
    conn.execute(
        update(orders_table)
        .where(orders_table.c.order_id == row.order_id)
        .values(filled=amount, average_price=price, fee=fee, status=OrderStatus.FILLED.value, updated_at=now)
    )
    conn.execute(
        insert(fills_table).values(
            venue=spec.name,
            order_id=row.order_id,
            symbol=row.symbol,
            side=side.value,
            amount=amount,
            price=price,
            fee=fee,
            fee_asset=row.fee_asset,
            liquidity="maker" if maker else "taker",
            at=now,
        )
    )
    log.info(
        "%s filled %s %s %s %s @ %s fee %s",
        spec.name,
        row.order_id,
        side.value,
        amount,
        row.symbol,
        price,
        fee,
    )


def _apply_spot(
    conn: Connection,
    spec: VenueSpec,
    symbol: str,
    side: Side,
    amount: Decimal,
    price: Decimal,
    fee: Decimal,
    *,
    check_funds: bool,
    fee_in_base: bool = False,
) -> None:
    base, quote, _kind = spec.market(symbol)
    cost = amount * price
    if side is Side.BUY:
        quote_fee, base_fee = (Decimal(0), fee) if fee_in_base else (fee, Decimal(0))
        if check_funds:
            book.require_available(conn, spec, quote, cost + quote_fee, f"buying {amount} {base}")
        book.change_balance(conn, spec.name, quote, free=-(cost + quote_fee))
        book.change_balance(conn, spec.name, base, free=amount - base_fee)
        return
    if check_funds:
        book.require_available(conn, spec, base, amount, f"selling {amount} {base}")
    book.change_balance(conn, spec.name, base, free=-amount)
    book.change_balance(conn, spec.name, quote, free=cost - fee)


def _apply_perp(
    conn: Connection,
    spec: VenueSpec,
    symbol: str,
    delta: Decimal,
    price: Decimal,
    fee: Decimal,
    *,
    check_funds: bool,
) -> None:
    _base, quote, _kind = spec.market(symbol)
    before = book.get_position(conn, spec.name, symbol)
    after, realised = position_after(before, delta, price)
    grows = abs(after.size) > abs(before.size) or (after.size * before.size) < 0
    if check_funds and grows:
        _check_margin(conn, spec, symbol, quote, after.size, realised - fee)
    book.change_balance(conn, spec.name, quote, free=realised - fee)
    book.save_position(conn, spec.name, symbol, after)


def _check_margin(
    conn: Connection, spec: VenueSpec, symbol: str, quote: str, new_size: Decimal, cash_change: Decimal
) -> None:
    """The wallet after the trade must cover the initial margin of every position after it."""
    mark = book.mark_of(conn, spec.name, symbol)
    free, _used = book.get_balance(conn, spec.name, quote)
    others = book.margin_used(conn, spec, quote, exclude=symbol)
    needed = abs(new_size) * mark / spec.config.leverage
    have = free + cash_change - others
    if have < needed:
        raise InsufficientFundsError(
            f"{spec.name}: position {new_size} {symbol} needs initial margin {needed} {quote} "
            f"(leverage {spec.config.leverage}); only {have} {quote} available after fees"
        )


def cancel(conn: Connection, spec: VenueSpec, row: Row, now: datetime) -> None:
    """Cancel an OPEN order and release what it reserved (no-op for any other status)."""
    if row.status != OrderStatus.OPEN.value:
        return
    _release(conn, spec, row)
    conn.execute(
        update(orders_table)
        .where(orders_table.c.order_id == row.order_id)
        .values(status=OrderStatus.CANCELED.value, updated_at=now)
    )


def match_resting(conn: Connection, spec: VenueSpec, symbol: str, now: datetime) -> list[Order]:
    """Fill, as maker at their limit price, the open orders that the current mark crosses (and
    market orders queued for the open, as taker at the mark); nothing outside trading hours."""
    if spec.queues_for_open(now):
        return []
    mark = book.mark_of(conn, spec.name, symbol)
    rows = conn.execute(
        select(orders_table)
        .where(
            orders_table.c.venue == spec.name,
            orders_table.c.symbol == symbol,
            orders_table.c.status == OrderStatus.OPEN.value,
        )
        .order_by(orders_table.c.seq)
    ).all()
    filled: list[Order] = []
    for row in rows:
        queued_market = row.order_type == OrderType.MARKET.value
        if not queued_market and not _is_marketable(Side(row.side), row.price, mark):
            continue
        price = mark if queued_market else row.price
        if _fill_resting(conn, spec, row, now, price=price, maker=not queued_market):
            filled.append(order_from_row(_order_row(conn, row.order_id)))
    return filled


def _fill_resting(conn: Connection, spec: VenueSpec, row: Row, now: datetime, *, price: Decimal, maker: bool) -> bool:
    """Fill one resting order; a reduce-only order the position no longer allows is canceled."""
    if row.reduce_only:
        size = book.get_position(conn, spec.name, row.symbol).size
        try:
            check_reduce_only(spec, size, Side(row.side), row.amount, row.client_order_id)
        except InvalidOrderError as exc:
            log.warning("%s canceling resting order %s: %s", spec.name, row.order_id, exc)
            cancel(conn, spec, row, now)
            return False
    _release(conn, spec, row)
    _execute(conn, spec, row, price=price, maker=maker, now=now, check_funds=False)
    return True
