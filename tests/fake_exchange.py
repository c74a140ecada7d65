"""A local, in-memory imitation of OKX's v5 REST API, good enough for ccxt to run unmodified.

Why OKX: its markets load from one endpoint per instrument type (``public/instruments``), it
authenticates with three plain headers plus an HMAC we can verify, and every answer has the same
``{"code", "msg", "data"}`` envelope, so ccxt's own error mapping (``okx.handle_errors``) turns
the exchange's real error codes into the real ccxt exceptions.

Endpoints served (all under ``/api/v5/``)::

    public:  public/time, public/instruments, public/funding-rate, public/mark-price,
             market/ticker, market/candles, market/history-candles
    private: asset/currencies, account/balance, account/positions,
             trade/order (GET = look up, POST = place), trade/batch-orders, trade/cancel-order,
             trade/orders-pending, trade/orders-history, asset/withdrawal, asset/withdrawal-history

The server keeps a tiny book (balances, orders by client id, net positions, withdrawals) so the
answers stay consistent, records every request, and can be told to answer an endpoint with a
given fault (exchange error code, HTTP status, non-JSON body, or a delay longer than the
client's timeout). Bound to 127.0.0.1 on an ephemeral port only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.local_http import LocalHttpFake

API_PREFIX = "/api/v5/"
PUBLIC_PREFIXES = ("public/", "market/")
BATCH_STYLE = frozenset({"trade/order", "trade/batch-orders", "trade/cancel-order"})
TAKER_FEE = Decimal("0.0005")
LEVERAGE = Decimal(5)

Payload = dict[str, Any]
Answer = tuple[int, Any]


# --------------------------------------------------------------------------------------------
# faults: what OKX really answers in each situation


@dataclass(frozen=True)
class Fault:
    """One canned bad answer. ``code``/``msg`` are OKX's own; ``raw`` replaces the JSON body."""

    status: int = 200
    code: str = ""
    msg: str = ""
    raw: str | None = None
    delay: float = 0.0
    processed: bool = False  # True: the request takes effect, only the (real) answer is late


RATE_LIMITED = Fault(status=429, code="50011", msg="Too Many Requests")
MAINTENANCE = Fault(status=503, code="50001", msg="Service temporarily unavailable, please try again later.")
BAD_GATEWAY = Fault(status=502, raw="<html><body><h1>502 Bad Gateway</h1></body></html>")
INSUFFICIENT_FUNDS = Fault(code="51008", msg="Order failed. Insufficient USDT balance in account.")
INVALID_ORDER = Fault(code="51000", msg="Parameter sz error")
AUTH_FAILED = Fault(status=401, code="50111", msg="Invalid OK-ACCESS-KEY")
ORDER_NOT_FOUND = Fault(code="51603", msg="Order does not exist")


def slow(seconds: float, *, processed: bool = False) -> Fault:
    """Answer only after ``seconds`` (longer than the client's timeout: the client times out).

    ``processed=True`` is the nasty case: the venue did act (order placed, withdrawal sent).
    """
    return Fault(code="50004", msg="Endpoint request timeout", delay=seconds, processed=processed)


def _ok(data: list[Any]) -> Answer:
    return 200, {"code": "0", "msg": "", "data": data}


def _error(code: str, msg: str, status: int = 200) -> Answer:
    return status, {"code": code, "msg": msg, "data": []}


def _batch_error(code: str, msg: str, cl_ord_id: str = "") -> Answer:
    item = {"clOrdId": cl_ord_id, "ordId": "", "sCode": code, "sMsg": msg, "tag": "", "ts": _now_ms()}
    return 200, {"code": "1", "msg": "All operations failed", "data": [item]}


def _now_ms() -> str:
    return str(int(time.time() * 1000))


