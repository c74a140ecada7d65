"""The emergency stop: halt trading, flatten every venue in parallel, report the final state."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context, TriggerRule
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from operators.events import claim_new_events
from tradeops import risk
from tradeops.config import settings
from tradeops.events import build_event, to_json
from tradeops.saga.keys import idempotency_key
from tradeops.stoploss import flatten_venue
from tradeops.venues.factory import open_venue

REPORT_XCOM_KEY = "flatten_reports"
EVENTS_XCOM_KEY = "events"


def halt_trading(run_id: str, events: list[dict[str, Any]], by: str) -> risk.TradingState:
    """Set HALTED (first, before anything else) and return the state it replaced."""
    reasons = "; ".join(str(item.get("reason", "")) for item in events)
    before = risk.get_state().state
    risk.set_state(
        risk.TradingState.HALTED, reason=f"emergency stop ({run_id}): {reasons or 'manual'}"[:2000], changed_by=by
    )
    return before


def flatten_all(venues: list[str], key_prefix: str, max_rounds: int) -> list[dict[str, Any]]:
    """Flatten every venue at once, one thread each: a venue that fails never holds up the others."""
    from operators import credentials

    credentials.install()
    loaded = settings()

    def one(venue: str) -> dict[str, Any]:
        guarded = open_venue(venue, settings=loaded, circuit_breaker=False)
        return flatten_venue(guarded, loaded, key_prefix=f"{key_prefix}/{venue}", max_rounds=max_rounds).to_dict()

    with ThreadPoolExecutor(max_workers=max(1, len(venues)), thread_name_prefix="flatten") as pool:
        return list(pool.map(one, venues))


class EmergencyStopOperator(BaseOperator):
    """Claim the events, set HALTED, then cancel every order and close every position on every
    venue in parallel, re-checking until flat. One task, so the kill switch pays for one task
    start; fails (and retries: flattening is idempotent) unless every venue is flat."""

    def __init__(self, *, event_types: list[str], max_rounds: int = 5, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 3)
        kwargs.setdefault("retry_delay", timedelta(seconds=1))
        super().__init__(**kwargs)
        self.event_types = event_types
        self.max_rounds = max_rounds

    def execute(self, context: Context) -> list[dict[str, Any]]:
        events = claim_new_events(context, consumer=self.dag_id, event_types=self.event_types, log=self.log)
        ti = context["ti"]
        ti.xcom_push(key=EVENTS_XCOM_KEY, value=events)
        before = halt_trading(context["run_id"], events, by=f"airflow:{self.dag_id}")
        self.log.critical("Trading HALTED (was %s) for %d event(s)", before.value, len(events))
        prefix = idempotency_key(ti.dag_id, ti.run_id, ti.task_id, ti.map_index) + f"/try{ti.try_number}"
        reports = flatten_all(sorted(settings().venues), prefix, self.max_rounds)
        ti.xcom_push(key=REPORT_XCOM_KEY, value=reports)
        for report in reports:
            self.log.warning("Flatten %s: %s", report["venue"], report)
        not_flat = [r["venue"] for r in reports if not r["flat"]]
        if not_flat:
            raise AirflowException(f"not flat after {self.max_rounds} rounds: {not_flat}")
        return reports


def _venue_state(venue: str, report: dict[str, Any] | None) -> dict[str, Any]:
    """One venue's line in the stop-loss report; a venue whose flatten never reported is not flat."""
    if report is None:
        return {
            "venue": venue,
            "flat": False,
            "orders_canceled": 0,
            "positions_closed": 0,
            "open_positions": 0,
            "open_orders": 0,
            "error": "flatten never ran",
        }
    keys = ("flat", "orders_canceled", "positions_closed", "open_positions", "open_orders")
    return {"venue": venue, **{k: report[k] for k in keys}, "error": "; ".join(report["errors"])[:1000] or None}


class StopLossReportOperator(BaseOperator):
    """Publish the final state of every venue to ``risk-alerts`` and log it; fail unless all flat."""

    def __init__(self, *, stop_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ALL_DONE)
        super().__init__(**kwargs)
        self.stop_task_id = stop_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        events = ti.xcom_pull(task_ids=self.stop_task_id, key=EVENTS_XCOM_KEY)
        if not events:
            raise AirflowSkipException("no new events were claimed: nothing was stopped")
        reports = ti.xcom_pull(task_ids=self.stop_task_id, key=REPORT_XCOM_KEY) or []
        by_venue = {r["venue"]: r for r in reports}
        states = [_venue_state(venue, by_venue.get(venue)) for venue in sorted(settings().venues)]
        report = build_event(
            "stop-loss-report",
            {
                "trading_state": risk.get_state().state.value,
                "trigger_event_ids": [item["event"]["event_id"] for item in events],
                "venues": states,
                "all_flat": all(s["flat"] for s in states),
                "run_id": context["run_id"],
                "source": self.dag_id,
            },
        )
        self.log.critical("Emergency stop report: %s", to_json(report))
        from tradeops.kafka.producer import publish

        delivery = publish(report)
        self.log.info("Report published to %s[%d]@%d", delivery.topic, delivery.partition, delivery.offset)
        if not all(s["flat"] for s in states):
            raise AirflowFailException(f"NOT FLAT: {[s for s in states if not s['flat']]}")
        return json.loads(to_json(report))
