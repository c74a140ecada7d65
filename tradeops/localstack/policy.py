"""When a component that exited is started again, and when the supervisor gives up on it.

A component that dies is restarted after a backoff that doubles with each death inside the
window (1 s, 2 s, 4 s, ... up to ``backoff_max_seconds``). The ``max_deaths``-th death inside the
window leaves it DEAD: restarting a component that fails at once (a bad config, a port taken)
in a tight loop only buries the first, useful error under the same traceback repeated.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tradeops.errors import TradeopsError


@dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    max_deaths: int = 5
    window_seconds: float = 120.0
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.max_deaths < 1:
            raise TradeopsError(f"max_deaths must be at least 1, got {self.max_deaths}")
        if self.window_seconds <= 0 or self.backoff_seconds < 0 or self.backoff_max_seconds < self.backoff_seconds:
            raise TradeopsError(
                "restart policy needs window > 0 and 0 <= backoff <= backoff max, got "
                f"window {self.window_seconds}, backoff {self.backoff_seconds}, max {self.backoff_max_seconds}"
            )

    def delay(self, deaths_in_window: int) -> float | None:
        """Seconds to wait before the next start, or None to give up."""
        if deaths_in_window >= self.max_deaths:
            return None
        return min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(deaths_in_window - 1, 0))


class DeathHistory:
    """The monotonic times of a component's recent deaths, forgetting those older than the window."""

    def __init__(self, window_seconds: float) -> None:
        self._window = window_seconds
        self._deaths: deque[float] = deque()

    def record(self, now: float) -> int:
        """Add a death at ``now``; return how many fall inside the window ending at ``now``."""
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - self._window:
            self._deaths.popleft()
        return len(self._deaths)

    def clear(self) -> None:
        self._deaths.clear()
