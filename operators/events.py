"""Event-triggered runs: collect the events that started a run and claim each one exactly once."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowSkipException

from tradeops.errors import EventValidationError
from tradeops.event_inbox import claim_events
from tradeops.events import parse_event, to_json


def batch_events(payload: Any) -> list[Any]:
    """The events one asset event carries: a watcher's batch payload (``{"events": [...]}``) holds
    several; a payload of one event (``{"event": ...}``, stored before batching) holds one."""
    if isinstance(payload, dict) and isinstance(payload.get("events"), list):
        return list(payload["events"])
    return [payload]


def _asset_event_payloads(context: Context) -> list[Any]:
    """Every event in ``triggering_asset_events`` (all assets, all asset events, any order)."""
    triggering = context.get("triggering_asset_events") or {}
    payloads = []
    for events in triggering.values():
        for asset_event in events:
            extra = getattr(asset_event, "extra", None) or {}
            if "payload" in extra:
                payloads.extend(batch_events(extra["payload"]))
    return payloads


def _conf_payloads(context: Context) -> list[Any]:
    """Events given by hand in the run's conf (``{"events": [...]}``): replays and drills."""
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    events = conf.get("events", [])
    if not isinstance(events, list):
        raise EventValidationError("conf.events", "must be a list of events")
    return [{"event": event, "reason": "given in the run's conf", "watcher": "manual"} for event in events]


def raw_event_reasons(context: Context) -> list[str]:
    """The ``reason`` of each event the run carries, read without validating or claiming anything
    (and never raising): what the emergency stop writes into HALTED before its first I/O."""
    try:
        payloads = _asset_event_payloads(context) + _conf_payloads(context)
    except Exception:  # an unreadable conf must not delay HALTED; claiming reports it next
        return []
    reasons = []
    for payload in payloads:
        event = payload.get("event") if isinstance(payload, dict) else None
        reason = (event.get("reason") or event.get("event_type")) if isinstance(event, dict) else None
        reasons.append(str(reason or "unreadable event"))
    return reasons


def claim_new_events(
    context: Context, *, consumer: str, event_types: Iterable[str] | None = None, log: Any = None
) -> list[dict[str, Any]]:
    """Validate the run's events and claim them for ``consumer``; the new ones, oldest first.

    Events another run already handled are logged and left out (a retry of this run keeps the
    events this run claimed); raises ``AirflowSkipException``
    when nothing new is left (the rest of the run has nothing to do).
    """
    allowed = sorted(event_types) if event_types else None
    payloads = _asset_event_payloads(context) + _conf_payloads(context)
    events = []
    for payload in payloads:
        event = parse_event(payload["event"])
        if allowed and event.event_type not in allowed:
            raise EventValidationError("event_type", f"'{event.event_type}' is not handled here ({', '.join(allowed)})")
        events.append((event, payload.get("reason", ""), payload.get("kafka")))
    _refuse_conflicts([event for event, _, _ in events])
    events.sort(key=lambda item: item[0].occurred_at)
    run_id = context["run_id"]
    pairs = [(event.event_id, event.event_type) for event, _, _ in events]
    claims = {claim.event_id: claim for claim in claim_events(consumer, pairs, run_id)}
    new = []
    for event, reason, position in events:
        claim = claims.pop(event.event_id, None)  # a duplicate within this run is handled once
        if claim is None:
            continue
        if not claim.new and claim.run_id != run_id:  # claimed by this run's earlier try: still ours
            if log is not None:
                log.warning("Event %s was already handled by run %s: skipped", event.event_id, claim.run_id)
            continue
        if log is not None:
            log.info("Handling %s %s: %s (kafka %s)", event.event_type, event.event_id, reason, position)
        new.append({"event": json.loads(to_json(event)), "reason": reason, "kafka": position})
    if not new:
        raise AirflowSkipException(f"no new events among {len(payloads)} received: nothing to do")
    return new


def _refuse_conflicts(events: list[Any]) -> None:
    """An event id the watchers first saw with another body is a conflict: fail loudly, never
    act on either silently (the watcher dead-letters such copies; a conf replay can still bring one)."""
    from tradeops.kafka.reading import event_digest
    from tradeops.kafka.watch_store import recorded_digests

    recorded = recorded_digests(event.event_id for event in events)
    seen: dict[str, str] = {}
    for event in events:
        digest = event_digest(event)
        first = recorded.get(event.event_id) or seen.setdefault(event.event_id, digest)
        if first != digest:
            raise EventValidationError(
                "event_id", f"event_id {event.event_id} reused with a different body: refusing to act on it"
            )


class ClaimEventsOperator(BaseOperator):
    """Validate the run's events and claim them for ``consumer`` (default: the DAG id).

    Returns the events this run must handle (JSON); see ``claim_new_events``.
    """

    def __init__(self, *, consumer: str | None = None, event_types: Iterable[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.consumer = consumer
        self.event_types = sorted(event_types) if event_types else None

    def execute(self, context: Context) -> list[dict[str, Any]]:
        return claim_new_events(
            context, consumer=self.consumer or self.dag_id, event_types=self.event_types, log=self.log
        )
