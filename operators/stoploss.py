"""The emergency stop: halt trading, flatten every venue in parallel until flat, report.

Order of work in ``EmergencyStopOperator``: HALTED first (before the events are claimed, before
any other I/O that can fail), then claim the events, then flatten (``tradeops.stoploss``); the
claimed events are recorded (XCom, for the report task) while the venue threads flatten.

Redelivered events: when every event of the run turns out already handled by an earlier run,
the HALTED this run just set is undone, compare-and-set: the state that was there before is put
back only while the current state is still exactly our HALTED (anyone's later change wins), and
it is logged. The earlier run already stopped the desk for these events, and a human who has
resumed trading since must not be overruled by a Kafka redelivery; trading is never resumed
automatically in any other case.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context, TriggerRule
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from operators.events import adopt_stranded, claim_new_events, raw_event_reasons
from tradeops import risk
from tradeops.config import STOP_LOSS_MAX_DURATION_LIMIT_SECONDS, settings
from tradeops.db import utcnow
from tradeops.events import to_json
from tradeops.saga.keys import idempotency_key
from tradeops.stoploss import build_report, flatten_desk
from tradeops.stoploss.desk import Snapshot, not_measured
from tradeops.stoploss.report_store import store_report
from tradeops.venues.factory import open_venue

REPORT_XCOM_KEY = "flatten_reports"
EVENTS_XCOM_KEY = "events"
REDELIVERED_XCOM_KEY = "only_redelivered"
# The flatten task may run for stop_loss.max_duration_seconds (capped at the limit) plus one round.
STOP_TASK_TIMEOUT = timedelta(seconds=STOP_LOSS_MAX_DURATION_LIMIT_SECONDS) + timedelta(minutes=5)
# The run: the flatten (retries continue the same deadline) plus the report.
STOP_RUN_TIMEOUT = STOP_TASK_TIMEOUT + timedelta(minutes=10)


def halt_trading(run_id: str, reasons: list[str], by: str) -> tuple[risk.StateRecord, risk.StateRecord]:
    """Set HALTED; (the state it replaced, the HALTED record written)."""
    before = risk.get_state()
    why = "; ".join(reasons) or "manual"
    halted = risk.set_state(risk.TradingState.HALTED, reason=f"emergency stop ({run_id}): {why}"[:2000], changed_by=by)
    return before, halted


def undo_halt_for_redelivery(before: risk.StateRecord, halted: risk.StateRecord, run_id: str, log: Any) -> None:
    """Every event was handled earlier: put ``before`` back if our HALTED is still the state."""
    if before.state is risk.TradingState.HALTED:
        log.warning("Only redelivered events; trading stays HALTED (it was HALTED before this run)")
        return
    reason = f"redelivered events only ({run_id}): back to the state before ({before.reason})"[:2000]
    if risk.restore_state(halted, before, reason=reason, changed_by=halted.changed_by):
        log.critical("Only redelivered events (%s): trading state put back to %s", run_id, before.state.value)
    else:
        log.critical("Only redelivered events, but the trading state changed since our HALTED: left as it is")


def _deadline_start(context: Context) -> Any:
    """The run's start: every try of the flatten task shares one ``max_duration`` budget."""
    start = getattr(context.get("dag_run"), "start_date", None)
    return start or utcnow()


