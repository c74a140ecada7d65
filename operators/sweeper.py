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

from operators.events import batch_events
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
            for asset_event in accessor:
                payload = (asset_event.extra or {}).get("payload") or {}
                recent.extend((event, asset_event.timestamp) for event in batch_events(payload))
        return recent

    def execute(self, context: Context) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        recent = self._recent(context, now)
        ids = [(p.get("event") or {}).get("event_id") for p, _ in recent]
        missing = unhandled(self.target_dag_id, [i for i in ids if i])
        events = self._drop_stale(stranded(recent, missing, now, self.grace), recent, now)
        if not events:
            self.log.info("%s: all %d recent events were handled", self.target_dag_id, len(recent))
            return []
        self.log.warning(
            "%s: %d stranded event(s), replaying: %s", self.target_dag_id, len(events), [e["event_id"] for e in events]
        )
        return [{"events": events}]

    def _drop_stale(
        self, events: list[dict[str, Any]], recent: Sequence[tuple[dict[str, Any], datetime]], now: datetime
    ) -> list[dict[str, Any]]:
        """Leave out (and record as stale) events older than their type's maximum age: an old
        shock replayed now must not trade."""
        from tradeops.config import settings
        from tradeops.kafka.reading import staleness
        from tradeops.kafka.watch_store import StaleEvent, record_stale

        fresh, stale = [], []
        positions = {(p.get("event") or {}).get("event_id"): p.get("kafka") or {} for p, _ in recent}
        for event in events:
            try:
                occurred_at = datetime.fromisoformat(str(event["occurred_at"]))
                why = staleness(str(event["event_type"]), occurred_at, settings(), now)
            except (KeyError, ValueError):
                fresh.append(event)  # the DAG's claim step names what is wrong with it
                continue
            if why is None:
                fresh.append(event)
                continue
            position = positions.get(event["event_id"], {})
            stale.append(
                StaleEvent(
                    watcher=f"sweeper:{self.target_dag_id}",
                    event_id=str(event["event_id"]),
                    event_type=str(event["event_type"]),
                    occurred_at=occurred_at,
                    age_seconds=(now - occurred_at).total_seconds(),
                    topic=str(position.get("topic", "")),
                    partition=int(position.get("partition", -1)),
                    offset=int(position.get("offset", -1)),
                )
            )
            self.log.warning(
                "%s: stranded event %s is stale, not replayed: %s", self.target_dag_id, event["event_id"], why
            )
        if stale:
            record_stale(stale)
        return fresh
