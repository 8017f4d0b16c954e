"""Rate-limiting queue: retries follow the limiter, forget only clears limiter state."""

from __future__ import annotations

import asyncio

from internal.workqueue import (
    FakeClock,
    ItemExponentialFailureRateLimiter,
    RateLimitingQueue,
    default_controller_rate_limiter,
)

DEADLINE = 5.0


def new_queue(clock: FakeClock) -> RateLimitingQueue[str]:
    return RateLimitingQueue(ItemExponentialFailureRateLimiter(0.005, 1000.0), clock=clock)


async def test_rate_limited_adds_back_off_exponentially(clock: FakeClock) -> None:
    q = new_queue(clock)
    for expected in (0.005, 0.01, 0.02, 0.04):
        q.add_rate_limited("k")
        clock.advance(expected - 0.001)
        assert len(q) == 0
        clock.advance(0.001)
        assert len(q) == 1
        item = await asyncio.wait_for(q.get(), DEADLINE)
        q.done(item)
    assert q.num_requeues("k") == 4


async def test_forget_resets_backoff_but_done_is_still_required(clock: FakeClock) -> None:
    q = new_queue(clock)
    q.add_rate_limited("k")
    q.add_rate_limited("k")
    clock.advance(0.005)
    item = await asyncio.wait_for(q.get(), DEADLINE)
    q.forget(item)
    assert q.num_requeues(item) == 0
    q.add(item)
    assert len(q) == 0, "forget must not release the item: it is still being processed"
    q.done(item)
    assert len(q) == 1
    item = await asyncio.wait_for(q.get(), DEADLINE)
    q.done(item)
    q.add_rate_limited("k")
    clock.advance(0.005)
    assert len(q) == 1


async def test_default_controller_limiter_drives_the_queue(clock: FakeClock) -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue(default_controller_rate_limiter(clock), clock=clock)
    for i in range(101):
        q.add_rate_limited(f"k{i}")
    clock.advance(0.005)
    assert len(q) == 100
    clock.advance(0.095)
    assert len(q) == 101


async def test_shutdown_stops_rate_limited_adds(clock: FakeClock) -> None:
    q = new_queue(clock)
    q.add_rate_limited("k")
    q.shutdown()
    q.add_rate_limited("j")
    clock.advance(10.0)
    assert len(q) == 0
    assert clock.pending_timers == 0
