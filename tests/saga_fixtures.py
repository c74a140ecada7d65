"""Saga step pairs used only by the saga tests: they record calls instead of moving money."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tradeops.errors import InvalidOrderError, TemporaryVenueError
from tradeops.saga.core import Params, UndoOutcome, UndoResult, saga_step


def _journal() -> Path:
    return Path(os.environ["SAGA_FIXTURE_JOURNAL"])


def _write(entry: dict[str, Any]) -> None:
    with _journal().open("a") as handle:
        handle.write(json.dumps(entry) + "\n")


def journal() -> list[dict[str, Any]]:
    path = _journal()
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@saga_step(undo="undo_record_step")
def record_step(params: Params, key: str) -> dict[str, Any]:
    _write({"call": "do", "name": params["name"], "key": key})
    return {"name": params["name"]}


def undo_record_step(params: Params, key: str) -> UndoResult:
    _write({"call": "undo", "name": params["name"], "key": key})
    if params.get("undo_fails") == "temporary":
        raise TemporaryVenueError(f"undo of {params['name']} hit a temporary error")
    if params.get("undo_fails"):
        raise InvalidOrderError(f"undo of {params['name']} refused")
    return UndoResult(UndoOutcome.UNDONE, {"name": params["name"]})


def not_a_step(params: Params, key: str) -> dict[str, Any]:
    return {}
