"""The agents' pure parts: config validation, market hours, technical signal, decision, risk rules."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tradeops.agents.decision import Decision, DecisionInputs, decide
from tradeops.agents.hours import market_hours
from tradeops.agents.risk_checks import RiskContext, validate
from tradeops.agents.settings import MIN_HISTORY_BARS, RiskLimits, check_against, load_agents
from tradeops.config import load_settings
from tradeops.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
AGENTS_YAML = ROOT / "config" / "agents.yaml"

MINIMAL = """
defaults:
  timezone: UTC
agents:
  eth:
    venue: binance
    symbol: ETH/USDT
    calendar: 24/7
    schedule: "*/30 * * * *"
    capital: "20000"
    risk: {max_position: "3", max_notional: "10000", max_drawdown: "0.1", max_venue_exposure: "2000000"}
    sizing: {order_notional: "3000", lot_size: "0.001"}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agents.yaml"
    path.write_text(text)
    return path


# -- configuration ------------------------------------------------------------------------------


def test_agents_file_when_shipped_then_three_agents_fit_the_main_configuration() -> None:
    agents = load_agents(AGENTS_YAML)
    check_against(agents, load_settings())

    assert {name: (a.venue, a.symbol, a.calendar) for name, a in agents.agents.items()} == {
        "tsla": ("alpaca", "TSLA/USD", "XNYS"),
        "iwm": ("alpaca", "IWM/USD", "XNYS"),
        "btc": ("binance", "BTC/USDT", "24/7"),
    }
    assert agents.agent("tsla").weights.sentiment == 0.6 and agents.agent("btc").weights.technical == 0.4


def test_agents_file_when_defaults_given_then_merged_under_each_entry_and_entry_wins(tmp_path: Path) -> None:
    text = MINIMAL.replace("defaults:\n  timezone: UTC", "defaults:\n  timezone: UTC\n  model_weight: 0.5")
    text = text.replace('schedule: "*/30 * * * *"', 'schedule: "*/30 * * * *"\n    model_weight: 0.1')
    agents = load_agents(_write(tmp_path, text))

    assert agents.agent("eth").model_weight == 0.1
    assert agents.agent("eth").headline_symbol == "ETH"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (('max_position: "3"', 'max_position: "-3"'), "agents.eth.risk.max_position"),
        (('lot_size: "0.001"', 'lot_size: "0.001", colour: red'), "agents.eth.sizing.colour"),
        (("calendar: 24/7", "calendar: LSE"), "agents.eth.calendar"),
        (('schedule: "*/30 * * * *"', 'schedule: "every half hour"'), "agents.eth.schedule"),
        (("symbol: ETH/USDT", "symbol: ETH/USDT:USDT"), "agents.eth.symbol"),
        (("timezone: UTC", "timezone: Mars/Olympus"), "agents.eth.timezone"),
        (("  eth:", "  Eth-1:"), "agents"),
    ],
)
def test_agents_file_when_an_entry_is_bad_then_config_error_names_the_key(
    tmp_path: Path, change: tuple[str, str], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_agents(_write(tmp_path, MINIMAL.replace(*change)))

    assert caught.value.key == key


def test_agents_file_when_weights_do_not_sum_to_one_then_the_weights_key_is_named(tmp_path: Path) -> None:
    text = MINIMAL.replace("    capital:", "    weights: {sentiment: 0.7, technical: 0.4}\n    capital:")
    with pytest.raises(ConfigError, match="sentiment \\+ technical must be 1") as caught:
        load_agents(_write(tmp_path, text))
    assert caught.value.key == "agents.eth.weights"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("venue: binance", "venue: kraken"), "agents.eth.venue"),
        (("symbol: ETH/USDT", "symbol: SOL/USDT"), "agents.eth.symbol"),
        (("venue: binance\n    symbol: ETH/USDT", "venue: alpaca\n    symbol: TSLA/USD"), "agents.eth.calendar"),
    ],
)
def test_agents_file_when_it_names_what_the_main_config_lacks_then_the_key_is_named(
    tmp_path: Path, change: tuple[str, str], key: str
) -> None:
    agents = load_agents(_write(tmp_path, MINIMAL.replace(*change)))
    with pytest.raises(ConfigError) as caught:
        check_against(agents, load_settings())
    assert caught.value.key == key


