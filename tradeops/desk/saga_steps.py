"""A saga run's ledger entries as steps, each paired with its undo, and the run's status.

The append-only ledger (``tradeops.saga.ledger``) holds, per step instance (idempotency key),
its action entries (``started``, then ``succeeded`` / ``failed``, or ``refused``) and its undo
entries (``undone``, ``nothing_to_undo``, ``undo_failed``, ``unknown``, ``waiting``,
``temporary``); the saga tables (``tradeops.saga.store``) add the run's status (who closed it
and why) and each step's canonical parameters and state. A step's outcome is its latest action
entry that is not a refusal (a refused retry did not act); its undo is its latest undo entry.

Status of a run, first match wins:

- ``needs_human``: the saga was handed to a human, or an undo failed or its outcome is unknown;
- ``compensated``: the saga is closed compensated, or every step that may have acted is undone
  (or had nothing to undo);
- ``in_progress``: a step has no outcome yet, an undo waits (a transfer settling) or hit a
  temporary error, or the saga is being compensated;
- ``failed``: a step failed and nothing has undone the run yet;
- ``ok``: every step that ran succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tradeops.saga import store
from tradeops.saga.keys import undo_key
from tradeops.saga.ledger import LedgerEntry

SETTLED_UNDOS = frozenset({"undone", "nothing_to_undo"})
HUMAN_UNDOS = frozenset({"undo_failed", "unknown"})
PENDING_UNDOS = frozenset({"waiting", "temporary"})
AMOUNT_PARAMS = ("amount", "price")
AMOUNT_RESULTS = ("filled", "average_price", "fee")


@dataclass(frozen=True)
class Step:
    """One step instance: its action entries and undo entries, oldest first."""

    key: str
    actions: tuple[LedgerEntry, ...]
    undos: tuple[LedgerEntry, ...]

    @property
    def first(self) -> LedgerEntry:
        return (self.actions or self.undos)[0]

    @property
    def action(self) -> LedgerEntry | None:
        acted = [entry for entry in self.actions if entry.outcome != "refused"]
        return (acted or list(self.actions) or [None])[-1]

    @property
    def outcome(self) -> str | None:
        return None if self.action is None else self.action.outcome

    @property
    def undo(self) -> LedgerEntry | None:
        return self.undos[-1] if self.undos else None

    @property
    def undo_outcome(self) -> str | None:
        return None if self.undo is None else self.undo.outcome

    def params(self, row: store.StepRow | None) -> dict[str, Any]:
        """The step's parameters: the saga table's canonical copy, else what ``started`` logged."""
        if row is not None:
            return dict(row.params)
        started = [entry for entry in self.actions if entry.outcome == "started"]
        return dict(started[-1].detail.get("params") or {}) if started else {}


def steps_of(entries: list[LedgerEntry]) -> list[Step]:
    """The run's steps in the order they first appear (saga-level entries left out)."""
    actions: dict[str, list[LedgerEntry]] = {}
    undos: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        if entry.kind in ("action", "undo"):
            actions.setdefault(entry.idempotency_key, [])
            undos.setdefault(entry.idempotency_key, [])
            (actions if entry.kind == "action" else undos)[entry.idempotency_key].append(entry)
    return [Step(key, tuple(actions[key]), tuple(undos[key])) for key in actions]


def run_status(steps: list[Step], saga: store.SagaRun | None) -> str:
    """The run's status (see the module docstring)."""
    closed = None if saga is None else saga.status
    undos = {step.undo_outcome for step in steps}
    if closed is store.SagaStatus.NEEDS_HUMAN or undos & HUMAN_UNDOS:
        return "needs_human"
    may_have_acted = [step for step in steps if step.outcome not in (None, "refused")]
    all_undone = bool(may_have_acted) and all(step.undo_outcome in SETTLED_UNDOS for step in may_have_acted)
    if closed is store.SagaStatus.COMPENSATED or all_undone:
        return "compensated"
    no_outcome = any(step.outcome == "started" and step.undo is None for step in steps)
    if no_outcome or undos & PENDING_UNDOS or closed is store.SagaStatus.COMPENSATING:
        return "in_progress"
    if any(step.outcome == "failed" for step in steps):
        return "failed"
    return "ok"


def describe(params: dict[str, Any]) -> str:
    """What a step does, in words: an order, a transfer, or its amount."""
    if {"side", "amount", "symbol"} <= set(params):
        return f"{params['side']} {params['amount']} {params['symbol']}"
    if {"amount", "asset", "to_venue"} <= set(params):
        network = f" over {params['network']}" if params.get("network") else ""
        return f"transfer of {params['amount']} {params['asset']} to {params['to_venue']}{network}"
    if "amount" in params:
        return f"amount {params['amount']}"
    return "no amount recorded"


def amounts(step: Step, params: dict[str, Any]) -> dict[str, str]:
    """The step's amounts: those it was asked for, and those the venue answered with."""
    found = {name: str(params[name]) for name in AMOUNT_PARAMS if params.get(name) is not None}
    if step.action is not None and step.action.outcome == "succeeded":
        result = step.action.detail.get("result") or {}
        found |= {name: str(result[name]) for name in AMOUNT_RESULTS if result.get(name) is not None}
    return found


def undo_line(step: Step) -> dict[str, Any] | None:
    """The step's latest undo; ``verified`` is what the venue confirmed, when it was settled."""
    undo = step.undo
    if undo is None:
        return None
    settled = undo.outcome in SETTLED_UNDOS
    return {
        "outcome": undo.outcome,
        "at": undo.at.isoformat(),
        "idempotency_key": undo_key(step.key),
        "verified": str(undo.detail.get("reason")) if settled and undo.detail.get("reason") else None,
        "detail": undo.detail,
    }


def needs_human(steps: list[Step], rows: dict[str, store.StepRow], saga: store.SagaRun | None) -> list[str]:
    """What a person must still do, one line per step, each naming the step, venue and amount."""
    lines = []
    for step in steps:
        line = _human_line(step, rows.get(step.key), saga)
        if line:
            lines.append(line)
    if not lines and saga is not None and saga.status is store.SagaStatus.NEEDS_HUMAN:
        lines.append(f"the saga was handed to a human by {saga.closed_by}: {saga.close_reason}")
    return lines


def _human_line(step: Step, row: store.StepRow | None, saga: store.SagaRun | None) -> str | None:
    params = step.params(row)
    label = step.first.step if step.first.map_index < 0 else f"{step.first.step}[{step.first.map_index}]"
    venue = params.get("venue")
    where = f" on {venue}" if venue else ""
    what = f"{label} ({describe(params)}{where})"
    undo = step.undo
    if undo is not None and undo.outcome in HUMAN_UNDOS:
        state = "FAILED" if undo.outcome == "undo_failed" else "has an UNKNOWN outcome"
        why = undo.detail.get("message") or undo.detail.get("reason") or ""
        error = f"{undo.detail['error']}: " if undo.detail.get("error") else ""
        return f"{what}: its undo {state} ({error}{why}); check{where or ' the venue'} and take it back by hand"
    handed_over = saga is not None and saga.status is store.SagaStatus.NEEDS_HUMAN
    unsettled = row is not None and row.status in store.UNSETTLED_STEPS and step.undo_outcome not in SETTLED_UNDOS
    if handed_over and unsettled and row is not None:
        return (
            f"{what}: step {row.status.value}, not undone; check{where or ' the venue'} what it did "
            "and take it back by hand"
        )
    return None
