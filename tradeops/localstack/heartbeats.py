"""Job heartbeats read straight from Airflow's metadata database (table ``job``).

A component can run and still be stuck; its job row's ``latest_heartbeat`` says whether it works.
Settings are looked up the way Airflow does for the common cases, without importing it: the
``AIRFLOW__SECTION__KEY`` environment variable, else ``$AIRFLOW_HOME/airflow.cfg``, else Airflow's
default (``_cmd`` / ``_secret`` variants are not followed: then the heartbeat is reported unreadable).
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

# Component name -> Airflow's job_type for it.
JOB_TYPES = {"scheduler": "SchedulerJob", "triggerer": "TriggererJob", "dag-processor": "DagProcessorJob"}
# Component name -> (section, key) of the health threshold Airflow itself applies, and its default.
_THRESHOLDS = {
    "scheduler": ("scheduler", "scheduler_health_check_threshold"),
    "triggerer": ("triggerer", "triggerer_health_check_threshold"),
    "dag-processor": ("dag_processor", "health_check_threshold"),
}
DEFAULT_THRESHOLD_SECONDS = 30.0
_QUERY = text("SELECT id, state, latest_heartbeat FROM job WHERE job_type = :job_type ORDER BY id DESC LIMIT 1")


class HeartbeatUnavailable(Exception):
    """The metadata database cannot be read; the message says why (shown, never raised past status)."""


@dataclass(frozen=True, kw_only=True)
class Heartbeat:
    """The newest job row of one component type (a restarted component writes a new row)."""

    job_id: int
    state: str | None
    latest: datetime | None
    threshold_seconds: float


def airflow_setting(home: Path, section: str, key: str) -> str | None:
    """``AIRFLOW__SECTION__KEY``, else ``[section] key`` of ``home/airflow.cfg``, else None."""
    env = os.environ.get(f"AIRFLOW__{section.upper()}__{key.upper()}")
    if env is not None:
        return env
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(home / "airflow.cfg")
    return parser.get(section, key, fallback=None)


def metadata_url(home: Path) -> str:
    return airflow_setting(home, "database", "sql_alchemy_conn") or f"sqlite:///{home / 'airflow.db'}"


def _threshold(home: Path, component: str) -> float:
    section, key = _THRESHOLDS[component]
    value = airflow_setting(home, section, key)
    try:
        return float(value) if value else DEFAULT_THRESHOLD_SECONDS
    except ValueError:
        return DEFAULT_THRESHOLD_SECONDS


def _as_utc(value: datetime | str | None) -> datetime | None:
    """Airflow stores UTC; SQLite hands back naive text, PostgreSQL an aware datetime."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_heartbeats(home: Path) -> dict[str, Heartbeat | None]:
    """The newest job of each component type (None: no job yet). Raises HeartbeatUnavailable."""
    url = make_url(metadata_url(home))
    connect_args: dict[str, object] = {}
    if url.get_backend_name() == "sqlite":
        if not url.database or not Path(url.database).exists():
            raise HeartbeatUnavailable(f"no metadata database at {url.database}")
        url = url.set(database=f"file:{url.database}", query={**url.query, "mode": "ro", "uri": "true"})
        connect_args = {"timeout": 5}
    elif url.get_backend_name() == "postgresql":
        connect_args = {"connect_timeout": 5}
    try:
        engine = create_engine(url, connect_args=connect_args)
    except (SQLAlchemyError, ImportError) as exc:
        raise HeartbeatUnavailable(f"cannot open the metadata database: {exc}") from None
    try:
        with engine.connect() as connection:
            rows = {name: connection.execute(_QUERY, {"job_type": job}).first() for name, job in JOB_TYPES.items()}
    except SQLAlchemyError as exc:
        raise HeartbeatUnavailable(f"cannot read the job table: {type(exc).__name__}: {exc.args[0]}") from None
    finally:
        engine.dispose()
    return {
        name: None
        if row is None
        else Heartbeat(
            job_id=int(row.id),
            state=row.state,
            latest=_as_utc(row.latest_heartbeat),
            threshold_seconds=_threshold(home, name),
        )
        for name, row in rows.items()
    }
