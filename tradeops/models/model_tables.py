"""What the model registry, the routing table and serving record in the project database:

- ``model_alias_history``: every move of an MLflow alias (``champion``, ``challenger``,
  ``previous``): MLflow keeps only the current target, so who moved it, when and why lives here;
- ``model_routes``: one row per instrument (venue, symbol): the model version that serves it and
  its role (champion or canary). The trading code reads it through ``routing.route_for``;
- ``model_route_history``: every change of a route, with its author and reason;
- ``model_predictions``: every served prediction, a failed one included, with the features it
  used: the canary gates and the feature health check read these.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from tradeops.db import UTCDateTime, metadata

model_alias_history = Table(
    "model_alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(250), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("old_version", String(32), nullable=True),
    Column("new_version", String(32), nullable=True),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

model_routes = Table(
    "model_routes",
    metadata,
    Column("venue", String(64), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("model", String(250), nullable=False),
    Column("version", String(32), nullable=False),
    Column("role", String(16), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("reason", Text, nullable=False),
)

model_route_history = Table(
    "model_route_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("venue", String(64), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("model", String(250), nullable=False),
    Column("old_version", String(32), nullable=True),
    Column("new_version", String(32), nullable=True),  # null: the route was removed
    Column("old_role", String(16), nullable=True),
    Column("new_role", String(16), nullable=True),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

model_predictions = Table(
    "model_predictions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("bar_ts", UTCDateTime, nullable=True),
    Column("venue", String(64), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("model", String(250), nullable=False),
    Column("version", String(32), nullable=True),
    Column("role", String(16), nullable=True),
    # A probability and a duration, not amounts of money: floats.
    Column("probability", Float, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("error", Text, nullable=True),
    Column("features", Text, nullable=False),
    Index("ix_model_predictions_instrument_at", "venue", "symbol", "at"),
    Index("ix_model_predictions_version_at", "version", "at"),
)