def test_history_bars_when_checked_then_cover_the_longest_feature_window() -> None:
    from tradeops.market_data.registry import MAX_WINDOW

    assert MIN_HISTORY_BARS > MAX_WINDOW


# -- market hours ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "is_open", "words"),
    [
        ("2026-11-26T15:00", False, "holiday"),  # Thanksgiving
        ("2026-11-27T17:59", True, "early close"),  # the day after: closes at 13:00 New York
        ("2026-11-27T18:00", False, "closed at 18:00 UTC (early close)"),
        ("2026-12-24T18:30", False, "closed at 18:00 UTC (early close)"),
        ("2026-11-30T14:29", False, "opens at 14:30 UTC"),
        ("2026-11-30T14:30", True, "open until 21:00 UTC"),
        ("2026-11-30T21:00", False, "closed at 21:00 UTC"),
        ("2026-12-01T03:00", False, "closed at 21:00 UTC on 2026-11-30"),  # night
        ("2026-11-29T15:00", False, "weekend"),
        ("2026-07-01T13:45", True, "open until 20:00 UTC"),  # summer time: 09:30-16:00 New York
    ],
)
def test_market_hours_when_asked_for_a_minute_then_the_nyse_calendar_answers(
    moment: str, is_open: bool, words: str
) -> None:
    hours = market_hours("XNYS", datetime.fromisoformat(moment).replace(tzinfo=UTC))

    assert hours.open is is_open and words in hours.reason


def test_market_hours_when_crypto_then_open_on_holidays_and_at_night() -> None:
    assert market_hours("24/7", datetime(2026, 11, 26, 3, 0, tzinfo=UTC)).open


# -- technical ------------------------------------------------------------------------------------


def _bars(closes: list[float]) -> Any:
    import pandas as pd

    from tradeops.market_data.frames import with_keys

    ts = pd.date_range("2026-11-30 00:00", periods=len(closes), freq="min", tz="UTC", unit="us")
    frame = pd.DataFrame(
        {
            "ts": ts,
            "open": closes,
            "high": [c * 1.0005 for c in closes],
            "low": [c * 0.9995 for c in closes],
            "close": closes,
            "volume": [10.0] * len(closes),
        }
    )
    return with_keys(frame, "binance", "BTC/USDT")


def _last_features(closes: list[float]) -> dict[str, float]:
    from tradeops.market_data import features

    row = features.compute(_bars(closes)).iloc[-1]
    return {name: float(row[name]) for name in features.FEATURE_NAMES}


def test_technical_when_prices_trend_up_then_trend_and_momentum_bullish_rsi_overbought() -> None:
    from tradeops.agents import technical

    # An accelerating rise with a small wiggle: the MACD line keeps rising over its signal.
    closes = [100 * math.exp(1e-6 * i * i + 0.0003 * math.sin(i / 3)) for i in range(600)]
    result = technical.analyze(_last_features(closes))

    assert result.components["trend"] == 1.0  # EMA 60 over EMA 240: the crossover regime
    assert result.components["macd"] > 0
    assert result.components["rsi"] < 0  # RSI high: mean reversion leans against the trend
    assert result.signal > 0 and 0 < result.confidence < 1


def test_technical_when_prices_trend_down_then_signal_bearish() -> None:
    from tradeops.agents import technical

    closes = [100 * math.exp(-1e-6 * i * i + 0.0003 * math.sin(i / 3)) for i in range(600)]
    result = technical.analyze(_last_features(closes))

    assert result.components["trend"] == -1.0 and result.components["macd"] < 0 and result.signal < 0


