"""The rebalance planner: exact cheapest plans on hand-checkable cases, and their execution as
saga steps on the paper venue (``tradeops.saga.actions.rebalance_transfer``: on-chain legs go to
``withdraw``, fiat legs through paper Wise).

Default configuration (config/tradeops.yaml): USDT targets binance 0.4, bybit 0.3, okx 0.3,
tolerance 2 %, min_transfer 1000; TRC20 fees binance 1, bybit 1, okx 0.8 (ERC20 4.5 / 5 / 3.5).
USD targets alpaca 0.8, binance 0.2, both fiat accounts moving money through (paper) Wise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tradeops.config import Settings, load_settings, settings
from tradeops.errors import InvalidOrderError, StillSettlingError
from tradeops.rebalance import (
    TRANSFER_ACTION,
    PlannedTransfer,
    RebalanceError,
    RebalancePlan,
    plan_rebalance,
    to_saga_steps,
    verify_rebalance,
)
from tradeops.saga import actions
from tradeops.saga.core import UndoOutcome, resolve_action
from tradeops.saga.keys import idempotency_key
from tradeops.wise import PaperWiseQuoter, WiseQuote

D = Decimal
PAPER_VENUES = ("alpaca", "binance", "bybit", "okx")


def default_settings(**overrides: str) -> Settings:
    """The shipped configuration, with ``TRADEOPS__...`` style overrides (key: path after the prefix)."""
    return load_settings(env={f"TRADEOPS__{key}": value for key, value in overrides.items()})


def usdt(binance: str, bybit: str, okx: str) -> dict[str, dict[str, Decimal]]:
    return {"binance": {"USDT": D(binance)}, "bybit": {"USDT": D(bybit)}, "okx": {"USDT": D(okx)}}


def usd(alpaca: str, binance: str) -> dict[str, dict[str, Decimal]]:
    return {"alpaca": {"USD": D(alpaca)}, "binance": {"USD": D(binance)}}


def merged(*parts: Mapping[str, Mapping[str, Decimal]]) -> dict[str, dict[str, Decimal]]:
    """venue -> asset -> total, from several such mappings."""
    result: dict[str, dict[str, Decimal]] = {}
    for part in parts:
        for venue, assets in part.items():
            result.setdefault(venue, {}).update(assets)
    return result


def transfer(
    source: str, target: str, amount: str, fee: str, received: str, network: str = "TRC20", asset: str = "USDT"
) -> PlannedTransfer:
    return PlannedTransfer(
        from_venue=source,
        to_venue=target,
        asset=asset,
        network=network,
        amount=D(amount),
        fee=D(fee),
        received=D(received),
        settle_seconds=60,
    )


def custom_settings(
    balances_fees: Mapping[str, str | None], *, tolerance: str = "0.1", min_transfer: str = "1000"
) -> Settings:
    """Paper venues with equal USDT weights; each venue's TRC20 fee (None: no withdrawal route)."""
    weight = D(1) / len(balances_fees)
    venues: dict[str, Any] = {}
    for name, fee in balances_fees.items():
        withdrawal = {"USDT": {"TRC20": {"fee": fee, "settle_seconds": 60}}} if fee is not None else {}
        venues[name] = {"kind": "paper", "markets": [], "initial_balances": {"USDT": "0"}, "withdrawal": withdrawal}
    return Settings.model_validate(
        {
            "venues": venues,
            "paper": {"prices": {}},
            "rebalance": {
                "targets": {"USDT": {name: str(weight) for name in balances_fees}},
                "tolerance_pct": tolerance,
                "min_transfer": {"USDT": min_transfer},
            },
        }
    )


