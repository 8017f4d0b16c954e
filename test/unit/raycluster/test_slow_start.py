"""Worker pods are created in slow-start batches (controllers/ray/utils/batch.py): a healthy scale-up
takes log2(n) rounds, a systematic failure (quota, webhook) costs one call, not one per pod."""

from __future__ import annotations

import asyncio

import pytest

from controllers.ray.utils.batch import slow_start_batch


async def test_batches_double_and_all_items_run() -> None:
    rounds: list[list[int]] = [[]]
    in_flight = 0

    async def create(i: int) -> None:
        nonlocal in_flight
        in_flight += 1
        rounds[-1].append(i)
        await asyncio.sleep(0)
        in_flight -= 1
        if in_flight == 0:
            rounds.append([])

    assert await slow_start_batch(list(range(10)), create) == 10
    assert [len(r) for r in rounds if r] == [1, 2, 4, 3]


async def test_the_first_failure_stops_later_batches_after_its_own_batch_ends() -> None:
    calls: list[int] = []

    async def create(i: int) -> None:
        calls.append(i)
        if i == 0:
            raise RuntimeError("exceeded quota")

    with pytest.raises(RuntimeError, match="exceeded quota"):
        await slow_start_batch(list(range(50)), create)
    assert calls == [0]  # one call, not fifty

    calls.clear()

    async def second_fails(i: int) -> None:
        calls.append(i)
        await asyncio.sleep(0.01 if i == 2 else 0)
        if i == 1:
            raise RuntimeError("webhook denied")

    with pytest.raises(RuntimeError, match="webhook denied"):
        await slow_start_batch(list(range(50)), second_fails)
    assert calls == [0, 1, 2]  # the slow call of the failing batch still finished; nothing after it
