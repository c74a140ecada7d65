"""``tradeops venue ...``: balances, positions and orders of every venue; paper exchange controls."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from tradeops.cli.output import print_json, print_table
from tradeops.config import settings
from tradeops.db import get_engine
from tradeops.errors import TradeopsError
from tradeops.model import Order
from tradeops.schema import require_current, upgrade
from tradeops.venues.base import Venue
from tradeops.venues.factory import open_raw_venue
from tradeops.venues.paper import FAULTABLE_METHODS, PaperVenue, seed_paper_world
from tradeops.venues.paper_faults import ERRORS as FAULT_ERRORS
from tradeops.venues.paper_faults import FILL, FILL_OUTCOMES

Handler = Callable[[argparse.Namespace], int]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "venue",
        help="inspect venues (balances, positions, orders) and drive the paper exchange",
        description="Read balances, positions and orders of the configured venues, and control the "
        "simulated paper exchange (mark prices, funding rates, seeding, drill faults). Commands that "
        "take --venue default to every configured venue.",
    )
    commands = parser.add_subparsers(dest="venue_command", metavar="ACTION", required=True)
    _register_reads(commands)
    _register_paper_controls(commands)


def _command(
    commands: argparse._SubParsersAction, name: str, handler: Handler, *, summary: str, description: str
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=summary, description=description)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=handler)
    return parser


def _add_venue_filter(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--venue",
        action="append",
        metavar="NAME",
        help="only this venue (repeatable; default: every configured venue)",
    )


def _register_reads(commands: argparse._SubParsersAction) -> None:
    balances = _command(
        commands,
        "balances",
        _balances,
        summary="wallet balances per venue and asset",
        description="Free, used (reserved by open limit orders) and total balance of every asset.",
    )
    _add_venue_filter(balances)
    positions = _command(
        commands,
        "positions",
        _positions,
        summary="open perpetual positions",
        description="Signed size (positive long), average entry, mark price and unrealised PnL of "
        "every open perpetual position.",
    )
    _add_venue_filter(positions)
    orders = _command(
        commands,
        "orders",
        _orders,
        summary="open orders (or recent orders with --all)",
        description="Orders still open; with --all the most recent orders of any status (paper venues).",
    )
    _add_venue_filter(orders)
    orders.add_argument("--all", action="store_true", help="recent orders of any status, newest first")
    orders.add_argument("--limit", type=int, default=50, metavar="N", help="with --all: how many (default 50)")


def _register_paper_controls(commands: argparse._SubParsersAction) -> None:
    price = _command(
        commands,
        "set-price",
        _set_price,
        summary="set a paper market's mark price (fills resting limit orders it crosses)",
        description="Set the mark price of SYMBOL on paper venue VENUE, e.g. "
        "`tradeops venue set-price binance BTC/USDT:USDT 61000`. Limit orders the new price "
        "crosses fill at their limit price as maker.",
    )
    price.add_argument("venue", metavar="VENUE", help="paper venue name")
    price.add_argument("symbol", metavar="SYMBOL", help="market symbol, e.g. BTC/USDT or BTC/USDT:USDT")
    price.add_argument("price", metavar="PRICE", type=_decimal, help="new mark price")
    rate = _command(
        commands,
        "set-funding",
        _set_funding,
        summary="set a paper perpetual's funding rate",
        description="Set the funding rate of perpetual SYMBOL on paper venue VENUE, per the venue's "
        "funding interval, e.g. `tradeops venue set-funding bybit BTC/USDT:USDT 0.0003`. "
        "Boundaries already passed keep the rate they were paid at.",
    )
    rate.add_argument("venue", metavar="VENUE", help="paper venue name")
    rate.add_argument("symbol", metavar="SYMBOL", help="perpetual symbol, e.g. BTC/USDT:USDT")
    rate.add_argument("rate", metavar="RATE", type=_decimal, help="rate per funding interval, e.g. 0.0001")
    seed = _command(
        commands,
        "seed",
        _seed,
        summary="create the paper venues from the configuration (idempotent)",
        description="Create the project tables and seed every paper venue (balances, mark prices, "
        "funding rates) that is not seeded yet. With --reset, wipe all paper state and seed again.",
    )
    seed.add_argument("--reset", action="store_true", help="wipe every paper table first, then seed")
    _register_fault_controls(commands)


def _register_fault_controls(commands: argparse._SubParsersAction) -> None:
    fault = _command(
        commands,
        "fault",
        _fault,
        summary="schedule a fault on a paper venue (drills)",
        description="Make the next --times calls of METHOD on paper venue VENUE raise ERROR. With "
        "--phase after, the call's effect is committed first (a timeout after the side effect).",
    )
    fault.add_argument("venue", metavar="VENUE", help="paper venue name")
    fault.add_argument(
        "method",
        metavar="METHOD",
        choices=sorted(FAULTABLE_METHODS | {FILL}),
        help=f"venue method, or '{FILL}' to script how the next taker orders end",
    )
    fault.add_argument(
        "error",
        metavar="ERROR",
        choices=sorted(set(FAULT_ERRORS) | FILL_OUTCOMES),
        help=f"{', '.join(sorted(FAULT_ERRORS))}; for '{FILL}': {', '.join(sorted(FILL_OUTCOMES))}",
    )
    fault.add_argument("--times", type=int, default=1, metavar="N", help="how many calls fail (default 1)")
    fault.add_argument("--phase", choices=["before", "after"], default="before", help="default: before")
    clear = _command(
        commands,
        "clear-faults",
        _clear_faults,
        summary="drop every scheduled fault of a paper venue",
        description="Drop every fault scheduled on paper venue VENUE.",
    )
    clear.add_argument("venue", metavar="VENUE", help="paper venue name")


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _fmt(value: Any) -> Any:
    return format(value, "f") if isinstance(value, Decimal) else value


def _open(name: str) -> Venue:
    """The venue called ``name``, without the trading guards: the CLI reads what the venue holds
    even while trading is HALTED or a circuit breaker is open. Live venues read their credentials
    from ``AIRFLOW_CONN_<ID>``."""
    return open_raw_venue(name, settings=settings())


def _open_paper(name: str) -> PaperVenue:
    venue = _open(name)
    if not isinstance(venue, PaperVenue):
        raise TradeopsError(f"venue '{name}' is live; this command works on paper venues only")
    return venue


def _venue_names(args: argparse.Namespace) -> list[str]:
    return list(args.venue) if args.venue else list(settings().venues)


def _balances(args: argparse.Namespace) -> int:
    require_current()
    balances = [b for name in _venue_names(args) for b in _open(name).balances().values()]
    if args.json:
        print_json(balances)
        return 0
    rows = [[b.venue, b.asset, _fmt(b.free), _fmt(b.used), _fmt(b.total)] for b in balances]
    print_table(["venue", "asset", "free", "used", "total"], rows)
    return 0


def _positions(args: argparse.Namespace) -> int:
    require_current()
    positions = [p for name in _venue_names(args) for p in _open(name).positions()]
    if args.json:
        print_json(positions)
        return 0
    if not positions:
        print("no open positions")
        return 0
    headers = ["venue", "symbol", "size", "entry", "mark", "notional", "unrealized pnl"]
    print_table(
        headers,
        [
            [
                p.venue,
                p.symbol,
                *map(_fmt, (p.size, p.entry_price, p.mark_price, p.notional, p.unrealized_pnl)),
            ]
            for p in positions
        ],
    )
    return 0


def _orders(args: argparse.Namespace) -> int:
    require_current()
    orders: list[Order] = []
    for name in _venue_names(args):
        if args.all:
            orders.extend(_open_paper(name).recent_orders(limit=args.limit))
        else:
            orders.extend(_open(name).open_orders())
    if args.json:
        print_json(orders)
        return 0
    if not orders:
        print("no orders" if args.all else "no open orders")
        return 0
    _print_orders(orders)
    return 0


def _print_orders(orders: list[Order]) -> None:
    headers = ["venue", "order id", "client order id", "symbol", "side", "type", "amount", "filled"]
    headers += ["price", "avg price", "fee", "status", "created"]
    rows = [
        [o.venue, o.order_id, o.client_order_id, o.symbol, o.side.value, o.order_type.value]
        + [_fmt(v) for v in (o.amount, o.filled, o.price, o.average_price, o.fee)]
        + [o.status.value, o.created_at]
        for o in orders
    ]
    print_table(headers, rows)


def _set_price(args: argparse.Namespace) -> int:
    require_current()
    venue = _open_paper(args.venue)
    filled = venue.set_mark_price(args.symbol, args.price)
    if args.json:
        print_json({"venue": venue.name, "symbol": args.symbol, "mark_price": args.price, "filled": filled})
        return 0
    print(f"{venue.name} {args.symbol}: mark price set to {_fmt(args.price)}")
    if filled:
        print(f"{len(filled)} resting order(s) filled:")
        _print_orders(filled)
    return 0


def _set_funding(args: argparse.Namespace) -> int:
    require_current()
    rate = _open_paper(args.venue).set_funding_rate(args.symbol, args.rate)
    if args.json:
        print_json(rate)
        return 0
    print(
        f"{rate.venue} {rate.symbol}: funding rate {_fmt(rate.rate)} per {rate.interval_hours}h "
        f"(next funding at {rate.next_funding_at:%Y-%m-%d %H:%M} UTC)"
    )
    return 0


def _seed(args: argparse.Namespace) -> int:
    engine = upgrade(get_engine())
    seeded = seed_paper_world(settings(), engine, reset=args.reset)
    if args.json:
        print_json({"seeded": seeded, "reset": args.reset})
        return 0
    if seeded:
        print("paper venues reset and seeded from config" if args.reset else "paper venues seeded from config")
    else:
        print("paper venues already seeded (state kept; use --reset to wipe and seed again)")
    return 0


def _fault(args: argparse.Namespace) -> int:
    require_current()
    _open_paper(args.venue).inject_fault(args.method, args.error, times=args.times, phase=args.phase)
    if args.json:
        print_json(
            {
                "venue": args.venue,
                "method": args.method,
                "error": args.error,
                "times": args.times,
                "phase": args.phase,
            }
        )
        return 0
    print(f"{args.venue}.{args.method}: next {args.times} call(s) raise {args.error} ({args.phase} the call)")
    return 0


def _clear_faults(args: argparse.Namespace) -> int:
    require_current()
    dropped = _open_paper(args.venue).clear_faults()
    if args.json:
        print_json({"venue": args.venue, "dropped": dropped})
        return 0
    print(f"{args.venue}: {dropped} scheduled fault(s) dropped")
    return 0
