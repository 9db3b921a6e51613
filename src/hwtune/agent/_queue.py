"""One measurement at a time, in arrival order, with a cap on how many may wait.

Two measurements at once would disturb each other (they share cores, caches, memory bandwidth and
the power sensor), so the agent measures one request at a time; the others wait their turn (first
come, first served: ``asyncio.Lock`` wakes its waiters in order) and each answer says how long it
waited. Beyond ``max_queue`` waiting requests a new one is refused at once (503 with Retry-After),
before its body is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

__all__ = ["MeasureQueue"]


class MeasureQueue:
    """Admission (bounded) and turns (one at a time) for measurements."""

    def __init__(self, max_queue: int) -> None:
        self.max_queue = max_queue
        self._lock = asyncio.Lock()
        self.admitted = 0  # requests holding a place: the one measuring and those waiting
        self.measured = 0
        self.refused = 0

    @property
    def capacity(self) -> int:
        return 1 + self.max_queue

    def admit(self) -> bool:
        """Take a place (False when the queue is full: answer 503)."""
        if self.admitted >= self.capacity:
            self.refused += 1
            return False
        self.admitted += 1
        return True

    def leave(self) -> None:
        """Give the place back (after the answer, or on any error)."""
        self.admitted = max(0, self.admitted - 1)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[float]:
        """Wait for this request's turn; yields the seconds it waited."""
        t0 = time.perf_counter()
        async with self._lock:
            self.measured += 1
            yield time.perf_counter() - t0

    def state(self) -> dict[str, int]:
        busy = 1 if self._lock.locked() else 0
        return {"measuring": busy, "waiting": max(0, self.admitted - busy), "max_queue": self.max_queue, "measured": self.measured, "refused": self.refused}
