"""The trading-agent DAGs end to end with ``dag.test()``: the paper venue, the project database,
headlines on the real Kafka broker, real Airflow (skips, saga compensation, run states)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dag_files import load_dag_module
from tradeops import risk
from tradeops.config import settings
from tradeops.errors import ConfigError

pytestmark = [pytest.mark.airflow, pytest.mark.kafka, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
SHIPPED = yaml.safe_load((ROOT / "config" / "agents.yaml").read_text())

BULLISH = [
    "Bitcoin rallies to a record high as ETF inflows surge",
    "Bitcoin jumps after strong institutional demand beats expectations",
    "Analysts upgrade bitcoin outlook; buyers return in force",
    "Bitcoin gains as market rebounds strongly",
]
BEARISH = [
    "Bitcoin plunges as exchange hack triggers panic selling",
    "Bitcoin slumps; analysts downgrade outlook after losses",
    "Bitcoin crashes below support as liquidations soar",
    "Regulators sue crypto lender; bitcoin tumbles",
]


def _agents_file(tmp_path: Path, **btc: Any) -> Path:
    """The shipped agents, with the btc agent led by sentiment (so headlines decide its direction)
    and ``btc`` overrides."""
    data = json.loads(json.dumps(SHIPPED))
    entry = data["agents"]["btc"]
    entry["weights"] = {"sentiment": 0.9, "technical": 0.1}
    entry["history_bars"] = 300
    for key, value in btc.items():
        if isinstance(value, dict) and isinstance(entry.get(key), dict):
            entry[key] = {**entry[key], **value}
        else:
            entry[key] = value
    path = tmp_path / "agents.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def agents_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Write an agents file for this test (``btc`` overrides as keyword arguments) and use it."""
    from tradeops.agents.settings import AGENTS_CONFIG_ENV, agents

    def use(**btc: Any) -> Path:
        path = _agents_file(tmp_path, **btc)
        monkeypatch.setenv(AGENTS_CONFIG_ENV, str(path))
        agents.cache_clear()
        return path

    use()
    yield use
    agents.cache_clear()


