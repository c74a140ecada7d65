"""Funding-rate hedge tasks: per-symbol leases, snapshot the venues, publish deviations, plan, verify."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from operators.leases import AcquireLeasesSensor
from operators.saga import SAGA_RETRY_POLICY
from tradeops import risk
from tradeops.config import Settings, settings
from tradeops.funding_events import publish_deviations
from tradeops.funding_snapshot import FundingSnapshot, snapshot_funding
from tradeops.hedging import (
    HEDGE_LEASE_PREFIX,
    HedgePlan,
    hedge_lease_names,
    hedge_symbols,
    plan_hedge,
    verify_hedge,
)
from tradeops.venues.factory import open_venue

PLAN_XCOM_KEY = "hedge_plan"

# Retries of the mapped hedge legs, given to ``mapped_saga`` explicitly: ``.partial()`` never runs
# ``SagaStepOperator.__init__``, so its retry defaults do not reach mapped steps. A temporary venue
# error (e.g. a timeout after the order went through) retries; the retry finds its order by key.
HEDGE_STEP_RETRIES: dict[str, Any] = {
    "retries": 4,
    "retry_delay": timedelta(seconds=5),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=2),
    "retry_policy": SAGA_RETRY_POLICY,
}


def _crypto_venues(loaded: Settings) -> dict[str, Any]:
    return {name: open_venue(name) for name, config in loaded.venues.items() if config.asset_class == "crypto"}


def _symbols(events: Sequence[dict[str, Any]] | None, loaded: Settings) -> list[str]:
    """The hedge symbols named by the run's events, or every configured one for a cron run."""
    if events is None:
        return list(loaded.hedge.symbols)
    return hedge_symbols([item["event"]["symbol"] for item in events], loaded)


class AcquireHedgeLeasesSensor(AcquireLeasesSensor):
    """Wait until this run holds the lease of every symbol it hedges (``hedge:<symbol>``).

    The cron hedge and the event hedge never plan or trade one symbol at the same time. ``ttl``
    must outlast the run (its ``dagrun_timeout``): a run that dies loses its leases at expiry.
    """

    template_fields = ("events",)

    def __init__(self, *, events: Any = None, ttl: timedelta = timedelta(minutes=20), **kwargs: Any) -> None:
        super().__init__(prefix=HEDGE_LEASE_PREFIX, ttl=ttl, **kwargs)
        self.events = events

    def lease_names(self, context: Context) -> list[str]:
        symbols = _symbols(self.events, settings())
        if not symbols:
            raise AirflowSkipException("the events name no configured hedge symbol")
        return hedge_lease_names(symbols)


def take_snapshot(symbols: Sequence[str]) -> dict[str, Any]:
    from operators import credentials

    credentials.install()
    loaded = settings()
    return snapshot_funding(_crypto_venues(loaded), symbols, settings=loaded).to_dict()


class FundingSnapshotOperator(BaseOperator):
    """Read funding rates, marks, positions and spot from every crypto venue (normalised rates)."""

    template_fields = ("events",)

    def __init__(self, *, events: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events = events

    def execute(self, context: Context) -> dict[str, Any]:
        symbols = _symbols(self.events, settings())
        if not symbols:
            raise AirflowSkipException("the events name no configured hedge symbol")
        snapshot = take_snapshot(symbols)
        for failure in snapshot["unavailable"]:
            self.log.error("Venue unavailable for the hedge: %s", failure)
        return snapshot


class PublishDeviationsOperator(BaseOperator):
    """Publish a funding-rate deviation event for each symbol over the threshold."""

    template_fields = ("snapshot",)

    def __init__(self, *, snapshot: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot = snapshot

    def execute(self, context: Context) -> list[str]:
        reports = publish_deviations(FundingSnapshot.from_dict(self.snapshot), settings())
        for report in reports:
            self.log.warning(
                "Funding deviation published: %s (%s[%d]@%d)",
                report.event_id,
                report.topic,
                report.partition,
                report.offset,
            )
        return [report.event_id for report in reports]


class PlanHedgeOperator(BaseOperator):
    """Plan the hedge adjustments; returns the saga step parameters, pushes the whole plan."""

    template_fields = ("snapshot",)

    def __init__(self, *, snapshot: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot = snapshot

    def execute(self, context: Context) -> list[dict[str, Any]]:
        state = risk.get_state().state
        plan = plan_hedge(FundingSnapshot.from_dict(self.snapshot), settings(), state)
        context["ti"].xcom_push(key=PLAN_XCOM_KEY, value=plan.to_dict())
        self.log.info("Hedge plan (trading state %s):\n%s", state.value, plan.explain())
        return plan.to_saga_steps()


class VerifyHedgeOperator(BaseOperator):
    """Re-read the venues and check every position reached the plan's target."""

    def __init__(self, *, plan_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id

    def execute(self, context: Context) -> None:
        plan = HedgePlan.from_dict(context["ti"].xcom_pull(task_ids=self.plan_task_id, key=PLAN_XCOM_KEY))
        after = FundingSnapshot.from_dict(take_snapshot([h.symbol for h in plan.hedges]))
        problems = verify_hedge(after, plan)
        if problems:
            raise AirflowFailException("hedge not at target: " + "; ".join(problems))
        self.log.info("Hedge verified: every position at its target")
