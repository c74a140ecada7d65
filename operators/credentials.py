"""Live-venue credentials from Airflow connections (secrets backends included)."""

from __future__ import annotations

from collections.abc import Mapping

from tradeops.venues.factory import set_credentials_provider


def connection_credentials(conn_id: str) -> Mapping[str, str]:
    """ccxt credentials from connection ``conn_id``: login = API key, password = secret,
    extra ``passphrase`` for venues that need one."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
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
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id).password or ""
