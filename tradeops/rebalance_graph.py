"""The transfer graph of one asset: which venue can send to which, over what, at what cost.

An ``Arc`` is one possible transfer (sender, receiver, network) with an affine fee:
``fee = fixed_fee + pct_fee * amount``, paid in the asset; the receiver gets ``amount - fee``.
- On-chain arcs: the sender's withdrawal routes for the asset (``venues.<v>.withdrawal``); of a
  pair's networks only the cheapest is kept (fixed fees: it dominates the others).
- Wise arcs: between two fiat accounts banking the asset (``rebalance.fiat_accounts``), priced
  by a ``FiatQuoter``. Its fee line is read from two quotes; the final amounts are re-quoted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from tradeops.config import NetworkRoute, Settings
from tradeops.wise import WISE_NETWORK, FiatQuoter

ZERO = Decimal(0)


@dataclass(frozen=True, kw_only=True)
class Arc:
    source: str
    target: str
    asset: str
    network: str
    fixed_fee: Decimal
    pct_fee: Decimal  # a fraction of the amount sent: 0.0043 is 0.43 %
    settle_seconds: int
    min_amount: Decimal  # the smallest amount worth sending (min_transfer, and above the fee)
    max_amount: Decimal  # the sender's starting balance: every transfer is funded up front

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.target, self.network)

    def fee(self, amount: Decimal) -> Decimal:
        return self.fixed_fee + self.pct_fee * amount


@dataclass(frozen=True, kw_only=True)
class FeeLine:
    """An affine fee schedule read from quotes: ``fixed + pct * amount``."""

    fixed: Decimal
    pct: Decimal
    settle_seconds: int


def fit_fee_line(quoter: FiatQuoter, currency: str, low: Decimal, high: Decimal, default_settle: int) -> FeeLine:
    """The line through the fees quoted at ``low`` and ``high`` (exact for an affine schedule)."""
    low_quote = quoter.quote(currency, currency, low)
    high_quote = quoter.quote(currency, currency, high)
    pct = max(ZERO, (high_quote.fee - low_quote.fee) / (high - low))
    fixed = max(ZERO, low_quote.fee - pct * low)
    settle = low_quote.settle_seconds
    return FeeLine(fixed=fixed, pct=pct, settle_seconds=default_settle if settle is None else settle)


def _cheapest_route(routes: Mapping[str, NetworkRoute], allowed: set[str] | None) -> tuple[str, NetworkRoute] | None:
    """Lowest fee, then fastest, then network name: a stable choice."""
    usable = sorted(
        (route.fee, route.settle_seconds, network)
        for network, route in routes.items()
        if allowed is None or network in allowed
    )
    if not usable:
        return None
    network = usable[0][2]
    return network, routes[network]


def _deposit_networks(settings: Settings, venue: str, asset: str) -> set[str] | None:
    """Networks ``venue`` lists deposit addresses for (None: no list, e.g. a paper venue)."""
    addresses = settings.venue(venue).deposit_addresses.get(asset)
    return set(addresses) if addresses else None


def _bounded(arc: Arc) -> Arc | None:
    return arc if arc.min_amount <= arc.max_amount else None


def chain_arc(
    settings: Settings, source: str, target: str, asset: str, balance: Decimal, floor: Decimal, quantum: Decimal
) -> Arc | None:
    """The cheapest on-chain arc ``source -> target``, or None without a route."""
    routes = settings.venue(source).withdrawal.get(asset) or {}
    chosen = _cheapest_route(routes, _deposit_networks(settings, target, asset))
    if chosen is None:
        return None
    network, route = chosen
    return _bounded(
        Arc(
            source=source,
            target=target,
            asset=asset,
            network=network,
            fixed_fee=route.fee,
            pct_fee=ZERO,
            settle_seconds=route.settle_seconds,
            min_amount=max(floor, route.fee + quantum),
            max_amount=balance,
        )
    )


def wise_arc(
    source: str, target: str, asset: str, line: FeeLine, balance: Decimal, floor: Decimal, quantum: Decimal
) -> Arc | None:
    """A Wise arc whose amount covers the fee: ``amount * (1 - pct) - fixed > 0``."""
    smallest_useful = line.fixed / (1 - line.pct) + quantum
    return _bounded(
        Arc(
            source=source,
            target=target,
            asset=asset,
            network=WISE_NETWORK,
            fixed_fee=line.fixed,
            pct_fee=line.pct,
            settle_seconds=line.settle_seconds,
            min_amount=max(floor, smallest_useful),
            max_amount=balance,
        )
    )


def build_arcs(
    settings: Settings,
    asset: str,
    balances: Mapping[str, Decimal],
    quantum: Decimal,
    fee_line: Callable[[], FeeLine],
) -> list[Arc]:
    """Every possible transfer of ``asset`` between the venues of ``balances``, sorted."""
    floor = settings.rebalance.min_transfer.get(asset, ZERO)
    fiat = {v for v in balances if settings.rebalance.fiat_accounts.get(v) == asset}
    line = fee_line() if len(fiat) > 1 else None
    arcs: list[Arc] = []
    for source in sorted(balances):
        for target in sorted(balances):
            if source == target or balances[source] <= 0:
                continue
            candidates = [chain_arc(settings, source, target, asset, balances[source], floor, quantum)]
            if line is not None and {source, target} <= fiat:
                candidates.append(wise_arc(source, target, asset, line, balances[source], floor, quantum))
            arcs.extend(arc for arc in candidates if arc is not None)
    return sorted(arcs, key=lambda arc: arc.key)
