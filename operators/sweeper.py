"""Re-deliver asset events that no DAG run picked up.

Airflow creates an asset-triggered run from the asset's queue row and then deletes that row; an
asset event stored in between is not attached to the run and leaves no queue row behind, so it
waits for the NEXT event of that asset (seen in our burst benchmark: the last 8 of 500 events
stranded; the same family as Airflow issue #56050). For a kill switch that is unacceptable.
This sweeper reads each watched asset's recent events through the Task SDK (``inlet_events``),
finds those the target DAG has not claimed after a grace period, and triggers the DAG with them
in its conf; the DAG's claim step makes a double delivery harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, BaseOperator, Context

from tradeops.event_inbox import unhandled


def stranded(
    events: Sequence[tuple[dict[str, Any], datetime]], handled_missing: set[str], now: datetime, grace: timedelta
) -> list[dict[str, Any]]:
    """The payload events (oldest first, once each) not claimed and older than ``grace``."""
    chosen: dict[str, tuple[datetime, dict[str, Any]]] = {}
    for payload, stored_at in events:
        event = payload.get("event") or {}
        event_id = event.get("event_id")
        if event_id in handled_missing and stored_at <= now - grace and event_id not in chosen:
            chosen[event_id] = (stored_at, event)
    return [event for _, event in sorted(chosen.values(), key=lambda item: item[0])]


class SweepStrandedEventsOperator(BaseOperator):
    """Find events of ``assets`` that ``target_dag_id`` never claimed; return the run conf to replay
    them (``{"events": [...]}``) or skip when there are none."""

    def __init__(
        self,
        *,
        target_dag_id: str,
        assets: Sequence[Asset],
        grace: timedelta = timedelta(seconds=30),
        lookback: timedelta = timedelta(hours=6),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("inlets", list(assets))
        super().__init__(**kwargs)
        self.target_dag_id = target_dag_id
        self.assets = list(assets)
        self.grace = grace
        self.lookback = lookback

    def _recent(self, context: Context, now: datetime) -> list[tuple[dict[str, Any], datetime]]:
        recent = []
        for asset in self.assets:
            accessor = context["inlet_events"][asset].after((now - self.lookback).isoformat()).limit(5000)
            recent.extend(((e.extra or {}).get("payload") or {}, e.timestamp) for e in accessor)
        return recent

    def execute(self, context: Context) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        recent = self._recent(context, now)
        ids = [(p.get("event") or {}).get("event_id") for p, _ in recent]
        missing = unhandled(self.target_dag_id, [i for i in ids if i])
        events = stranded(recent, missing, now, self.grace)
        if not events:
            self.log.info("%s: all %d recent events were handled", self.target_dag_id, len(recent))
            return []
        self.log.warning(
            "%s: %d stranded event(s), replaying: %s", self.target_dag_id, len(events), [e["event_id"] for e in events]
        )
        return [{"events": events}]