def test_technical_when_short_term_volatility_jumps_then_confidence_is_damped() -> None:
    from tradeops.agents import technical

    calm = {"rsi_14": 40.0, "macd_hist": 0.0002, "trend_regime": 1.0, "rv_30": 0.002, "rv_240": 0.002 * math.sqrt(8)}
    wild = {**calm, "rv_30": 0.006}
    calm_result, wild_result = technical.analyze(calm), technical.analyze(wild)

    assert calm_result.volatility_ratio == pytest.approx(1.0)
    assert wild_result.volatility_ratio == pytest.approx(3.0)
    assert wild_result.confidence == pytest.approx(calm_result.confidence / 3, rel=1e-3)


def test_technical_when_features_missing_then_components_dropped_and_named() -> None:
    from tradeops.agents import technical

    partial = technical.analyze({"rsi_14": 25.0, "macd_hist": None, "trend_regime": float("nan")})
    nothing = technical.analyze({})

    assert partial.components == {"rsi": 1.0} and partial.missing == ("macd", "trend")
    assert partial.signal == 1.0 and partial.confidence == 1.0
    assert (nothing.signal, nothing.confidence, nothing.components) == (0.0, 0.0, {})


# -- decision -------------------------------------------------------------------------------------


def _inputs(**changes: Any) -> DecisionInputs:
    values: dict[str, Any] = {
        "agent": "btc",
        "venue": "binance",
        "symbol": "BTC/USDT",
        "as_of": "2026-12-01T12:00:00+00:00",
        "price": Decimal("65000"),
        "position": Decimal("0"),
        "sentiment": {"score": 0.8, "confidence": 0.9, "headlines": [{"title": "Bitcoin rallies to a record"}]},
        "technical": {"signal": 0.25, "confidence": 0.5, "notes": ["RSI 45.0 -> +0.25"]},
        "model": None,
        "weights": {"sentiment": 0.6, "technical": 0.4},
        "model_weight": 0.3,
        "entry_threshold": 0.2,
        "sizing": {"order_notional": "10000", "lot_size": "0.0001", "scale_by_conviction": True},
    }
    values.update(changes)
    return DecisionInputs(**values)


def test_decide_when_sentiment_bullish_then_buy_sized_by_conviction_in_whole_lots() -> None:
    decision = decide(_inputs())

    blended = 0.6 * 0.8 * 0.9 + 0.4 * 0.25 * 0.5
    assert decision.action == "buy" and decision.score == pytest.approx(blended)
    # 10000 x 0.482 = 4820 USDT -> 0.07415... BTC -> 0.0741 in lots of 0.0001
    assert decision.amount == Decimal("0.0741") and decision.notional == Decimal("0.0741") * 65000
    assert "sentiment +0.800" in decision.rationale and "technical +0.250" in decision.rationale
    assert "no model serves this instrument" in decision.rationale and "Bitcoin rallies" in decision.rationale


def test_decide_when_a_model_serves_then_its_probability_takes_its_share_of_the_score() -> None:
    model = {"model": "tradeops_direction", "version": "3", "role": "champion", "probability": 0.1, "error": None}
    decision = decide(_inputs(model=model))

    blended = 0.6 * 0.8 * 0.9 + 0.4 * 0.25 * 0.5
    assert decision.model_signal == pytest.approx(-0.8)
    assert decision.score == pytest.approx(0.7 * blended + 0.3 * -0.8)
    assert decision.action == "hold"  # the model's strong "down" pulls the score under the threshold
    assert "v3 (champion) p(up) 0.100" in decision.rationale


def test_decide_when_the_model_failed_then_ignored_and_the_error_named() -> None:
    model = {"model": "m", "version": "3", "role": "canary", "probability": None, "error": "cannot load"}
    decision = decide(_inputs(model=model))

    assert decision.model_signal is None and decision.score == decide(_inputs()).score
    assert "model not used: cannot load" in decision.rationale


