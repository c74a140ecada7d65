"""Fiat legs through Wise: quotes from the live API or from a paper fee model.

``WiseClient`` creates authenticated quotes (``POST /v3/profiles/{profileId}/quotes``) with a
Bearer token; Wise locks the quoted rate for 30 minutes. ``PaperWiseQuoter`` answers the same
question from ``wise.paper_fee_pct`` / ``wise.paper_fixed_fee``. Both are ``FiatQuoter``s, which
is all the rebalance planner needs. ``wise_quoter`` picks one from the configuration.

``send_transfer`` moves fiat between two paper fiat accounts (the paper model of a Wise
transfer). The token is never logged and never part of an error message.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from tradeops import risk
from tradeops.config import NetworkRoute, Settings, WiseConfig
from tradeops.db import get_engine, transaction, utcnow
from tradeops.errors import (
    AuthenticationError,
    ConfigError,
    InvalidOrderError,
    OperationalError,
    TemporaryVenueError,
)
from tradeops.model import Transfer
from tradeops.venues import paper_book as book
from tradeops.venues import paper_transfers as transfers
from tradeops.venues.factory import environment_credentials
from tradeops.venues.paper import PaperVenue
from tradeops.venues.paper_book import VenueSpec
from tradeops.venues.reuse import check_transfer_reuse

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

WISE_NETWORK = "wise"  # the ``network`` of a fiat leg in plans, saga steps and paper transfers
RATE_LOCK = timedelta(minutes=30)
PAY_OUT = "BANK_TRANSFER"
# The pay-in methods we can fund a transfer with, preferred first.
PAY_IN_PREFERENCE = ("BALANCE", "BANK_TRANSFER")
CENT = Decimal("0.01")
RATE_PLACES = Decimal("0.000001")

# Paper exchange rates: the value of one unit in USD. Fixed, illustrative numbers (not market
# data) so paper quotes are reproducible; the rate A -> B is usd_value[A] / usd_value[B].
PAPER_USD_VALUE: Mapping[str, Decimal] = {
    "USD": Decimal(1),
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "CHF": Decimal("1.12"),
}

TokenProvider = Callable[[str], str]


@dataclass(frozen=True, kw_only=True)
class WiseQuote:
    """One quote: send ``source_amount``, pay ``fee`` (source currency), ``target_amount`` arrives."""

    quote_id: str
    source_currency: str
    target_currency: str
    source_amount: Decimal
    target_amount: Decimal
    rate: Decimal
    fee: Decimal
    pay_in: str
    pay_out: str
    created_at: datetime
    rate_expires_at: datetime
    estimated_delivery: datetime | None = None

    @property
    def settle_seconds(self) -> int | None:
        """Seconds from the quote to the estimated delivery, when Wise gave one."""
        if self.estimated_delivery is None:
            return None
        return max(0, int((self.estimated_delivery - self.created_at).total_seconds()))


class FiatQuoter(Protocol):
    """Prices a fiat leg: what sending ``source_amount`` costs and what arrives."""

    def quote(self, source_currency: str, target_currency: str, source_amount: Decimal) -> WiseQuote: ...


def _require_amount(amount: Decimal) -> None:
    if not amount.is_finite() or amount <= 0:
        raise InvalidOrderError(f"Wise quote amount must be a positive number, got {amount}")


# -- paper ------------------------------------------------------------------------------------


class PaperWiseQuoter:
    """Deterministic quotes: fee = ``paper_fixed_fee`` + ``paper_fee_pct`` % of the amount.

    Fees are in the source currency, rounded half-up to cents; what arrives is rounded down to
    cents. Same-currency transfers convert at 1; others use ``PAPER_USD_VALUE``.
    """

    def __init__(self, config: WiseConfig, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._config = config
        self._clock = clock

    def fee(self, source_amount: Decimal) -> Decimal:
        pct = self._config.paper_fee_pct / 100
        return (self._config.paper_fixed_fee + source_amount * pct).quantize(CENT, ROUND_HALF_UP)

    def quote(self, source_currency: str, target_currency: str, source_amount: Decimal) -> WiseQuote:
        _require_amount(source_amount)
        rate = paper_rate(source_currency, target_currency)
        fee = self.fee(source_amount)
        if source_amount <= fee:
            raise InvalidOrderError(
                f"Wise (paper): {source_amount} {source_currency} does not cover the fee {fee} {source_currency}"
            )
        created = self._clock()
        key = f"{source_currency}:{target_currency}:{source_amount}"
        return WiseQuote(
            quote_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"paper-wise:{key}")),
            source_currency=source_currency,
            target_currency=target_currency,
            source_amount=source_amount,
            target_amount=((source_amount - fee) * rate).quantize(CENT, ROUND_DOWN),
            rate=rate,
            fee=fee,
            pay_in="BALANCE",
            pay_out=PAY_OUT,
            created_at=created,
            rate_expires_at=created + RATE_LOCK,
            estimated_delivery=created + timedelta(seconds=self._config.paper_settle_seconds),
        )


def paper_rate(source_currency: str, target_currency: str) -> Decimal:
    """The paper rate source -> target (1 for the same currency)."""
    if source_currency == target_currency:
        return Decimal(1)
    missing = sorted({source_currency, target_currency} - set(PAPER_USD_VALUE))
    if missing:
        raise InvalidOrderError(
            f"Wise (paper): no rate for {', '.join(missing)}; known currencies: {', '.join(sorted(PAPER_USD_VALUE))}"
        )
    return (PAPER_USD_VALUE[source_currency] / PAPER_USD_VALUE[target_currency]).quantize(RATE_PLACES)


# -- live -------------------------------------------------------------------------------------


class WiseClient:
    """The Wise API, just enough to quote. Errors come out as ``tradeops.errors``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        profile_id: int | str,
        *,
        session: requests.Session | None = None,
        timeout: float = 10,
    ) -> None:
        if not token:
            raise AuthenticationError("Wise: no API token")
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._profile_id = profile_id
        import requests  # imported on first use, not at DAG parse time

        self._session = session or requests.Session()
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"WiseClient({self._base_url!r}, profile_id={self._profile_id!r})"

    def quote(self, source_currency: str, target_currency: str, source_amount: Decimal) -> WiseQuote:
        """An authenticated quote paying out by bank transfer (rate locked for 30 minutes)."""
        _require_amount(source_amount)
        body = {
            "sourceCurrency": source_currency,
            "targetCurrency": target_currency,
            "sourceAmount": _json_number(source_amount),
            "targetAmount": None,
            "payOut": PAY_OUT,
            "preferredPayIn": PAY_IN_PREFERENCE[0],
        }
        payload = self._post(f"/v3/profiles/{self._profile_id}/quotes", body)
        quote = parse_quote(payload)
        log.info(
            "Wise quote %s: %s %s -> %s %s (rate %s, fee %s, pay-in %s)",
            quote.quote_id,
            quote.source_amount,
            quote.source_currency,
            quote.target_amount,
            quote.target_currency,
            quote.rate,
            quote.fee,
            quote.pay_in,
        )
        return quote

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        import requests

        url = self._base_url + path
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        log.debug("Wise POST %s", path)
        try:
            response = self._session.post(url, json=body, headers=headers, timeout=self._timeout)
        except requests.Timeout:
            raise TemporaryVenueError(f"Wise: no answer to POST {path} within {self._timeout} s") from None
        except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL):
            raise ConfigError("wise.base_url", f"not a usable URL: {self._base_url!r}") from None
        except requests.RequestException as exc:
            raise TemporaryVenueError(f"Wise: POST {path} failed: {type(exc).__name__}") from None
        _raise_for_status(response, path)
        try:
            return response.json(parse_float=Decimal)
        except ValueError:
            raise TemporaryVenueError(f"Wise: POST {path} answered HTTP {response.status_code} without JSON") from None


