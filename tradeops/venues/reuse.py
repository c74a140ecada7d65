"""Idempotency keys reused with other parameters are hard errors, never the earlier effect.

A client order id / transfer id that the venue already has is answered with that order or
transfer only when the new request asks for the same thing. Otherwise the plan changed under a
key that already acted (a re-planned leg, a cleared task with new inputs): returning the old
order would silently do nothing, so it raises ``IdempotencyKeyReusedError`` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from tradeops.errors import IdempotencyKeyReusedError
from tradeops.model import Order, OrderRequest, OrderType, Transfer

AmountNormaliser = Callable[[str, Decimal], Decimal]


def check_order_reuse(
    existing: Order, request: OrderRequest, *, venue: str, normalise: AmountNormaliser | None = None
) -> Order:
    """``existing`` when it is the order ``request`` asks for, else ``IdempotencyKeyReusedError``.

    ``normalise(symbol, amount)`` rounds an amount the way the venue does (lot size), so a venue
    that stored 0.1234 for a requested 0.12345 is not a mismatch.
    """
    rounded = normalise or (lambda _symbol, amount: amount)
    differences = []
    if existing.symbol != request.symbol:
        differences.append(f"symbol {existing.symbol} != {request.symbol}")
    if existing.side is not request.side:
        differences.append(f"side {existing.side.value} != {request.side.value}")
    if rounded(existing.symbol, existing.amount) != rounded(request.symbol, request.amount):
        differences.append(f"amount {existing.amount} != {request.amount}")
    if request.order_type is OrderType.LIMIT and existing.price is not None and existing.price != request.price:
        differences.append(f"price {existing.price} != {request.price}")
    if differences:
        raise IdempotencyKeyReusedError(
            f"{venue}: client order id {request.client_order_id} already placed order {existing.order_id} "
            f"({existing.side.value} {existing.amount} {existing.symbol}); this request differs: "
            f"{'; '.join(differences)}. A key never acts with other parameters"
        )
    return existing


def check_transfer_reuse(
    existing: Transfer, *, venue: str, transfer_id: str, asset: str, amount: Decimal, to_venue: str, network: str
) -> Transfer:
    """``existing`` when it is the transfer asked for, else ``IdempotencyKeyReusedError``."""
    wanted = {"asset": asset, "amount": amount, "to_venue": to_venue, "network": network}
    have = {
        "asset": existing.asset,
        "amount": existing.amount,
        "to_venue": existing.to_venue,
        "network": existing.network,
    }
    differences = [f"{name} {have[name]} != {wanted[name]}" for name in wanted if have[name] != wanted[name]]
    if differences:
        raise IdempotencyKeyReusedError(
            f"{venue}: transfer id {transfer_id} already sent {existing.amount} {existing.asset} to "
            f"{existing.to_venue} over {existing.network}; this request differs: {'; '.join(differences)}. "
            "A key never acts with other parameters"
        )
    return existing