class FlatQuoter:
    """A fiat quoter charging a flat fee; records the amounts it was asked about."""

    def __init__(self, fee: str, settle_seconds: int = 120) -> None:
        self.fee = D(fee)
        self.settle_seconds = settle_seconds
        self.amounts: list[Decimal] = []

    def quote(self, source_currency: str, target_currency: str, source_amount: Decimal) -> WiseQuote:
        self.amounts.append(source_amount)
        now = datetime(2026, 1, 1, tzinfo=UTC)
        return WiseQuote(
            quote_id=f"flat-{len(self.amounts)}",
            source_currency=source_currency,
            target_currency=target_currency,
            source_amount=source_amount,
            target_amount=source_amount - self.fee,
            rate=D(1),
            fee=self.fee,
            pay_in="BALANCE",
            pay_out="BANK_TRANSFER",
            created_at=now,
            rate_expires_at=now + timedelta(minutes=30),
            estimated_delivery=now + timedelta(seconds=self.settle_seconds),
        )


# -- planning: exact results ------------------------------------------------------------------------


def test_plan_when_every_venue_within_tolerance_then_empty_plan() -> None:
    plan = plan_rebalance(merged(usdt("400000", "300000", "300000"), usd("250000", "62500")), default_settings())

    assert plan.is_empty
    assert plan.total_fees == {}
    assert plan.after() == plan.before()
    assert "no transfer needed" in plan.explain()
    assert to_saga_steps(plan) == []


def test_plan_when_one_venue_holds_the_surplus_then_two_trc20_transfers_land_receivers_on_target() -> None:
    # okx +100000, binance -50000, bybit -50000. okx pays TRC20 0.8 per transfer (ERC20 costs 3.5).
    plan = plan_rebalance(usdt("350000", "250000", "400000"), default_settings())

    assert plan.transfers == (
        transfer("okx", "binance", "50000.8", "0.8", "50000"),
        transfer("okx", "bybit", "50000.8", "0.8", "50000"),
    )
    assert plan.total_fees == {"USDT": D("1.6")}
    assert plan.after()["USDT"] == {"binance": D(400000), "bybit": D(300000), "okx": D("299998.4")}
    assert plan.targets()["USDT"] == {"binance": D(400000), "bybit": D(300000), "okx": D(300000)}


def test_plan_when_relaying_through_the_cheaper_sender_pays_less_then_plan_beats_greedy_pairing() -> None:
    """binance +100000 (TRC20 fee 1), bybit and okx -50000 each; okx's own TRC20 fee is 0.8.

    Greedy pairing (surplus straight to each deficit) sends binance -> bybit and binance -> okx:
    2 transfers, 2 USDT. Any plan needs a binance transfer (fee 1) and a transfer arriving at
    each of bybit and okx; with one binance transfer the other arrival comes from okx or bybit
    (0.8 or 1), with two it costs 1. So 1 + 0.8 = 1.8 is the minimum, and the plan finds it:
    binance -> okx 100001, and okx -> bybit 50000.8 funded from okx's own balance.
    """
    plan = plan_rebalance(usdt("500000", "250000", "250000"), default_settings())

    assert plan.transfers == (
        transfer("binance", "okx", "100001", "1", "100000"),
        transfer("okx", "bybit", "50000.8", "0.8", "50000"),
    )
    assert plan.total_fees == {"USDT": D("1.8")}
    assert plan.total_fees["USDT"] < 2  # the greedy pairing's cost
    assert plan.after()["USDT"] == {"binance": D(399999), "bybit": D(300000), "okx": D("299999.2")}


