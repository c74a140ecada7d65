"""Event-triggered runs: collect the events that started a run and claim each one exactly once."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowSkipException

from tradeops.db import init_db
from tradeops.errors import EventValidationError
from tradeops.event_inbox import claim_events
from tradeops.events import parse_event, to_json


def _asset_event_payloads(context: Context) -> list[Any]:
    """Every payload in ``triggering_asset_events`` (all assets, all events, any order)."""
    triggering = context.get("triggering_asset_events") or {}
    payloads = []
    for events in triggering.values():
        for asset_event in events:
            extra = getattr(asset_event, "extra", None) or {}
            if "payload" in extra:
                payloads.append(extra["payload"])
    return payloads


def _conf_payloads(context: Context) -> list[Any]:
    """Events given by hand in the run's conf (``{"events": [...]}``): replays and drills."""
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    events = conf.get("events", [])
    if not isinstance(events, list):
        raise EventValidationError("conf.events", "must be a list of events")
    return [{"event": event, "reason": "given in the run's conf", "watcher": "manual"} for event in events]


class ClaimEventsOperator(BaseOperator):
    """Validate the run's events and claim them for ``consumer`` (default: the DAG id).

    Returns the events this run must handle (JSON), oldest first; events another run already
    handled are logged and left out. Skips the rest of the run when nothing new is left.
    """

    def __init__(self, *, consumer: str | None = None, event_types: Iterable[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.consumer = consumer
        self.event_types = sorted(event_types) if event_types else None

    def execute(self, context: Context) -> list[dict[str, Any]]:
        payloads = _asset_event_payloads(context) + _conf_payloads(context)
        events = []
        for payload in payloads:
            event = parse_event(payload["event"])
            if self.event_types and event.event_type not in self.event_types:
                raise EventValidationError(
                    "event_type", f"'{event.event_type}' is not handled here ({self.event_types})"
                )
            events.append((event, payload.get("reason", ""), payload.get("kafka")))
        events.sort(key=lambda item: item[0].occurred_at)
        init_db()
        consumer = self.consumer or self.dag_id
        run_id = context["run_id"]
        claims = {
            c.event_id: c for c in claim_events(consumer, [(e.event_id, e.event_type) for e, _, _ in events], run_id)
        }
        new = []
        for event, reason, position in events:
            claim = claims.get(event.event_id)
            if claim is None or not claim.new:
                if claim is not None and claim.run_id != run_id:
                    self.log.warning("Event %s was already handled by run %s: skipped", event.event_id, claim.run_id)
                continue
            claims.pop(event.event_id)  # a duplicate in this run is handled once
            self.log.info("Handling %s %s: %s (kafka %s)", event.event_type, event.event_id, reason, position)
            new.append({"event": json.loads(to_json(event)), "reason": reason, "kafka": position})
        if not new:
            raise AirflowSkipException(f"no new events among {len(payloads)} received: nothing to do")
        return new
