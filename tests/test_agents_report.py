"""The agents' performance report over ``agent_decisions`` rows (a project DB built by the
migrations): hand-computed PnL, drawdown, hit rate and rejections, the ``tradeops agents`` CLI,
and the equity curve PNG."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tradeops.agents import performance
from tradeops.agents.agent_tables import agent_decisions
from tradeops.agents.settings import agents
from tradeops.cli import main
from tradeops.db import get_engine, transaction

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
D = Decimal

# tsla (capital 50 000), one row per 5 minutes. Equity = cash + position x price.
#  #  outcome   action  filled @ fill  price  fee   position  cash       equity   peak   fall
#  1  filled    buy     10 @ 100       100    1     10        -1001      -1       0      1
#  2  hold      -                      105          10        -1001      49       49
#  3  filled    buy     10 @ 106       106    1     20        -2062      58       58
#  4  rejected  buy (max_position)     104          20        -2062      -2       58     60
#  5  filled    sell    5 @ 103        101    0.5   15        -1547.5    -32.5    58     90.5 (max)
#  6  rejected  sell (max_drawdown)    101          15        -1547.5    -32.5    58     90.5
#  7  undone    buy     0 (net)        102    0.4   15        -1547.9    -17.9    58     75.9
#  8  partial   sell    4 @ 110        110    0.4   11        -1108.3    101.7    101.7
# Judged at the next row's price: 1 buy @100, next 105: right; 3 buy @106, next 104: wrong;
# 5 sell @103, next 101: right (judged at its fill, not at its mark of 101); 8 is the last trade:
# not judged. Hit rate 2/3.
TSLA = [
    dict(action="buy", outcome="filled", amount="10", filled="10", fill_price="100", price="100", fee="1",
         position_after="10", cash_after="-1001", equity_after="-1"),
    dict(action="hold", outcome="hold", price="105", position_after="10", cash_after="-1001", equity_after="49"),
    dict(action="buy", outcome="filled", amount="10", filled="10", fill_price="106", price="106", fee="1",
         position_after="20", cash_after="-2062", equity_after="58"),
    dict(action="buy", outcome="rejected", amount="10", risk_rule="max_position", risk_reason="30 > 20",
         price="104", position_after="20", cash_after="-2062", equity_after="-2"),
    dict(action="sell", outcome="filled", amount="5", filled="5", fill_price="103", price="101", fee="0.5",
         position_after="15", cash_after="-1547.5", equity_after="-32.5"),
    dict(action="sell", outcome="rejected", amount="5", risk_rule="max_drawdown", risk_reason="reduce only",
         price="101", position_after="15", cash_after="-1547.5", equity_after="-32.5"),
    dict(action="buy", outcome="undone", amount="3", filled="0", fill_price="102", price="102", fee="0.4",
         position_after="15", cash_after="-1547.9", equity_after="-17.9", detail="slippage 60 bps: undone"),
    dict(action="sell", outcome="partial", amount="10", filled="4", fill_price="110", price="110", fee="0.4",
         position_after="11", cash_after="-1108.3", equity_after="101.7",
         rationale="sentiment strongly negative after the recall headlines; technical regime turned down too, "
         "RSI 74 overbought"),
]  # fmt: skip
# btc (capital 100 000), hourly: the peak starts at 0, so the first fall is measured from 0.
#  1  filled buy 0.1 @ 50 000, fee 5: equity -5005 + 5000 = -5
#  2  failed (the run failed around the order), price 49 000: equity -5005 + 4900 = -105 (fall 105)
#  3  hold, price 51 000: equity 95. The buy, judged at 49 000, was wrong: hit rate 0.
BTC = [
    dict(action="buy", outcome="filled", amount="0.1", filled="0.1", fill_price="50000", price="50000", fee="5",
         position_after="0.1", cash_after="-5005", equity_after="-5"),
    dict(action="sell", outcome="failed", amount="0.1", price="49000", position_after="0.1", cash_after="-5005",
         equity_after="-105", detail="venue timeout"),
    dict(action="hold", outcome="hold", price="51000", position_after="0.1", cash_after="-5005", equity_after="95"),
]  # fmt: skip
_DECIMALS = ("amount", "filled", "fill_price", "price", "fee", "position_after", "cash_after", "equity_after")
_VENUES = {"tsla": ("alpaca", "TSLA/USD", timedelta(minutes=5)), "btc": ("binance", "BTC/USDT", timedelta(hours=1))}


def _row(agent: str, number: int, fields: dict[str, str]) -> dict[str, Any]:
    venue, symbol, step = _VENUES[agent]
    as_of = T0 + number * step
    row: dict[str, Any] = dict(
        agent=agent, dag_id=f"agent_{agent}_trading", run_id=f"scheduled__{as_of.isoformat()}", venue=venue,
        symbol=symbol, as_of=as_of, decided_at=as_of + timedelta(seconds=20), logged_at=as_of + timedelta(seconds=30),
        sentiment_score=0.1 * number, sentiment_confidence=0.8, technical_signal=-0.2, technical_confidence=0.6,
        score=0.05 * number - 0.1, rationale=f"{agent} run {number}", inputs="{}", filled="0", fee="0",
        model_version=None, model_probability=None, amount=None, risk_rule=None, risk_reason=None,
        client_order_id=None, order_status=None, fill_price=None, detail=None,
    )  # fmt: skip
    row.update(fields)
    for name in _DECIMALS:
        if row.get(name) is not None:
            row[name] = Decimal(row[name])
    return row


def _rows(agent: str, table: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [_row(agent, number, fields) for number, fields in enumerate(table)]


@pytest.fixture
def engine(db_url: str) -> Engine:
    return get_engine(db_url)


@pytest.fixture
def logged(engine: Engine) -> Engine:
    """tsla's and btc's rows in the table (btc's inserted first: loading must order them); iwm none."""
    with transaction(engine) as conn:
        conn.execute(agent_decisions.insert(), [*_rows("btc", BTC), *_rows("tsla", TSLA)])
    return engine


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("TRADEOPS_STATE_DIR", str(path))
    return path


# --- performance over rows -------------------------------------------------------------------


def test_report_when_rows_logged_then_pnl_drawdown_hit_rate_and_rejections_as_hand_computed(logged: Engine) -> None:
    records = {r.agent: r for r in performance.report(logged, agents())}

    tsla = records["tsla"]
    assert (tsla.venue, tsla.symbol, tsla.capital) == ("alpaca", "TSLA/USD", D("50000"))
    assert (tsla.runs, tsla.trades, tsla.buys, tsla.sells, tsla.holds) == (8, 4, 2, 2, 1)
    assert tsla.rejections == {"max_drawdown": 1, "max_position": 1} and tsla.rejected == 2
    assert (tsla.unfilled, tsla.undone, tsla.failed) == (0, 1, 0)
    assert (tsla.judged, tsla.hit_rate) == (3, pytest.approx(2 / 3))
    assert (tsla.pnl, tsla.pnl_pct) == (D("101.7"), D("0.2034"))
    assert (tsla.max_drawdown, tsla.max_drawdown_pct) == (D("90.5"), D("0.1810"))
    assert (tsla.fees, tsla.position) == (D("3.3"), D("11"))
    assert (tsla.first_as_of, tsla.last_as_of) == (T0, T0 + timedelta(minutes=35))
    btc = records["btc"]
    assert (btc.runs, btc.trades, btc.failed, btc.judged, btc.hit_rate) == (3, 1, 1, 1, 0.0)
    assert (btc.pnl, btc.pnl_pct, btc.max_drawdown, btc.max_drawdown_pct) == (
        D("95"),
        D("0.0950"),
        D("105"),
        D("0.1050"),
    )
    assert (btc.fees, btc.position) == (D("5"), D("0.1"))


def test_report_when_agent_has_no_rows_then_it_appears_with_zeros(logged: Engine) -> None:
    records = performance.report(logged, agents())

    assert [r.agent for r in records] == list(agents().agents)
    iwm = next(r for r in records if r.agent == "iwm")
    assert (iwm.venue, iwm.symbol, iwm.runs, iwm.trades, iwm.rejections, iwm.hit_rate) == (
        "alpaca", "IWM/USD", 0, 0, {}, None,
    )  # fmt: skip
    assert (iwm.pnl, iwm.pnl_pct, iwm.max_drawdown, iwm.fees, iwm.position) == (0, 0, 0, 0, 0)
    assert (iwm.first_as_of, iwm.last_as_of) == (None, None)


def test_report_when_since_given_then_pnl_and_drawdown_measured_from_the_equity_before_it(logged: Engine) -> None:
    since = T0 + timedelta(minutes=20)  # from tsla's row 5 on: the baseline is row 4's equity, -2

    (tsla,) = performance.report(logged, agents(), agent="tsla", since=since)

    assert (tsla.runs, tsla.trades, tsla.first_as_of) == (4, 2, since)
    assert tsla.pnl == D("103.7")  # 101.7 - (-2)
    assert tsla.max_drawdown == D("30.5")  # from the baseline -2 down to -32.5
    assert (tsla.judged, tsla.hit_rate, tsla.fees) == (1, 1.0, D("1.3"))


def test_performance_when_next_price_equals_fill_price_then_the_trade_counts_as_wrong() -> None:
    rows = _rows("tsla", [TSLA[0], {**TSLA[1], "price": "100"}])

    record = performance.performance(rows, D("50000"))

    assert (record.judged, record.hit_rate) == (1, 0.0)


def test_performance_when_rows_of_two_agents_then_refused() -> None:
    with pytest.raises(ValueError, match="one named agent"):
        performance.performance([*_rows("tsla", TSLA[:1]), *_rows("btc", BTC[:1])], D("50000"))


def test_max_drawdown_when_equity_only_rises_then_zero_and_when_it_starts_below_zero_then_fall_from_zero() -> None:
    assert performance.max_drawdown([D("1"), D("5"), D("9")]) == 0
    assert performance.max_drawdown([D("-4"), D("3"), D("-1")]) == D("4")


# --- the equity curve ------------------------------------------------------------------------


def test_equity_curve_when_two_agents_have_rows_then_one_step_line_each_with_their_equity(logged: Engine) -> None:
    rows = performance.by_agent(performance.load_rows(logged))

    figure = performance.equity_curve_figure({**rows, "iwm": []})

    (axis,) = figure.axes
    lines = {line.get_label(): line for line in axis.get_lines() if not line.get_label().startswith("_")}
    assert sorted(lines) == ["btc BTC/USDT", "tsla TSLA/USD"]
    assert list(lines["btc BTC/USDT"].get_ydata()) == [-5.0, -105.0, 95.0]
    assert lines["tsla TSLA/USD"].get_drawstyle() == "steps-post"
    assert [t.get_text() for t in axis.get_legend().get_texts()] == ["btc BTC/USDT", "tsla TSLA/USD"]
    assert "UTC" in axis.get_xlabel() and axis.get_title()
    assert len(axis.collections) == 2  # each agent's drawdown shading


# --- the CLI ---------------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_agents_report_cli_when_rows_logged_then_table_per_agent_and_png_written(
    logged: Engine, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["agents", "report"]) == 0

    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line and not line.startswith("equity")}
    assert set(lines) == {"tsla", "iwm", "btc"}
    assert lines["tsla"].split()[2:] == [
        "(alpaca)", "8", "4", "2/2", "67%", "of", "3", "101.70", "0.20", "90.50", "0.18", "3.30", "11",
        "max_drawdown", "1,", "max_position", "1",
    ]  # fmt: skip
    assert lines["iwm"].split()[2:] == [
        "(alpaca)",
        "0",
        "0",
        "0/0",
        "-",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0",
        "0",
    ]
    png = state / "reports" / "agents-equity.png"
    assert f"equity curve: {png}" in out
    assert _png_size(png) == (1000, 500) and png.stat().st_size > 20_000