def test_plan_when_subset_sums_match_then_three_transfers_where_greedy_needs_four() -> None:
    """Surpluses a +40000, b +30000, c +30000; deficits d -60000, e -40000; fee 1 everywhere.

    Greedy largest-first: a->d 40000, b->e 30000, then c must split (d 20000, e 10000): 4 transfers.
    Each of the three senders is outside the +-1000 band, so >= 3 transfers: a->e, b->d, c->d is
    optimal (3 USDT), and it is the only 3-transfer plan.
    """
    config = custom_settings(dict.fromkeys("abcde", "1"))
    balances = {
        v: {"USDT": D(b)} for v, b in zip("abcde", ["240000", "230000", "230000", "140000", "160000"], strict=True)
    }

    plan = plan_rebalance(balances, config)

    assert [(t.from_venue, t.to_venue, t.amount, t.received) for t in plan.transfers] == [
        ("a", "e", D("40001"), D("40000")),
        ("b", "d", D("30001"), D("30000")),
        ("c", "d", D("30001"), D("30000")),
    ]
    assert plan.total_fees == {"USDT": D(3)}
    assert plan.after()["USDT"] == dict(
        zip("abcde", map(D, ["199999", "199999", "199999", "200000", "200000"]), strict=True)
    )


def test_plan_when_a_venue_sits_inside_tolerance_then_it_is_left_alone() -> None:
    # binance -20000 is exactly on the 2 % edge (inside); bybit +50000 and okx -30000 are outside.
    plan = plan_rebalance(usdt("380000", "350000", "270000"), default_settings())

    assert plan.transfers == (transfer("bybit", "okx", "30001", "1", "30000"),)
    assert plan.after()["USDT"] == {"binance": D(380000), "bybit": D(319999), "okx": D(300000)}
    assert plan.notes == ()


def test_plan_when_only_inside_venues_can_absorb_the_surplus_then_they_take_part_and_a_note_says_so() -> None:
    # binance +30000 is outside; bybit and okx (-15000 each) are inside but are the only receivers.
    plan = plan_rebalance(usdt("430000", "285000", "285000"), default_settings())

    assert plan.transfers == (transfer("binance", "bybit", "15001", "1", "15000"),)
    assert plan.after()["USDT"]["binance"] == D(414999)
    assert len(plan.notes) == 1 and "had to take part" in plan.notes[0]


def test_plan_when_imbalance_within_a_wider_tolerance_then_nothing_moves() -> None:
    plan = plan_rebalance(usdt("450000", "250000", "300000"), default_settings(REBALANCE__TOLERANCE_PCT="5"))

    assert plan.is_empty


def test_plan_when_min_transfer_exceeds_the_need_then_the_transfer_is_min_transfer() -> None:
    # binance +25000, bybit -25000 (band 20000); no transfer below 40000: bybit ends +14999, inside.
    plan = plan_rebalance(usdt("425000", "275000", "300000"), default_settings(REBALANCE__MIN_TRANSFER__USDT="40000"))

    assert plan.transfers == (transfer("binance", "bybit", "40000", "1", "39999"),)
    assert plan.after()["USDT"] == {"binance": D(385000), "bybit": D(314999), "okx": D(300000)}


def test_plan_when_min_transfer_would_overshoot_the_band_then_unreachable_error() -> None:
    # 50000 minimum: binance -> bybit leaves bybit +24999, outside the 20000 band; every other
    # way needs money going round (there and back, or a cycle through okx), which is not allowed.
    config = default_settings(REBALANCE__MIN_TRANSFER__USDT="50000")

    with pytest.raises(RebalanceError, match="min_transfer") as caught:
        plan_rebalance(usdt("425000", "275000", "300000"), config)

    assert caught.value.asset == "USDT"
    assert caught.value.venues == ("binance", "bybit")


def test_plan_when_a_deficit_venue_has_no_route_in_then_error_names_venue_and_asset() -> None:
    # binance is no fiat account any more: nothing can bring it USD.
    config = default_settings(REBALANCE__FIAT_ACCOUNTS="{alpaca: USD}")

    with pytest.raises(
        RebalanceError, match=r"no route takes USD out of alpaca.*no route brings USD to binance"
    ) as caught:
        plan_rebalance(usd("280000", "32500"), config)

    assert (caught.value.asset, caught.value.venues) == ("USD", ("alpaca", "binance"))


