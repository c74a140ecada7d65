"""The tradeops Airflow plugin: the trading desk inside Airflow's own UI.

Three React views from one ES-module bundle (``ui/``, built by ``make ui``, served by
``operators/desk_static.py`` under ``/tradeops-ui``): the Desk page in the nav, a Saga tab on every
DAG run and a trading-state widget on the home dashboard. They read the desk's JSON API
(``operators/desk_api.py`` under ``/tradeops``). Both apps require an Airflow login. Paths are
relative: the UI resolves them against its <base href>, so a sub-path deployment works.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from operators import desk_static
from operators.desk_api import create_app

UI_PREFIX = "/tradeops-ui"
BUNDLE_URL = f"{UI_PREFIX.lstrip('/')}/{desk_static.BUNDLE_FILE}"


class TradeopsPlugin(AirflowPlugin):
    name = "tradeops"
    fastapi_apps = [
        {"app": create_app(), "url_prefix": "/tradeops", "name": "tradeops desk"},
        {"app": desk_static.create_app(), "url_prefix": UI_PREFIX, "name": "tradeops desk ui"},
    ]
    # Airflow loads a react_app only with a url_route (also for the dag_run and dashboard ones);
    # the bundle registers each component on globalThis under its name.
    react_apps = [
        {
            "name": "Desk",
            "bundle_url": BUNDLE_URL,
            "destination": "nav",
            "url_route": "tradeops-desk",
            "icon": f"{UI_PREFIX.lstrip('/')}/tradeops-desk.svg",
            "icon_dark_mode": f"{UI_PREFIX.lstrip('/')}/tradeops-desk-dark.svg",
            "category": None,
            "nav_top_level": True,
        },
        {"name": "Saga", "bundle_url": BUNDLE_URL, "destination": "dag_run", "url_route": "tradeops-saga"},
        {"name": "Trading state", "bundle_url": BUNDLE_URL, "destination": "dashboard", "url_route": "tradeops-state"},
    ]
