"""Trading-agent tasks: the Airflow side of ``tradeops.agents`` (the logic lives there).

Each operator names its agent (the key under ``agents:`` in config/agents.yaml), reads the
upstream results from XCom by task id and calls one function of ``tradeops.agents.pipeline``.
The run's scheduled time (its logical date, else ``run_after``) is the time the market hours are
checked at and the time its delay is measured from.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context, ExceptionRetryPolicy, RetryAction, RetryRule, TriggerRule
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from tradeops.config import settings

CHECK_HOURS = "check_market_hours"
FETCH = "fetch_market_data"
SENTIMENT = "analyze_sentiment"
TECHNICAL = "analyze_technical"
DECIDE = "make_decision"
VALIDATE = "validate_risk"
RISK_XCOM_KEY = "risk"

# Reads that hit a venue or the news source retry what is temporary (an unreachable broker or
# venue, an open circuit breaker) a couple of times; anything else fails at once.
READ_RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception="tradeops.errors.TemporaryVenueError",
            action=RetryAction.RETRY,
            reason="temporary venue error: retry",
        ),
        RetryRule(
            exception="tradeops.errors.NewsUnavailableError",
            action=RetryAction.RETRY,
            reason="the news source did not answer: retry",
        ),
    ],
    default=RetryAction.FAIL,
)
_READ_DEFAULTS: dict[str, Any] = {"retries": 2, "retry_delay": timedelta(seconds=10), "retry_policy": READ_RETRY_POLICY}


def scheduled_time(context: Context) -> datetime:
    dag_run = context["dag_run"]
    moment = getattr(dag_run, "logical_date", None) or dag_run.run_after
    return moment.astimezone(UTC)


class _AgentOperator(BaseOperator):
    """Base of the agent tasks: ``agent`` is its name in config/agents.yaml."""

    ui_color = "#e3f0e8"

    def __init__(self, *, agent: str, **kwargs: Any) -> None:
        for name, value in _READ_DEFAULTS.items():
            kwargs.setdefault(name, value)
        super().__init__(**kwargs)
        self.agent = agent

    def _config(self) -> tuple[Any, Any]:
        from tradeops.agents.settings import agents

        loaded = agents()
        return loaded, loaded.agent(self.agent)

    @staticmethod
    def _pull(context: Context, task_id: str, key: str = "return_value") -> Any:
        return context["ti"].xcom_pull(task_ids=task_id, key=key)


class CheckMarketHoursOperator(_AgentOperator):
    """Skip the run (every later task) when the agent's market is closed at the scheduled time."""

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.agents.hours import market_hours

        _agents, agent = self._config()
        at = scheduled_time(context)
        hours = market_hours(agent.calendar, at)
        if not hours.open:
            raise AirflowSkipException(f"market closed: {hours.reason}")
        self.log.info("%s at %s: %s", agent.calendar, at.isoformat(), hours.reason)
        return {"at": at.isoformat(), "reason": hours.reason}


class FetchMarketDataOperator(_AgentOperator):
    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.agents.pipeline import fetch_market_data

        _agents, agent = self._config()
        market = fetch_market_data(agent, settings(), datetime.now(UTC))
        self.log.info(
            "%d bars of %s up to %s, mark %s", market["bars"], agent.symbol, market["last_ts"], market["mark"]
        )
        return market


class AnalyzeSentimentOperator(_AgentOperator):
    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.agents.pipeline import analyze_sentiment

        loaded, agent = self._config()
        result = analyze_sentiment(loaded, agent, settings(), datetime.now(UTC))
        self.log.info(
            "sentiment %+.3f (confidence %.2f) from %d headline(s) on %s",
            result["result"]["score"],
            result["result"]["confidence"],
            len(result["headlines"]),
            result["news_symbol"],
        )
        return result


class AnalyzeTechnicalOperator(_AgentOperator):
    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.agents.pipeline import analyze_technical

        result = analyze_technical(self._pull(context, FETCH))
        self.log.info("technical %+.3f (confidence %.2f): %s", result["signal"], result["confidence"], result["notes"])
        return result