def test_agents_report_cli_when_json_then_it_parses_with_exact_figures_and_the_png_path(
    logged: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "out" / "curve.png"

    assert main(["agents", "report", "--agent", "btc", "--json", "--png", str(png)]) == 0

    result = json.loads(capsys.readouterr().out)
    assert result["png"] == str(png) and png.read_bytes().startswith(PNG_SIGNATURE)
    (btc,) = result["agents"]
    assert (btc["agent"], btc["pnl"], btc["max_drawdown"], btc["hit_rate"], btc["failed"]) == (
        "btc",
        "95",
        "105",
        0.0,
        1,
    )


def test_agents_cli_when_table_empty_then_zeros_reported_and_no_decision_listed(
    engine: Engine, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["agents", "report", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main(["agents", "decisions"]) == 0
    decisions = capsys.readouterr().out

    assert [(r["agent"], r["runs"], r["pnl"], r["max_drawdown"], r["hit_rate"]) for r in report["agents"]] == [
        (name, 0, "0", "0", None) for name in agents().agents
    ]
    assert _png_size(Path(report["png"])) == (1000, 500)
    assert decisions.strip() == "no agent decision recorded"
    (axis,) = performance.equity_curve_figure({name: [] for name in agents().agents}).axes
    assert (axis.get_lines(), [t.get_text() for t in axis.texts]) == ([], ["no agent decision recorded"])


def test_agents_cli_when_agent_unknown_then_fails_naming_the_known_agents(
    logged: Engine, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["agents", "report", "--agent", "unknown"]) == 2
    report_err = capsys.readouterr().err
    assert main(["agents", "decisions", "--agent", "unknown"]) == 2
    decisions_err = capsys.readouterr().err

    for err in (report_err, decisions_err):
        assert "agents.unknown" in err and "no such agent; known: ['btc', 'iwm', 'tsla']" in err
    assert not (state / "reports").exists()


def test_agents_decisions_cli_when_limited_then_newest_first_rationale_shortened_in_table_whole_in_json(
    logged: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["agents", "decisions", "--agent", "tsla", "--limit", "3"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert main(["agents", "decisions", "--agent", "tsla", "--limit", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)

    assert [line.split()[1:5] for line in table[2:]] == [
        ["tsla", "sell", "10", "partial"], ["tsla", "buy", "3", "undone"], ["tsla", "sell", "5", "rejected"],
    ]  # fmt: skip
    assert table[2].split()[0] == (T0 + timedelta(minutes=35)).isoformat(timespec="seconds")
    assert "max_drawdown" in table[4] and table[2].endswith("...") and "RSI 74" not in table[2]
    assert [r["outcome"] for r in rows] == ["partial", "undone", "rejected"]
    assert rows[0]["rationale"].endswith("RSI 74 overbought") and rows[0]["fill_price"] == "110"
    assert "inputs" not in rows[0]


@pytest.fixture
def new_york_local_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local zone is not UTC (so reading a time as local time would show)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_agents_report_cli_when_since_without_offset_then_read_as_utc_and_pnl_from_the_equity_before(
    logged: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], new_york_local_time: None
) -> None:
    png = str(tmp_path / "curve.png")

    assert main(["agents", "report", "--agent", "tsla", "--since", "2026-03-02T14:50", "--json", "--png", png]) == 0
    (tsla,) = json.loads(capsys.readouterr().out)["agents"]
    with pytest.raises(SystemExit) as refused:
        main(["agents", "report", "--since", "yesterday"])

    assert (tsla["runs"], tsla["first_as_of"], tsla["pnl"], tsla["max_drawdown"]) == (
        4, "2026-03-02T14:50:00+00:00", "103.7", "30.5",
    )  # fmt: skip
    assert refused.value.code == 2 and "not an ISO date or time: 'yesterday'" in capsys.readouterr().err
