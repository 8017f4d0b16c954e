"""Delaying queue on a fake clock: visibility time, earliest-wins dedup, ordering, shutdown."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from internal.workqueue import DelayingQueue, FakeClock

DEADLINE = 5.0


async def drain(q: DelayingQueue[str]) -> list[str]:
    """Take (and finish) everything currently queued, in order."""
    out = []
    while len(q):
        item = await asyncio.wait_for(q.get(), DEADLINE)
        q.done(item)
        out.append(item)
    return out


async def test_item_is_invisible_before_its_delay_and_visible_at_it(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("k", 1.0)
    assert len(q) == 0
    clock.advance(0.99)
    assert len(q) == 0
    clock.advance(0.01)
    assert len(q) == 1
    assert await drain(q) == ["k"]


async def test_a_waiting_getter_is_woken_when_the_delay_expires(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    getter = asyncio.create_task(q.get())
    q.add_after("k", 2.0)
    clock.advance(2.0)
    assert await asyncio.wait_for(getter, DEADLINE) == "k"


async def test_second_add_after_keeps_the_earlier_time(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("late-first", 5.0)
    q.add_after("late-first", 2.0)
    q.add_after("early-first", 2.0)
    q.add_after("early-first", 5.0)
    clock.advance(2.0)
    assert await drain(q) == ["late-first", "early-first"]
    clock.advance(3.0)
    assert len(q) == 0, "the superseded later time produced a second add"


async def test_zero_or_negative_delay_is_a_plain_add(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("zero", 0)
    q.add_after("negative", -3)
    assert len(q) == 2
    assert clock.pending_timers == 0
    assert await drain(q) == ["zero", "negative"]


async def test_a_ready_item_is_not_delayed_by_a_later_add_after(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add("k")
    q.add_after("k", 10.0)
    assert len(q) == 1
    assert await drain(q) == ["k"]
    # client-go keeps the delayed entry too: the key comes round once more when it expires.
    clock.advance(10.0)
    assert await drain(q) == ["k"]


async def test_items_become_ready_in_ready_time_order(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("a", 3.0)
    q.add_after("b", 1.0)
    q.add_after("c", 2.0)
    clock.advance(1.5)
    assert await drain(q) == ["b"]
    clock.advance(5.0)
    assert await drain(q) == ["c", "a"]


async def test_one_timer_rearmed_for_an_earlier_head(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("slow", 10.0)
    q.add_after("fast", 1.0)
    q.add_after("mid", 5.0)
    assert clock.pending_timers == 1
    clock.advance(1.0)
    assert await drain(q) == ["fast"]
    assert clock.pending_timers == 1
    clock.advance(9.0)
    assert await drain(q) == ["mid", "slow"]
    assert clock.pending_timers == 0


async def test_shutdown_drops_pending_items_and_cancels_the_timer(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("k", 1.0)
    q.shutdown()
    assert clock.pending_timers == 0
    q.add_after("j", 1.0)
    clock.advance(5.0)
    assert len(q) == 0


async def test_shutdown_with_drain_also_cancels_the_timer(clock: FakeClock) -> None:
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("k", 1.0)
    await asyncio.wait_for(q.shutdown_with_drain(), DEADLINE)
    assert clock.pending_timers == 0


async def test_real_loop_clock_delivers_a_short_delay() -> None:
    q: DelayingQueue[str] = DelayingQueue()
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_after("k", 0.02)
    assert await asyncio.wait_for(q.get(), DEADLINE) == "k"
    assert loop.time() - start >= 0.02 - 1e-3
    q.shutdown()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(1, 50)), min_size=1, max_size=40))
def test_each_key_becomes_ready_exactly_once_at_its_earliest_requested_time(
    adds: list[tuple[str, int]],
) -> None:
    async def run() -> None:
        clock = FakeClock()
        q: DelayingQueue[str] = DelayingQueue(clock=clock)
        for key, seconds in adds:
            q.add_after(key, float(seconds))
        earliest: dict[str, int] = {}
        for key, seconds in adds:
            earliest[key] = min(earliest.get(key, seconds), seconds)
        ready_at: dict[str, int] = {}
        for tick in range(1, 52):
            clock.advance(1.0)  # whole seconds from 0: exact in floating point
            for key in await drain(q):
                assert key not in ready_at, f"{key} became ready twice"
                ready_at[key] = tick
        assert ready_at == earliest

    asyncio.run(run())