def test_decide_when_bearish_then_sells_at_most_the_position_and_never_shorts() -> None:
    bearish = {"score": -0.9, "confidence": 1.0, "headlines": []}
    flat = decide(_inputs(sentiment=bearish, technical={"signal": -0.5, "confidence": 1.0}))
    holding = decide(
        _inputs(sentiment=bearish, technical={"signal": -0.5, "confidence": 1.0}, position=Decimal("0.02"))
    )

    assert flat.action == "hold" and "never sells short" in flat.rationale
    assert holding.action == "sell" and holding.amount == Decimal("0.02")


def test_decide_when_score_inside_threshold_or_order_too_small_then_hold() -> None:
    weak = decide(_inputs(sentiment={"score": 0.2, "confidence": 0.5, "headlines": []}))
    sizing = {"order_notional": "10000", "lot_size": "0.0001", "min_order_notional": "5000"}
    small = decide(_inputs(sizing=sizing))

    assert weak.action == "hold" and "inside +-0.20" in weak.rationale
    assert small.action == "hold" and "under the minimum" in small.rationale and small.amount is None


def test_decide_when_inputs_round_trip_through_json_then_the_same_decision() -> None:
    import json

    inputs = _inputs(model={"model": "m", "version": "2", "role": "champion", "probability": 0.61, "error": None})
    again = DecisionInputs.from_dict(json.loads(json.dumps(inputs.to_dict())))

    assert decide(again) == decide(inputs)
    assert Decision.from_dict(json.loads(json.dumps(decide(inputs).to_dict()))) == decide(inputs)


# -- risk -----------------------------------------------------------------------------------------

LIMITS = RiskLimits(
    max_position=Decimal("0.5"),
    max_notional=Decimal("30000"),
    max_drawdown=Decimal("0.05"),
    max_venue_exposure=Decimal("1500000"),
)


def _context(**changes: Any) -> RiskContext:
    values: dict[str, Any] = {
        "trading_state": "ACTIVE",
        "trading_state_reason": "initial",
        "position": Decimal("0"),
        "equity": Decimal("0"),
        "peak_equity": Decimal("0"),
        "capital": Decimal("100000"),
        "venue_exposure": Decimal("200000"),
        "quote_free": Decimal("400000"),
        "base_free": Decimal("2"),
        "taker_fee_bps": Decimal("5"),
        "run_delay_seconds": 20.0,
        "max_delay_seconds": 900.0,
        "last_bar_age_seconds": 30.0,
    }
    values.update(changes)
    return RiskContext(**values)


def _order(action: str = "buy", amount: str = "0.1") -> Decision:
    price = Decimal("65000")
    return Decision(
        action=action,
        score=0.5 if action == "buy" else -0.5,
        blended=0.5,
        model_signal=None,
        amount=Decimal(amount),
        notional=Decimal(amount) * price,
        price=price,
        rationale="",
    )


@pytest.mark.parametrize(
    ("decision", "context", "rule"),
    [
        (_order(), _context(trading_state="HALTED"), "trading_state"),
        (_order("sell"), _context(trading_state="HALTED", position=Decimal("0.2")), "trading_state"),
        (_order(), _context(trading_state="REDUCING"), "trading_state"),
        (_order(), _context(unreconciled_runs=("scheduled__2026-12-01T10:00:00+00:00",)), "unreconciled_run"),
        (_order(), _context(run_delay_seconds=901.0), "run_too_late"),
        (_order(), _context(last_bar_age_seconds=301.0), "stale_market_data"),
        (_order(), _context(last_bar_age_seconds=None), "stale_market_data"),
        (_order(), _context(data_findings=("binance BTC/USDT: ohlc: high below low (2 bar(s))",)), "bad_market_data"),
        (_order(amount="0.2"), _context(position=Decimal("0.4")), "max_position"),
        (_order(amount="0.2"), _context(position=Decimal("0.3")), "max_notional"),  # 0.5 x 65000 > 30000
        (_order(), _context(equity=Decimal("-5000"), peak_equity=Decimal("0")), "max_drawdown"),
        (_order(), _context(venue_exposure=Decimal("1495000")), "max_venue_exposure"),
        (_order(), _context(quote_free=Decimal("6500")), "available_balance"),  # the fee does not fit
        (_order("sell"), _context(position=Decimal("0.1"), base_free=Decimal("0.05")), "available_balance"),
    ],
)
def test_validate_when_a_limit_is_breached_then_rejected_naming_the_rule(
    decision: Decision, context: RiskContext, rule: str
) -> None:
    verdict = validate(decision, context, LIMITS, "BTC/USDT")

    assert not verdict.approved and verdict.rule == rule and rule in verdict.reason