def _fresh_news_topic(bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A headline topic of this test only. Only that topic: every ``dag.test()`` writes every DAG
    of dags/ to Airflow's database, and the Kafka-triggered DAGs' assets are named by their
    topics, so other per-test topic names would be left registered for the stop-loss and
    rebalance DAG tests that run later in the same process."""
    from tradeops.kafka.topics import ensure_topics

    monkeypatch.setenv("TRADEOPS__KAFKA__TOPICS__MARKET_NEWS", f"t-market-news-{uuid.uuid4().hex[:8]}")
    settings.cache_clear()
    ensure_topics(bootstrap, settings().kafka.topics)


@pytest.fixture
def news(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, paper_world: None) -> Iterator[Callable[..., None]]:
    """This test's own headline topic; the returned function publishes headlines on BTC."""
    from tradeops.agents.news import Headline, publish_headline

    _fresh_news_topic(kafka_bootstrap, monkeypatch)
    counter = iter(range(10_000))

    def publish(titles: list[str], *, symbol: str = "BTC", age: timedelta = timedelta(minutes=5)) -> None:
        at = datetime.now(UTC) - age
        for title in titles:
            headline = Headline(
                id=f"test-{next(counter)}-{at.timestamp()}",
                symbol=symbol,
                title=title,
                source="test",
                published_at=at,
            )
            publish_headline(headline, settings(), bootstrap=kafka_bootstrap)

    yield publish


def _dags() -> dict[str, Any]:
    from airflow.sdk import DAG

    module = load_dag_module("agent_trading")
    return {value.dag_id: value for value in vars(module).values() if isinstance(value, DAG)}


def _run(dag_id: str, at: datetime | None = None) -> Any:
    return _dags()[dag_id].test(logical_date=at or datetime.now(UTC))


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _row(run: Any) -> dict[str, Any]:
    from tradeops.agents import ledger

    row = ledger.row_of(run.dag_id, run.run_id)
    assert row is not None, _states(run)
    return row


def _venue(name: str) -> Any:
    from tradeops.venues.paper import PaperVenue

    return PaperVenue(name, settings())


def _btc_held() -> Decimal:
    return _venue("binance").balances()["BTC"].total


# -- the factory ----------------------------------------------------------------------------------


def test_factory_when_parsed_then_exactly_the_configured_dags_with_their_schedules(agents_yaml: Any) -> None:
    from airflow.sdk import CronTriggerTimetable

    dags = _dags()

    assert sorted(dags) == ["agent_btc_trading", "agent_iwm_trading", "agent_tsla_trading"]
    schedules = {dag_id: (dag.timetable.expression, str(dag.timetable.timezone)) for dag_id, dag in dags.items()}
    assert schedules == {
        "agent_tsla_trading": ("*/5 9-15 * * 1-5", "America/New_York"),
        "agent_iwm_trading": ("*/15 9-15 * * 1-5", "America/New_York"),
        "agent_btc_trading": ("0 * * * *", "UTC"),
    }
    for dag in dags.values():
        assert isinstance(dag.timetable, CronTriggerTimetable) and dag.max_active_runs == 1
        order = [t.task_id for t in dag.topological_sort()]
        assert order[:2] == ["check_market_hours", "fetch_market_data"]
        assert order[-5:] == ["make_decision", "validate_risk", "execute_trade", "compensate", "log_performance"]
        assert dag.get_task("analyze_sentiment").upstream_task_ids == {"fetch_market_data"}
        assert dag.get_task("make_decision").upstream_task_ids == {"analyze_sentiment", "analyze_technical"}


def test_factory_when_an_agent_is_added_in_yaml_then_its_dag_appears_without_code(
    agents_yaml: Any, tmp_path: Path
) -> None:
    path = agents_yaml()
    data = yaml.safe_load(path.read_text())
    data["agents"]["eth"] = {
        "venue": "binance",
        "symbol": "ETH/USDT",
        "calendar": "24/7",
        "schedule": "*/30 * * * *",
        "capital": "20000",
        "risk": {"max_position": "3", "max_notional": "10000", "max_drawdown": "0.1", "max_venue_exposure": "2e6"},
        "sizing": {"order_notional": "3000", "lot_size": "0.001"},
    }
    path.write_text(yaml.safe_dump(data))

    dags = _dags()

    assert "agent_eth_trading" in dags and dags["agent_eth_trading"].timetable.expression == "*/30 * * * *"
    assert dags["agent_eth_trading"].get_task("log_performance").agent == "eth"


def test_factory_when_an_entry_is_bad_then_parsing_fails_naming_the_key(agents_yaml: Any) -> None:
    agents_yaml(risk={"max_drawdown": "1.5"})

    with pytest.raises(ConfigError) as caught:
        load_dag_module("agent_trading")

    assert caught.value.key == "agents.btc.risk.max_drawdown"


# -- market hours ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 26, 15, 0, tzinfo=UTC),  # Thanksgiving: NYSE closed all day
        datetime(2026, 11, 27, 18, 30, tzinfo=UTC),  # after the 13:00 New York early close
        datetime(2026, 11, 25, 3, 0, tzinfo=UTC),  # night
    ],
)
def test_equity_agent_when_the_market_is_closed_then_the_run_is_skipped_not_failed(
    agents_yaml: Any, news: Any, moment: datetime
) -> None:
    run = _run("agent_tsla_trading", moment)

    states = _states(run)
    assert run.state == "success", states
    assert {state for task, state in states.items()} == {"skipped"}
    from tradeops.agents import ledger

    assert ledger.row_of(run.dag_id, run.run_id) is None


def test_crypto_agent_when_nyse_is_closed_then_it_still_runs(agents_yaml: Any, news: Any) -> None:
    for moment in (datetime(2026, 11, 26, 15, 0, tzinfo=UTC), datetime(2026, 11, 25, 3, 0, tzinfo=UTC)):
        run = _run("agent_btc_trading", moment)  # Thanksgiving afternoon, a night

        assert run.state == "success", _states(run)
        assert _states(run)["check_market_hours"] == "success"
        row = _row(run)
        assert row["action"] == "hold" or row["risk_rule"] == "run_too_late"  # a run days late never trades


def test_equity_agent_when_a_run_comes_a_day_late_then_it_decides_but_does_not_trade(
    agents_yaml: Any, news: Any
) -> None:
    run = _run("agent_tsla_trading", datetime(2026, 11, 30, 15, 0, tzinfo=UTC))  # open, but long ago

    row = _row(run)
    assert run.state == "success"
    if row["action"] != "hold":
        assert row["outcome"] == "rejected" and row["risk_rule"] == "run_too_late"
    assert _states(run)["check_market_hours"] == "success"


# -- trading end to end ---------------------------------------------------------------------------


