"""One trading-agent DAG per entry of config/agents.yaml: ``agent_<name>_trading``.

The only DAG file whose dag ids are not its file name: adding an agent is a YAML entry, not a
file. The agents file (and its fit with the main configuration) is validated here, at parse
time: a bad entry is an import error of this file naming the key.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, CronTriggerTimetable

from operators.agents import (
    AnalyzeSentimentOperator,
    AnalyzeTechnicalOperator,
    CheckMarketHoursOperator,
    FetchMarketDataOperator,
    LogPerformanceOperator,
    MakeDecisionOperator,
    ValidateRiskOperator,
)
from operators.saga import mapped_saga
from operators.tags import CRON
from tradeops.agents.pipeline import ACTION, EXECUTE_TASK_ID
from tradeops.agents.settings import AgentConfig, check_against, dag_id, load_agents
from tradeops.config import load_settings

DOC = """
### Trading agent `{name}`: {symbol} on {venue} ({calendar}, `{schedule}` {timezone})

1. `check_market_hours`: the {calendar} calendar at the run's scheduled time (holidays, early
   closes); closed: every later task is skipped, not failed.
2. `fetch_market_data`: the last {history_bars} complete 1-minute bars, the feature registry's
   values on the last one, the venue's mark price.
3. `analyze_sentiment` (headlines on `{news}` from the news source, scored offline) and
   `analyze_technical` (RSI, MACD, moving-average crossover, volatility), in parallel.
4. `make_decision`: sentiment x {w_sentiment} + technical x {w_technical}, blended with the routed
   model's prediction ({model_weight:.0%} of the score) when a model serves {symbol}; buy / sell
   at |score| >= {threshold}; the rationale names every input.
5. `validate_risk`: trading state (HALTED blocks, REDUCING only sells), max position {max_position},
   max notional {max_notional}, max drawdown {max_drawdown} of capital {capital}, venue exposure
   {max_venue_exposure}, available balance, stale data, late run, unlogged earlier orders.
6. `execute_trade`: the order as a saga step (client order id = idempotency key), then
   `compensate`: a failed step (e.g. a fill more than {slippage} bps off) is traded back.
7. `log_performance`: price, scores, decision, rationale, order, fill and PnL into
   `agent_decisions`, with every input; the run fails here when the trade failed.

**On call**: `tradeops agents decisions --agent {name}`, `tradeops agents report`,
`tradeops agents replay RUN_ID`; a failed trade: `tradeops saga show RUN_ID`.
Config: config/agents.yaml (`agents.{name}`).
"""


def _doc(name: str, agent: AgentConfig) -> str:
    risk = agent.risk
    return DOC.format(
        name=name,
        symbol=agent.symbol,
        venue=agent.venue,
        calendar=agent.calendar,
        schedule=agent.schedule,
        timezone=agent.timezone,
        history_bars=agent.history_bars,
        news=agent.headline_symbol,
        w_sentiment=agent.weights.sentiment,
        w_technical=agent.weights.technical,
        model_weight=agent.model_weight,
        threshold=agent.entry_threshold,
        max_position=risk.max_position,
        max_notional=risk.max_notional,
        max_drawdown=risk.max_drawdown,
        capital=agent.capital,
        max_venue_exposure=risk.max_venue_exposure,
        slippage=risk.max_slippage_bps,
    )


AGENTS = load_agents()
check_against(AGENTS, load_settings())

for _name, _agent in AGENTS.agents.items():
    with DAG(
        dag_id=dag_id(_name),
        schedule=CronTriggerTimetable(_agent.schedule, timezone=_agent.timezone),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=timedelta(minutes=15),
        tags=[CRON, "trading-agent", "saga"],
        doc_md=_doc(_name, _agent),
    ) as _dag:
        hours = CheckMarketHoursOperator(task_id="check_market_hours", agent=_name)
        fetch = FetchMarketDataOperator(task_id="fetch_market_data", agent=_name)
        sentiment = AnalyzeSentimentOperator(task_id="analyze_sentiment", agent=_name)
        technical = AnalyzeTechnicalOperator(task_id="analyze_technical", agent=_name)
        decide = MakeDecisionOperator(task_id="make_decision", agent=_name)
        validate = ValidateRiskOperator(task_id="validate_risk", agent=_name)
        execute, compensate = mapped_saga(EXECUTE_TASK_ID, ACTION, validate.output)
        log_performance = LogPerformanceOperator(task_id="log_performance", agent=_name)
        hours >> fetch >> [sentiment, technical] >> decide >> validate
        compensate >> log_performance
    globals()[_dag.dag_id] = _dag
