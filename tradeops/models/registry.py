"""The MLflow model registry as the desk uses it: versions with their gate results, and aliases
(``champion``, ``challenger``, ``previous``) whose every move is recorded.

MLflow keeps only where an alias points now, so each change also writes a row to
``model_alias_history`` (model, alias, old and new version, actor, reason, time). The alias is
read and moved inside a project-database transaction holding the history row, which commits only
after MLflow accepted the move: a refused move leaves no row, and on SQLite (whose transactions
take the write lock) two movers cannot both record the same old version. Setting an alias to the
version it already names, or removing an alias that does not exist, changes nothing and records
nothing.

The gate results are the version tags the training writes: ``gate.<name>`` = "pass"/"fail",
``gate.<name>.value``, ``gate.<name>.limit``, plus ``features`` (JSON list of input columns),
``calendar`` and ``passed``. mlflow is imported inside the functions (through ``tracking``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select

from tradeops.db import get_engine, transaction, utcnow
from tradeops.errors import TradeopsError
from tradeops.models import routing, tracking
from tradeops.models.model_tables import model_alias_history

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from tradeops.config import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"
_GATE_PREFIX = "gate."


class NoPreviousVersionError(TradeopsError):
    """A rollback was asked for, but no ``previous`` alias names a version to go back to: nothing
    was changed. Route by hand (``routing.route_all``) if a rollback is still needed."""


@dataclass(frozen=True, kw_only=True)
class RollbackResult:
    version: str  # the version that serves every instrument now (the former ``previous``)
    replaced: str | None  # the champion before the rollback
    rerouted: tuple[routing.Instrument, ...]  # instruments whose route changed


@dataclass(frozen=True, kw_only=True)
class GateResult:
    name: str
    passed: bool
    value: str | None
    limit: str | None


@dataclass(frozen=True, kw_only=True)
class ModelVersionInfo:
    version: str
    run_id: str | None
    created_at: datetime
    aliases: tuple[str, ...]
    gates: tuple[GateResult, ...]
    # None when the training recorded no verdict (a version registered by hand).
    passed: bool | None
    features: tuple[str, ...]
    calendar: str | None


@dataclass(frozen=True, kw_only=True)
class AliasChange:
    model: str
    alias: str
    old_version: str | None
    new_version: str | None
    actor: str
    reason: str
    at: datetime


def aliases(settings: Settings) -> dict[str, str]:
    """Every alias of the registered model and the version it names ({} before the first version)."""
    return _aliases(tracking.client(settings), settings.models.registered_model)


def alias_version(settings: Settings, alias: str) -> str | None:
    """The version ``alias`` names, or None when it is not set."""
    return aliases(settings).get(alias)


def set_alias(
    settings: Settings, alias: str, version: str, actor: str, reason: str, *, engine: Engine | None = None
) -> None:
    """Point ``alias`` at ``version`` and record the move (no-op when it already points there)."""
    _require_who_and_why(actor, reason)
    version = str(version)
    client, name = tracking.client(settings), settings.models.registered_model
    with transaction(engine or get_engine()) as conn:
        old = _aliases(client, name).get(alias)
        if old == version:
            return
        conn.execute(insert(model_alias_history).values(_change(name, alias, old, version, actor, reason)))
        client.set_registered_model_alias(name, alias, version)


def remove_alias(settings: Settings, alias: str, actor: str, reason: str, *, engine: Engine | None = None) -> None:
    """Remove ``alias`` and record it; an alias that is not set is left alone, with no record."""
    _require_who_and_why(actor, reason)
    client, name = tracking.client(settings), settings.models.registered_model
    with transaction(engine or get_engine()) as conn:
        old = _aliases(client, name).get(alias)
        if old is None:
            return
        conn.execute(insert(model_alias_history).values(_change(name, alias, old, None, actor, reason)))
        client.delete_registered_model_alias(name, alias)


def versions(settings: Settings) -> list[ModelVersionInfo]:
    """Every version of the registered model, newest first, with its aliases and gate results."""
    client, name = tracking.client(settings), settings.models.registered_model
    by_version: dict[str, list[str]] = {}
    for alias, version in _aliases(client, name).items():
        by_version.setdefault(version, []).append(alias)
    found = client.search_model_versions(f"name = '{name}'")
    infos = [_version_info(v, tuple(sorted(by_version.get(str(v.version), ())))) for v in found]
    return sorted(infos, key=lambda info: int(info.version), reverse=True)


def version_features(settings: Settings, version: str, model: str | None = None) -> tuple[str, ...]:
    """The input columns a version of ``model`` (default: the registered model) was trained on:
    its ``features`` tag, () when it has none."""
    name = model or settings.models.registered_model
    return _features(tracking.client(settings).get_model_version(name, str(version)).tags)


def alias_history(settings: Settings, limit: int = 50, *, engine: Engine | None = None) -> list[AliasChange]:
    """The latest alias moves of the registered model, newest first."""
    table = model_alias_history
    query = (
        select(table).where(table.c.model == settings.models.registered_model).order_by(table.c.id.desc()).limit(limit)
    )
    with transaction(engine or get_engine()) as conn:
        rows = conn.execute(query).all()
    return [
        AliasChange(
            model=r.model,
            alias=r.alias,
            old_version=r.old_version,
            new_version=r.new_version,
            actor=r.actor,
            reason=r.reason,
            at=r.at,
        )
        for r in rows
    ]


def rollback(settings: Settings, actor: str, reason: str, *, engine: Engine | None = None) -> RollbackResult:
    """Go back to the ``previous`` version: every instrument (the universe and whatever is routed)
    is routed to it as champion first, so trading stops using the replaced version at once; then
    ``champion`` moves to it, ``challenger`` is removed, and ``previous`` too (it would name the
    champion itself, and a second rollback must not silently do nothing). Each change is recorded
    with ``actor`` and ``reason``. Raises ``NoPreviousVersionError`` with nothing changed when no
    ``previous`` is set."""
    _require_who_and_why(actor, reason)
    current = aliases(settings)
    target = current.get(PREVIOUS)
    if target is None:
        raise NoPreviousVersionError(
            f"model '{settings.models.registered_model}' has no '{PREVIOUS}' alias: nothing to roll back to "
            f"(aliases now: {current or 'none'})"
        )
    engine = engine or get_engine()
    rerouted = routing.route_all(
        target,
        "champion",
        actor,
        reason,
        settings.market_data.universe,
        model=settings.models.registered_model,
        engine=engine,
    )
    set_alias(settings, CHAMPION, target, actor, reason, engine=engine)
    remove_alias(settings, CHALLENGER, actor, reason, engine=engine)
    remove_alias(settings, PREVIOUS, actor, reason, engine=engine)
    return RollbackResult(version=target, replaced=current.get(CHAMPION), rerouted=tuple(rerouted))


def _aliases(client: MlflowClient, name: str) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {alias: str(version) for alias, version in model.aliases.items()}


def _version_info(version: Any, version_aliases: tuple[str, ...]) -> ModelVersionInfo:
    tags: dict[str, str] = dict(version.tags or {})
    passed = tags.get("passed")
    return ModelVersionInfo(
        version=str(version.version),
        run_id=version.run_id,
        created_at=datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC),
        aliases=version_aliases,
        gates=_gates(tags),
        passed=None if passed is None else passed.lower() == "true",
        features=_features(tags),
        calendar=tags.get("calendar"),
    )


def _gates(tags: dict[str, str]) -> tuple[GateResult, ...]:
    names = sorted(key[len(_GATE_PREFIX) :] for key in tags if key.startswith(_GATE_PREFIX) and key.count(".") == 1)
    return tuple(
        GateResult(
            name=gate,
            passed=tags[f"{_GATE_PREFIX}{gate}"].lower() == "pass",
            value=tags.get(f"{_GATE_PREFIX}{gate}.value"),
            limit=tags.get(f"{_GATE_PREFIX}{gate}.limit"),
        )
        for gate in names
    )


def _features(tags: dict[str, str]) -> tuple[str, ...]:
    raw = tags.get("features")
    if raw is None:
        return ()
    columns = json.loads(raw)
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ValueError(f"the 'features' tag must be a JSON list of column names, got {raw!r}")
    return tuple(columns)


def _change(
    model: str, alias: str, old: str | None, new: str | None, actor: str, reason: str
) -> dict[str, str | datetime | None]:
    return {
        "model": model,
        "alias": alias,
        "old_version": old,
        "new_version": new,
        "actor": actor,
        "reason": reason,
        "at": utcnow(),
    }


def _require_who_and_why(actor: str, reason: str) -> None:
    if not actor.strip() or not reason.strip():
        raise ValueError("an alias change needs an actor and a reason (they are its history)")
