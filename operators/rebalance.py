"""Fund rebalancing tasks: the plan and the wait for funds to arrive (the run lease: ``operators.leases``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from airflow.sdk import BaseOperator, BaseSensorOperator, Context
from airflow.sdk.exceptions import AirflowSkipException

from tradeops import risk
from tradeops.config import Settings, settings
from tradeops.rebalance import RebalancePlan, plan_rebalance, to_saga_steps, verify_rebalance
from tradeops.venues.factory import open_venue
from tradeops.wise import wise_quoter

PLAN_XCOM_KEY = "rebalance_plan"


def venue_balances(loaded: Settings) -> dict[str, dict[str, Decimal]]:
    """Free balance per asset of every venue that takes part in a rebalance target.

    Free, not total: a total includes the margin backing open perp positions, which cannot be
    withdrawn, so a plan on totals could send funds that are not there.
    """
    from operators import credentials

    credentials.install()
    names = sorted({venue for weights in loaded.rebalance.targets.values() for venue in weights})
    return {name: {asset: b.free for asset, b in open_venue(name).balances().items()} for name in names}


class PlanRebalanceOperator(BaseOperator):
    """Plan the cheapest transfers to the target allocation; returns the saga step parameters."""

    def execute(self, context: Context) -> list[dict[str, str]]:
        from operators import credentials

        state = risk.get_state().state
        if state is risk.TradingState.HALTED:
            raise AirflowSkipException("trading is HALTED: no funds are moved until a human resumes")
        loaded = settings()
        quoter = wise_quoter(loaded, credentials.connection_token)
        plan = plan_rebalance(venue_balances(loaded), loaded, quoter)
        context["ti"].xcom_push(key=PLAN_XCOM_KEY, value=plan.to_dict())
        self.log.info("Rebalance plan:\n%s", plan.explain())
        return to_saga_steps(plan)


class VerifyRebalanceSensor(BaseSensorOperator):
    """Wait until every planned transfer arrived and every venue is within tolerance."""

    def __init__(self, *, plan_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 30)
        kwargs.setdefault("timeout", 3 * 3600)
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id

    def poke(self, context: Context) -> bool:
        plan = RebalancePlan.from_dict(context["ti"].xcom_pull(task_ids=self.plan_task_id, key=PLAN_XCOM_KEY))
        loaded = settings()
        problems = verify_rebalance(venue_balances(loaded), plan, loaded)
        for problem in problems:
            self.log.info("Not there yet: %s", problem)
        return not problems
