"""Slow-start batches, as kube-controller-manager's ReplicaSet and Job controllers create pods: 1, then
2, 4, 8 ... calls at once, stopping after the first batch with a failure, so a systematic error (a
quota, an admission webhook) costs one call instead of one per pod while a healthy scale-up needs
only log2(n) round trips."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

#: client-go's SlowStartInitialBatchSize
INITIAL_BATCH = 1


async def slow_start_batch(items: Sequence[T], fn: Callable[[T], Awaitable[None]], initial: int = INITIAL_BATCH) -> int:
    """Runs ``fn`` on every item, in doubling batches; returns how many succeeded. A batch runs to its
    end even when a call fails (a cancelled create may still have happened on the server), then the
    first failure is raised and no further batch starts."""
    done, start, size = 0, 0, max(1, initial)
    while start < len(items):
        batch = items[start : start + size]
        results = await asyncio.gather(*(fn(i) for i in batch), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        done += len(batch) - len(failures)
        if failures:
            raise failures[0]
        start += len(batch)
        size *= 2
    return done
