"""tradeops: domain logic for the trading-operations DAG suite.

This package never imports Airflow; the Airflow adapters live in the top-level
``operators`` and ``sensors`` packages and the DAG files in ``dags/`` only wire tasks.
"""

__version__ = "0.1.0"
