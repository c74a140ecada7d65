"""The project's error hierarchy.

Vendor errors (ccxt, HTTP clients, Kafka) never leak past an adapter: each is mapped onto
one of these classes, and the class says what happens next.
"""

from __future__ import annotations

from datetime import datetime


class TradeopsError(Exception):
    """Base class of every error raised by tradeops."""


class ConfigError(TradeopsError):
    """Configuration is invalid. Raised at start-up; ``key`` names the offending setting."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config key '{key}': {message}")
        self.key = key
        self.reason = message


class EventValidationError(TradeopsError):
    """An event does not match its schema. ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"event field '{field}': {message}")
        self.field = field
        self.reason = message


class VenueError(TradeopsError):
    """Base class of every error coming from a venue (paper or live)."""


class TemporaryVenueError(VenueError):
    """Transient trouble (network, rate limit, timeout, maintenance).

    What happens next: retry with exponential backoff; the circuit breaker counts it.
    """


class CircuitOpenError(TemporaryVenueError):
    """The venue's circuit breaker is open: the call failed fast without reaching the venue.

    What happens next: retry after the cool-down, like any temporary error.
    """


class OrderRejectedError(VenueError):
    """The venue refused a request that will never succeed as sent.

    What happens next: fail at once (no retry) and compensate the saga.
    """


class InvalidOrderError(OrderRejectedError):
    """Bad symbol, size, price or order type; or a risk check refused the order."""


class InsufficientFundsError(OrderRejectedError):
    """Not enough balance or margin for the order or withdrawal."""


class TradingHaltedError(InvalidOrderError):
    """The trading state (HALTED / REDUCING) forbids this order."""


class OperationalError(VenueError):
    """The venue or our account is not usable (auth, permissions, account locked, unknown state).

    What happens next: compensate the saga, set the trading state to HALTED, call a human.
    """


class AuthenticationError(OperationalError):
    """Credentials are missing, wrong or lack a permission."""


class NotFoundError(VenueError):
    """The venue has no such order / transfer (used by undos: "nothing to undo")."""


class IdempotencyKeyReusedError(OrderRejectedError):
    """An idempotency key (client order id, transfer id, saga step key) arrived again with other
    parameters. Never answered with the earlier effect: the caller's plan changed under a key
    that already acted, which is a bug or a re-plan that needs a new run.

    What happens next: fail at once (no retry) and compensate the saga.
    """


class SagaClosedError(TradeopsError):
    """A step of a saga that was already compensated (or handed to a human) was asked to act.

    What happens next: nothing moves; trigger a new run to try again.
    """


class DataValidationError(TradeopsError):
    """Market data failed a check whose policy is ``fail`` (or too many symbols were quarantined).

    What happens next: the day is not loaded; the message names venue, symbol, check and the
    first offending bars. Fix the source or the policy, then re-run the day.
    """


class NewsUnavailableError(TradeopsError):
    """The news source did not answer (its broker or API is unreachable, its topic is missing, or a
    read did not finish in time). Not a venue error on purpose: a news outage must not count
    against a venue's circuit breaker nor go through the venue retry paths of a saga.

    What happens next: the task that reads news fails and Airflow retries it; an agent run does
    not trade on sentiment it could not read.
    """


class RunEndedError(TradeopsError):
    """A saga step was about to act but its Airflow run had already ended (timed out, marked
    failed or deleted) or its state could not be confirmed.

    What happens next: nothing moves; ``saga_recovery`` compensates the run's completed steps.
    """


class OutcomeUnknownError(VenueError):
    """What happened at the venue cannot be established (an order or withdrawal that may or may
    not exist). Never treated as "nothing happened".

    What happens next: look again (retry); while it stays unknown, HALT and name it for a human.
    """


class StillSettlingError(TemporaryVenueError):
    """A transfer is still on its way, so its undo must wait; ``until`` is when it should arrive.

    What happens next: wait (without holding a worker) until it arrives or its settlement
    window, plus a margin, has passed.
    """

    def __init__(self, message: str, *, until: datetime | None) -> None:
        super().__init__(message)
        self.until = until


class UndoIncompleteError(OperationalError):
    """An undo could not take back everything its step did (reverse orders expired, were
    rejected or filled only partly, attempt after attempt); what is left is named.

    What happens next: HALT trading and call a human with the numbers.
    """
