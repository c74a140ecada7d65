"""Deterministic idempotency keys.

The key of a saga step is derived from (dag_id, run_id, task_id, map_index) only, so every retry
of the same task instance produces the same key. It doubles as the venue's client order id /
transfer id, so a retried step can never act twice. Keys are 32 alphanumeric characters: the
strictest common venue limit (OKX ``clOrdId``).
"""

from __future__ import annotations

import hashlib

KEY_PREFIX = "to"
UNDO_PREFIX = "tu"
_DIGEST_CHARS = 30


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_DIGEST_CHARS]


def idempotency_key(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The key of one saga step (one task instance, any try)."""
    return KEY_PREFIX + _digest(f"{dag_id}\x1f{run_id}\x1f{task_id}\x1f{map_index}")


def undo_key(key: str) -> str:
    """The key of the undo of the step whose key is ``key`` (also deterministic)."""
    return UNDO_PREFIX + _digest(f"undo\x1f{key}")
