"""The emergency exit: take every venue to zero exposure and keep at it until it is there.

- ``exposure``: what a venue holds per base asset (spot, perp, net) and whether it is flat;
- ``exits``: the orders that close both legs (reduce-only perps, exit-only spot and share sales);
- ``loop``: one venue, round after round with backoff, until flat or ``stop_loss.max_duration``;
- ``desk``: every venue at once, and the first snapshot within seconds;
- ``report``: the ``stop_loss_report`` event (per venue, and the desk's net exposure).
"""

from tradeops.stoploss.desk import flatten_desk
from tradeops.stoploss.exits import close_order_id
from tradeops.stoploss.loop import FlattenReport, flatten_venue
from tradeops.stoploss.report import build_report

__all__ = ["FlattenReport", "build_report", "close_order_id", "flatten_desk", "flatten_venue"]
