"""Time source for the work queue: a monotonic ``now()`` plus one-shot timers.

Queues never sleep; they only arm timers. That keeps every queue operation synchronous (no
``await`` inside a mutation, so no lock is needed on one event loop) and lets tests swap in
:class:`FakeClock`, whose timers fire only when the test advances time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    """A pending one-shot callback; ``asyncio.TimerHandle`` satisfies this."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds and timers on the same time base."""

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer: ...


class LoopClock:
    """The running event loop's clock (``loop.time()``) and timers (``loop.call_at``)."""

    def now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            # Outside a loop (e.g. a rate limiter consulted from sync code): the default loop's
            # time() is time.monotonic(), so readings stay comparable.
            return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        return asyncio.get_running_loop().call_at(when, callback)


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that only moves when told to; timers fire synchronously inside :meth:`advance`."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._seq = itertools.count()
        self._timers: list[tuple[float, int, _FakeTimer]] = []

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        timer = _FakeTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    @property
    def pending_timers(self) -> int:
        """Timers armed and neither fired nor cancelled."""
        return sum(1 for _, _, t in self._timers if not t.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward, firing due timers in deadline order; each sees now() == its deadline
        (like a real loop that was idle), including timers armed by callbacks that are due too."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            timer.callback()
        self._now = target
