"""The Wise quote client against a local fake Wise (tests/fake_wise.py), and the paper quoter."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests import fake_wise as fw
from tests.fake_wise import FakeWise
from tradeops.config import load_settings
from tradeops.errors import AuthenticationError, InvalidOrderError, OperationalError, TemporaryVenueError
from tradeops.wise import PaperWiseQuoter, WiseClient, parse_quote, wise_quoter

TOKEN = "wise-secret-token-3f9a"
PROFILE = 12345
QUOTES_PATH = f"/v3/profiles/{PROFILE}/quotes"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeWise]:
    with FakeWise(TOKEN, PROFILE) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeWise) -> FakeWise:
    server.reset()
    return server


def client(fake: FakeWise, *, token: str = TOKEN, profile: int = PROFILE, timeout: float = 5) -> WiseClient:
    return WiseClient(fake.url, token, profile, timeout=timeout)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- happy path -----------------------------------------------------------------------------------


def test_quote_when_wise_answers_then_fee_rate_and_amounts_parsed_exactly(fake: FakeWise) -> None:
    quote = client(fake).quote("GBP", "USD", Decimal("1000"))

    # BALANCE pay-in: fee 0.35 + 0.41 % of 1000 = 4.45; (1000 - 4.45) * 1.30445 = 1298.6451... -> 1298.64
    assert quote.fee == Decimal("4.45")
    assert quote.rate == Decimal("1.30445")
    assert quote.source_amount == Decimal("1000")
    assert quote.target_amount == Decimal("1298.64")
    assert (quote.pay_in, quote.pay_out) == ("BALANCE", "BANK_TRANSFER")
    assert (quote.source_currency, quote.target_currency) == ("GBP", "USD")
    created = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert quote.created_at == created
    assert quote.rate_expires_at == created + timedelta(minutes=30)
    assert quote.settle_seconds == 6 * 3600
    assert quote.quote_id and len(quote.quote_id) == 36


def test_quote_when_sent_then_post_carries_bearer_token_and_wise_body(fake: FakeWise) -> None:
    client(fake).quote("EUR", "USD", Decimal("2500.50"))

    (request,) = fake.requests
    assert (request.method, request.path) == ("POST", QUOTES_PATH)
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.body["sourceCurrency"] == "EUR"
    assert request.body["targetCurrency"] == "USD"
    assert request.body["sourceAmount"] == 2500.5
    assert request.body["targetAmount"] is None
    assert request.body["payOut"] == "BANK_TRANSFER"


def test_quote_when_balance_pay_in_disabled_then_bank_transfer_option_used(fake: FakeWise) -> None:
    fake.disabled_pay_ins.add("BALANCE")

    quote = client(fake).quote("GBP", "USD", Decimal("1000"))

    # BANK_TRANSFER pay-in: 0.39 + 0.43 % of 1000 = 4.69; (1000 - 4.69) * 1.30445 = 1298.3391... -> 1298.33
    assert (quote.pay_in, quote.fee, quote.target_amount) == ("BANK_TRANSFER", Decimal("4.69"), Decimal("1298.33"))


def test_quote_when_no_usable_payment_option_then_invalid_order_error(fake: FakeWise) -> None:
    fake.disabled_pay_ins.update({"BALANCE", "BANK_TRANSFER"})

    with pytest.raises(InvalidOrderError, match="no enabled option"):
        client(fake).quote("GBP", "USD", Decimal("1000"))


def test_quote_when_amount_more_precise_than_float_then_refused_before_calling(fake: FakeWise) -> None:
    with pytest.raises(InvalidOrderError, match="precision"):
        client(fake).quote("GBP", "USD", Decimal("1000.00000000000000001"))
    assert fake.requests == []


def test_parse_quote_when_rate_expiration_missing_then_locked_30_minutes_from_creation(fake: FakeWise) -> None:
    payload = json.loads(
        json.dumps(fake.quote({"sourceCurrency": "GBP", "targetCurrency": "USD", "sourceAmount": 1000}))
    )
    del payload["rateExpirationTime"]

    quote = parse_quote(payload)

    assert quote.rate_expires_at == datetime(2026, 3, 2, 10, 30, tzinfo=UTC)


def test_parse_quote_when_answer_lacks_rate_then_operational_error(fake: FakeWise) -> None:
    payload = fake.quote({"sourceCurrency": "GBP", "targetCurrency": "USD", "sourceAmount": 1000})
    del payload["rate"]

    with pytest.raises(OperationalError, match="rate"):
        parse_quote(payload)


# -- errors -----------------------------------------------------------------------------------------


def test_quote_when_token_wrong_then_authentication_error(fake: FakeWise) -> None:
    with pytest.raises(AuthenticationError, match=r"401.*Invalid token"):
        client(fake, token="not-the-token").quote("GBP", "USD", Decimal("1000"))


def test_quote_when_profile_not_the_tokens_then_authentication_error(fake: FakeWise) -> None:
    with pytest.raises(AuthenticationError, match="403"):
        client(fake, profile=999).quote("GBP", "USD", Decimal("1000"))


def test_quote_when_wise_answers_422_then_invalid_order_error_with_wises_message(fake: FakeWise) -> None:
    fake.fail(fw.UNPROCESSABLE)

    with pytest.raises(InvalidOrderError, match=r"422.*This route is not supported \(code error.route.not.supported"):
        client(fake).quote("GBP", "USD", Decimal("1000"))


def test_quote_when_currency_unknown_then_wise_validation_message_named(fake: FakeWise) -> None:
    with pytest.raises(InvalidOrderError, match=r"targetCurrency 'XYZ' is not supported.*path targetCurrency"):
        client(fake).quote("GBP", "XYZ", Decimal("1000"))


@pytest.mark.parametrize("fault", [fw.RATE_LIMITED, fw.UNAVAILABLE], ids=["429", "503"])
def test_quote_when_wise_rate_limits_or_is_down_then_temporary_error(fake: FakeWise, fault: fw.Fault) -> None:
    fake.fail(fault)

    with pytest.raises(TemporaryVenueError, match=str(fault.status)):
        client(fake).quote("GBP", "USD", Decimal("1000"))


def test_quote_when_wise_answers_too_late_then_temporary_error(fake: FakeWise) -> None:
    fake.fail(fw.slow(3))

    with pytest.raises(TemporaryVenueError, match=r"within 0\.3 s"):
        client(fake, timeout=0.3).quote("GBP", "USD", Decimal("1000"))


def test_quote_when_nothing_listens_then_temporary_error() -> None:
    wise = WiseClient(f"http://127.0.0.1:{closed_port()}", TOKEN, PROFILE, timeout=2)

    with pytest.raises(TemporaryVenueError, match="ConnectionError"):
        wise.quote("GBP", "USD", Decimal("1000"))


def test_quote_when_logging_at_debug_then_token_never_in_logs_or_errors(
    fake: FakeWise, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wise = client(fake, timeout=0.3)
    errors: list[Exception] = []

    wise.quote("GBP", "USD", Decimal("1000"))
    for fault in (fw.UNAUTHORIZED, fw.UNPROCESSABLE, fw.UNAVAILABLE, fw.slow(2)):
        fake.fail(fault)
        with pytest.raises((AuthenticationError, InvalidOrderError, TemporaryVenueError)) as caught:
            wise.quote("GBP", "USD", Decimal("1000"))
        errors.append(caught.value)

    assert "Wise quote" in caplog.text  # the client did log
    assert TOKEN not in caplog.text
    assert all(TOKEN not in f"{e!s} {e!r}" for e in errors)
    assert TOKEN not in repr(wise)


# -- paper quotes -------------------------------------------------------------------------------


def paper_settings() -> PaperWiseQuoter:
    return PaperWiseQuoter(load_settings(env={}).wise)


def test_paper_quote_when_same_currency_then_configured_fee_and_rate_one() -> None:
    quote = paper_settings().quote("USD", "USD", Decimal("10000"))

    # fee = 1.10 + 0.43 % of 10000 = 44.10
    assert (quote.rate, quote.fee, quote.target_amount) == (Decimal(1), Decimal("44.10"), Decimal("9955.90"))
    assert quote.settle_seconds == 3600


def test_paper_quote_when_cross_currency_then_rate_from_table() -> None:
    quote = paper_settings().quote("EUR", "USD", Decimal("1000"))

    # fee = 1.10 + 4.30 = 5.40; (1000 - 5.40) * 1.08 = 1074.168 -> 1074.16
    assert (quote.rate, quote.fee, quote.target_amount) == (Decimal("1.08"), Decimal("5.40"), Decimal("1074.16"))


def test_paper_quote_when_asked_twice_then_same_quote_id_and_amounts() -> None:
    quoter = paper_settings()

    first, second = (quoter.quote("USD", "USD", Decimal("1234.56")) for _ in range(2))

    assert (first.quote_id, first.fee, first.target_amount) == (second.quote_id, second.fee, second.target_amount)


@pytest.mark.parametrize(
    ("source", "target", "amount", "message"),
    [("USD", "JPY", "1000", "no rate for JPY"), ("USD", "USD", "1.10", "does not cover the fee")],
)
def test_paper_quote_when_unknown_currency_or_amount_below_fee_then_invalid_order(
    source: str, target: str, amount: str, message: str
) -> None:
    with pytest.raises(InvalidOrderError, match=message):
        paper_settings().quote(source, target, Decimal(amount))


# -- choosing paper or live -----------------------------------------------------------------------


def live_env(fake: FakeWise) -> dict[str, str]:
    return {
        "TRADEOPS__WISE__KIND": "live",
        "TRADEOPS__WISE__PROFILE_ID": str(PROFILE),
        "TRADEOPS__WISE__BASE_URL": fake.url,
    }


def test_wise_quoter_when_paper_then_paper_model_and_no_token_asked() -> None:
    def provider(conn_id: str) -> str:
        raise AssertionError("paper quotes need no token")

    assert isinstance(wise_quoter(load_settings(env={}), provider), PaperWiseQuoter)


def test_wise_quoter_when_live_then_token_of_configured_connection_used(fake: FakeWise) -> None:
    asked: list[str] = []

    def provider(conn_id: str) -> str:
        asked.append(conn_id)
        return TOKEN

    quote = wise_quoter(load_settings(env=live_env(fake)), provider).quote("GBP", "USD", Decimal("1000"))

    assert asked == ["tradeops_wise"]
    assert quote.fee == Decimal("4.45")


def test_wise_quoter_when_live_and_connection_has_no_token_then_authentication_error(fake: FakeWise) -> None:
    with pytest.raises(AuthenticationError, match="tradeops_wise"):
        wise_quoter(load_settings(env=live_env(fake)), lambda conn_id: "")


def test_wise_quoter_when_live_without_provider_then_token_read_from_airflow_conn_env(
    fake: FakeWise, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(env=live_env(fake))
    monkeypatch.delenv("AIRFLOW_CONN_TRADEOPS_WISE", raising=False)
    with pytest.raises(AuthenticationError, match="tradeops_wise"):
        wise_quoter(settings)

    monkeypatch.setenv("AIRFLOW_CONN_TRADEOPS_WISE", json.dumps({"conn_type": "http", "password": TOKEN}))
    quote = wise_quoter(settings).quote("GBP", "USD", Decimal("1000"))

    assert quote.fee == Decimal("4.45")
    assert fake.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"