def _json_number(amount: Decimal) -> float:
    """``amount`` as a JSON number; refuse amounts a float would change."""
    number = float(amount)
    if Decimal(repr(number)) != amount:
        raise InvalidOrderError(f"Wise: amount {amount} has more precision than a quote accepts")
    return number


def _error_detail(response: requests.Response) -> str:
    """Wise's own words: ``errors[].message`` (validation) or ``error_description`` (OAuth)."""
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200] or response.reason or ""
    if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
        parts = []
        for item in payload["errors"]:
            where = f", path {item['path']}" if item.get("path") else ""
            parts.append(f"{item.get('message', '')} (code {item.get('code', '?')}{where})")
        return "; ".join(parts)
    if isinstance(payload, dict):
        return str(payload.get("error_description") or payload.get("message") or payload.get("error") or payload)
    return str(payload)[:200]


def _raise_for_status(response: requests.Response, path: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _error_detail(response)
    what = f"Wise: POST {path} answered HTTP {status}: {detail}"
    if status in (401, 403):
        raise AuthenticationError(what)
    if status in (400, 422):
        raise InvalidOrderError(what)
    if status == 429 or status >= 500:
        raise TemporaryVenueError(what)
    raise OperationalError(what)


def _decimal(value: Any, field: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        raise OperationalError(f"Wise quote field '{field}' is not a number: {value!r}") from None


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def choose_option(payload: Mapping[str, Any], pay_out: str = PAY_OUT) -> Mapping[str, Any]:
    """The enabled payment option paying out by ``pay_out``, pay-in by ``PAY_IN_PREFERENCE``."""
    options = [o for o in payload.get("paymentOptions") or [] if not o.get("disabled") and o.get("payOut") == pay_out]
    for pay_in in PAY_IN_PREFERENCE:
        for option in options:
            if option.get("payIn") == pay_in:
                return option
    offered = sorted(f"{o.get('payIn')}->{o.get('payOut')}" for o in payload.get("paymentOptions") or [])
    raise InvalidOrderError(
        f"Wise quote {payload.get('id')}: no enabled option paying in by {'/'.join(PAY_IN_PREFERENCE)} "
        f"and out by {pay_out}; offered: {', '.join(offered) or 'none'}"
    )


def parse_quote(payload: Mapping[str, Any]) -> WiseQuote:
    """A ``WiseQuote`` from Wise's quote resource (fee and amounts from the chosen option)."""
    try:
        option = choose_option(payload)
        created = _timestamp(payload["createdTime"]) or utcnow()
        expires = _timestamp(payload.get("rateExpirationTime")) or created + RATE_LOCK
        return WiseQuote(
            quote_id=str(payload["id"]),
            source_currency=str(payload["sourceCurrency"]),
            target_currency=str(payload["targetCurrency"]),
            source_amount=_decimal(option["sourceAmount"], "sourceAmount"),
            target_amount=_decimal(option["targetAmount"], "targetAmount"),
            rate=_decimal(payload["rate"], "rate"),
            fee=_decimal(option["fee"]["total"], "fee.total"),
            pay_in=str(option["payIn"]),
            pay_out=str(option["payOut"]),
            created_at=created,
            rate_expires_at=expires,
            estimated_delivery=_timestamp(option.get("estimatedDelivery")),
        )
    except (KeyError, TypeError) as exc:
        raise OperationalError(f"Wise quote answer lacks field {exc}") from None


# -- choosing one -----------------------------------------------------------------------------


def environment_token(conn_id: str) -> str:
    """The password of Airflow connection ``conn_id`` read from ``AIRFLOW_CONN_<ID>`` (JSON form)."""
    return environment_credentials(conn_id).get("secret", "")


def wise_quoter(
    settings: Settings,
    token_provider: TokenProvider | None = None,
    *,
    session: requests.Session | None = None,
) -> FiatQuoter:
    """The paper model, or the live client with the token of connection ``wise.connection_id``.

    The Airflow layer passes a provider reading Airflow connections; without one the token is
    read from the environment the way Airflow would (``AIRFLOW_CONN_<ID>``).
    """
    config = settings.wise
    if config.kind == "paper":
        return PaperWiseQuoter(config)
    if config.profile_id is None:
        raise ConfigError("wise.profile_id", "a live Wise client needs profile_id")
    token = (token_provider or environment_token)(config.connection_id)
    if not token:
        raise AuthenticationError(f"Wise is live but connection '{config.connection_id}' has no token (password)")
    return WiseClient(config.base_url, token, config.profile_id, session=session)


# -- paper transfers --------------------------------------------------------------------------


@contextmanager
def _database_errors() -> Iterator[None]:
    try:
        yield
    except DBAPIError as exc:
        detail = str(exc.orig)
        if "locked" in detail.lower() or "could not serialize" in detail.lower():
            raise TemporaryVenueError(f"paper Wise: database busy: {detail}") from exc
        raise OperationalError(f"paper Wise: database error: {detail}") from exc


def _require_fiat_route(settings: Settings, from_venue: str, to_venue: str, currency: str) -> None:
    accounts = settings.rebalance.fiat_accounts
    for venue in (from_venue, to_venue):
        if accounts.get(venue) != currency:
            known = ", ".join(f"{v}: {c}" for v, c in sorted(accounts.items())) or "none"
            raise InvalidOrderError(f"Wise: '{venue}' is not a {currency} account (rebalance.fiat_accounts: {known})")
        if settings.venue(venue).kind != "paper":
            raise InvalidOrderError(f"Wise (paper): '{venue}' is not a paper venue")
    if from_venue == to_venue:
        raise InvalidOrderError(f"Wise: cannot send from '{from_venue}' to itself")


def send_transfer(
    settings: Settings,
    *,
    transfer_id: str,
    from_venue: str,
    to_venue: str,
    currency: str,
    amount: Decimal,
    engine: Engine | None = None,
    compensation: bool = False,
) -> Transfer:
    """Send ``amount`` of ``currency`` between two fiat accounts; idempotent on ``transfer_id``
    (the same id with other parameters raises ``IdempotencyKeyReusedError``).

    While trading is HALTED only the reverse transfers of a saga compensation
    (``compensation=True``) are sent.

    Paper only: the transfer is a row of the paper transfers table on network ``wise``. The
    sender is debited at once; the receiver is credited what the paper quote says arrives once
    ``wise.paper_settle_seconds`` have passed (the paper venues settle it like any transfer).
    Live Wise transfers (create + fund through the API) are not implemented: the live client
    only quotes.
    """
    if settings.wise.kind != "paper":
        raise InvalidOrderError("Wise is live: sending through the Wise API is not implemented (quotes only)")
    if not transfer_id:
        raise InvalidOrderError("transfer_id is required (idempotency)")
    _require_fiat_route(settings, from_venue, to_venue, currency)
    engine = engine or get_engine()
    with _database_errors():
        PaperVenue(from_venue, settings, engine=engine).settle_transfers()  # credit what is due first
        state = risk.get_state(engine).state  # read outside the venue lock (SQLite: one writer)
        try:
            with transaction(engine) as conn:
                book.lock_venues(conn, [from_venue])
                row = transfers.find_transfer(conn, transfer_id)
                if row is None:
                    what = f"Wise transfer {transfer_id} ({amount} {currency} from {from_venue} to {to_venue})"
                    risk.check_transfer(state, what, compensation=compensation)
                    return _create_paper_transfer(conn, settings, transfer_id, from_venue, to_venue, currency, amount)
        except IntegrityError:
            with transaction(engine) as conn:
                row = transfers.find_transfer(conn, transfer_id)
            if row is None:
                raise
    return check_transfer_reuse(
        transfers.transfer_from_row(row),
        venue="wise",
        transfer_id=transfer_id,
        asset=currency,
        amount=amount,
        to_venue=to_venue,
        network=WISE_NETWORK,
    )


def _create_paper_transfer(
    conn: Connection,
    settings: Settings,
    transfer_id: str,
    from_venue: str,
    to_venue: str,
    currency: str,
    amount: Decimal,
) -> Transfer:
    quote = PaperWiseQuoter(settings.wise).quote(currency, currency, amount)
    route = NetworkRoute(fee=quote.fee, settle_seconds=settings.wise.paper_settle_seconds)
    return transfers.create(
        conn,
        VenueSpec(from_venue, settings.venue(from_venue)),
        route,
        transfer_id=transfer_id,
        asset=currency,
        amount=amount,
        to_venue=to_venue,
        network=WISE_NETWORK,
        now=utcnow(),
    )


__all__ = [
    "PAPER_USD_VALUE",
    "WISE_NETWORK",
    "FiatQuoter",
    "PaperWiseQuoter",
    "TokenProvider",
    "WiseClient",
    "WiseQuote",
    "choose_option",
    "environment_token",
    "paper_rate",
    "parse_quote",
    "send_transfer",
    "wise_quoter",
]