def _s(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


# --------------------------------------------------------------------------------------------
# the book


@dataclass(frozen=True)
class Instrument:
    inst_id: str
    inst_type: str  # SPOT or SWAP
    base: str
    quote: str
    lot: Decimal
    ct_val: Decimal = Decimal(1)
    funding_rate: Decimal = Decimal(0)
    funding_hours: int = 8

    def describe(self) -> Payload:
        swap = self.inst_type == "SWAP"
        return {
            "instType": self.inst_type,
            "instId": self.inst_id,
            "instFamily": f"{self.base}-{self.quote}" if swap else "",
            "uly": f"{self.base}-{self.quote}" if swap else "",
            "baseCcy": "" if swap else self.base,
            "quoteCcy": "" if swap else self.quote,
            "settleCcy": self.quote if swap else "",
            "ctVal": _s(self.ct_val) if swap else "",
            "ctMult": "1" if swap else "",
            "ctValCcy": self.base if swap else "",
            "ctType": "linear" if swap else "",
            "lotSz": _s(self.lot),
            "minSz": _s(self.lot),
            "tickSz": "0.1",
            "lever": "100" if swap else "",
            "state": "live",
            "listTime": "1548133413000",
            "maxLmtSz": "100000000",
            "maxMktSz": "1000000",
            "alias": "",
            "expTime": "",
            "optType": "",
            "stk": "",
            "category": "1",
        }


INSTRUMENTS = (
    Instrument("BTC-USDT", "SPOT", "BTC", "USDT", Decimal("0.00000001")),
    Instrument("BTC-USDT-SWAP", "SWAP", "BTC", "USDT", Decimal("0.01"), Decimal("0.01"), Decimal("0.0001"), 8),
    Instrument("ETH-USDT-SWAP", "SWAP", "ETH", "USDT", Decimal("0.01"), Decimal("0.1"), Decimal("-0.00005"), 4),
)
DEFAULT_MARKS = {"BTC-USDT": Decimal(50000), "BTC-USDT-SWAP": Decimal(50010), "ETH-USDT-SWAP": Decimal(3000)}
DEFAULT_BALANCES = {"USDT": Decimal(100000), "BTC": Decimal(2)}
CHAINS = {  # (ccy, network id) -> withdrawal fee
    ("USDT", "TRC20"): Decimal(1),
    ("USDT", "ERC20"): Decimal(3),
    ("BTC", "Bitcoin"): Decimal("0.0002"),
}


@dataclass
class Book:
    """The fake account. Every mutation happens under ``FakeOkx.lock``."""

    available: dict[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_BALANCES))
    frozen: dict[str, Decimal] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_MARKS))
    orders: list[Payload] = field(default_factory=list)
    positions: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # instId -> (pos, avgPx)
    withdrawals: list[Payload] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(600_000_001))

    def next_id(self) -> str:
        return str(next(self.ids))

    def freeze(self, ccy: str, amount: Decimal) -> None:
        self.available[ccy] = self.available.get(ccy, Decimal(0)) - amount
        self.frozen[ccy] = self.frozen.get(ccy, Decimal(0)) + amount

    def credit(self, ccy: str, amount: Decimal) -> None:
        self.available[ccy] = self.available.get(ccy, Decimal(0)) + amount

    def order_by(self, *, cl_ord_id: str | None = None, ord_id: str | None = None) -> Payload | None:
        for order in self.orders:
            if (cl_ord_id and order["clOrdId"] == cl_ord_id) or (ord_id and order["ordId"] == ord_id):
                return order
        return None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # relative to /api/v5/, e.g. "trade/batch-orders"
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


# --------------------------------------------------------------------------------------------
# the server


