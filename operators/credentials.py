"""Live-venue credentials from Airflow connections (secrets backends included)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tradeops.errors import AuthenticationError
from tradeops.venues.factory import set_credentials_provider


def _connection(conn_id: str) -> Any:
    """The Airflow connection ``conn_id``; a missing one is a tradeops AuthenticationError."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise AuthenticationError(f"no credentials: Airflow connection '{conn_id}' is not defined") from None


def connection_credentials(conn_id: str) -> Mapping[str, str]:
    """ccxt credentials from connection ``conn_id``: login = API key, password = secret,
    extra ``passphrase`` for venues that need one."""
    conn = _connection(conn_id)
    credentials = {"apiKey": conn.login or "", "secret": conn.password or ""}
    passphrase = conn.extra_dejson.get("passphrase")
    if passphrase:
        credentials["password"] = str(passphrase)
    return credentials


def install() -> None:
    """Make ``tradeops`` look up live-venue credentials in Airflow connections."""
    set_credentials_provider(connection_credentials)


def connection_token(conn_id: str) -> str:
    """An API token kept as the password of Airflow connection ``conn_id`` (e.g. the Wise token)."""
    return _connection(conn_id).password or ""
