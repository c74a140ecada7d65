"""Withdrawals between paper venues.

The source is debited the full amount at once; the destination is credited ``amount - fee`` once
the transfer is due (``created_at + settle_seconds``). Settling touches two venues, so it locks
both venue rows (in sorted order) and re-reads the transfer under the locks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, Select, insert, or_, select, update

from tradeops.config import NetworkRoute, Settings
from tradeops.errors import InvalidOrderError
from tradeops.model import Transfer, TransferStatus
from tradeops.venues import paper_book as book
from tradeops.venues.paper_book import VenueSpec
from tradeops.venues.paper_tables import transfers_table


def transfer_from_row(row: Row) -> Transfer:
    return Transfer(
        transfer_id=row.transfer_id,
        asset=row.asset,
        amount=row.amount,
        from_venue=row.from_venue,
        to_venue=row.to_venue,
        network=row.network,
        fee=row.fee,
        status=TransferStatus(row.status),
        created_at=row.created_at,
        settles_at=row.settles_at,
    )


def find_transfer(conn: Connection, transfer_id: str) -> Row | None:
    return conn.execute(select(transfers_table).where(transfers_table.c.transfer_id == transfer_id)).first()


def validate_route(
    settings: Settings, spec: VenueSpec, *, asset: str, amount: Decimal, to_venue: str, network: str
) -> NetworkRoute:
    """The route of a withdrawal request, or ``InvalidOrderError`` saying what is wrong."""
    routes = spec.config.withdrawal.get(asset)
    if not routes:
        allowed = ", ".join(sorted(spec.config.withdrawal)) or "none"
        raise InvalidOrderError(f"{spec.name}: no withdrawal route for {asset}; withdrawable assets: {allowed}")
    if network not in routes:
        raise InvalidOrderError(
            f"{spec.name}: {asset} cannot be withdrawn over '{network}'; allowed networks: {', '.join(sorted(routes))}"
        )
    _validate_destination(settings, spec, asset, to_venue)
    route = routes[network]
    if amount <= route.fee:
        raise InvalidOrderError(
            f"{spec.name}: withdrawal amount {amount} {asset} must exceed the {network} fee {route.fee}"
        )
    return route


def _validate_destination(settings: Settings, spec: VenueSpec, asset: str, to_venue: str) -> None:
    if to_venue == spec.name:
        raise InvalidOrderError(f"{spec.name}: cannot withdraw to the same venue")
    destination = settings.venues.get(to_venue)
    if destination is None:
        raise InvalidOrderError(
            f"{spec.name}: unknown destination venue '{to_venue}'; known: {sorted(settings.venues)}"
        )
    if destination.kind != "paper":
        raise InvalidOrderError(f"{spec.name}: destination '{to_venue}' is not a paper venue")
    if asset not in VenueSpec(to_venue, destination).assets():
        raise InvalidOrderError(f"{spec.name}: destination '{to_venue}' does not support {asset}")


def create(
    conn: Connection,
    spec: VenueSpec,
    route: NetworkRoute,
    *,
    transfer_id: str,
    asset: str,
    amount: Decimal,
    to_venue: str,
    network: str,
    now: datetime,
) -> Transfer:
    """Debit the source and record a PENDING transfer (caller holds the source venue lock)."""
    if not book.venue_exists(conn, to_venue):
        raise InvalidOrderError(f"{spec.name}: destination paper venue '{to_venue}' is not seeded")
    book.require_available(conn, spec, asset, amount, f"withdrawal {transfer_id}")
    book.change_balance(conn, spec.name, asset, free=-amount)
    conn.execute(
        insert(transfers_table).values(
            transfer_id=transfer_id,
            asset=asset,
            amount=amount,
            fee=route.fee,
            from_venue=spec.name,
            to_venue=to_venue,
            network=network,
            status=TransferStatus.PENDING.value,
            created_at=now,
            settles_at=now + timedelta(seconds=route.settle_seconds),
            settled_at=None,
        )
    )
    return transfer_from_row(find_transfer(conn, transfer_id))


def _due_query(venue: str, now: datetime) -> Select[Any]:
    return select(transfers_table).where(
        transfers_table.c.status == TransferStatus.PENDING.value,
        transfers_table.c.settles_at <= now,
        or_(transfers_table.c.from_venue == venue, transfers_table.c.to_venue == venue),
    )


def due_counterparties(conn: Connection, venue: str, now: datetime) -> set[str]:
    """Venues sharing a due transfer with ``venue`` (read before locking, to know what to lock)."""
    return {name for r in conn.execute(_due_query(venue, now)) for name in (r.from_venue, r.to_venue)}


def settle_due(conn: Connection, venue: str, locked: set[str], now: datetime) -> list[Transfer]:
    """Credit every due PENDING transfer of ``venue`` whose two venues are in ``locked``."""
    settled: list[Transfer] = []
    for row in conn.execute(_due_query(venue, now).order_by(transfers_table.c.settles_at)).all():
        if row.from_venue not in locked or row.to_venue not in locked:
            continue
        book.change_balance(conn, row.to_venue, row.asset, free=row.amount - row.fee)
        conn.execute(
            update(transfers_table)
            .where(transfers_table.c.transfer_id == row.transfer_id)
            .values(status=TransferStatus.SETTLED.value, settled_at=now)
        )
        settled.append(transfer_from_row(find_transfer(conn, row.transfer_id)))
    return settled
