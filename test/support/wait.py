"""Waiting on conditions with a deadline (never a bare sleep as synchronisation)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
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


async def stays(probe: Callable[[], Awaitable[Any]], window: float, interval: float = 0.25) -> bool:
    """True when ``probe()`` gives the same value at every sample over ``window`` seconds: a "nothing
    happens" check, sampled over a window rather than slept through."""
    first = await probe()
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        await asyncio.sleep(interval)  # sampling interval, not synchronisation
        if await probe() != first:
            return False
    return True


async def gone(client: Any, res: Any, name: str, namespace: str) -> bool:
    """True once ``name`` no longer exists (a condition for ``eventually``)."""
    from internal.client import NotFound

    try:
        await client.get(res, name, namespace)
    except NotFound:
        return True
    return False


async def events_for(client: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    """The events.k8s.io events about object ``name`` in ``namespace``."""
    from internal.client.resources import EVENTS

    items = (await client.list(EVENTS, namespace))["items"]
    return [e for e in items if (e.get("regarding") or {}).get("name") == name]


async def wait_events(
    client: Any, namespace: str, name: str, reason: str, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """The events with ``reason`` about ``name`` once at least one exists. The recorder writes events
    in the background, after the status or object change that caused them, so a test that saw the
    change must still wait for its event."""

    async def found() -> list[dict[str, Any]]:
        return [e for e in await events_for(client, namespace, name) if e["reason"] == reason]

    got: list[dict[str, Any]] = await eventually(found, timeout, f"a {reason} event for {name}")
    return got
