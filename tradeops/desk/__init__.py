"""The trading desk's data: one JSON-able body per section of the desk view in the Airflow UI.

Each module builds the body of one GET route of ``operators/desk_api.py``: ``state`` (trading
state and history), ``venues`` (every configured venue: account, exposure, PnL, breaker),
``stops`` (the emergency stop's stored reports), ``letters`` (dead letters), ``watchers`` (Kafka
watchers and the broker), ``models`` (routing, aliases, canary), ``agents`` (last decision and
PnL) and ``sagas`` (recent runs, and one run's steps paired with their undos). Amounts are
decimal strings, times ISO-8601 in UTC, free text is passed on as it is (the UI renders it as
text). Nothing here changes state, and nothing imports Airflow.
"""
