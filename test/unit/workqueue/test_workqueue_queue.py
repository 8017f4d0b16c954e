"""Basic queue: dedup, deferred re-add, no concurrent processing of a key, FIFO, shutdown and drain."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from internal.workqueue import DequeFifo, Queue, QueueShutDown

DEADLINE = 5.0
Key = tuple[str, str]


async def settle() -> None:
    """Let every runnable task run until it blocks (asserts absence of progress, not timing)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def get(q: Queue[Any]) -> Any:
    return await asyncio.wait_for(q.get(), DEADLINE)


def invariants(q: Queue[Any]) -> None:
    queued = list(q._queue._items)  # type: ignore[attr-defined]
    assert len(queued) == len(set(queued)), "duplicate in queue"
    assert set(queued) <= q._dirty, "queued item not dirty"
    assert not set(queued) & q._processing, "queued item is being processed"


async def test_fifo_across_distinct_keys() -> None:
    q: Queue[Key] = Queue()
    keys = [("ns", f"k{i}") for i in range(20)]
    for k in keys:
        q.add(k)
    assert len(q) == 20
    assert [await get(q) for _ in keys] == keys


async def test_adding_a_pending_key_five_times_yields_it_once() -> None:
    q: Queue[str] = Queue()
    for _ in range(5):
        q.add("k")
    assert len(q) == 1
    assert await get(q) == "k"
    assert len(q) == 0
    waiter = asyncio.create_task(q.get())
    await settle()
    assert not waiter.done()
    waiter.cancel()


async def test_readd_while_processing_is_deferred_and_processed_exactly_once_more() -> None:
    q: Queue[str] = Queue()
    q.add("k")
    assert await get(q) == "k"
    concurrent_get = asyncio.create_task(q.get())
    for _ in range(7):
        q.add("k")
    await settle()
    assert not concurrent_get.done(), "a key being processed was handed to a second worker"
    assert len(q) == 0

    q.done("k")
    assert await asyncio.wait_for(concurrent_get, DEADLINE) == "k"
    q.done("k")
    assert len(q) == 0
    again = asyncio.create_task(q.get())
    await settle()
    assert not again.done(), "re-added key was processed more than once more"
    again.cancel()


async def test_readd_moves_key_behind_keys_queued_while_it_was_processed() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    assert await get(q) == "a"
    q.add("a")
    q.add("b")
    q.done("a")
    assert [await get(q), await get(q)] == ["b", "a"]


async def test_no_key_is_processed_concurrently_and_last_add_is_always_seen() -> None:
    # §9.3: 10 workers, 10 000 adds over 50 keys.
    q: Queue[int] = Queue()
    rng = random.Random(42)
    in_flight: set[int] = set()
    seq = 0
    last_add: dict[int, int] = {}
    last_start: dict[int, int] = {}
    violations: list[int] = []

    async def worker() -> None:
        nonlocal seq
        while True:
            try:
                key = await q.get()
            except QueueShutDown:
                return
            if key in in_flight:
                violations.append(key)
            in_flight.add(key)
            seq += 1
            last_start[key] = seq
            for _ in range(rng.randrange(3)):
                await asyncio.sleep(0)  # simulated work: lets other workers and the producer run
            in_flight.discard(key)
            q.done(key)

    async def producer() -> None:
        nonlocal seq
        for i in range(10_000):
            key = rng.randrange(50)
            seq += 1
            last_add[key] = seq
            q.add(key)
            if i % 7 == 0:
                await asyncio.sleep(0)

    workers = [asyncio.create_task(worker()) for _ in range(10)]
    await asyncio.wait_for(producer(), DEADLINE)
    q.shutdown()  # workers drain what is queued, then get() raises
    await asyncio.wait_for(asyncio.gather(*workers), DEADLINE)

    assert violations == []
    assert set(last_add) == set(last_start)
    assert all(last_start[k] > last_add[k] for k in last_add)


