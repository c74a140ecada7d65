"""Wait for a venue-to-venue transfer to settle at its destination."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseSensorOperator, Context

from tradeops.errors import TradeopsError
from tradeops.model import TransferStatus
from tradeops.venues.factory import open_venue


class TransferFailedError(TradeopsError):
    """The venue reports the transfer as failed."""


class TransferSettledSensor(BaseSensorOperator):
    """Succeeds once ``transfer_id`` sent from ``venue`` has settled; fails at once if it failed.

    Defaults to ``mode="reschedule"`` so a long on-chain settlement holds no worker slot.
    """

    template_fields = ("venue", "transfer_id")

    def __init__(self, *, venue: str, transfer_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 30)
        kwargs.setdefault("timeout", 6 * 3600)
        super().__init__(**kwargs)
        self.venue = venue
        self.transfer_id = transfer_id

    def poke(self, context: Context) -> bool:
        from operators import credentials

        credentials.install()
        transfer = open_venue(self.venue).get_transfer(self.transfer_id)
        if transfer is None:
            raise TransferFailedError(f"venue '{self.venue}' has no transfer '{self.transfer_id}'")
        if transfer.status is TransferStatus.FAILED:
            raise TransferFailedError(f"transfer '{self.transfer_id}' from '{self.venue}' failed")
        self.log.info(
            "Transfer %s from %s: %s (settles at %s)",
            self.transfer_id,
            self.venue,
            transfer.status.value,
            transfer.settles_at,
        )
        return transfer.status is TransferStatus.SETTLED
