"""Every table of the project database, registered on ``tradeops.db.metadata``.

The one place that imports every table module: the Alembic migrations compare against this
metadata, and tests build their schema through the migrations, never through ``create_all``.
``tradeops.db`` (engine, types, metadata) imports none of the table modules.
"""

from __future__ import annotations

from sqlalchemy import MetaData

import tradeops.agents.agent_tables
import tradeops.event_inbox
import tradeops.kafka.watch_store
import tradeops.leases
import tradeops.models.model_tables
import tradeops.risk
import tradeops.saga.breaker
import tradeops.saga.ledger
import tradeops.saga.store
import tradeops.stoploss.report_store
import tradeops.venues.paper_tables
import tradeops.venues.withdrawal_ledger  # noqa: F401
from tradeops.db import metadata


def registered_metadata() -> MetaData:
    """The metadata holding every project table (the migrations' target)."""
    return metadata
