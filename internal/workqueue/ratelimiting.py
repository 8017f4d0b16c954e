"""Rate-limited requeues (client-go ``util/workqueue/rate_limiting_queue.go``)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar

from .clock import Clock
from .delaying import DelayingQueue
from .metrics import MetricsProvider
from .queue import Fifo
from .ratelimiter import RateLimiter

T = TypeVar("T", bound=Hashable)


class RateLimitingQueue(DelayingQueue[T]):
    """A :class:`DelayingQueue` whose retries are spaced by a :class:`RateLimiter`."""

    def __init__(
        self,
        rate_limiter: RateLimiter[T],
        *,
        name: str = "",
        metrics_provider: MetricsProvider | None = None,
        clock: Clock | None = None,
        fifo: Fifo[T] | None = None,
    ) -> None:
        super().__init__(name=name, metrics_provider=metrics_provider, clock=clock, fifo=fifo)
        self._rate_limiter = rate_limiter

    @property
    def rate_limiter(self) -> RateLimiter[T]:
        return self._rate_limiter

    def add_rate_limited(self, item: T) -> None:
        """Add ``item`` after the limiter's delay (this records a failure in the limiter)."""
        self.add_after(item, self._rate_limiter.when(item))

    def forget(self, item: T) -> None:
        """Clear the item's failure history. Only limiter state: :meth:`done` is still required."""
        self._rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self._rate_limiter.num_requeues(item)
