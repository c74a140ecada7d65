"""Reads that may hang (a venue, MLflow), bounded by a deadline and never piled up.

A read runs in a daemon thread, so a caller waits for it at most until its own deadline and a
read that never returns cannot hold the process at exit. There is at most one read per key at a
time: a caller that finds one still running waits for that one instead of starting another, so a
venue that hangs while the UI polls every few seconds costs one stuck thread, not one per poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class Read:
    """One read in flight or done; ``started`` is its ``time.monotonic()`` start."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def wait(self, seconds: float) -> bool:
        """True once the read has finished (within ``seconds``)."""
        return self._done.wait(max(0.0, seconds))

    def result(self) -> Any:
        """What the read returned, or its exception raised here; only after ``wait`` said True."""
        if not self._done.is_set():
            raise RuntimeError("the read has not finished")
        if self._error is not None:
            raise self._error
        return self._value

    def _finish(self, value: Any, error: BaseException | None) -> None:
        self._value, self._error = value, error
        self._done.set()


class Reads:
    """The reads in flight, by key; ``name`` prefixes their thread names."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._running: dict[str, Read] = {}

    def start(self, key: str, function: Callable[[], Any]) -> Read:
        """The read of ``key`` already running, else a new one calling ``function``."""
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                return running
            read = self._running[key] = Read()
        threading.Thread(target=self._run, args=(key, read, function), name=f"{self._name}-{key}", daemon=True).start()
        return read

    def _run(self, key: str, read: Read, function: Callable[[], Any]) -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = function()
        except BaseException as exc:  # handed to whoever waits for the read
            error = exc
        with self._lock:
            if self._running.get(key) is read:
                del self._running[key]
        read._finish(value, error)
