"""Thin Airflow sensors over ``tradeops``: conditions DAGs wait for."""
