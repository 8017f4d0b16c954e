"""The basic work queue (client-go ``util/workqueue/queue.go``) on one asyncio event loop.

State is a FIFO plus two sets, with the invariants of the Go original:

* every queued item is dirty and not processing, and is queued at most once;
* an item handed out by :meth:`Queue.get` is never handed out again until :meth:`Queue.done`;
* adding an item that is processing only marks it dirty; ``done`` re-queues it, so it is processed
  exactly once more however many times it was added meanwhile.

Every mutation runs without an ``await``, so no lock is needed: on one loop it is atomic.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from .clock import Clock, LoopClock
from .metrics import MetricsProvider, QueueMetrics, new_queue_metrics

T = TypeVar("T", bound=Hashable)


class QueueShutDown(Exception):
    """Raised by :meth:`Queue.get` once the queue is shut down and has nothing left to hand out."""


class Fifo(Protocol[T]):
    """The pluggable ordering of queued items (client-go's ``Queue[T]``)."""

    def touch(self, item: T) -> None:
        """Called when an already queued item is added again (a priority queue may reorder)."""

    def push(self, item: T) -> None: ...

    def pop(self) -> T: ...

    def __len__(self) -> int: ...


class DequeFifo(Generic[T]):
    """Plain first-in first-out order; ``touch`` keeps the original position."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()

    def touch(self, item: T) -> None:
        pass

    def push(self, item: T) -> None:
        self._items.append(item)

    def pop(self) -> T:
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)


class Queue(Generic[T]):
    """Deduplicating work queue; items are hashable keys (e.g. a namespace/name tuple).

    ``get()`` raises :class:`QueueShutDown` instead of returning client-go's ``(item, shutdown)``
    pair, so the item is never optional. Metrics are recorded only when both ``name`` and
    ``metrics_provider`` are given. ``len(q)`` makes an empty queue falsy: test ``is None``, not truth.
    """

    def __init__(
        self,
        *,
        name: str = "",
        metrics_provider: MetricsProvider | None = None,
        clock: Clock | None = None,
        fifo: Fifo[T] | None = None,
    ) -> None:
        self._name = name
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._queue: Fifo[T] = fifo if fifo is not None else DequeFifo()
        self._dirty: set[T] = set()
        self._processing: set[T] = set()
        self._shutting_down = False
        self._drain = False
        self._getters: deque[asyncio.Future[None]] = deque()
        self._drainers: list[asyncio.Future[None]] = []
        self._metrics: QueueMetrics[T] = new_queue_metrics(metrics_provider, name, self._clock)

    @property
    def name(self) -> str:
        return self._name

    def add(self, item: T) -> None:
        """Mark ``item`` as needing processing. Ignored after shutdown; a no-op if already pending."""
        if self._shutting_down:
            return
        if item in self._dirty:
            if item not in self._processing:
                self._queue.touch(item)
            return
        self._metrics.add(item)
        self._dirty.add(item)
        if item in self._processing:
            return  # done() queues it; handing it out now would run it twice at once
        self._queue.push(item)
        self._wake_getter()

    def __len__(self) -> int:
        """Items waiting to be handed out; excludes items being processed (and delayed ones)."""
        return len(self._queue)

    async def get(self) -> T:
        """Wait for the next item and mark it processing; the caller must call :meth:`done`.

        After shutdown, items still queued keep being handed out; once none are left this raises
        :class:`QueueShutDown`.
        """
        while not len(self._queue) and not self._shutting_down:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    # We were woken for an item but will not take it: pass the wake-up on.
                    self._wake_getter()
                else:
                    with contextlib.suppress(ValueError):
                        self._getters.remove(waiter)
                raise
        if not len(self._queue):
            raise QueueShutDown
        item = self._queue.pop()
        self._metrics.get(item)
        self._processing.add(item)
        self._dirty.discard(item)
        return item

    def done(self, item: T) -> None:
        """Finish processing ``item``; if it was added meanwhile, queue it again (even after shutdown)."""
        if item not in self._processing:
            # Deviation from client-go: a stray done() for a queued item would queue it twice.
            return
        self._metrics.done(item)
        self._processing.discard(item)
        if item in self._dirty:
            self._queue.push(item)
            self._wake_getter()
        elif not self._processing:
            self._wake_all(self._drainers)

    def shutdown(self) -> None:
        """Stop accepting adds and wake every waiter; also ends a pending drain wait."""
        self._drain = False
        self._shutting_down = True
        self._metrics.stop()
        self._wake_all(self._getters)
        self._wake_all(self._drainers)

    async def shutdown_with_drain(self) -> None:
        """Shut down, then wait until every handed-out item is done (queued ones are not waited for).

        Workers must keep calling done(); a later :meth:`shutdown` ends the wait early.
        """
        self._drain = True
        self._shutting_down = True
        self._metrics.stop()
        self._wake_all(self._getters)
        while self._processing and self._drain:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._drainers.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._drainers.remove(waiter)

    def shutting_down(self) -> bool:
        return self._shutting_down

    def _wake_getter(self) -> None:
        # Like cond.Signal(): one pushed item wakes one waiter. Skip waiters whose task was cancelled.
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    @staticmethod
    def _wake_all(waiters: deque[asyncio.Future[None]] | list[asyncio.Future[None]]) -> None:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        waiters.clear()
