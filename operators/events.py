"""Event-triggered runs: collect the events that started a run and claim each one exactly once."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
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


# How far back a run looks for events of its assets that Airflow attached to no run.
ADOPT_LOOKBACK = timedelta(minutes=15)


def stranded_payloads(context: Context, consumer: str, stored_before: datetime | None = None) -> list[Any]:
    """Fresh events of the task's inlet assets that no run of ``consumer`` claimed yet.

    Airflow attaches to an asset-triggered run only the asset events stored up to the moment its
    queue row was created; one stored between that and the row's deletion (a burst: several poll
    batches within a second) is attached to no run until the asset's next event. A run reads its
    assets' recent events itself and adopts those, so a burst needs no sweeper; the claims keep
    every event handled once however many runs look. Stale events are left to the sweeper, which
    records them.
    """
    from tradeops.config import settings
    from tradeops.event_inbox import unhandled
    from tradeops.kafka.reading import staleness

    task = context.get("task")
    inlets = list(getattr(task, "inlets", None) or [])
    if not inlets:
        return []
    now = datetime.now(UTC)
    found: dict[str, Any] = {}
    for asset in inlets:
        for asset_event in context["inlet_events"][asset].after((now - ADOPT_LOOKBACK).isoformat()).limit(5000):
            if stored_before is not None and asset_event.timestamp > stored_before:
                continue
            for item in batch_events((asset_event.extra or {}).get("payload") or {}):
                event = item.get("event") if isinstance(item, dict) else None
                if isinstance(event, dict) and event.get("event_id"):
                    found.setdefault(str(event["event_id"]), item)
    missing = unhandled(consumer, found)
    fresh = []
    for event_id, item in found.items():
        event = item["event"]
        try:
            occurred_at = datetime.fromisoformat(str(event["occurred_at"]))
            too_old = staleness(str(event["event_type"]), occurred_at, settings(), now)
        except (KeyError, ValueError):
            continue
        if event_id in missing and too_old is None:
            fresh.append({**item, "reason": f"adopted (attached to no run): {item.get('reason', '')}"})
    return fresh


def claim_new_events(
    context: Context,
    *,
    consumer: str,
    event_types: Iterable[str] | None = None,
    log: Any = None,
    adopt: bool = True,
) -> list[dict[str, Any]]:
    """Validate the run's events and claim them for ``consumer``; the new ones, oldest first.

    With ``adopt`` (and the task's inlets set to the DAG's assets), events of those assets that
    Airflow attached to no run are handled here too (``stranded_payloads``). Events another run
    already handled are logged and left out (a retry of this run keeps the events this run
    claimed); raises ``AirflowSkipException`` when nothing new is left.
    """
    allowed = sorted(event_types) if event_types else None
    payloads = _asset_event_payloads(context) + _conf_payloads(context)
    if adopt:
        adopted = stranded_payloads(context, consumer)
        given = {(p.get("event") or {}).get("event_id") for p in payloads if isinstance(p, dict)}
        adopted = [p for p in adopted if p["event"]["event_id"] not in given]
        if adopted and log is not None:
            log.warning("Adopting %d event(s) Airflow attached to no run", len(adopted))
        payloads += adopted
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


def adopt_stranded(context: Context, *, consumer: str, stored_before: datetime, log: Any) -> list[dict[str, Any]]:
    """Claim for this run the events of its assets stored before ``stored_before`` that no run
    was given (see ``stranded_payloads``); the ones claimed."""
    adopted = stranded_payloads(context, consumer, stored_before)
    pairs = [(item["event"]["event_id"], item["event"]["event_type"]) for item in adopted]
    claims = {c.event_id for c in claim_events(consumer, pairs, context["run_id"]) if c.new}
    taken = [item for item in adopted if item["event"]["event_id"] in claims]
    if taken:
        log.warning("Adopted %d event(s) Airflow attached to no run: %s", len(taken), sorted(claims))
    return taken


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