class FakeOkx(LocalHttpFake):
    """Start with ``with FakeOkx() as fake:``; point ccxt at ``fake.urls``."""

    thread_name = "fake-okx"

    def __init__(
        self,
        api_key: str = "fake-key",
        secret: str = "fake-secret",
        passphrase: str = "fake-pass",
        *,
        max_candles: int = 100,
    ) -> None:
        super().__init__()
        self.api_key, self.secret, self.passphrase = api_key, secret, passphrase
        self.max_candles = max_candles
        self.publish_funding_interval = True  # False: omit nextFundingTime, so no interval derives
        # False: only the all-instruments answer (instId=ANY) omits nextFundingTime; an answer for
        # one instrument still carries it (a venue whose bulk answer lacks the interval).
        self.bulk_funding_interval = True
        self.lock = threading.RLock()
        self.book = Book()
        self.requests: list[RecordedRequest] = []
        self._faults: dict[tuple[str, str], list[Fault]] = {}
        self._routes: dict[tuple[str, str], Callable[[RecordedRequest], Answer]] = {
            ("GET", "public/time"): self._time,
            ("GET", "public/instruments"): self._instruments,
            ("GET", "public/funding-rate"): self._funding_rate,
            ("GET", "public/mark-price"): self._mark_price,
            ("GET", "market/ticker"): self._ticker,
            ("GET", "market/candles"): self._candles,
            ("GET", "market/history-candles"): self._candles,
            ("GET", "asset/currencies"): self._currencies,
            ("GET", "account/balance"): self._balance,
            ("GET", "account/positions"): self._positions,
            ("POST", "trade/order"): self._place_one,
            ("POST", "trade/batch-orders"): self._place_batch,
            ("GET", "trade/order"): self._get_order,
            ("POST", "trade/cancel-order"): self._cancel_order,
            ("GET", "trade/orders-pending"): self._orders_pending,
            ("GET", "trade/orders-history"): self._orders_history,
            ("POST", "asset/withdrawal"): self._withdraw,
            ("GET", "asset/withdrawal-history"): self._withdrawal_history,
        }

    @property
    def urls(self) -> dict[str, str]:
        """The ``urls`` override for ``CcxtVenue`` (OKX's ``urls['api']`` has one key, ``rest``)."""
        return {"rest": self.url}

    def reset(self) -> None:
        with self.lock:
            self.book = Book()
            self.requests.clear()
            self._faults.clear()
            self.publish_funding_interval = True
            self.bulk_funding_interval = True

    # ---- test controls -----------------------------------------------------------------------

    def fail(self, path: str, fault: Fault, *, method: str | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests to ``path`` with ``fault``."""
        method = method or ("POST" if path in BATCH_STYLE | {"asset/withdrawal"} else "GET")
        with self.lock:
            self._faults.setdefault((method, path), []).extend([fault] * times)

    def calls(self, path: str, method: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.path == path and method in (None, r.method))

    def paths(self) -> list[str]:
        with self.lock:
            return [f"{r.method} {r.path}" for r in self.requests]

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    def fill(self, cl_ord_id: str) -> None:
        """Fill a resting limit order at its limit price."""
        with self.lock:
            order = self.book.order_by(cl_ord_id=cl_ord_id)
            assert order is not None and order["state"] == "live", f"no live order {cl_ord_id}"
            self._release(order)
            self._execute(order, Decimal(order["px"]))

    def settle_withdrawal(self, client_id: str, state: str = "2") -> None:
        """Move a withdrawal to ``state`` (OKX: 2 = sent, -1 = failed)."""
        with self.lock:
            for row in self.book.withdrawals:
                if row["clientId"] == client_id:
                    row["state"] = state
                    row["txId"] = "0x" + hashlib.sha256(client_id.encode()).hexdigest()

    # ---- request handling ----------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body_text = handler.rfile.read(length).decode() if length else ""
        path = split.path.removeprefix(API_PREFIX)
        request = RecordedRequest(
            method=handler.command,
            path=path,
            query=dict(parse_qsl(split.query)),
            body=json.loads(body_text) if body_text else None,
            headers={k: v for k, v in handler.headers.items()},
        )
        with self.lock:
            self.requests.append(request)
            fault = self._next_fault(request)
        if fault is not None and not fault.processed:
            status, payload = self._fault_answer(fault, request)
        else:
            status, payload = self._answer(request, handler.path, body_text)
            if fault is not None:
                self._stopping.wait(fault.delay)
        _respond(handler, status, payload)

    def _next_fault(self, request: RecordedRequest) -> Fault | None:
        queue = self._faults.get((request.method, request.path))
        return queue.pop(0) if queue else None

    def _fault_answer(self, fault: Fault, request: RecordedRequest) -> tuple[int, Any]:
        if fault.delay:
            self._stopping.wait(fault.delay)
        if fault.raw is not None:
            return fault.status, fault.raw
        if fault.status == 200 and request.path in BATCH_STYLE and request.method == "POST":
            return _batch_error(fault.code, fault.msg)
        return _error(fault.code, fault.msg, fault.status)

    def _answer(self, request: RecordedRequest, raw_path: str, body_text: str) -> Answer:
        route = self._routes.get((request.method, request.path))
        if route is None:
            return _error("404", f"Not Found: {request.method} {request.path}", 404)
        if not request.path.startswith(PUBLIC_PREFIXES):
            denied = self._authenticate(request, raw_path, body_text)
            if denied is not None:
                return denied
        with self.lock:
            return route(request)

    def _authenticate(self, request: RecordedRequest, raw_path: str, body_text: str) -> Answer | None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if headers.get("ok-access-key") != self.api_key:
            return _error("50111", "Invalid OK-ACCESS-KEY", 401)
        if headers.get("ok-access-passphrase") != self.passphrase:
            return _error("50105", "Invalid OK-ACCESS-PASSPHRASE", 401)
        prehash = headers.get("ok-access-timestamp", "") + request.method + raw_path + body_text
        digest = hmac.new(self.secret.encode(), prehash.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), headers.get("ok-access-sign", "")):
            return _error("50113", "Invalid Sign", 401)
        return None

    # ---- public --------------------------------------------------------------------------------

    def _time(self, request: RecordedRequest) -> Answer:
        return _ok([{"ts": _now_ms()}])

    def _instruments(self, request: RecordedRequest) -> Answer:
        kind = request.query.get("instType")
        return _ok([i.describe() for i in INSTRUMENTS if i.inst_type == kind])

    def _instrument(self, inst_id: str | None) -> Instrument | None:
        return next((i for i in INSTRUMENTS if i.inst_id == inst_id), None)

    def _funding_rate(self, request: RecordedRequest) -> Answer:
        inst_id = request.query.get("instId")
        swaps = [i for i in INSTRUMENTS if i.inst_type == "SWAP" and inst_id in ("ANY", i.inst_id)]
        if not swaps:
            return _error("51001", "Instrument ID does not exist")
        return _ok([self._funding_row(i, bulk=inst_id == "ANY") for i in swaps])

    def _funding_row(self, inst: Instrument, *, bulk: bool) -> Payload:
        period = inst.funding_hours * 3_600_000
        funding_time = (int(time.time() * 1000) // period + 1) * period
        row = {
            "instType": "SWAP",
            "instId": inst.inst_id,
            "method": "current_period",
            "fundingRate": _s(inst.funding_rate),
            "nextFundingRate": "",
            "fundingTime": str(funding_time),
            "nextFundingTime": str(funding_time + period),
            "minFundingRate": "-0.0375",
            "maxFundingRate": "0.0375",
            "settState": "settled",
            "ts": _now_ms(),
        }
        if not self.publish_funding_interval or (bulk and not self.bulk_funding_interval):
            del row["nextFundingTime"]
        return row

    def _mark_price(self, request: RecordedRequest) -> Answer:
        inst_id = request.query.get("instId", "")
        if inst_id not in self.book.marks:
            return _error("51001", "Instrument ID does not exist")
        return _ok([{"instType": "SWAP", "instId": inst_id, "markPx": _s(self.book.marks[inst_id]), "ts": _now_ms()}])

    def _ticker(self, request: RecordedRequest) -> Answer:
        inst = self._instrument(request.query.get("instId"))
        if inst is None:
            return _error("51001", "Instrument ID does not exist")
        last = self.book.marks[inst.inst_id]
        return _ok(
            [
                {
                    "instType": inst.inst_type,
                    "instId": inst.inst_id,
                    "last": _s(last),
                    "lastSz": "0.1",
                    "askPx": _s(last + Decimal("0.1")),
                    "askSz": "1",
                    "bidPx": _s(last - Decimal("0.1")),
                    "bidSz": "1",
                    "open24h": _s(last),
                    "high24h": _s(last),
                    "low24h": _s(last),
                    "volCcy24h": "100",
                    "vol24h": "2",
                    "sodUtc0": _s(last),
                    "sodUtc8": _s(last),
                    "ts": _now_ms(),
                }
            ]
        )

    def _candles(self, request: RecordedRequest) -> Answer:
        """OKX semantics: newest first; ``after`` = older than, ``before`` = newer than (both exclusive)."""
        if self._instrument(request.query.get("instId")) is None:
            return _error("51001", "Instrument ID does not exist")
        step = _bar_ms(request.query.get("bar", "1m"))
        newest = int(time.time() * 1000) // step * step
        after = int(request.query.get("after", newest + step))
        before = int(request.query.get("before", -1))
        limit = min(int(request.query.get("limit", 100)), self.max_candles)
        top = min(newest, (after - 1) // step * step)
        rows = []
        for ts in range(top, before, -step):
            if len(rows) == limit:
                break
            rows.append(_candle(ts, confirmed=ts != newest))
        return _ok(rows)

    # ---- private: account ----------------------------------------------------------------------

    def _currencies(self, request: RecordedRequest) -> Answer:
        return _ok(
            [
                {
                    "ccy": ccy,
                    "chain": f"{ccy}-{net}",
                    "name": ccy,
                    "canDep": True,
                    "canWd": True,
                    "canInternal": True,
                    "fee": _s(fee),
                    "minFee": _s(fee),
                    "maxFee": _s(fee),
                    "minWd": "0.001",
                    "maxWd": "1000000",
                    "wdTickSz": "8",
                    "mainNet": False,
                }
                for (ccy, net), fee in CHAINS.items()
            ]
        )

    def _balance(self, request: RecordedRequest) -> Answer:
        details = []
        for ccy in sorted(set(self.book.available) | set(self.book.frozen)):
            avail, frozen = self.book.available.get(ccy, Decimal(0)), self.book.frozen.get(ccy, Decimal(0))
            details.append(
                {
                    "ccy": ccy,
                    "availBal": _s(avail),
                    "frozenBal": _s(frozen),
                    "cashBal": _s(avail + frozen),
                    "eq": _s(avail + frozen),
                    "uTime": _now_ms(),
                }
            )
        return _ok([{"adjEq": "", "details": details, "totalEq": "", "uTime": _now_ms()}])

    def _positions(self, request: RecordedRequest) -> Answer:
        rows = [self._position_row(inst_id, pos, avg) for inst_id, (pos, avg) in self.book.positions.items() if pos]
        return _ok(rows)

    def _position_row(self, inst_id: str, pos: Decimal, avg: Decimal) -> Payload:
        inst = self._instrument(inst_id)
        assert inst is not None
        mark = self.book.marks[inst_id]
        notional = abs(pos) * inst.ct_val * mark
        return {
            "instType": "SWAP",
            "instId": inst_id,
            "mgnMode": "cross",
            "posSide": "net",
            "pos": _s(pos),
            "ccy": inst.quote,
            "posCcy": "",
            "avgPx": _s(avg),
            "markPx": _s(mark),
            "upl": _s(pos * inst.ct_val * (mark - avg)),
            "uplRatio": "0",
            "lever": _s(LEVERAGE),
            "notionalUsd": _s(notional),
            "imr": _s(notional / LEVERAGE),
            "mmr": _s(notional / 100),
            "margin": "",
            "liqPx": "",
            "posId": str(zlib.crc32(inst_id.encode())),
            "cTime": _now_ms(),
            "uTime": _now_ms(),
        }

    # ---- private: trading ----------------------------------------------------------------------

    def _place_one(self, request: RecordedRequest) -> Answer:
        return self._place([request.body])

    def _place_batch(self, request: RecordedRequest) -> Answer:
        return self._place(list(request.body))

    def _place(self, items: list[Payload]) -> Answer:
        item = items[0]
        rejection = self._reject(item)
        if rejection is not None:
            return _batch_error(*rejection, cl_ord_id=item.get("clOrdId", ""))
        order = self._new_order(item)
        self.book.orders.append(order)
        if order["ordType"] == "market":
            self._execute(order, self.book.marks[order["instId"]])
        else:
            self._freeze_for(order)
        ack = {
            "clOrdId": order["clOrdId"],
            "ordId": order["ordId"],
            "sCode": "0",
            "sMsg": "Order placed",
            "tag": order["tag"],
            "ts": order["cTime"],
        }
        return _ok([ack])

    def _reject(self, item: Payload) -> tuple[str, str] | None:
        inst = self._instrument(item.get("instId"))
        if inst is None:
            return "51001", "Instrument ID does not exist"
        cl_ord_id = item.get("clOrdId", "")
        if not cl_ord_id.isalnum() or len(cl_ord_id) > 32:
            return "51000", "Parameter clOrdId error"
        if self.book.order_by(cl_ord_id=cl_ord_id) is not None:
            return "51016", "Duplicated clOrdId"
        size = Decimal(item["sz"])
        if size <= 0 or size % inst.lot:
            return "51121", "Order quantity must be a multiple of the lot size."
        ccy, need = self._requirement(inst, item)
        if self.book.available.get(ccy, Decimal(0)) < need:
            return "51008", f"Order failed. Insufficient {ccy} balance in account."
        return None

    def _requirement(self, inst: Instrument, item: Payload) -> tuple[str, Decimal]:
        size = Decimal(item["sz"])
        price = Decimal(item["px"]) if item.get("px") else self.book.marks[inst.inst_id]
        if inst.inst_type == "SWAP":
            if str(item.get("reduceOnly")).lower() == "true":
                return inst.quote, Decimal(0)
            return inst.quote, size * inst.ct_val * price / LEVERAGE
        if item["side"] == "sell":
            return inst.base, size
        return inst.quote, size * price * (1 + TAKER_FEE)

    def _new_order(self, item: Payload) -> Payload:
        inst = self._instrument(item["instId"])
        assert inst is not None
        now = _now_ms()
        return {
            "instType": inst.inst_type,
            "instId": inst.inst_id,
            "ordId": self.book.next_id(),
            "clOrdId": item["clOrdId"],
            "tag": item.get("tag", ""),
            "px": item.get("px", ""),
            "sz": item["sz"],
            "ordType": item["ordType"],
            "side": item["side"],
            "posSide": "net",
            "tdMode": item.get("tdMode", ""),
            "tgtCcy": item.get("tgtCcy", ""),
            "accFillSz": "0",
            "fillPx": "",
            "fillSz": "0",
            "fillTime": "",
            "avgPx": "",
            "state": "live",
            "fee": "0",
            "feeCcy": inst.quote,
            "reduceOnly": "true" if str(item.get("reduceOnly")).lower() == "true" else "false",
            "cTime": now,
            "uTime": now,
            "lever": "",
            "category": "normal",
        }

    def _freeze_for(self, order: Payload) -> None:
        inst = self._instrument(order["instId"])
        assert inst is not None
        ccy, amount = self._requirement(inst, order)
        order["_frozen"] = (ccy, amount)
        self.book.freeze(ccy, amount)

    def _release(self, order: Payload) -> None:
        ccy, amount = order.pop("_frozen", ("USDT", Decimal(0)))
        self.book.freeze(ccy, -amount)

    def _execute(self, order: Payload, price: Decimal) -> None:
        inst = self._instrument(order["instId"])
        assert inst is not None
        size = Decimal(order["sz"])
        fee = size * inst.ct_val * price * TAKER_FEE
        if inst.inst_type == "SWAP":
            self._move_position(inst.inst_id, size if order["side"] == "buy" else -size, price)
        else:
            sign = 1 if order["side"] == "buy" else -1
            self.book.credit(inst.base, sign * size)
            self.book.credit(inst.quote, -sign * size * price)
        self.book.credit(inst.quote, -fee)
        order.update(
            state="filled",
            accFillSz=order["sz"],
            fillSz=order["sz"],
            avgPx=_s(price),
            fillPx=_s(price),
            fee=_s(-fee),
            fillTime=_now_ms(),
            uTime=_now_ms(),
        )

    def _move_position(self, inst_id: str, delta: Decimal, price: Decimal) -> None:
        pos, avg = self.book.positions.get(inst_id, (Decimal(0), Decimal(0)))
        new = pos + delta
        if pos == 0 or (pos > 0) == (delta > 0):
            avg = (abs(pos) * avg + abs(delta) * price) / abs(new)
        elif new != 0 and (new > 0) != (pos > 0):
            avg = price
        self.book.positions[inst_id] = (new, avg if new else Decimal(0))

    def _get_order(self, request: RecordedRequest) -> Answer:
        order = self.book.order_by(cl_ord_id=request.query.get("clOrdId"), ord_id=request.query.get("ordId"))
        if order is None or order["instId"] != request.query.get("instId"):
            return _error("51603", "Order does not exist")
        return _ok([_public(order)])

    def _cancel_order(self, request: RecordedRequest) -> Answer:
        body = request.body or {}
        order = self.book.order_by(cl_ord_id=body.get("clOrdId"), ord_id=body.get("ordId"))
        if order is None or order["instId"] != body.get("instId"):
            return _batch_error(
                "51400", "Order cancellation failed as the order has been filled, canceled or does not exist."
            )
        if order["state"] == "canceled":
            return _batch_error("51401", "Cancellation failed as the order is already canceled.")
        if order["state"] == "filled":
            return _batch_error("51402", "Cancellation failed as the order is already completed.")
        self._release(order)
        order.update(state="canceled", uTime=_now_ms())
        return _ok(
            [
                {
                    "clOrdId": order["clOrdId"],
                    "ordId": order["ordId"],
                    "sCode": "0",
                    "sMsg": "",
                    "ts": _now_ms(),
                }
            ]
        )

    def _orders_pending(self, request: RecordedRequest) -> Answer:
        inst_id = request.query.get("instId")
        rows = [o for o in self.book.orders if o["state"] == "live" and inst_id in (None, o["instId"])]
        return _ok([_public(o) for o in reversed(rows)])

    def _orders_history(self, request: RecordedRequest) -> Answer:
        query = request.query
        if "instType" not in query:
            return _error("50014", "Parameter instType can not be empty")
        rows = [
            o
            for o in self.book.orders
            if o["state"] != "live"
            and o["instType"] == query["instType"]
            and query.get("instId") in (None, o["instId"])
            and query.get("state") in (None, o["state"])
        ]
        return _ok([_public(o) for o in reversed(rows)])

    # ---- private: funding ----------------------------------------------------------------------

    def _withdraw(self, request: RecordedRequest) -> Answer:
        body = request.body or {}
        ccy, chain = body.get("ccy", ""), body.get("chain", "")
        network = chain.removeprefix(f"{ccy}-")
        if (ccy, network) not in CHAINS:
            return _error("58207", "Withdrawal address is not whitelisted for verification exemption.")
        fee = CHAINS[(ccy, network)]
        amount = Decimal(body.get("amt", "0"))
        if self.book.available.get(ccy, Decimal(0)) < amount + fee:
            return _error("58350", "Insufficient balance.")
        self.book.credit(ccy, -(amount + fee))
        row = {
            "ccy": ccy,
            "chain": chain,
            "amt": _s(amount),
            "fee": _s(fee),
            "feeCcy": ccy,
            "to": body.get("toAddr", ""),
            "toAddrType": "1",
            "areaCodeTo": "",
            "from": "",
            "areaCodeFrom": "",
            "txId": "",
            "state": "0",
            "wdId": self.book.next_id(),
            "clientId": body.get("clientId", ""),
            "ts": _now_ms(),
            "tag": "",
            "pmtId": "",
            "memo": "",
            "addrEx": None,
            "nonTradableAsset": False,
        }
        self.book.withdrawals.append(row)
        return _ok(
            [
                {
                    "amt": row["amt"],
                    "wdId": row["wdId"],
                    "ccy": ccy,
                    "clientId": row["clientId"],
                    "chain": chain,
                }
            ]
        )

    def _withdrawal_history(self, request: RecordedRequest) -> Answer:
        query = request.query
        rows = [
            w
            for w in self.book.withdrawals
            if all(query.get(key) in (None, w[key]) for key in ("ccy", "clientId", "wdId"))
        ]
        return _ok(list(reversed(rows)))


def _public(order: Payload) -> Payload:
    return {k: v for k, v in order.items() if not k.startswith("_")}


def _bar_ms(bar: str) -> int:
    bar = bar.removesuffix("utc")
    units = {"m": 60_000, "H": 3_600_000, "D": 86_400_000, "W": 604_800_000}
    return int(bar[:-1]) * units[bar[-1]]


def _candle(ts: int, *, confirmed: bool) -> list[str]:
    """A deterministic candle: prices derive from the timestamp, so pages always agree."""
    base = Decimal(50000) + Decimal(ts // 3_600_000 % 1000)
    return [
        str(ts),
        _s(base),
        _s(base + 5),
        _s(base - 5),
        _s(base + 1),
        "12.5",
        "625000",
        "625000",
        "1" if confirmed else "0",
    ]


def _respond(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    body = text.encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "text/html" if isinstance(payload, str) else "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
        handler.close_connection = True
