"""ccxt errors onto the tradeops hierarchy: a table of rules, most specific first.

Every ``CcxtVenue`` method runs under a wrapper that maps whatever ccxt (or parsing its answer)
raises through ``translate_ccxt_error``; nothing vendor-specific escapes the adapter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import ccxt

from tradeops.errors import (
    AuthenticationError,
    InsufficientFundsError,
    InvalidOrderError,
    NotFoundError,
    OperationalError,
    TemporaryVenueError,
    VenueError,
)


@dataclass(frozen=True)
class ErrorRule:
    """``ccxt_error`` (or a subclass) becomes ``error``; ``methods`` limits the rule to those calls."""

    ccxt_error: type[Exception]
    error: type[VenueError]
    methods: frozenset[str] | None = None

    def matches(self, exc: Exception, method: str) -> bool:
        return isinstance(exc, self.ccxt_error) and (self.methods is None or method in self.methods)


LOOKUP_METHODS = frozenset({"get_order", "cancel_order", "get_transfer"})

ERROR_RULES: tuple[ErrorRule, ...] = (
    # looking something up that is not there; elsewhere it is an invalid order (row below)
    ErrorRule(ccxt.OrderNotFound, NotFoundError, LOOKUP_METHODS),
    ErrorRule(ccxt.InsufficientFunds, InsufficientFundsError),
    ErrorRule(ccxt.AccountSuspended, AuthenticationError),
    ErrorRule(ccxt.PermissionDenied, AuthenticationError),
    ErrorRule(ccxt.AuthenticationError, AuthenticationError),
    ErrorRule(ccxt.OrderNotFillable, InvalidOrderError),
    ErrorRule(ccxt.DuplicateOrderId, InvalidOrderError),
    ErrorRule(ccxt.InvalidOrder, InvalidOrderError),
    ErrorRule(ccxt.InvalidAddress, InvalidOrderError),
    ErrorRule(ccxt.BadSymbol, InvalidOrderError),
    ErrorRule(ccxt.BadRequest, InvalidOrderError),
    ErrorRule(ccxt.ArgumentsRequired, InvalidOrderError),
    # NetworkError is not an ExchangeError: it has its own branch under OperationFailed
    ErrorRule(ccxt.RequestTimeout, TemporaryVenueError),
    ErrorRule(ccxt.RateLimitExceeded, TemporaryVenueError),
    ErrorRule(ccxt.DDoSProtection, TemporaryVenueError),
    ErrorRule(ccxt.OnMaintenance, TemporaryVenueError),
    ErrorRule(ccxt.ExchangeNotAvailable, TemporaryVenueError),
    ErrorRule(ccxt.InvalidNonce, TemporaryVenueError),
    ErrorRule(ccxt.NetworkError, TemporaryVenueError),
    ErrorRule(ccxt.CancelPending, TemporaryVenueError),
    ErrorRule(ccxt.BadResponse, TemporaryVenueError),
    ErrorRule(ccxt.OperationFailed, TemporaryVenueError),
    ErrorRule(ccxt.NotSupported, OperationalError),
    ErrorRule(ccxt.ExchangeError, OperationalError),
    ErrorRule(ccxt.BaseError, OperationalError),
)
_MAX_MESSAGE = 600


def translate_ccxt_error(exc: Exception, *, venue: str, method: str, secrets: Iterable[str] = ()) -> VenueError:
    """The project error for ``exc`` raised by ``venue``.``method`` (first matching rule wins).

    A ``VenueError`` passes through unchanged; anything the table does not know (including
    non-ccxt exceptions while parsing an answer) is an ``OperationalError``: unknown state.
    """
    if isinstance(exc, VenueError):
        return exc
    error = next((rule.error for rule in ERROR_RULES if rule.matches(exc, method)), OperationalError)
    return error(_describe(exc, venue, method, secrets))


def _describe(exc: Exception, venue: str, method: str, secrets: Iterable[str]) -> str:
    text = str(exc)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + "..."
    return f"venue '{venue}' {method}() failed: {type(exc).__name__}: {text}"
