"""Thin Airflow adapters over ``tradeops``: operators and helpers that DAG files wire together."""
