"""The emergency stop: halt trading, flatten every venue in parallel, report the final state."""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import BaseOperator, Context, TriggerRule
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from tradeops import risk
from tradeops.config import settings
from tradeops.db import init_db
from tradeops.events import build_event, to_json
from tradeops.saga.keys import idempotency_key
from tradeops.stoploss import flatten_venue
from tradeops.venues.factory import open_venue

REPORT_XCOM_KEY = "flatten_report"


class HaltTradingOperator(BaseOperator):
    """Set the trading state to HALTED first, so no DAG can open exposure from here on."""

    template_fields = ("events",)

    def __init__(self, *, events: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events = events

    def execute(self, context: Context) -> dict[str, str]:
        init_db()
        reasons = "; ".join(str(item.get("reason", "")) for item in self.events or [])
        before = risk.get_state().state
        risk.set_state(
            risk.TradingState.HALTED,
            reason=f"emergency stop ({context['run_id']}): {reasons or 'manual'}"[:2000],
            changed_by=f"airflow:{self.dag_id}",
        )
        self.log.critical("Trading HALTED (was %s): %s", before.value, reasons)
        return {"before": before.value, "after": risk.TradingState.HALTED.value}


class FlattenVenueOperator(BaseOperator):
    """Cancel all orders and close all positions on one venue; fail (and retry) unless flat."""

    template_fields = ("venue",)

    def __init__(self, *, venue: str, max_rounds: int = 5, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 3)
        kwargs.setdefault("retry_delay", 1)
        super().__init__(**kwargs)
        self.venue = venue
        self.max_rounds = max_rounds

    def execute(self, context: Context) -> dict[str, Any]:
        from operators import credentials

        credentials.install()
        ti = context["ti"]
        prefix = idempotency_key(ti.dag_id, ti.run_id, ti.task_id, ti.map_index) + f"/try{ti.try_number}"
        report = flatten_venue(
            open_venue(self.venue, circuit_breaker=False), settings(), key_prefix=prefix, max_rounds=self.max_rounds
        ).to_dict()
        ti.xcom_push(key=REPORT_XCOM_KEY, value=report)
        self.log.warning("Flatten %s: %s", self.venue, report)
        if not report["flat"]:
            raise AirflowException(
                f"venue {self.venue} is not flat after {report['rounds']} rounds: {report['errors']}"
            )
        return report


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

    template_fields = ("events",)

    def __init__(self, *, events: Any, flatten_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ALL_DONE)
        super().__init__(**kwargs)
        self.events = events
        self.flatten_task_id = flatten_task_id

    def _reports(self, context: Context) -> list[dict[str, Any]]:
        pulled = context["ti"].xcom_pull(task_ids=self.flatten_task_id, key=REPORT_XCOM_KEY)
        if pulled is None:
            return []
        return [r for r in (pulled if isinstance(pulled, list) else [pulled]) if r]

    def execute(self, context: Context) -> dict[str, Any]:
        if not self.events:
            raise AirflowSkipException("no new events were claimed: nothing was stopped")
        reports = self._reports(context)
        by_venue = {r["venue"]: r for r in reports}
        states = [_venue_state(venue, by_venue.get(venue)) for venue in sorted(settings().venues)]
        init_db()
        report = build_event(
            "stop-loss-report",
            {
                "trading_state": risk.get_state().state.value,
                "trigger_event_ids": [item["event"]["event_id"] for item in self.events],
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
