"""The reflector: list, then watch from the list's resourceVersion, forever, with client-go's error
handling (410 → relist, 429/connection refused → back off and re-watch from the same RV, clean close →
re-watch at once) plus liveness: a watch gone silent, or still open past the time the server was asked
to close it, is restarted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from internal.client import Client, ConnectionFailed, Gone, Resource, Timeout, TooManyRequests, WatchStalled
from internal.client.client import DEFAULT_PAGE_SIZE

log = logging.getLogger("kuberay.informer")

Obj = dict[str, Any]
Sleep = Callable[[float], Awaitable[None]]

# Each watch asks the server to close it after a timeout in [min, 2·min) seconds, and is presumed dead
# (a half-open connection: nothing closes it, nothing arrives) when still open DEADLINE_GRACE after
# that. client-go asks for 5-10 min and finds dead connections with HTTP/2 pings (about 45 s); over
# HTTP/1.1 the deadline is the ping: a cut watch is found in 30-70 s, not at the 90 s inactivity
# timeout, for one cheap re-watch from the watch cache per informer every 30-60 s.
MIN_WATCH_TIMEOUT = 30
DEADLINE_GRACE = 10.0
VERY_SHORT_WATCH = 1.0  # a watch that ends this fast with no events is an error, not a clean close


class VeryShortWatchError(Exception):
    pass


class Sink(Protocol):
    """Where the reflector delivers what it sees (the informer)."""

    def replace(self, items: list[Obj], resource_version: str) -> None: ...
    def added(self, obj: Obj) -> None: ...
    def modified(self, obj: Obj) -> None: ...
    def deleted(self, obj: Obj) -> None: ...
    def bookmark(self, resource_version: str) -> None: ...


@dataclass
class Backoff:
    """Exponential backoff with jitter (0.8 s doubling, capped at 30 s, each sleep in [d, 2d)), reset
    once the last failure is ``reset_after`` seconds old."""

    initial: float = 0.8
    factor: float = 2.0
    jitter: float = 1.0
    cap: float = 30.0
    reset_after: float = 120.0
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        self._duration = self.initial
        self._last: float | None = None

    def next(self) -> float:
        now = self.clock()
        if self._last is None or now - self._last > self.reset_after:
            self._duration = self.initial
        self._last = now
        d = self._duration
        self._duration = min(self._duration * self.factor, self.cap)
        return d + d * self.jitter * self.rand()


class Reflector:
    def __init__(
        self,
        client: Client,
        resource: Resource,
        sink: Sink,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        min_watch_timeout: int = MIN_WATCH_TIMEOUT,
        read_timeout: float = 90.0,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.resource = resource
        self.sink = sink
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.page_size = page_size
        self.min_watch_timeout = min_watch_timeout
        self.read_timeout = read_timeout
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._rand = rand
        self.last_sync_rv = ""
        self._rv_unavailable = False
        self._listed_once = False
        # Observability for tests and debugging: how often each thing happened.
        self.lists = 0
        self.watches = 0

    @property
    def name(self) -> str:
        scope = f" in {self.namespace}" if self.namespace else ""
        sel = f" [{self.label_selector}]" if self.label_selector else ""
        return f"{self.resource}{scope}{sel}"

    async def run(self) -> None:
        """List and watch until cancelled; every failure backs off and relists."""
        while True:
            try:
                await self.list_and_watch()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("reflector %s: %s: %s; relisting after backoff", self.name, type(e).__name__, e)
            await self._sleep(self.backoff.next())

    def _relist_rv(self) -> str:
        if self._rv_unavailable:
            return ""  # a consistent read from etcd
        if not self._listed_once:
            return "0"  # served by the apiserver's watch cache
        return self.last_sync_rv

    async def _list(self) -> None:
        rv = self._relist_rv()
        try:
            items, list_rv = await self._list_at(rv)
        except (Gone, Timeout) as e:
            if isinstance(e, Timeout) and "too large" not in e.message.lower():
                raise
            # The RV we asked for is compacted (or ahead of the server): retry once, consistently.
            self._rv_unavailable = True
            items, list_rv = await self._list_at("")
        self.lists += 1
        self.sink.replace(items, list_rv)
        self.last_sync_rv = list_rv
        self._rv_unavailable = False
        self._listed_once = True

    async def _list_at(self, rv: str) -> tuple[list[Obj], str]:
        # Paging only when the server would read from etcd anyway; a specific RV is served whole
        # from the watch cache.
        limit = self.page_size if rv in ("", "0") else 0
        result = await self.client.list(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            resource_version=rv,
            limit=limit,
            timeout=120.0,
        )
        return result["items"], str(result["metadata"].get("resourceVersion") or "")

    async def list_and_watch(self) -> None:
        await self._list()
        while True:
            try:
                await self._watch_once()
            except (TooManyRequests, ConnectionFailed) as e:
                log.info("reflector %s: watch failed (%s); retrying from RV %s", self.name, e, self.last_sync_rv)
                await self._sleep(self.backoff.next())
            except WatchStalled as e:
                # Silent for read_timeout, or open past its deadline: the stream is presumed dead (a
                # half-open connection). Resume from the last RV; nothing was missed that a watch won't replay.
                log.warning("reflector %s: %s; restarting the watch", self.name, e)

    async def _watch_once(self) -> None:
        timeout = int(self.min_watch_timeout * (1 + self._rand()))
        started = time.monotonic()
        events = 0
        self.watches += 1
        stream = self.client.watch(
            self.resource,
            self.namespace,
            resource_version=self.last_sync_rv,
            timeout_seconds=timeout,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            allow_bookmarks=True,
            read_timeout=self.read_timeout,
            deadline=timeout + DEADLINE_GRACE,
        )
        try:
            async with contextlib.aclosing(stream):
                async for ev in stream:
                    events += 1
                    self._handle(ev)
        except WatchStalled:
            raise
        except Timeout as e:
            # The server answering 504 (e.g. "too large resource version") before any event: back off
            # and relist rather than re-watching in a tight loop.
            if events == 0:
                raise VeryShortWatchError(f"watch of {self.name} failed before any event: {e}") from e
            raise
        if events == 0 and time.monotonic() - started < VERY_SHORT_WATCH:
            raise VeryShortWatchError(f"watch of {self.name} closed at once with no events")

    def _handle(self, ev: Obj) -> None:
        kind, obj = ev.get("type"), ev.get("object") or {}
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind == "ADDED":
            self.sink.added(obj)
        elif kind == "MODIFIED":
            self.sink.modified(obj)
        elif kind == "DELETED":
            self.sink.deleted(obj)
        elif kind == "BOOKMARK":
            self.sink.bookmark(rv)
        else:
            log.warning("reflector %s: unknown watch event type %r", self.name, kind)
            return
        if rv:
            self.last_sync_rv = rv
