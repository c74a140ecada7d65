"""Lease tasks: wait for named leases without holding a worker slot, give them back at the end.

``AcquireLeasesSensor`` takes its leases in sorted name order and keeps the ones it already holds
while it waits for the next (every run takes them in the same order, so two runs never wait for
each other: no deadlock). It waits in ``reschedule`` mode, so no worker slot is held meanwhile,
and renews what it holds on every poke. A holder that dies loses its leases when they expire;
a sensor that times out gives back what it took. ``ReleaseLeasesOperator`` is the teardown that
gives back every lease of the run under a name prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator, BaseSensorOperator, Context
from airflow.sdk.exceptions import AirflowSensorTimeout

from tradeops import leases


def lease_holder(context: Context) -> str:
    """The holder name of this run: ``dag_id/run_id``."""
    return f"{context['dag'].dag_id}/{context['run_id']}"


class AcquireLeasesSensor(BaseSensorOperator):
    """Wait until this run holds every lease of ``lease_names(context)`` (taken in sorted order).

    :param prefix: every lease name starts with it (what a timeout gives back)
    :param ttl: how long a lease outlives its holder's last poke; longer than the run may take
    :param names: the leases (subclasses may derive them from the run instead)
    """

    template_fields: Sequence[str] = ("names",)

    def __init__(self, *, prefix: str, ttl: timedelta, names: Sequence[str] = (), **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 5)
        super().__init__(**kwargs)
        if not prefix:
            raise ValueError("a lease prefix is required")
        self.prefix = prefix
        self.ttl = ttl
        self.names = names

    def lease_names(self, context: Context) -> Sequence[str]:
        return list(self.names)

    def poke(self, context: Context) -> bool:
        holder = lease_holder(context)
        for name in sorted(set(self.lease_names(context))):
            if not name.startswith(self.prefix):
                raise ValueError(f"lease '{name}' does not start with '{self.prefix}'")
            if leases.acquire(name, holder, self.ttl) is None:
                other = leases.current(name)
                self.log.info("Lease %s is held by %s: waiting", name, other.holder if other else "?")
                return False
            self.log.info("Holding lease %s", name)
        return True

    def execute(self, context: Context) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout:
            released = leases.release_held(lease_holder(context), self.prefix)
            self.log.error("Gave up waiting for leases; released the ones taken: %s", released)
            raise


class ReleaseLeasesOperator(BaseOperator):
    """Give back every lease under ``prefix`` this run holds (a teardown: runs after failures too)."""

    def __init__(self, *, prefix: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not prefix:
            raise ValueError("a lease prefix is required")
        self.prefix = prefix

    def execute(self, context: Context) -> list[str]:
        released = leases.release_held(lease_holder(context), self.prefix)
        if released:
            self.log.info("Released leases %s", released)
        else:
            self.log.warning("No lease under %s was held by this run (expired?)", self.prefix)
        return released