def test_btc_agent_when_headlines_are_bullish_then_buys_logs_every_input_and_replays(
    agents_yaml: Any, news: Any
) -> None:
    from tradeops.agents import ledger
    from tradeops.agents.replay import replay

    news(BULLISH)
    before = _btc_held()

    run = _run("agent_btc_trading")

    row = _row(run)
    assert run.state == "success", _states(run)
    assert (row["action"], row["outcome"]) == ("buy", "filled"), row["rationale"]
    assert row["filled"] == row["amount"] > 0 and row["fill_price"] == Decimal("65000")
    assert _btc_held() - before == row["amount"]  # the venue holds what the log says was bought
    assert row["position_after"] == row["amount"]
    assert row["cash_after"] == -(row["amount"] * row["fill_price"]) - row["fee"]
    assert row["sentiment_score"] > 0.5 and len(row["inputs"]["headlines"]) == 4
    assert "sentiment +" in row["rationale"] and "technical" in row["rationale"] and "no model" in row["rationale"]
    assert row["inputs"]["risk"]["verdict"]["approved"] is True
    order = _venue("binance").get_order(row["client_order_id"], "BTC/USDT")
    assert order is not None and order.filled == row["amount"]

    result = replay(ledger.row_of(run.dag_id, run.run_id))
    assert result.matches, result.checks
    assert [c.stage for c in result.checks] == ["sentiment", "technical", "decision", "risk"]


