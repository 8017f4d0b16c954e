"""Rate limiters (client-go ``util/workqueue/default_rate_limiters.go``).

All durations are float seconds. ``when(item)`` records a failure (or consumes a token) and returns
how long to wait before retrying; ``forget(item)`` clears the item's history.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from .clock import Clock, LoopClock

T = TypeVar("T", bound=Hashable)
T_contra = TypeVar("T_contra", bound=Hashable, contravariant=True)

# rate.InfDuration (math.MaxInt64 nanoseconds): what a reservation that can never succeed waits.
INF_DURATION = (2**63 - 1) / 1e9


class RateLimiter(Protocol[T_contra]):
    def when(self, item: T_contra) -> float:
        """Record a retry of ``item`` and return the seconds to wait before it."""
        ...

    def forget(self, item: T_contra) -> None:
        """Stop tracking ``item`` (it succeeded or was given up)."""
        ...

    def num_requeues(self, item: T_contra) -> int:
        """Failures recorded for ``item`` since it was last forgotten."""
        ...


class ItemExponentialFailureRateLimiter(Generic[T]):
    """``base * 2**failures`` per item, capped at ``max_delay``."""

    def __init__(self, base_delay: float, max_delay: float) -> None:
        self._base = base_delay
        self._max = max_delay
        self._failures: dict[T, int] = {}

    def when(self, item: T) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        try:
            backoff = math.ldexp(self._base, exp)  # exact power-of-two scaling, no int blow-up
        except OverflowError:
            return self._max
        return min(backoff, self._max)

    def num_requeues(self, item: T) -> int:
        return self._failures.get(item, 0)

    def forget(self, item: T) -> None:
        self._failures.pop(item, None)


class ItemFastSlowRateLimiter(Generic[T]):
    """``fast_delay`` for the first ``max_fast_attempts`` failures of an item, then ``slow_delay``."""

    def __init__(self, fast_delay: float, slow_delay: float, max_fast_attempts: int) -> None:
        self._fast = fast_delay
        self._slow = slow_delay
        self._max_fast = max_fast_attempts
        self._failures: dict[T, int] = {}

    def when(self, item: T) -> float:
        failures = self._failures.get(item, 0) + 1
        self._failures[item] = failures
        return self._fast if failures <= self._max_fast else self._slow

    def num_requeues(self, item: T) -> int:
        return self._failures.get(item, 0)

    def forget(self, item: T) -> None:
        self._failures.pop(item, None)


class BucketRateLimiter:
    """An overall token bucket (``rate.NewLimiter(qps, burst)``), shared by all items.

    ``when`` is ``Reserve().Delay()``: it always takes a token, going into debt when the bucket is
    empty, and returns how long until that reservation may act. The bucket starts full.
    """

    def __init__(self, qps: float, burst: int, clock: Clock | None = None) -> None:
        self._limit = qps
        self._burst = burst
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._tokens = float(burst)
        self._last: float | None = None

    def when(self, item: object) -> float:
        if math.isinf(self._limit) and self._limit > 0:
            return 0.0
        if self._limit <= 0:
            # rate.Limiter with limit 0: only the burst is ever granted, never refilled.
            if self._burst >= 1:
                self._burst -= 1
                return 0.0
            return INF_DURATION
        if self._burst < 1:
            return INF_DURATION  # a reservation larger than the burst is never ok
        now = self._clock.now()
        tokens = self._tokens
        if self._last is not None:
            elapsed = max(0.0, now - self._last)
            tokens = min(float(self._burst), tokens + elapsed * self._limit)
        tokens -= 1.0
        wait = 0.0
        if tokens < 0:
            wait = int(-tokens / self._limit * 1e9) / 1e9  # time.Duration truncates to whole ns
        self._last = now
        self._tokens = tokens
        return wait

    def num_requeues(self, item: object) -> int:
        return 0

    def forget(self, item: object) -> None:
        pass


class MaxOfRateLimiter(Generic[T]):
    """The longest delay of several limiters; every limiter is consulted on every call."""

    def __init__(self, *limiters: RateLimiter[T]) -> None:
        self._limiters = limiters

    def when(self, item: T) -> float:
        delay = 0.0
        for limiter in self._limiters:  # no short-circuit: each one must record the failure
            delay = max(delay, limiter.when(item))
        return delay

    def num_requeues(self, item: T) -> int:
        return max((limiter.num_requeues(item) for limiter in self._limiters), default=0)

    def forget(self, item: T) -> None:
        for limiter in self._limiters:
            limiter.forget(item)


class WithMaxWaitRateLimiter(Generic[T]):
    """Caps another limiter's delay at ``max_delay``."""

    def __init__(self, limiter: RateLimiter[T], max_delay: float) -> None:
        self._limiter = limiter
        self._max = max_delay

    def when(self, item: T) -> float:
        return min(self._limiter.when(item), self._max)

    def num_requeues(self, item: T) -> int:
        return self._limiter.num_requeues(item)

    def forget(self, item: T) -> None:
        self._limiter.forget(item)


def default_item_based_rate_limiter() -> ItemExponentialFailureRateLimiter[T]:
    """client-go's DefaultItemBasedRateLimiter: exponential 1 ms … 1000 s."""
    return ItemExponentialFailureRateLimiter(0.001, 1000.0)


def default_controller_rate_limiter(clock: Clock | None = None) -> MaxOfRateLimiter[T]:
    """client-go's DefaultTypedControllerRateLimiter, controller-runtime's limiter without the
    priority queue: max of per-item exponential 5 ms … 1000 s and an overall 10 qps / burst 100
    bucket (so a failure storm also slows unrelated keys)."""
    return MaxOfRateLimiter(ItemExponentialFailureRateLimiter(0.005, 1000.0), BucketRateLimiter(10.0, 100, clock))
