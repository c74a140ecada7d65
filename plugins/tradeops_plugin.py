"""The tradeops Airflow plugin: a read-only trading-desk view in the Airflow UI."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from operators.desk_api import create_app


class TradeopsPlugin(AirflowPlugin):
    name = "tradeops"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/tradeops", "name": "tradeops desk"}]
    external_views = [
        {"name": "Trading desk", "href": "/tradeops/", "destination": "nav", "url_route": "tradeops-desk"}
    ]