class EmergencyStopOperator(BaseOperator):
    """Set HALTED, claim the events, then cancel every order and close every leg on every venue in
    parallel, re-checking until flat or ``stop_loss.max_duration_seconds``. One task, so the kill
    switch pays for one task start. Fails without retry when the loop ended not flat; retries
    (flattening is idempotent, the deadline is the run's) only after an unexpected error."""

    def __init__(self, *, event_types: list[str], **kwargs: Any) -> None:
        kwargs.setdefault("retries", 3)
        kwargs.setdefault("retry_delay", timedelta(seconds=1))
        kwargs.setdefault("execution_timeout", STOP_TASK_TIMEOUT)
        super().__init__(**kwargs)
        self.event_types = event_types

    def execute(self, context: Context) -> list[dict[str, Any]]:
        ti = context["ti"]
        before, halted = halt_trading(context["run_id"], raw_event_reasons(context), by=f"airflow:{self.dag_id}")
        self.log.critical("Trading HALTED (was %s)", before.state.value)
        try:
            events = claim_new_events(
                context, consumer=self.dag_id, event_types=self.event_types, log=self.log, adopt=False
            )
        except AirflowSkipException:
            undo_halt_for_redelivery(before, halted, context["run_id"], self.log)
            ti.xcom_push(key=REDELIVERED_XCOM_KEY, value=True)
            raise
        self.log.critical("Emergency stop for %d event(s)", len(events))

        def record_events() -> None:  # runs while the venues are being flattened (an API round trip)
            ti.xcom_push(key=EVENTS_XCOM_KEY, value=events)

        reports = self._flatten(context, [item["event"]["event_id"] for item in events], record_events)
        flat_at = datetime.now(UTC)
        ti.xcom_push(key=REPORT_XCOM_KEY, value=reports)
        not_flat = [r for r in reports if not r["flat"]]
        if not_flat:
            raise AirflowFailException("NOT FLAT: " + "; ".join(_why_not_flat(r) for r in not_flat))
        # Events Airflow attached to no run (a burst) and stored before the book was found flat were
        # handled by this stop: claimed here, not left for the sweeper (adopting before flattening
        # would delay the exit).
        adopted = adopt_stranded(context, consumer=self.dag_id, stored_before=flat_at, log=self.log)
        if adopted:
            ti.xcom_push(key=EVENTS_XCOM_KEY, value=events + adopted)
        return reports

    def _flatten(self, context: Context, trigger_ids: list[str], on_started: Callable[[], None]) -> Snapshot:
        from operators import credentials

        credentials.install()
        loaded = settings()
        ti = context["ti"]
        prefix = idempotency_key(ti.dag_id, ti.run_id, ti.task_id, ti.map_index) + f"/try{ti.try_number}"
        deadline = _deadline_start(context) + timedelta(seconds=loaded.stop_loss.max_duration_seconds)

        def open_one(name: str) -> Any:
            return open_venue(name, settings=loaded, circuit_breaker=False)

        def first_report(snapshot: Snapshot) -> None:
            _publish(snapshot, "first", trigger_ids, context, self.dag_id, self.log)

        self.log.warning("Flattening %s until flat or %s", sorted(loaded.venues), deadline.isoformat())
        return flatten_desk(
            sorted(loaded.venues),
            open_one,
            loaded,
            key_prefix=prefix,
            deadline=deadline,
            on_first_report=first_report,
            on_started=on_started,
        )


def _why_not_flat(report: dict[str, Any]) -> str:
    detail = [report["status"]]
    if report["pending_open"]:
        detail.append(f"pending the open: {', '.join(report['pending_open'])}")
    if report["unsellable"]:
        detail.append(f"no market to sell: {', '.join(report['unsellable'])}")
    if report["gave_up"]:
        detail.append(f"still failing after {report['rounds']} rounds")
    if report["errors"]:
        detail.append(f"last error: {report['errors'][-1]}")
    return f"{report['venue']} ({'; '.join(detail)})"


def _publish(snapshot: Snapshot, stage: str, trigger_ids: list[str], context: Context, source: str, log: Any) -> Any:
    report = build_report(
        snapshot,
        stage=stage,  # type: ignore[arg-type]
        trading_state=risk.get_state().state.value,
        trigger_event_ids=trigger_ids,
        run_id=context["run_id"],
        source=source,
    )
    log.critical("Emergency stop report (%s): %s", stage, to_json(report))
    try:  # kept for the desk before it goes out; a database that fails must not hold the report back
        store_report(report)
    except Exception:
        log.exception("Emergency stop report (%s) %s NOT stored in the project database", stage, report.event_id)
    from tradeops.kafka.producer import publish

    delivery = publish(report)
    log.info("Report (%s) published to %s[%d]@%d", stage, delivery.topic, delivery.partition, delivery.offset)
    return report


class StopLossReportOperator(BaseOperator):
    """Publish the final state of every venue to ``risk-alerts`` and log it; fail unless all flat."""

    def __init__(self, *, stop_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", TriggerRule.ALL_DONE)
        super().__init__(**kwargs)
        self.stop_task_id = stop_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        events = ti.xcom_pull(task_ids=self.stop_task_id, key=EVENTS_XCOM_KEY)
        if not events and ti.xcom_pull(task_ids=self.stop_task_id, key=REDELIVERED_XCOM_KEY):
            raise AirflowSkipException("only events an earlier run handled: nothing was stopped")
        if not events:
            raise AirflowFailException(
                f"{self.stop_task_id} ended before its events were claimed: trading is HALTED, nothing was "
                "flattened; read its log, then clear it"
            )
        reports = ti.xcom_pull(task_ids=self.stop_task_id, key=REPORT_XCOM_KEY) or []
        by_venue = {r["venue"]: r for r in reports}
        snapshot = [by_venue.get(v) or not_measured(v, "flatten never ran") for v in sorted(settings().venues)]
        trigger_ids = [item["event"]["event_id"] for item in events]
        report = _publish(snapshot, "final", trigger_ids, context, self.dag_id, self.log)
        if not report.all_flat:
            raise AirflowFailException(f"NOT FLAT: {[v.venue for v in report.venues if not v.flat]}")
        return json.loads(to_json(report))