def test_plan_when_a_surplus_venue_cannot_withdraw_then_error_names_it() -> None:
    config = custom_settings({"a": None, "b": "1"}, tolerance="2")

    with pytest.raises(RebalanceError, match="no route takes USDT out of a"):
        plan_rebalance({"a": {"USDT": D(700)}, "b": {"USDT": D(300)}}, config)


# -- planning: fiat legs ----------------------------------------------------------------------------


def test_plan_when_fiat_leg_with_flat_quote_then_priced_by_quoter_and_receiver_on_target() -> None:
    # Total 312500: alpaca 0.8 -> 250000 (+30000), binance 0.2 -> 62500 (-30000).
    quoter = FlatQuoter("5")

    plan = plan_rebalance(usd("280000", "32500"), default_settings(), quoter)

    assert plan.transfers == (
        PlannedTransfer(
            from_venue="alpaca",
            to_venue="binance",
            asset="USD",
            network="wise",
            amount=D("30005"),
            fee=D(5),
            received=D("30000"),
            settle_seconds=120,
        ),
    )
    assert quoter.amounts[-1] == D("30005")  # the final amount itself was quoted
    assert plan.after()["USD"] == {"alpaca": D(249995), "binance": D(62500)}


def test_plan_when_fiat_fee_has_a_percentage_then_smallest_amount_reaching_the_band_is_sent() -> None:
    """Paper Wise: fee 1.10 + 0.43 %. binance needs 30000 for its target but only 23750 to get
    inside the 6250 band: the percentage makes every extra dollar cost, so the plan sends the
    least that lands binance inside, not the amount that lands it on target."""
    config = default_settings()
    paper = PaperWiseQuoter(config.wise)

    plan = plan_rebalance(usd("280000", "32500"), config)

    (leg,) = plan.transfers
    assert (leg.from_venue, leg.to_venue, leg.network) == ("alpaca", "binance", "wise")
    # arrive >= 23750 + 0.03 (rounding margin): x * (1 - 0.0043) - 1.10 >= 23750.03 -> x = 23853.694... -> 23853.70
    assert (leg.amount, leg.fee, leg.received) == (D("23853.70"), D("103.67"), D("23750.03"))
    quote = paper.quote("USD", "USD", leg.amount)
    assert (leg.fee, leg.received) == (quote.fee, quote.target_amount)
    assert leg.received == leg.amount - leg.fee
    band = D(6250)
    assert D(62500) - band <= plan.after()["USD"]["binance"] < D(62500) - band + D("0.1")
    one_less = paper.quote("USD", "USD", leg.amount - 1)
    assert D(32500) + one_less.target_amount < D(62500) - band  # a dollar less would not do
    assert leg.settle_seconds == config.wise.paper_settle_seconds


# -- determinism and presentation ---------------------------------------------------------------


def test_plan_when_balances_given_in_another_order_then_identical_plan() -> None:
    balances = merged(usdt("500000", "250000", "250000"), usd("280000", "32500"))
    shuffled = {v: dict(reversed(list(a.items()))) for v, a in reversed(list(balances.items()))}

    first = plan_rebalance(balances, default_settings())
    second = plan_rebalance(shuffled, default_settings())

    assert first == second
    assert first.explain() == second.explain()
    assert [t.asset for t in first.transfers] == ["USD", "USDT", "USDT"]


def test_explain_when_plan_has_transfers_then_names_each_transfer_and_venue() -> None:
    text = plan_rebalance(usdt("350000", "250000", "400000"), default_settings()).explain()

    assert text.splitlines()[0] == "Rebalance: 2 transfer(s), fees 1.6 USDT."
    assert "okx -> binance: send 50000.80 USDT over TRC20, fee 0.8, arrives 50000.00 (~60 s)" in text
    assert "okx -> bybit: send 50000.80 USDT over TRC20, fee 0.8, arrives 50000.00 (~60 s)" in text
    assert "USDT: total 1000000, tolerance 2% = +-20000" in text


