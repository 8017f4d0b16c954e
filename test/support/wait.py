"""Waiting on conditions with a deadline (never a bare sleep as synchronisation)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

import pytest


async def eventually(
    cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition", interval: float = 0.1
) -> Any:
    """Poll ``cond`` (sync or async) until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            got = cond()
            if inspect.isawaitable(got):
                got = await got
            if got:
                return got
        except AssertionError as e:
            last_exc = e
        if time.monotonic() > deadline:
            extra = f" (last: {last_exc})" if last_exc else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}{extra}")
        await asyncio.sleep(interval)


async def gone(client: Any, res: Any, name: str, namespace: str) -> bool:
    """True once ``name`` no longer exists (a condition for ``eventually``)."""
    from internal.client import NotFound

    try:
        await client.get(res, name, namespace)
    except NotFound:
        return True
    return False
