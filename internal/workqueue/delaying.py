"""Delayed adds (client-go ``util/workqueue/delaying_queue.go``).

Instead of a goroutine, a channel and a 10 s heartbeat, pending items live in a heap keyed by
ready time with a single clock timer armed for the earliest one. Loop timers are not lost, so the
heartbeat "insurance" is not needed.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import TypeVar

from .clock import Clock, Timer
from .metrics import MetricsProvider
from .queue import Fifo, Queue

T = TypeVar("T", bound=Hashable)


class DelayingQueue(Queue[T]):
    """A :class:`Queue` that can also add an item after a delay."""

    def __init__(
        self,
        *,
        name: str = "",
        metrics_provider: MetricsProvider | None = None,
        clock: Clock | None = None,
        fifo: Fifo[T] | None = None,
    ) -> None:
        super().__init__(name=name, metrics_provider=metrics_provider, clock=clock, fifo=fifo)
        # Heap entries are (ready_at, seq, item); seq breaks ties so items are never compared.
        # Moving an item earlier pushes a new entry and leaves the old one stale: an entry counts
        # only while it matches _waiting_by_item[item].
        self._waiting: list[tuple[float, int, T]] = []
        self._waiting_by_item: dict[T, tuple[float, int]] = {}
        self._seq = itertools.count()
        self._timer: Timer | None = None
        self._timer_at = 0.0

    def add_after(self, item: T, delay: float) -> None:
        """Add ``item`` once ``delay`` seconds have passed; ``delay <= 0`` adds it now.

        An item already waiting keeps the earlier of its two ready times. Pending items are dropped
        at shutdown. As in client-go, an item that is already queued is not affected: it stays
        ready now and is added (again) when the delay expires.
        """
        if self._shutting_down:
            return
        self._metrics.retry()  # counted before the delay check: zero-delay calls count too
        if delay <= 0:
            self.add(item)
            return
        ready_at = self._clock.now() + delay
        current = self._waiting_by_item.get(item)
        if current is not None and current[0] <= ready_at:
            return
        entry = (ready_at, next(self._seq))
        self._waiting_by_item[item] = entry
        heapq.heappush(self._waiting, (*entry, item))
        self._arm()

    def shutdown(self) -> None:
        super().shutdown()
        self._drop_waiting()

    async def shutdown_with_drain(self) -> None:
        # Adds are ignored from now on, so the pending items could never be added anyway.
        self._drop_waiting()
        await super().shutdown_with_drain()

    def _arm(self) -> None:
        if not self._waiting:
            return
        head = self._waiting[0][0]
        if self._timer is not None:
            if self._timer_at <= head:
                return
            self._timer.cancel()
        self._timer_at = head
        self._timer = self._clock.call_at(head, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self._clock.now()
        # A loop may fire a timer a hair early; anything not yet due simply re-arms the timer.
        while self._waiting and self._waiting[0][0] <= now:
            ready_at, seq, item = heapq.heappop(self._waiting)
            if self._waiting_by_item.get(item) != (ready_at, seq):
                continue  # stale: the item was moved earlier and already added
            del self._waiting_by_item[item]
            self.add(item)
        self._arm()

    def _drop_waiting(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting.clear()
        self._waiting_by_item.clear()