@pytest.mark.parametrize(
    ("decision", "context"),
    [
        (_order(), _context()),
        (_order("sell"), _context(trading_state="REDUCING", position=Decimal("0.2"))),  # a reduction
        (_order("sell"), _context(equity=Decimal("-9000"), position=Decimal("0.2"))),  # past drawdown: sells pass
        (_order(), _context(equity=Decimal("1000"), peak_equity=Decimal("5000"))),  # 4 % under the peak
    ],
)
def test_validate_when_within_limits_then_approved_with_every_rule_listed(
    decision: Decision, context: RiskContext
) -> None:
    verdict = validate(decision, context, LIMITS, "BTC/USDT")

    assert verdict.approved and verdict.rule is None
    assert [c["rule"] for c in verdict.checks][:3] == ["trading_state", "unreconciled_run", "run_too_late"]


def test_validate_when_hold_then_nothing_is_checked() -> None:
    hold = Decision(
        action="hold",
        score=0.0,
        blended=0.0,
        model_signal=None,
        amount=None,
        notional=None,
        price=Decimal(1),
        rationale="",
    )
    verdict = validate(hold, None, LIMITS, "BTC/USDT")

    assert not verdict.approved and verdict.rule is None and verdict.checks == []


def test_risk_context_when_round_tripped_through_json_then_equal() -> None:
    import json

    context = _context(unreconciled_runs=("a", "b"), trading_state="REDUCING", data_findings=("x",))

    assert RiskContext.from_dict(json.loads(json.dumps(context.to_dict()))) == context


def test_history_start_when_xnys_then_reaches_back_over_the_night_to_the_previous_session() -> None:
    from tradeops.agents.pipeline import history_start

    agent = load_agents(AGENTS_YAML).agent("tsla")
    # Monday 2026-11-30 15:00 UTC: 30 minutes into the session; 600 bars need 570 of Friday's
    # early-closed session (14:30-18:00 UTC: 210 bars) and 360 of Wednesday's (Thursday a holiday).
    start = history_start(agent, datetime(2026, 11, 30, 15, 0, tzinfo=UTC))

    assert start == datetime(2026, 11, 25, 21, 0, tzinfo=UTC) - timedelta(minutes=360)


# -- the saga step and the book (paper venue, project database) ------------------------------------

ORDER = {
    "agent": "btc",
    "venue": "binance",
    "symbol": "BTC/USDT",
    "side": "buy",
    "amount": "0.05",
    "reference_price": "65000",
    "max_slippage_bps": "50",
}


def _held() -> Decimal:
    from tradeops.config import settings
    from tradeops.venues.paper import PaperVenue

    return PaperVenue("binance", settings()).balances()["BTC"].total


def test_agent_order_when_filled_within_the_slippage_limit_then_returns_the_fill(paper_world: None) -> None:
    from tradeops.agents.execution import agent_order

    before = _held()
    result = agent_order(ORDER, "agentkey1")

    assert result["status"] == "filled" and result["slippage_bps"] == "0.00"
    assert _held() - before == Decimal("0.05")
    assert agent_order(ORDER, "agentkey1")["order_id"] == result["order_id"]  # a retry: the same order
    assert _held() - before == Decimal("0.05")


