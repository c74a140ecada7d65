"""A local imitation of Wise's quote API: ``POST /v3/profiles/{profileId}/quotes``.

It answers the way Wise documents it (docs.wise.com, "Quote" resource): a quote with ``id``
(GUID), ``sourceCurrency``, ``targetCurrency``, ``sourceAmount``, ``rate``, ``createdTime``,
``rateType``, ``rateExpirationTime`` (30 minutes after creation), ``expirationTime``,
``providedAmountType``, ``payOut`` and ``paymentOptions``: one per pay-in method, each with
``payIn``, ``payOut``, ``fee`` {``transferwise``, ``payIn``, ``discount``, ``partner``, ``total``},
``sourceAmount``, ``targetAmount``, ``estimatedDelivery`` and ``disabled``.

Errors look like Wise's too: 401 ``{"error": "invalid_token", "error_description": ...}`` for a
missing or wrong Bearer token, 403 for a profile the token does not own, 422 with
``{"errors": [{"code", "message", "path", "arguments"}]}`` for invalid input. Tests can queue a
fault (``fail``) and read every request (``requests``). Bound to 127.0.0.1, ephemeral port.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.local_http import LocalHttpFake

QUOTES_PATH = re.compile(r"^/v3/profiles/(?P<profile>[^/]+)/quotes$")
CENT = Decimal("0.01")
# sourceCurrency -> targetCurrency -> rate (what one unit of the source buys)
RATES: dict[tuple[str, str], Decimal] = {
    ("GBP", "USD"): Decimal("1.30445"),
    ("EUR", "USD"): Decimal("1.08124"),
    ("USD", "EUR"): Decimal("0.92486"),
}
# payIn -> (fixed fee, variable fee as a fraction): BALANCE is cheapest, card dearest.
PAY_IN_FEES: dict[str, tuple[Decimal, Decimal]] = {
    "BALANCE": (Decimal("0.35"), Decimal("0.0041")),
    "BANK_TRANSFER": (Decimal("0.39"), Decimal("0.0043")),
    "DEBIT": (Decimal("0.39"), Decimal("0.0091")),
}
SUPPORTED = {c for pair in RATES for c in pair}


@dataclass(frozen=True)
class Fault:
    """One canned answer instead of a quote; ``delay`` sleeps before answering."""

    status: int
    body: Any = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


UNAUTHORIZED = Fault(401, {"error": "invalid_token", "error_description": "Invalid token"})
UNPROCESSABLE = Fault(
    422,
    {
        "errors": [
            {
                "code": "error.route.not.supported",
                "message": "This route is not supported",
                "path": "targetCurrency",
                "arguments": ["GBP", "XYZ"],
            }
        ]
    },
)
RATE_LIMITED = Fault(
    429, {"errors": [{"code": "too.many.requests", "message": "Too many requests"}]}, headers={"Retry-After": "1"}
)
UNAVAILABLE = Fault(503, "<html><body>Service Unavailable</body></html>")


def slow(seconds: float) -> Fault:
    """A quote answered only after ``seconds`` (longer than the client's timeout)."""
    return Fault(200, None, seconds)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def _number(value: Decimal) -> float:
    """A JSON number with exactly the decimal digits of ``value`` (floats print shortest)."""
    return float(value)


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeWise(LocalHttpFake):
    """Start with ``with FakeWise(token, profile_id) as fake:``; point the client at ``fake.url``."""

    thread_name = "fake-wise"

    def __init__(self, token: str = "wise-test-token", profile_id: int = 12345) -> None:
        super().__init__()
        self.token = token
        self.profile_id = profile_id
        self.lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.created = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
        self.disabled_pay_ins: set[str] = set()  # pay-in methods offered but disabled
        self._faults: list[Fault] = []

    def fail(self, fault: Fault, times: int = 1) -> None:
        with self.lock:
            self._faults.extend([fault] * times)

    def reset(self) -> None:
        with self.lock:
            self._faults.clear()
            self.requests.clear()
            self.disabled_pay_ins.clear()

    # ---- request handling ----------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        text = handler.rfile.read(length).decode() if length else ""
        try:
            body = json.loads(text) if text else None
        except json.JSONDecodeError:
            body = text
        request = RecordedRequest(handler.command, handler.path, dict(handler.headers.items()), body)
        with self.lock:
            self.requests.append(request)
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None and fault.delay:
            self._stopping.wait(fault.delay)
        if fault is not None and fault.status != 200:
            _respond(handler, fault.status, fault.body, fault.headers)
            return
        status, payload = self._answer(request)
        _respond(handler, status, payload)

    def _answer(self, request: RecordedRequest) -> tuple[int, Any]:
        match = QUOTES_PATH.match(request.path)
        if request.method != "POST" or match is None:
            return 404, {"errors": [{"code": "not.found", "message": f"No endpoint {request.method} {request.path}"}]}
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return UNAUTHORIZED.status, UNAUTHORIZED.body
        if match["profile"] != str(self.profile_id):
            return 403, {"errors": [{"code": "forbidden", "message": "You are not allowed to access this profile"}]}
        problems = _validate(request.body)
        if problems:
            return 422, {"errors": problems}
        return 200, self.quote(request.body)

    def quote(self, body: dict[str, Any]) -> dict[str, Any]:
        """The quote Wise would create for ``body`` (source amount given)."""
        source, target = body["sourceCurrency"], body["targetCurrency"]
        amount = Decimal(str(body["sourceAmount"]))
        rate = Decimal(1) if source == target else RATES[(source, target)]
        pay_out = body.get("payOut") or "BANK_TRANSFER"
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-wise:{len(self.requests)}")),
            "sourceCurrency": source,
            "targetCurrency": target,
            "sourceAmount": _number(amount),
            "payOut": pay_out,
            "preferredPayIn": body.get("preferredPayIn"),
            "rate": _number(rate),
            "createdTime": _timestamp(self.created),
            "user": 55,
            "profile": self.profile_id,
            "rateType": "FIXED",
            "rateExpirationTime": _timestamp(self.created + timedelta(minutes=30)),
            "expirationTime": _timestamp(self.created + timedelta(minutes=30)),
            "providedAmountType": "SOURCE",
            "status": "PENDING",
            "type": "STANDARD",
            "guaranteedTargetAmountAllowed": False,
            "targetAmountAllowed": True,
            "paymentOptions": [
                {
                    **_option(pay_in, source, target, amount, rate, pay_out, self.created),
                    "disabled": pay_in in self.disabled_pay_ins,
                }
                for pay_in in PAY_IN_FEES
            ]
            + [_swift_option(source, target, amount, self.created)],
            "notices": [],
        }


