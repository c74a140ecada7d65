"""Alembic migrations of the project database (``tradeops.schema`` runs them)."""