class MakeDecisionOperator(_AgentOperator):
    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.agents.pipeline import make_decision

        _agents, agent = self._config()
        decided = make_decision(
            self.agent,
            agent,
            settings(),
            run_id=context["ti"].run_id,
            as_of=scheduled_time(context),
            market=self._pull(context, FETCH),
            sentiment=self._pull(context, SENTIMENT),
            technical=self._pull(context, TECHNICAL),
        )
        self.log.info("decision: %s", decided["decision"]["rationale"])
        return decided


class ValidateRiskOperator(_AgentOperator):
    """Return the approved order as a list of one saga step's parameters (empty: no order, so
    the mapped ``execute_trade`` maps to nothing); the whole verdict goes to XCom key ``risk``."""

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from tradeops.agents.pipeline import validate_risk

        _agents, agent = self._config()
        ti = context["ti"]
        risk = validate_risk(
            self.agent,
            agent,
            settings(),
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            as_of=scheduled_time(context),
            decided=self._pull(context, DECIDE),
            market=self._pull(context, FETCH),
            now=datetime.now(UTC),
        )
        ti.xcom_push(key=RISK_XCOM_KEY, value=risk)
        self.log.info("risk: %s", risk["verdict"]["reason"])
        return risk["orders"]


class LogPerformanceOperator(_AgentOperator):
    """Log the run (decision, verdict, what the venue filled, the undo) once the saga is over,
    whatever its outcome; then fail when the trade failed, so the run reads FAILED too."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ALL_DONE)
        kwargs.setdefault("retries", 3)
        super().__init__(**kwargs)

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.agents.pipeline import log_performance

        decided = self._pull(context, DECIDE)
        if not decided:
            self._no_decision(context)
        _agents, agent = self._config()
        ti = context["ti"]
        logged = log_performance(
            self.agent,
            agent,
            settings(),
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            as_of=scheduled_time(context),
            market=self._pull(context, FETCH),
            sentiment=self._pull(context, SENTIMENT),
            decided=decided,
            risk=self._pull(context, VALIDATE, RISK_XCOM_KEY),
        )
        self.log.info("logged: %s", logged)
        self._fail_if_unfinished(context)
        if logged["outcome"] == "failed" or logged["outcome"] == "undone":
            raise AirflowFailException(
                f"the trade of this run {logged['outcome']} (order {logged['client_order_id']}): "
                f"see compensate and `tradeops saga show {ti.run_id}`; position now {logged['position_after']}"
            )
        return logged

    @staticmethod
    def _states(context: Context, task_ids: list[str]) -> dict[str, str]:
        ti = context["ti"]
        found = ti.get_task_states(dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id]).get(ti.run_id, {})
        return {task: str(state) for task, state in found.items()}

    def _no_decision(self, context: Context) -> None:
        """Skip when the market was closed; fail (so the run fails) when a task before the decision did."""
        states = self._states(context, [CHECK_HOURS, FETCH, SENTIMENT, TECHNICAL, DECIDE])
        if states.get(CHECK_HOURS) == "skipped":
            raise AirflowSkipException("the market was closed: nothing decided, nothing to log")
        failed = sorted(task for task, state in states.items() if state in {"failed", "upstream_failed"})
        raise AirflowFailException(f"no decision was made: {', '.join(failed) or 'an earlier task'} did not finish")

    def _fail_if_unfinished(self, context: Context) -> None:
        """A risk check that crashed fails the run even though its (missing) order was logged."""
        states = self._states(context, [VALIDATE])
        if states.get(VALIDATE) in {"failed", "upstream_failed"}:
            raise AirflowFailException("validate_risk did not finish: logged as failed, no order was placed")


AGENT_DOC = """
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


def agent_doc(name: str, agent: Any) -> str:
    """The Docs tab of agent ``name``'s DAG."""
    risk = agent.risk
    return AGENT_DOC.format(
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