def _validate(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return [{"code": "NOT_VALID", "message": "Request body is not valid JSON", "path": "", "arguments": []}]
    problems = []
    for name in ("sourceCurrency", "targetCurrency"):
        if body.get(name) not in SUPPORTED:
            problems.append(
                {
                    "code": "NOT_VALID",
                    "message": f"{name} {body.get(name)!r} is not supported",
                    "path": name,
                    "arguments": [name, body.get(name)],
                }
            )
    amount = body.get("sourceAmount")
    if not isinstance(amount, int | float) or amount <= 1:
        problems.append(
            {
                "code": "NOT_VALID",
                "message": "Please enter an amount above 1",
                "path": "sourceAmount",
                "arguments": ["sourceAmount", amount],
            }
        )
    pair = (body.get("sourceCurrency"), body.get("targetCurrency"))
    if not problems and pair[0] != pair[1] and pair not in RATES:
        problems.append(
            {
                "code": "error.route.not.supported",
                "message": "This route is not supported",
                "path": "targetCurrency",
                "arguments": list(pair),
            }
        )
    return problems


def _option(
    pay_in: str, source: str, target: str, amount: Decimal, rate: Decimal, pay_out: str, created: datetime
) -> dict[str, Any]:
    fixed, variable = PAY_IN_FEES[pay_in]
    total = (fixed + amount * variable).quantize(CENT, ROUND_HALF_UP)
    pay_in_fee = (fixed / 2).quantize(CENT)
    return {
        "formattedEstimatedDelivery": "by Tuesday",
        "estimatedDeliveryDelays": [],
        "allowedProfileTypes": ["PERSONAL", "BUSINESS"],
        "feePercentage": _number((total / amount).quantize(Decimal("0.0001"))),
        "estimatedDelivery": _timestamp(created + timedelta(hours=6)),
        "fee": {
            "transferwise": _number(total - pay_in_fee),
            "payIn": _number(pay_in_fee),
            "discount": 0,
            "partner": 0,
            "total": _number(total),
            "priceSetId": 134,
        },
        "sourceAmount": _number(amount),
        "targetAmount": _number(((amount - total) * rate).quantize(CENT, ROUND_DOWN)),
        "sourceCurrency": source,
        "targetCurrency": target,
        "payIn": pay_in,
        "payOut": pay_out,
        "disabled": False,
    }


def _swift_option(source: str, target: str, amount: Decimal, created: datetime) -> dict[str, Any]:
    """An option the client must not pick: disabled, paying out over SWIFT."""
    return {
        "disabled": True,
        "estimatedDelivery": _timestamp(created + timedelta(days=2)),
        "fee": {"transferwise": 5, "payIn": 0, "discount": 0, "partner": 0, "total": 5, "priceSetId": 134},
        "sourceAmount": _number(amount),
        "targetAmount": _number(amount - 5),
        "sourceCurrency": source,
        "targetCurrency": target,
        "payIn": "BALANCE",
        "payOut": "SWIFT_OUR",
    }


def _respond(handler: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    is_text = isinstance(payload, str)
    body = (payload if is_text else json.dumps(payload)).encode() if payload is not None else b""
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "text/html" if is_text else "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
        handler.close_connection = True
