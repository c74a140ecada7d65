"""The routing table: which model version serves each instrument (venue, symbol), and in which
role (``champion``, or ``canary`` while a rollout tries a new version on part of the universe).

The trading code reads ``route_for``; the deployment writes through ``assign`` and ``route_all``.
Every write is one transaction that also appends a ``model_route_history`` row per instrument it
changed (old and new version and role, who, why); re-assigning what is already routed changes
nothing and records nothing. Rows are taken in (venue, symbol) order with row locks on Postgres,
so two writers never deadlock and never lose each other's change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Row, delete, insert, select, update

from tradeops.db import get_engine, insert_unless_exists, lock_clause, transaction, utcnow
from tradeops.models.model_tables import model_route_history, model_routes

Role = Literal["champion", "canary"]
ROLES: tuple[str, ...] = ("champion", "canary")
Instrument = tuple[str, str]


@dataclass(frozen=True, kw_only=True)
class Route:
    venue: str
    symbol: str
    model: str
    version: str
    role: str
    updated_at: datetime
    updated_by: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class RouteChange:
    venue: str
    symbol: str
    model: str
    old_version: str | None
    new_version: str | None  # None: the route was removed
    old_role: str | None
    new_role: str | None
    actor: str
    reason: str
    at: datetime


def routes(engine: Engine | None = None) -> dict[Instrument, Route]:
    """Every routed instrument and its route."""
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(select(model_routes).order_by(model_routes.c.venue, model_routes.c.symbol)).all()
    return {(r.venue, r.symbol): _route(r) for r in rows}


def route_for(venue: str, symbol: str, engine: Engine | None = None) -> Route | None:
    """The route of one instrument, or None when no model serves it."""
    table = model_routes
    with transaction(engine or get_engine()) as conn:
        row = conn.execute(select(table).where(table.c.venue == venue, table.c.symbol == symbol)).first()
    return None if row is None else _route(row)


def assign(
    instruments: Iterable[Instrument],
    version: str,
    role: Role,
    actor: str,
    reason: str,
    *,
    model: str | None = None,
    engine: Engine | None = None,
) -> list[Instrument]:
    """Route ``instruments`` to ``version`` of ``model`` (default: ``models.registered_model``) in
    ``role``, in one transaction; returns the instruments whose route changed (each also got a
    history row)."""
    _check(version, role, actor, reason)
    name, wanted = model or _registered_model(), set(instruments_of(instruments))
    with transaction(engine or get_engine()) as conn:
        return _assign(conn, wanted, name, str(version), role, actor, reason)


def route_all(
    version: str,
    role: Role,
    actor: str,
    reason: str,
    universe: Mapping[str, Sequence[str]] | Iterable[Instrument],
    *,
    model: str | None = None,
    engine: Engine | None = None,
) -> list[Instrument]:
    """Route every instrument of ``universe`` (venue -> symbols, or (venue, symbol) pairs) and
    every instrument already in the table to ``version`` in ``role``, in one transaction: nothing
    is left on another version, even an instrument that has since left the universe."""
    _check(version, role, actor, reason)
    name, wanted = model or _registered_model(), set(instruments_of(universe))
    with transaction(engine or get_engine()) as conn:
        routed = conn.execute(select(model_routes.c.venue, model_routes.c.symbol)).all()
        wanted |= {(row.venue, row.symbol) for row in routed}
        return _assign(conn, wanted, name, str(version), role, actor, reason)


def unroute(
    instruments: Iterable[Instrument],
    actor: str,
    reason: str,
    *,
    engine: Engine | None = None,
) -> list[Instrument]:
    """Remove the routes of ``instruments`` (no model serves them any more), in one transaction
    with a history row each; returns the instruments that had a route. The rollback of a first
    deployment uses it: there is no champion to route back to."""
    if not actor.strip() or not reason.strip():
        raise ValueError("a routing change needs an actor and a reason (they are its history)")
    removed = []
    with transaction(engine or get_engine()) as conn:
        for venue, symbol in instruments_of(instruments):
            current = _locked_row(conn, venue, symbol)
            if current is None:
                continue
            conn.execute(delete(model_routes).where(model_routes.c.venue == venue, model_routes.c.symbol == symbol))
            conn.execute(
                insert(model_route_history).values(
                    venue=venue,
                    symbol=symbol,
                    model=current.model,
                    old_version=current.version,
                    new_version=None,
                    old_role=current.role,
                    new_role=None,
                    actor=actor,
                    reason=reason,
                    at=utcnow(),
                )
            )
            removed.append((venue, symbol))
    return removed


def history(limit: int = 50, engine: Engine | None = None) -> list[RouteChange]:
    """The latest routing changes, newest first."""
    table = model_route_history
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(select(table).order_by(table.c.id.desc()).limit(limit)).all()
    return [
        RouteChange(
            venue=r.venue,
            symbol=r.symbol,
            model=r.model,
            old_version=r.old_version,
            new_version=r.new_version,
            old_role=r.old_role,
            new_role=r.new_role,
            actor=r.actor,
            reason=r.reason,
            at=r.at,
        )
        for r in rows
    ]


def instruments_of(universe: Mapping[str, Sequence[str]] | Iterable[Instrument]) -> list[Instrument]:
    """Sorted (venue, symbol) pairs of a universe given as ``market_data.universe`` or as pairs
    (tuples, or two-item lists as they come back from JSON)."""
    if isinstance(universe, Mapping):
        return sorted({(str(venue), str(symbol)) for venue, symbols in universe.items() for symbol in symbols})
    return sorted({(str(venue), str(symbol)) for venue, symbol in universe})


def _check(version: str, role: str, actor: str, reason: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {list(ROLES)}, got {role!r}")
    if not actor.strip() or not reason.strip():
        raise ValueError("a routing change needs an actor and a reason (they are its history)")
    if not str(version).strip():
        raise ValueError("a routing change needs a model version")


def _assign(
    conn: Connection, instruments: set[Instrument], model: str, version: str, role: str, actor: str, reason: str
) -> list[Instrument]:
    """Route each instrument, in (venue, symbol) order so concurrent writers lock rows alike."""
    return [
        (venue, symbol)
        for venue, symbol in sorted(instruments)
        if _route_one(conn, venue, symbol, model, version, role, actor, reason)
    ]


def _route_one(
    conn: Connection, venue: str, symbol: str, model: str, version: str, role: str, actor: str, reason: str
) -> bool:
    """Set one instrument's route inside the caller's transaction; False when it was already so."""
    table = model_routes
    now = utcnow()
    values = {
        "model": model,
        "version": version,
        "role": role,
        "reason": reason,
        "updated_at": now,
        "updated_by": actor,
    }
    current = _locked_row(conn, venue, symbol)
    if current is None:
        if not insert_unless_exists(conn, insert(table).values(venue=venue, symbol=symbol, **values)):
            current = _locked_row(conn, venue, symbol)  # a concurrent writer created it first
    if current is not None:
        if (current.model, current.version, current.role) == (model, version, role):
            return False
        conn.execute(update(table).where(table.c.venue == venue, table.c.symbol == symbol).values(**values))
    conn.execute(
        insert(model_route_history).values(
            venue=venue,
            symbol=symbol,
            model=model,
            old_version=None if current is None else current.version,
            new_version=version,
            old_role=None if current is None else current.role,
            new_role=role,
            actor=actor,
            reason=reason,
            at=now,
        )
    )
    return True


def _locked_row(conn: Connection, venue: str, symbol: str) -> Row[Any] | None:
    table = model_routes
    query = select(table).where(table.c.venue == venue, table.c.symbol == symbol)
    if lock_clause(conn):
        query = query.with_for_update()
    return conn.execute(query).first()


def _route(row: Row[Any]) -> Route:
    return Route(
        venue=row.venue,
        symbol=row.symbol,
        model=row.model,
        version=row.version,
        role=row.role,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
        reason=row.reason,
    )


def _registered_model() -> str:
    from tradeops.config import settings

    return settings().models.registered_model
