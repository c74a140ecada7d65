"""Withdrawals of a live venue over ccxt, idempotent across processes.

Every attempt is written to ``withdrawal_ledger`` (the project database) *before* the venue is
called, and the venue's withdrawal id is stored with our transfer id once it answers. A retry,
in this process or any other, first looks for what an earlier attempt did:

1. by the stored venue withdrawal id;
2. by our id, on venues that keep a client id for withdrawals (OKX ``clientId``);
3. else in the venue's withdrawal history: same asset, amount and address, made from shortly
   before the attempt on, and not already tied to another of our transfers.

While an earlier attempt's outcome is unknown nothing is sent: the call fails with
``OutcomeUnknownError``. It counts as "not sent" only once the venue's history still lacks it
``saga.withdrawal_history_lag_seconds`` after the attempt (venues list withdrawals with a delay),
or when the venue answered the attempt with a rejection.

Errors are raw ccxt errors here; the ``CcxtVenue`` methods that call these translate them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import ccxt
from sqlalchemy import Engine

from tradeops.config import VenueConfig
from tradeops.db import utcnow
from tradeops.errors import OperationalError, OutcomeUnknownError
from tradeops.model import Transfer, TransferStatus
from tradeops.venues import withdrawal_ledger as attempts
from tradeops.venues.ccxt_convert import dec, from_ms
from tradeops.venues.reuse import check_transfer_reuse

log = logging.getLogger(__name__)

Raw = dict[str, Any]

_TRANSFER_STATUS = {
    "ok": TransferStatus.SETTLED,
    "failed": TransferStatus.FAILED,
    "canceled": TransferStatus.FAILED,
}
# ccxt errors that mean the venue answered the withdrawal request with "no": nothing was sent.
_REJECTIONS = (ccxt.InsufficientFunds, ccxt.InvalidAddress, ccxt.BadRequest, ccxt.AuthenticationError, ccxt.BadSymbol)
# How far before our attempt a history row may be stamped (clock skew between us and the venue).
_CLOCK_SKEW = timedelta(seconds=60)


@dataclass(frozen=True)
class WithdrawalRequest:
    transfer_id: str
    asset: str
    amount: Decimal
    to_venue: str
    network: str


class CcxtWithdrawals:
    """The withdrawal side of one ``CcxtVenue`` (same exchange session, same quirks)."""

    def __init__(
        self,
        *,
        venue: str,
        exchange: Any,
        config: VenueConfig,
        addresses: Mapping[tuple[str, str, str], str],
        client_id_param: str | None,
        client_id_field: str | None,
        venue_transfer_id: Callable[[str], str],
        history_lag: timedelta,
        engine: Engine | None = None,
    ) -> None:
        self.venue = venue
        self._exchange = exchange
        self._config = config
        self._addresses = dict(addresses)
        self._param = client_id_param
        self._field = client_id_field
        self._venue_transfer_id = venue_transfer_id
        self._lag = history_lag
        self._engine = engine

    # ---- sending -----------------------------------------------------------------------------

    def withdraw(self, request: WithdrawalRequest) -> Transfer:
        """Send the withdrawal unless an earlier attempt did (or may have): see the module doc."""
        address = self.address(request.to_venue, request.asset, request.network)
        earlier = self._earlier(request)
        if earlier is not None:
            log.info("%s: withdrawal %s already exists; not sending it again", self.venue, request.transfer_id)
            return earlier
        attempts.record_attempt(
            transfer_id=request.transfer_id,
            venue=self.venue,
            asset=request.asset,
            amount=request.amount,
            to_venue=request.to_venue,
            network=request.network,
            address=address,
            engine=self._engine,
        )
        params: dict[str, Any] = {"network": request.network}
        if self._param:
            params[self._param] = self._venue_transfer_id(request.transfer_id)
        try:
            raw = self._exchange.withdraw(request.asset, float(request.amount), address, params=params)
        except _REJECTIONS as exc:
            attempts.mark(request.transfer_id, attempts.AttemptStatus.REJECTED, error=str(exc), engine=self._engine)
            raise
        except Exception as exc:
            attempts.mark(request.transfer_id, attempts.AttemptStatus.UNKNOWN, error=str(exc), engine=self._engine)
            raise
        venue_id = str(raw["id"]) if raw.get("id") is not None else None
        attempts.mark(
            request.transfer_id, attempts.AttemptStatus.SENT, venue_withdrawal_id=venue_id, engine=self._engine
        )
        log.info(
            "%s: withdrawal %s of %s %s to %s over %s sent as %s",
            self.venue,
            request.transfer_id,
            request.amount,
            request.asset,
            request.to_venue,
            request.network,
            venue_id,
        )
        return self._transfer(
            raw,
            request.transfer_id,
            asset=request.asset,
            amount=request.amount,
            to_venue=request.to_venue,
            network=request.network,
        )

    def _earlier(self, request: WithdrawalRequest) -> Transfer | None:
        """What an earlier attempt of ``request.transfer_id`` did, or None when nothing was sent.

        Raises ``IdempotencyKeyReusedError`` when the earlier attempt asked for something else,
        and ``OutcomeUnknownError`` while it is not yet known whether it went out.
        """
        attempt = attempts.find(request.transfer_id, engine=self._engine)
        if attempt is not None:
            asked = Transfer(
                transfer_id=attempt.transfer_id,
                asset=attempt.asset,
                amount=attempt.amount,
                from_venue=self.venue,
                to_venue=attempt.to_venue,
                network=attempt.network,
                fee=Decimal(0),
                status=TransferStatus.PENDING,
            )
            check_transfer_reuse(
                asked,
                venue=self.venue,
                transfer_id=request.transfer_id,
                asset=request.asset,
                amount=request.amount,
                to_venue=request.to_venue,
                network=request.network,
            )
        return self.find(request.transfer_id)

    # ---- looking up --------------------------------------------------------------------------

    def find(self, transfer_id: str) -> Transfer | None:
        """The withdrawal ``transfer_id`` as the venue reports it; None only when it is known that
        nothing was sent; ``OutcomeUnknownError`` while that cannot be told yet."""
        attempt = attempts.find(transfer_id, engine=self._engine)
        raw = self._locate(transfer_id, attempt)
        if raw is not None:
            if attempt is not None and attempt.venue_withdrawal_id is None and raw.get("id") is not None:
                attempts.mark(
                    transfer_id, attempts.AttemptStatus.SENT, venue_withdrawal_id=str(raw["id"]), engine=self._engine
                )
            return self._from_history(raw, transfer_id)
        if attempt is None or attempt.status is attempts.AttemptStatus.REJECTED:
            return None
        waited = utcnow() - attempt.attempted_at
        if attempt.status is attempts.AttemptStatus.SENT:
            raise OutcomeUnknownError(
                f"venue '{self.venue}' answered withdrawal {transfer_id} with id {attempt.venue_withdrawal_id}, "
                "but its withdrawal history does not show it"
            )
        if waited < self._lag:
            raise OutcomeUnknownError(
                f"venue '{self.venue}': the outcome of withdrawal {transfer_id} ({attempt.amount} {attempt.asset} to "
                f"{attempt.to_venue}, attempted {attempt.attempted_at.isoformat()}) is unknown and its history does "
                f"not show it yet; it is not sent again before {(attempt.attempted_at + self._lag).isoformat()}"
            )
        log.warning(
            "%s: withdrawal %s (%s) is not in the venue's history %.0f s after the attempt: it was not sent",
            self.venue,
            transfer_id,
            attempt.status.value,
            waited.total_seconds(),
        )
        return None

    def _locate(self, transfer_id: str, attempt: attempts.WithdrawalAttempt | None) -> Raw | None:
        if attempt is not None and attempt.venue_withdrawal_id is not None:
            wanted = attempt.venue_withdrawal_id
            rows = self._exchange.fetch_withdrawals(attempt.asset)
            return next((row for row in rows if str(row.get("id")) == wanted), None)
        if self._param and self._field:
            venue_id = self._venue_transfer_id(transfer_id)
            rows = self._exchange.fetch_withdrawals(params={self._param: venue_id})
            found = next((row for row in rows if (row.get("info") or {}).get(self._field) == venue_id), None)
            if found is not None or attempt is None:
                return found
        if attempt is None:
            return None
        return self._match_history(attempt)

    def _match_history(self, attempt: attempts.WithdrawalAttempt) -> Raw | None:
        """The one history row that is this attempt: asset, amount, address and time fit, and no
        other transfer of ours claims it. Two candidates are ambiguous: unknown, never a guess."""
        since = attempt.attempted_at - _CLOCK_SKEW
        claimed = attempts.claimed_ids(self.venue, engine=self._engine)
        candidates = [
            row
            for row in self._exchange.fetch_withdrawals(attempt.asset, int(since.timestamp() * 1000))
            if dec(row.get("amount")) == attempt.amount
            and (row.get("address") or row.get("addressTo")) == attempt.address
            and (from_ms(row.get("timestamp")) or since) >= since
            and str(row.get("id")) not in claimed
        ]
        if len(candidates) > 1:
            ids = [str(row.get("id")) for row in candidates]
            raise OutcomeUnknownError(
                f"venue '{self.venue}': withdrawal {attempt.transfer_id} matches {len(candidates)} withdrawals in the "
                f"history ({ids}); a human must tell which one it is"
            )
        return candidates[0] if candidates else None

    # ---- conversions -------------------------------------------------------------------------

    def address(self, to_venue: str, asset: str, network: str) -> str:
        try:
            return self._addresses[(to_venue, asset, network)]
        except KeyError:
            raise OperationalError(
                f"venue '{self.venue}' withdraw(): no deposit address configured for {asset} "
                f"on '{to_venue}' over {network}"
            ) from None

    def _venue_of(self, address: str | None) -> str:
        return next((venue for (venue, _, _), known in self._addresses.items() if known == address), address or "")

    def _from_history(self, raw: Raw, transfer_id: str) -> Transfer:
        return self._transfer(
            raw,
            transfer_id,
            asset=raw.get("currency") or "",
            amount=dec(raw.get("amount")),
            to_venue=self._venue_of(raw.get("address") or raw.get("addressTo")),
            network=raw.get("network") or "",
        )

    def _transfer(
        self, raw: Raw, transfer_id: str, *, asset: str, amount: Decimal, to_venue: str, network: str
    ) -> Transfer:
        status = _TRANSFER_STATUS.get(raw.get("status") or "", TransferStatus.PENDING)
        fee = (raw.get("fee") or {}).get("cost")
        return Transfer(
            transfer_id=transfer_id,
            asset=asset,
            amount=amount,
            from_venue=self.venue,
            to_venue=to_venue,
            network=network,
            fee=dec(fee) if fee is not None else self._network_fee(asset, network),
            status=status,
            created_at=from_ms(raw.get("timestamp")),
            settles_at=from_ms(raw.get("updated")) if status is TransferStatus.SETTLED else None,
        )

    def _network_fee(self, asset: str, network: str) -> Decimal:
        """The venue's published fee for the route, else the configured one, else zero."""
        networks = ((self._exchange.currencies or {}).get(asset) or {}).get("networks") or {}
        published = (networks.get(network) or {}).get("fee")
        if published is not None:
            return dec(published)
        route = self._config.withdrawal.get(asset, {}).get(network)
        return route.fee if route is not None else Decimal(0)