def test_btc_agent_when_news_turns_bearish_then_sells_from_what_it_bought(
    agents_yaml: Any, news: Any, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    news(BULLISH)
    bought = _row(_run("agent_btc_trading"))
    assert bought["outcome"] == "filled"

    _fresh_news_topic(kafka_bootstrap, monkeypatch)  # a new headline topic: only bad news now
    news(BEARISH)
    run = _run("agent_btc_trading", datetime.now(UTC) + timedelta(seconds=1))

    sold = _row(run)
    assert run.state == "success", _states(run)
    assert (sold["action"], sold["outcome"]) == ("sell", "filled"), sold["rationale"]
    assert 0 < sold["amount"] <= bought["amount"]  # sized by conviction, never more than it holds
    assert sold["position_after"] == bought["amount"] - sold["amount"]
    assert sold["cash_after"] == bought["cash_after"] + sold["amount"] * sold["fill_price"] - sold["fee"]
    assert sold["sentiment_score"] < -0.5


def test_btc_agent_when_the_order_would_breach_max_position_then_rejected_naming_the_rule(
    agents_yaml: Any, news: Any
) -> None:
    agents_yaml(risk={"max_position": "0.001"})
    news(BULLISH)
    before = _btc_held()

    run = _run("agent_btc_trading")

    row = _row(run)
    assert run.state == "success"
    assert (row["action"], row["outcome"], row["risk_rule"]) == ("buy", "rejected", "max_position")
    assert "max_position" in row["risk_reason"] and row["client_order_id"] is None
    assert _states(run)["execute_trade"] == "skipped" and _btc_held() == before


def test_btc_agent_when_trading_is_halted_then_rejected_by_the_trading_state(agents_yaml: Any, news: Any) -> None:
    risk.set_state(risk.TradingState.HALTED, reason="drill: halted by a person", changed_by="test")
    news(BULLISH)
    before = _btc_held()

    run = _run("agent_btc_trading")

    row = _row(run)
    assert run.state == "success"
    assert (row["outcome"], row["risk_rule"]) == ("rejected", "trading_state")
    assert "HALTED (drill: halted by a person)" in row["risk_reason"]
    assert _btc_held() == before


def test_btc_agent_when_the_venue_fails_after_the_order_then_the_fill_is_traded_back(
    agents_yaml: Any, news: Any
) -> None:
    news(BULLISH)
    before = _btc_held()
    _venue("binance").inject_fault("place_order", "operational", phase="after")

    run = _run("agent_btc_trading")

    row = _row(run)
    states = _states(run)
    assert run.state == "failed" and states["compensate"] == "failed" and states["log_performance"] == "failed"
    assert row["outcome"] == "undone" and row["position_after"] == 0, row["detail"]
    assert "reverse" in row["detail"] and _btc_held() == before  # bought, then sold back: BTC as before
    assert row["cash_after"] < 0  # the round trip paid two fees
    assert risk.get_state().state is risk.TradingState.HALTED  # an operational error halts trading
    from tradeops.saga import store

    assert [str(s.status) for s in store.steps(run.dag_id, run.run_id)] == ["undone"]


def test_btc_agent_when_an_earlier_run_left_no_log_then_no_new_order_until_reconciled(
    agents_yaml: Any, news: Any
) -> None:
    from sqlalchemy import delete

    from tradeops.agents.agent_tables import agent_decisions
    from tradeops.db import get_engine, transaction

    news(BULLISH)
    first = _run("agent_btc_trading")
    assert _row(first)["outcome"] == "filled"
    with transaction(get_engine()) as conn:  # as if log_performance never wrote the first run
        conn.execute(delete(agent_decisions).where(agent_decisions.c.run_id == first.run_id))

    second = _run("agent_btc_trading", datetime.now(UTC) + timedelta(seconds=1))

    row = _row(second)
    assert (row["outcome"], row["risk_rule"]) == ("rejected", "unreconciled_run")
    assert first.run_id in row["risk_reason"]


def test_replay_when_a_logged_input_was_changed_then_the_stage_that_differs_is_named(
    agents_yaml: Any, news: Any
) -> None:
    from tradeops.agents import ledger
    from tradeops.agents.replay import replay

    news(BULLISH)
    run = _run("agent_btc_trading")
    row = ledger.row_of(run.dag_id, run.run_id)
    assert row is not None

    row["inputs"]["headlines"][0]["title"] = "Bitcoin collapses; exchange bankrupt, fraud charges"
    row["inputs"]["decision_inputs"]["position"] = "0.3"
    result = replay(row)

    differing = {c.stage for c in result.checks if not c.matches}
    assert not result.matches and "sentiment" in differing


def test_replay_cli_when_the_log_is_intact_then_exit_0_and_when_tampered_then_exit_1(
    agents_yaml: Any, news: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import update

    from tradeops.agents import ledger
    from tradeops.agents.agent_tables import agent_decisions
    from tradeops.cli import main
    from tradeops.db import get_engine, transaction

    news(BULLISH)
    run = _run("agent_btc_trading")
    capsys.readouterr()

    assert main(["agents", "replay", run.run_id]) == 0
    assert "MATCHES" in capsys.readouterr().out

    row = ledger.row_of(run.dag_id, run.run_id)
    assert row is not None
    row["inputs"]["decision_inputs"]["weights"] = {"sentiment": 0.1, "technical": 0.9}
    with transaction(get_engine()) as conn:
        conn.execute(
            update(agent_decisions)
            .where(agent_decisions.c.run_id == run.run_id)
            .values(inputs=json.dumps(row["inputs"]))
        )
    assert main(["agents", "replay", run.run_id]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS" in out and "decision   False" in out
    assert main(["agents", "replay", "no-such-run"]) == 2


def test_btc_agent_when_a_model_is_routed_to_it_then_its_prediction_is_blended_and_recorded(
    agents_yaml: Any, news: Any, model_stores: Any
) -> None:
    import numpy as np
    import pandas as pd
    from sqlalchemy import select

    from tests.fixtures.models import register_model
    from tradeops.agents import ledger
    from tradeops.agents.replay import replay
    from tradeops.db import get_engine, transaction
    from tradeops.models import routing
    from tradeops.models.model_tables import model_predictions

    rng = np.random.default_rng(5)
    columns = ["rsi_14", "macd_hist", "ret_15"]
    samples = pd.DataFrame({"rsi_14": rng.uniform(0, 100, 400), "macd_hist": rng.normal(0, 1e-4, 400)})
    samples["ret_15"] = rng.normal(0, 1e-3, 400)
    # noisy labels: a separable set gives the logistic model huge weights, and p(up) rounds to 1.0
    # for some RSI values (the run is at the current time, so the bars' RSI varies)
    labels = (samples["rsi_14"] + rng.normal(0, 25, 400) < 50).to_numpy().astype(int)
    version = register_model(columns, samples, labels)
    routing.assign([("binance", "BTC/USDT")], version, "champion", "test", "route BTC to the test model")
    news(BULLISH)

    run = _run("agent_btc_trading")

    row = _row(run)
    assert run.state == "success", _states(run)
    assert row["model_version"] == version and 0 < row["model_probability"] < 1
    assert f"v{version} (champion) p(up) {row['model_probability']:.3f}" in row["rationale"]
    with transaction(get_engine()) as conn:
        served = conn.execute(select(model_predictions).where(model_predictions.c.symbol == "BTC/USDT")).all()
    assert [(p.version, p.role, p.error) for p in served] == [(version, "champion", None)]
    assert served[0].probability == row["model_probability"]
    assert replay(ledger.row_of(run.dag_id, run.run_id)).matches


def test_btc_agent_when_the_fetched_bars_are_broken_then_no_order_and_the_reason_names_the_bar(
    agents_yaml: Any, news: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fixtures.paper import data_fault, set_data_faults

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=20)
    set_data_faults(
        monkeypatch, data_fault("binance", "BTC/USDT", "high_below_low", start.isoformat(), now.isoformat())
    )
    news(BULLISH)

    run = _run("agent_btc_trading")

    row = _row(run)
    assert run.state == "success", _states(run)
    assert (row["action"], row["outcome"], row["risk_rule"]) == ("buy", "rejected", "bad_market_data")
    assert "binance BTC/USDT: ohlc" in row["risk_reason"] and start.isoformat() in row["risk_reason"]
