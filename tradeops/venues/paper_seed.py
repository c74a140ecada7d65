"""Seeding the paper world: one row per paper venue, its balances, marks and funding rates."""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import Connection, Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from tradeops.config import Settings, VenueConfig
from tradeops.db import get_engine, transaction, utcnow
from tradeops.model import MarketKind, parse_symbol
from tradeops.venues.paper_book import BPS, ZERO
from tradeops.venues.paper_tables import (
    PAPER_TABLES,
    balances_table,
    markets_table,
    venues_table,
)

log = logging.getLogger(__name__)


def seed_mark(settings: Settings, config: VenueConfig, symbol: str) -> Decimal:
    """The configured price of the symbol's base asset, shifted by the venue's price offset."""
    base = parse_symbol(symbol)[0]
    return settings.paper.prices[base] * (1 + config.price_offset_bps / BPS)


def seed_paper_world(settings: Settings, engine: Engine | None = None, *, reset: bool = False) -> bool:
    """Create every paper venue of ``settings`` not in the database yet; True when any was created.

    Idempotent: an already seeded world is left untouched (False). ``reset=True`` first wipes
    every ``paper_`` table, then seeds from the configuration again. The paper tables are
    created when missing, so seeding works before the rest of the project schema exists.
    """
    engine = engine or get_engine()
    for table in PAPER_TABLES:
        table.create(engine, checkfirst=True)
    try:
        with transaction(engine) as conn:
            if reset:
                _wipe(conn)
            return _seed_missing(conn, settings)
    except IntegrityError:
        log.info("paper world was seeded concurrently by another process")
        return False


def _wipe(conn: Connection) -> None:
    for table in reversed(PAPER_TABLES):
        conn.execute(delete(table))


def _seed_missing(conn: Connection, settings: Settings) -> bool:
    existing = set(conn.execute(select(venues_table.c.name)).scalars())
    missing = [n for n, c in settings.venues.items() if c.kind == "paper" and n not in existing]
    for name in missing:
        _seed_venue(conn, settings, name)
    if missing:
        log.info("seeded paper venues: %s", ", ".join(missing))
    return bool(missing)


def _seed_venue(conn: Connection, settings: Settings, name: str) -> None:
    config = settings.venues[name]
    conn.execute(insert(venues_table).values(name=name, order_seq=0, seeded_at=utcnow()))
    for asset, amount in sorted(config.initial_balances.items()):
        conn.execute(insert(balances_table).values(venue=name, asset=asset, free=amount, used=ZERO))
    for symbol in config.markets:
        is_perp = parse_symbol(symbol)[2] is MarketKind.PERP
        conn.execute(
            insert(markets_table).values(
                venue=name,
                symbol=symbol,
                mark_price=seed_mark(settings, config, symbol),
                funding_rate=config.funding_rates.get(symbol, ZERO) if is_perp else None,
                funding_accrued_to=None,
            )
        )
