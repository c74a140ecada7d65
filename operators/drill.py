"""Saga fire drills on the paper venue: arm a scheduled fault so a chosen step fails."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseOperator, Context

from tradeops.config import settings
from tradeops.errors import ConfigError

DRILL_ERRORS = ("insufficient_funds", "invalid_order", "temporary", "operational")
UNDO_FILLS = ("normal", "expire", "partial", "reject")


class ArmDrillOperator(BaseOperator):
    """Clear old faults on the drill's venues and arm one fault on the venue call of ``fail_at``.

    Only paper venues can be armed: the operator refuses to run when any drill venue is live.

    :param step_calls: step task id -> (venue, venue method) that step calls
    :param fail_at: the step to fail, or "none" (templated)
    :param error: the error to raise (templated), one of ``DRILL_ERRORS``
    :param phase: "before" the call acts, or "after" it acted (a timeout after the side effect)
    :param undo_fill: how the venue ends the orders that trade back the spot buy during
        compensation: "normal" (they fill), "expire", "partial" or "reject" (templated)
    :param undo_fill_times: how many of those reverse orders end that way (templated)
    :param undo_fill_venue: the venue whose reverse orders are scripted
    """

    template_fields = ("fail_at", "error", "phase", "undo_fill", "undo_fill_times")

    def __init__(
        self,
        *,
        step_calls: Mapping[str, tuple[str, str]],
        fail_at: str,
        error: str,
        phase: str = "before",
        undo_fill: str = "normal",
        undo_fill_times: Any = 1,
        undo_fill_venue: str = "binance",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.step_calls = dict(step_calls)
        self.fail_at = fail_at
        self.error = error
        self.phase = phase
        self.undo_fill = undo_fill
        self.undo_fill_times = undo_fill_times
        self.undo_fill_venue = undo_fill_venue

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.venues.paper import PaperVenue

        loaded = settings()
        venues = sorted({venue for venue, _method in self.step_calls.values()})
        live = [name for name in venues if loaded.venue(name).kind != "paper"]
        if live:
            raise ConfigError(f"venues.{live[0]}.kind", "saga drills run on paper venues only")
        if self.fail_at != "none" and self.fail_at not in self.step_calls:
            raise ValueError(f"fail_at must be 'none' or one of {sorted(self.step_calls)}, got {self.fail_at!r}")
        if self.error not in DRILL_ERRORS:
            raise ValueError(f"error must be one of {DRILL_ERRORS}, got {self.error!r}")
        if self.undo_fill not in UNDO_FILLS:
            raise ValueError(f"undo_fill must be one of {UNDO_FILLS}, got {self.undo_fill!r}")
        for name in venues:
            PaperVenue(name, loaded).clear_faults()
        if self.undo_fill != "normal":
            # The step's own fill goes through; the next ones (the undo's reverse orders) do not.
            times = int(self.undo_fill_times)
            PaperVenue(self.undo_fill_venue, loaded).inject_fault("fill", self.undo_fill, times=times, skip=1)
            self.log.warning(
                "Drill armed: the next %d reverse order(s) on %s end '%s'", times, self.undo_fill_venue, self.undo_fill
            )
        if self.fail_at == "none":
            self.log.info("Drill armed with no fault: the saga should succeed")
            return {"fail_at": "none"}
        venue, method = self.step_calls[self.fail_at]
        PaperVenue(venue, loaded).inject_fault(method, self.error, times=1, phase=self.phase)
        self.log.warning(
            "Drill armed: %s on %s.%s (%s) when step %s runs",
            self.error,
            venue,
            method,
            self.phase,
            self.fail_at,
        )
        return {
            "fail_at": self.fail_at,
            "venue": venue,
            "method": method,
            "error": self.error,
            "phase": self.phase,
        }
