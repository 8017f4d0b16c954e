"""Client-side QPS/burst limiting, as client-go's token-bucket rate limiter (flags --qps/--burst)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """A token bucket where each caller reserves a token at once and then waits out its delay, so
    concurrent callers are spaced 1/qps apart in arrival order. qps <= 0 disables limiting."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self.burst)
        self._last = clock()

    def reserve(self) -> float:
        """Take one token (possibly going into debt) and return how long to wait before using it."""
        if self.qps <= 0:
            return 0.0
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    async def acquire(self) -> float:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        return delay
