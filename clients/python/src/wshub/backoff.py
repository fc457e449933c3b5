"""Reconnect delays: exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class ReconnectPolicy:
    """How the client reconnects after a drop.

    The n-th consecutive attempt (from 0) waits a random time in
    ``[0, min(max_delay, initial_delay * factor ** n)]`` ("full jitter"), so many clients
    dropped at once do not come back at once. ``max_attempts=None`` retries for ever;
    the count starts again after every successful connection.
    """

    enabled: bool = True
    initial_delay: float = 1.0
    max_delay: float = 30.0
    factor: float = 2.0
    max_attempts: Optional[int] = None

    def ceiling(self, attempt: int) -> float:
        """The largest delay of attempt ``attempt`` (0-based)."""
        # Capped before the power overflows.
        exponent = min(attempt, 64)
        return min(self.max_delay, self.initial_delay * (self.factor**exponent))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """A jittered delay for attempt ``attempt`` (0-based)."""
        return (rng or random).uniform(0.0, self.ceiling(attempt))
