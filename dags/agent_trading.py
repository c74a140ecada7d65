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
    agent_doc,
)
from operators.saga import mapped_saga
from operators.tags import CRON
from tradeops.agents.pipeline import ACTION, EXECUTE_TASK_ID
from tradeops.agents.settings import check_against, dag_id, load_agents
from tradeops.config import load_settings

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
        doc_md=agent_doc(_name, _agent),
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