def test_plan_when_sent_through_json_then_same_plan_back() -> None:
    plan = plan_rebalance(merged(usdt("500000", "250000", "250000"), usd("280000", "32500")), default_settings())

    assert RebalancePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_to_saga_steps_when_plan_has_chain_and_fiat_legs_then_withdraw_params_in_plan_order() -> None:
    plan = plan_rebalance(merged(usdt("500000", "250000", "250000"), usd("280000", "32500")), default_settings())

    steps = to_saga_steps(plan)

    assert steps == [
        {"venue": "alpaca", "asset": "USD", "amount": "23853.70", "to_venue": "binance", "network": "wise"},
        {"venue": "binance", "asset": "USDT", "amount": "100001.00", "to_venue": "okx", "network": "TRC20"},
        {"venue": "okx", "asset": "USDT", "amount": "50000.80", "to_venue": "bybit", "network": "TRC20"},
    ]
    action, undo = resolve_action(TRANSFER_ACTION)
    assert (action, undo) == (actions.rebalance_transfer, "tradeops.saga.actions.undo_rebalance_transfer")


# -- execution on the paper venue ---------------------------------------------------------------


def paper_balances() -> dict[str, dict[str, Decimal]]:
    from tradeops.venues.paper import PaperVenue

    return {v: {a: b.total for a, b in PaperVenue(v, settings()).balances().items()} for v in PAPER_VENUES}