async def test_shutdown_wakes_every_waiting_getter() -> None:
    q: Queue[str] = Queue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await settle()
    assert not any(g.done() for g in getters)
    q.shutdown()
    results = await asyncio.wait_for(asyncio.gather(*getters, return_exceptions=True), DEADLINE)
    assert all(isinstance(r, QueueShutDown) for r in results)
    assert q.shutting_down()


async def test_after_shutdown_adds_are_ignored_and_queued_items_still_drain() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    q.add("b")
    q.shutdown()
    q.add("c")
    assert len(q) == 2
    assert [await get(q), await get(q)] == ["a", "b"]
    with pytest.raises(QueueShutDown):
        await get(q)


async def test_done_after_shutdown_still_requeues_a_dirty_item() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    assert await get(q) == "a"
    q.add("a")
    q.shutdown()
    q.done("a")
    assert await get(q) == "a"


async def test_shutdown_with_drain_waits_for_every_handed_out_item() -> None:
    q: Queue[str] = Queue()
    for k in ("a", "b", "c"):
        q.add(k)
    a, b = await get(q), await get(q)
    drain = asyncio.create_task(q.shutdown_with_drain())
    await settle()
    assert not drain.done()
    q.done(a)
    await settle()
    assert not drain.done(), "drain returned with an item still being processed"
    q.done(b)
    await asyncio.wait_for(drain, DEADLINE)
    # Only handed-out items are waited for; "c" is still queued and can still be taken.
    assert len(q) == 1
    assert await get(q) == "c"


async def test_shutdown_with_drain_returns_at_once_when_nothing_is_processing() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    await asyncio.wait_for(q.shutdown_with_drain(), DEADLINE)


async def test_shutdown_aborts_a_pending_drain() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    await get(q)
    drain = asyncio.create_task(q.shutdown_with_drain())
    await settle()
    assert not drain.done()
    q.shutdown()
    await asyncio.wait_for(drain, DEADLINE)


async def test_cancelled_getter_does_not_swallow_a_wakeup() -> None:
    q: Queue[str] = Queue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await settle()
    q.add("k")  # wakes `first`
    first.cancel()  # ... which never takes the item
    assert await asyncio.wait_for(second, DEADLINE) == "k"
    assert first.cancelled()


async def test_cancelled_getter_leaves_no_waiter_behind() -> None:
    q: Queue[str] = Queue()
    g = asyncio.create_task(q.get())
    await settle()
    g.cancel()
    await settle()
    assert len(q._getters) == 0


async def test_touch_hook_called_only_for_queued_duplicates() -> None:
    class Recording(DequeFifo[str]):
        def __init__(self) -> None:
            super().__init__()
            self.touched: list[str] = []

        def touch(self, item: str) -> None:
            self.touched.append(item)

    fifo = Recording()
    q: Queue[str] = Queue(fifo=fifo)
    q.add("a")
    q.add("a")
    assert fifo.touched == ["a"]
    await get(q)
    q.add("a")  # processing: becomes dirty, no touch
    q.add("a")  # dirty and processing: still no touch
    assert fifo.touched == ["a"]


async def test_stray_done_does_not_duplicate_a_queued_item() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    q.done("a")
    q.done("never-added")
    assert len(q) == 1
    invariants(q)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 4)),
        st.tuples(st.just("get"), st.just(0)),
        st.tuples(st.just("done"), st.integers(0, 4)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_invariants_hold_after_every_operation(script: list[tuple[str, int]]) -> None:
    async def run() -> None:
        q: Queue[int] = Queue()
        processing: set[int] = set()
        needs_run: set[int] = set()  # added since its last hand-out began
        for op, key in script:
            if op == "add":
                q.add(key)
                needs_run.add(key)
            elif op == "get" and len(q):
                item = await q.get()
                assert item not in processing, "handed out twice at once"
                processing.add(item)
                needs_run.discard(item)
            elif op == "done" and key in processing:
                processing.discard(key)
                q.done(key)
            invariants(q)
        # Finish everything: each key added after its last hand-out must be handed out again.
        for key in list(processing):
            q.done(key)
        seen = set()
        while len(q):
            item = await q.get()
            seen.add(item)
            q.done(item)
        assert needs_run <= seen

    asyncio.run(run())