def test_agent_order_when_the_fill_is_worse_than_the_limit_then_fails_after_the_order_and_undo_trades_back(
    paper_world: None,
) -> None:
    from tradeops.agents.execution import FillOutsideLimitsError, agent_order, undo_agent_order
    from tradeops.saga.core import UndoOutcome

    before = _held()
    stale = {**ORDER, "reference_price": "64000"}  # the market moved 1.6 % up since the decision

    with pytest.raises(FillOutsideLimitsError, match=re.escape("156.2 bps worse than the decision's 64000")):
        agent_order(stale, "agentkey2")
    assert _held() - before == Decimal("0.05")  # the venue did fill it

    undone = undo_agent_order(stale, "agentkey2")
    assert undone.outcome is UndoOutcome.UNDONE and _held() == before
    assert undo_agent_order(stale, "agentkey2").outcome is UndoOutcome.UNDONE and _held() == before


def test_slippage_when_a_sell_fills_lower_then_positive_and_higher_then_negative() -> None:
    from tradeops.agents.execution import slippage_bps
    from tradeops.model import Side

    assert slippage_bps(Side.SELL, Decimal("99"), Decimal("100")) == Decimal("100")
    assert slippage_bps(Side.SELL, Decimal("101"), Decimal("100")) == Decimal("-100")


def test_book_when_runs_logged_then_position_cash_and_peak_equity_follow_and_a_retry_replaces(
    paper_world: None,
) -> None:
    from tradeops.agents import ledger

    def row(run: str, position: str, cash: str, equity: str) -> dict[str, Any]:
        now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        return {
            "agent": "btc", "dag_id": "agent_btc_trading", "run_id": run, "venue": "binance",
            "symbol": "BTC/USDT", "as_of": now, "decided_at": now, "logged_at": now, "price": Decimal("65000"),
            "sentiment_score": 0.5, "sentiment_confidence": 0.5, "technical_signal": 0.0,
            "technical_confidence": 0.0, "model_version": None, "model_probability": None, "score": 0.3,
            "action": "buy", "amount": Decimal("0.1"), "rationale": "r", "risk_rule": None, "risk_reason": None,
            "outcome": "filled", "client_order_id": None, "order_status": "filled", "filled": Decimal("0.1"),
            "fill_price": Decimal("65000"), "fee": Decimal("3.25"), "position_after": Decimal(position),
            "cash_after": Decimal(cash), "equity_after": Decimal(equity), "detail": None, "inputs": {"x": 1},
        }  # fmt: skip

    assert ledger.book("btc") == ledger.AgentBook(position=Decimal(0), cash=Decimal(0), peak_equity=Decimal(0), runs=0)
    assert ledger.record(row("r1", "0.1", "-6503.25", "-3.25"))
    assert ledger.record(row("r2", "0.1", "-6503.25", "196.75"))
    assert not ledger.record(row("r2", "0.1", "-6503.25", "96.75"))  # the same run logged again

    book = ledger.book("btc")
    assert (book.position, book.cash, book.peak_equity, book.runs) == (
        Decimal("0.1"),
        Decimal("-6503.25"),
        Decimal("96.75"),
        2,
    )
    assert ledger.book("btc", excluding_run="r2").peak_equity == Decimal(0)
    assert book.equity_at(Decimal("66000")) == Decimal("96.75")
    assert ledger.row_of("agent_btc_trading", "r1")["inputs"] == {"x": 1}


def test_agents_path_when_only_the_main_config_is_moved_then_agents_yaml_is_read_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradeops.agents.settings import AGENTS_CONFIG_ENV, default_agents_path

    monkeypatch.delenv(AGENTS_CONFIG_ENV, raising=False)
    monkeypatch.setenv("TRADEOPS_CONFIG", str(tmp_path / "tradeops-config" / "tradeops.yaml"))
    assert default_agents_path() == tmp_path / "tradeops-config" / "agents.yaml"

    monkeypatch.setenv(AGENTS_CONFIG_ENV, str(tmp_path / "elsewhere.yaml"))
    assert default_agents_path() == tmp_path / "elsewhere.yaml"