@pytest.fixture
def paper_world(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A paper world out of balance (USDT as in the relay case, USD 280000 / 32500) whose TRC20
    and Wise transfers settle at once."""
    from tradeops.venues.paper import seed_paper_world

    overrides = {
        "VENUES__BINANCE__INITIAL_BALANCES__USDT": "500000",
        "VENUES__BYBIT__INITIAL_BALANCES__USDT": "250000",
        "VENUES__OKX__INITIAL_BALANCES__USDT": "250000",
        "VENUES__ALPACA__INITIAL_BALANCES__USD": "280000",
        "VENUES__BINANCE__INITIAL_BALANCES__USD": "32500",
        "WISE__PAPER_SETTLE_SECONDS": "0",
    }
    for venue in ("BINANCE", "BYBIT", "OKX"):
        overrides[f"VENUES__{venue}__WITHDRAWAL__USDT__TRC20__SETTLE_SECONDS"] = "0"
    for key, value in overrides.items():
        monkeypatch.setenv(f"TRADEOPS__{key}", value)
    settings.cache_clear()
    seed_paper_world(settings())
    yield
    settings.cache_clear()


def run_steps(steps: list[dict[str, str]], run_id: str = "run-1") -> list[dict[str, Any]]:
    action, _undo = resolve_action(TRANSFER_ACTION)
    return [
        dict(action(step, idempotency_key("auto_rebalance_saga", run_id, f"transfer_{index}")))
        for index, step in enumerate(steps)
    ]


def test_saga_steps_when_executed_on_paper_venues_then_balances_match_plan_and_verify_passes(paper_world: None) -> None:
    plan = plan_rebalance(paper_balances(), settings())
    assert len(plan.transfers) == 3  # one Wise leg, two TRC20 legs

    results = run_steps(to_saga_steps(plan))

    after = paper_balances()
    assert [r["network"] for r in results] == ["wise", "TRC20", "TRC20"]
    for asset, venues in plan.after().items():
        assert {v: after[v][asset] for v in venues} == venues
    assert verify_rebalance(after, plan, settings()) == []


def test_saga_steps_when_run_twice_then_no_transfer_happens_twice(paper_world: None) -> None:
    plan = plan_rebalance(paper_balances(), settings())
    first = run_steps(to_saga_steps(plan))
    once = paper_balances()

    again = run_steps(to_saga_steps(plan))

    assert paper_balances() == once
    assert [r["transfer_id"] for r in again] == [r["transfer_id"] for r in first]


def test_verify_when_nothing_executed_then_reports_venues_outside_and_missing_receipts(paper_world: None) -> None:
    balances = paper_balances()
    plan = plan_rebalance(balances, settings())

    problems = verify_rebalance(balances, plan, settings())

    assert any(p.startswith("binance: 500000 USDT is +100000") for p in problems)
    assert any(p.startswith("okx: holds 250000 USDT") and "has not arrived" in p for p in problems)
    assert any(p.startswith("binance: holds 32500 USD") and "has not arrived" in p for p in problems)


def test_verify_when_transfers_still_pending_then_missing_receipts_reported(
    paper_world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEOPS__VENUES__BINANCE__WITHDRAWAL__USDT__TRC20__SETTLE_SECONDS", "600")
    settings.cache_clear()
    plan = plan_rebalance(paper_balances(), settings())

    run_steps(to_saga_steps(plan))

    problems = verify_rebalance(paper_balances(), plan, settings())
    assert problems == [
        "okx: 199999.20 USDT is -100000.80 from its target 300000.0 (tolerance +-20000.00, 2%)",
        "okx: holds 199999.20 USDT, the plan expects 299999.20 after receiving from binance: "
        "100000.00 USDT has not arrived",
    ]


def test_undo_rebalance_transfer_when_wise_leg_settled_then_received_amount_sent_back_once(paper_world: None) -> None:
    step = {"venue": "alpaca", "asset": "USD", "amount": "10000", "to_venue": "binance", "network": "wise"}
    key = idempotency_key("auto_rebalance_saga", "run-undo", "transfer_0")
    actions.rebalance_transfer(step, key)

    undone = actions.undo_rebalance_transfer(step, key)
    again = actions.undo_rebalance_transfer(step, key)

    # there: fee 1.10 + 43.00 = 44.10, 9955.90 arrives; back: fee 1.10 + 42.81 = 43.91, 9911.99 arrives
    assert undone.outcome is UndoOutcome.UNDONE and again.outcome is UndoOutcome.UNDONE
    assert again.detail["reverse"]["transfer_id"] == undone.detail["reverse"]["transfer_id"]
    balances = paper_balances()
    assert (balances["alpaca"]["USD"], balances["binance"]["USD"]) == (D("279911.99"), D(32500))


def test_undo_rebalance_transfer_when_wise_step_never_ran_then_nothing_to_undo(paper_world: None) -> None:
    step = {"venue": "alpaca", "asset": "USD", "amount": "10000", "to_venue": "binance", "network": "wise"}

    result = actions.undo_rebalance_transfer(step, idempotency_key("auto_rebalance_saga", "never", "transfer_0"))

    assert result.outcome is UndoOutcome.NOTHING_TO_UNDO


def test_undo_rebalance_transfer_when_wise_leg_still_pending_then_waits_until_it_is_due(
    paper_world: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEOPS__WISE__PAPER_SETTLE_SECONDS", "3600")
    settings.cache_clear()
    step = {"venue": "alpaca", "asset": "USD", "amount": "10000", "to_venue": "binance", "network": "wise"}
    key = idempotency_key("auto_rebalance_saga", "run-pending", "transfer_0")
    sent = actions.rebalance_transfer(step, key)

    with pytest.raises(StillSettlingError, match="still on its way") as waiting:
        actions.undo_rebalance_transfer(step, key)
    assert waiting.value.until is not None and waiting.value.until.isoformat() == sent["settles_at"]


def test_rebalance_transfer_when_wise_venue_is_not_a_fiat_account_then_invalid_order(paper_world: None) -> None:
    step = {"venue": "bybit", "asset": "USD", "amount": "10000", "to_venue": "binance", "network": "wise"}

    with pytest.raises(InvalidOrderError, match="'bybit' is not a USD account"):
        actions.rebalance_transfer(step, idempotency_key("auto_rebalance_saga", "bad", "transfer_0"))
