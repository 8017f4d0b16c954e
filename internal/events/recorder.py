"""An events.k8s.io/v1 event recorder (client-go ``tools/events`` with controller-runtime's naming).

``event()`` is synchronous and never blocks: it builds the Event, applies a per-object spam
filter, and puts it on a bounded queue (dropped and counted when full). ``run()`` drains the
queue: the first occurrence of an event is created; an isomorphic one (same type, action,
reason, reporting controller/instance, regarding and related) seen again before the series
finished becomes ``series{count, lastObservedTime}`` — the second occurrence patches count 2 at
once, later counts are kept in memory and written every ``refresh_interval``, when the series
finishes (``finish_time`` idle) and at shutdown.

Not thread-safe: call ``event()`` from the event loop that runs ``run()``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter

from internal.client import errors
from internal.client.client import ConnectionFailed
from internal.client.resources import EVENTS, Resource

log = logging.getLogger("kuberay.events")

Obj = dict[str, Any]

NORMAL = "Normal"
WARNING = "Warning"

MAX_QUEUED_EVENTS = 1000
MAX_TRIES_PER_EVENT = 12
RETRY_INTERVAL = 10.0
RETRY_JITTER = 0.25
REFRESH_TIME = 30 * 60.0
FINISH_TIME = 6 * 60.0
SPAM_BURST = 25
SPAM_REFILL_INTERVAL = 300.0
SPAM_CACHE_SIZE = 4096
SERIES_CACHE_SIZE = 4096
MAX_INFLIGHT = 64
NOTE_LENGTH_LIMIT = 1024  # bytes
REASON_LENGTH_LIMIT = 128
ACTION_LENGTH_LIMIT = 128
REPORTING_INSTANCE_LENGTH_LIMIT = 128
NAME_LENGTH_LIMIT = 253


class EventsClient(Protocol):
    """The part of :class:`internal.client.Client` the recorder uses."""

    async def create(
        self,
        res: Resource,
        obj: Obj,
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        timeout: float | None = None,
    ) -> Obj:
        """POST one object."""

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: Any = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        timeout: float | None = None,
    ) -> Obj:
        """PATCH one object."""


def format_micro_time(dt: datetime) -> str:
    """A metav1.MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def object_reference(obj: Mapping[str, Any]) -> Obj:
    """A core/v1 ObjectReference for an object dict (client-go ``reference.GetReference``)."""
    meta = obj.get("metadata") or {}
    ref: Obj = {}
    for key, value in (
        ("apiVersion", obj.get("apiVersion")),
        ("kind", obj.get("kind")),
        ("namespace", meta.get("namespace")),
        ("name", meta.get("name")),
        ("uid", meta.get("uid")),
        ("resourceVersion", meta.get("resourceVersion")),
    ):
        if value:
            ref[key] = value
    return ref


def truncate_utf8(text: str, limit: int, suffix: str = "...") -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (ending in ``suffix`` when cut)."""
    data = text.encode()
    if len(data) <= limit:
        return text
    keep = data[: max(limit - len(suffix.encode()), 0)].decode(errors="ignore")
    return keep + suffix


def reporting_instance_for(controller: str, hostname: str | None = None) -> str:
    """controller-runtime's ``<controller>-<hostname>``, cut to 128 characters."""
    host = socket.gethostname() if hostname is None else hostname
    return f"{controller}-{host}"[:REPORTING_INSTANCE_LENGTH_LIMIT]


def _ref_key(ref: Mapping[str, Any] | None) -> tuple[str, ...]:
    ref = ref or {}
    return tuple(
        str(ref.get(k) or "")
        for k in ("apiVersion", "kind", "namespace", "name", "uid", "resourceVersion", "fieldPath")
    )


@dataclass(frozen=True, slots=True)
class IsomorphicKey:
    """Events with equal keys are one series."""

    type: str
    action: str
    reason: str
    reporting_controller: str
    reporting_instance: str
    regarding: tuple[str, ...]
    related: tuple[str, ...]

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> IsomorphicKey:
        return cls(
            type=str(event.get("type") or ""),
            action=str(event.get("action") or ""),
            reason=str(event.get("reason") or ""),
            reporting_controller=str(event.get("reportingController") or ""),
            reporting_instance=str(event.get("reportingInstance") or ""),
            regarding=_ref_key(event.get("regarding")),
            related=_ref_key(event.get("related")),
        )


class SpamFilter:
    """Per-(object, type) token buckets (client-go ``record.EventSourceObjectSpamFilter``): ``burst``
    events at once, then one more per ``refill_interval`` seconds. Buckets live in an LRU cache."""

    def __init__(
        self,
        burst: int = SPAM_BURST,
        refill_interval: float = SPAM_REFILL_INTERVAL,
        cache_size: int = SPAM_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.rate = 1.0 / refill_interval
        self.cache_size = cache_size
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, ...], tuple[float, float]] = OrderedDict()

    @staticmethod
    def key(regarding: Mapping[str, Any], type: str) -> tuple[str, ...]:
        # The object's identity without resourceVersion/fieldPath: every version shares the budget.
        return (
            *(str(regarding.get(k) or "") for k in ("apiVersion", "kind", "namespace", "name", "uid")),
            type,
        )

    def allow(self, key: tuple[str, ...]) -> bool:
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.cache_size:
            self._buckets.popitem(last=False)
        return allowed


@dataclass
class _Series:
    """An event as first recorded, and how often it has been seen since."""

    event: Obj
    last_seen: float  # monotonic
    count: int = 1
    written: int = 1  # the count the server has (or is being sent)
    pending: asyncio.Task[None] | None = None

    @property
    def dirty(self) -> bool:
        return self.count > self.written


@dataclass
class RecorderStats:
    accepted: int = 0
    dropped_queue_full: int = 0
    dropped_spam: int = 0
    dropped_invalid: int = 0
    created: int = 0
    patched: int = 0
    aggregated: int = 0  # occurrences folded into a series without a request of their own
    failed: int = 0  # gave up after the retries, or rejected by the server
    send_attempts: int = 0


def dropped_counter(registry: CollectorRegistry) -> Counter:
    """The drop counter, registered once per registry and shared by every recorder on it."""
    return Counter(
        "event_recorder_dropped_events_total",
        "Events the recorder dropped before sending, by reason (queue_full, spam, invalid).",
        ["controller", "reason"],
        registry=registry,
    )


class EventRecorder:
    """Writes events.k8s.io/v1 Events for one reporting controller."""

    def __init__(
        self,
        client: EventsClient,
        reporting_controller: str,
        *,
        reporting_instance: str | None = None,
        queue_size: int = MAX_QUEUED_EVENTS,
        max_tries: int = MAX_TRIES_PER_EVENT,
        retry_interval: float = RETRY_INTERVAL,
        retry_jitter: float = RETRY_JITTER,
        refresh_interval: float = REFRESH_TIME,
        finish_time: float = FINISH_TIME,
        spam_burst: int = SPAM_BURST,
        spam_refill_interval: float = SPAM_REFILL_INTERVAL,
        series_cache_size: int = SERIES_CACHE_SIZE,
        max_inflight: int = MAX_INFLIGHT,
        request_timeout: float | None = None,
        shutdown_timeout: float = 5.0,
        registry: CollectorRegistry | None = None,
        dropped: Counter | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not reporting_controller:
            raise ValueError("reporting_controller must not be empty")
        if queue_size < 1 or max_tries < 1 or max_inflight < 1:
            raise ValueError("queue_size, max_tries and max_inflight must be positive")
        self.client = client
        self.reporting_controller = reporting_controller
        self.reporting_instance = (reporting_instance or reporting_instance_for(reporting_controller))[
            :REPORTING_INSTANCE_LENGTH_LIMIT
        ]
        self.max_tries = max_tries
        self.retry_interval = retry_interval
        self.retry_jitter = retry_jitter
        self.refresh_interval = refresh_interval
        self.finish_time = finish_time
        self.series_cache_size = series_cache_size
        self.request_timeout = request_timeout
        self.shutdown_timeout = shutdown_timeout
        self.stats = RecorderStats()
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._rand = rand
        self._queue: asyncio.Queue[Obj] = asyncio.Queue(maxsize=queue_size)
        self._spam = SpamFilter(spam_burst, spam_refill_interval, clock=clock)
        self._series: OrderedDict[IsomorphicKey, _Series] = OrderedDict()
        self.max_inflight = max_inflight
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_name_ns = 0
        self._dropped: Counter | None = dropped_counter(registry) if registry is not None else dropped

    # ---- producing (synchronous, never blocks) -----------------------------------------------------

    def event(
        self,
        obj: Mapping[str, Any],
        type: str,
        reason: str,
        note: str,
        *,
        action: str | None = None,
        related: Mapping[str, Any] | None = None,
    ) -> bool:
        """Queue an event about ``obj`` (an object dict); False if it was dropped.

        ``action`` defaults to ``reason``. ``related`` is an optional second object dict."""
        if type not in (NORMAL, WARNING):
            log.error("unsupported event type %r (reason %s): dropped", type, reason)
            self._count_drop("invalid")
            return False
        regarding = object_reference(obj)
        if not regarding.get("name") or not reason:
            log.error("event without an object name or a reason (%r, %r): dropped", regarding, reason)
            self._count_drop("invalid")
            return False
        if not self._spam.allow(SpamFilter.key(regarding, type)):
            self._count_drop("spam")
            return False
        ev = self._make_event(regarding, related=related, type=type, reason=reason, action=action or reason, note=note)
        try:
            self._queue.put_nowait(ev)
        except asyncio.QueueFull:
            self._count_drop("queue_full")
            return False
        self.stats.accepted += 1
        return True

    def eventf(self, obj: Mapping[str, Any], type: str, reason: str, fmt: str, *args: Any, **kw: Any) -> bool:
        return self.event(obj, type, reason, fmt % args if args else fmt, **kw)

    def _count_drop(self, why: str) -> None:
        if why == "spam":
            self.stats.dropped_spam += 1
        elif why == "queue_full":
            self.stats.dropped_queue_full += 1
        else:
            self.stats.dropped_invalid += 1
        if self._dropped is not None:
            self._dropped.labels(self.reporting_controller, why).inc()

    def _event_name(self, object_name: str) -> str:
        ns = max(time.time_ns(), self._last_name_ns + 1)
        self._last_name_ns = ns
        suffix = f".{ns:x}"
        return object_name[: NAME_LENGTH_LIMIT - len(suffix)] + suffix

    def _make_event(
        self,
        regarding: Obj,
        *,
        related: Mapping[str, Any] | None,
        type: str,
        reason: str,
        action: str,
        note: str,
    ) -> Obj:
        ev: Obj = {
            "apiVersion": EVENTS.api_version,
            "kind": EVENTS.kind,
            "metadata": {
                "name": self._event_name(regarding["name"]),
                # Cluster-scoped objects' events live in "default", as upstream.
                "namespace": regarding.get("namespace") or "default",
            },
            "eventTime": format_micro_time(self._wall_clock()),
            "reportingController": self.reporting_controller,
            "reportingInstance": self.reporting_instance,
            "action": action[:ACTION_LENGTH_LIMIT],
            "reason": reason[:REASON_LENGTH_LIMIT],
            "regarding": regarding,
            "note": truncate_utf8(note, NOTE_LENGTH_LIMIT),
            "type": type,
        }
        if related is not None:
            rel = object_reference(related)
            if rel:
                ev["related"] = rel
        return ev

    # ---- aggregation (in the run() task, in arrival order) -----------------------------------------

    def _observe(self, ev: Obj) -> None:
        """Decide what one dequeued event costs: a create, the count-2 patch, or nothing yet."""
        key = IsomorphicKey.of(ev)
        now = self._clock()
        entry = self._series.get(key)
        if entry is not None and now - entry.last_seen > self.finish_time:
            self._finish(key, entry)
            entry = None
        if entry is None:
            entry = _Series(event=ev, last_seen=now)
            self._series[key] = entry
            self._evict()
            self._send(entry, copy.deepcopy(ev))
            return
        self._series.move_to_end(key)
        entry.last_seen = now
        entry.count += 1
        entry.event["series"] = {"count": entry.count, "lastObservedTime": format_micro_time(self._wall_clock())}
        if entry.count == 2:
            entry.written = 2
            self._send(entry, copy.deepcopy(entry.event))
        else:
            self.stats.aggregated += 1

    def _finish(self, key: IsomorphicKey, entry: _Series) -> None:
        """End a series: write its final count if the server has an older one, and forget it."""
        self._series.pop(key, None)
        if entry.dirty:
            entry.written = entry.count
            self._send(entry, copy.deepcopy(entry.event))

    def _evict(self) -> None:
        while len(self._series) > self.series_cache_size:
            key, oldest = next(iter(self._series.items()))
            self._finish(key, oldest)

    def sweep(self) -> None:
        """Finish every series idle for longer than ``finish_time`` (client-go ``finishSeries``)."""
        now = self._clock()
        for key, entry in list(self._series.items()):
            if now - entry.last_seen > self.finish_time:
                self._finish(key, entry)

    def refresh(self) -> None:
        """Write the current count of every series whose count moved since it was last written."""
        for entry in list(self._series.values()):
            if entry.dirty:
                entry.written = entry.count
                self._send(entry, copy.deepcopy(entry.event))

    async def flush(self) -> None:
        """Refresh every series now and wait until all queued and in-flight writes are done."""
        while not self._queue.empty():
            self._observe(self._queue.get_nowait())
        self.refresh()
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    # ---- sending ----------------------------------------------------------------------------------

    def _send(self, entry: _Series, ev: Obj) -> None:
        previous = entry.pending
        task = asyncio.create_task(self._send_after(previous, ev), name="event-send")
        entry.pending = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_after(self, previous: asyncio.Task[None] | None, ev: Obj) -> None:
        # Writes for one series go out in order, so a count-2 patch never races the create.
        if previous is not None and not previous.done():
            await asyncio.wait({previous})
        await self._attempt(ev, self.max_tries)

    def _retry_delay(self) -> float:
        return self.retry_interval * (1 + self.retry_jitter * (2 * self._rand() - 1))

    async def _attempt(self, ev: Obj, tries: int) -> None:
        for attempt in range(1, tries + 1):
            retry = await self._record(ev)
            if not retry:
                return
            if attempt < tries:
                await self._sleep(self._retry_delay())
        self.stats.failed += 1
        log.error(
            "unable to write event %s/%s (retry limit exceeded)",
            ev["metadata"].get("namespace"),
            ev["metadata"].get("name"),
        )

    async def _record(self, ev: Obj) -> bool:
        """One try (client-go ``recordEvent``); True if it is worth trying again."""
        self.stats.send_attempts += 1
        meta = ev["metadata"]
        series = ev.get("series")
        try:
            if series is not None:
                try:
                    await self.client.patch(
                        EVENTS,
                        meta["name"],
                        {"series": series},
                        meta["namespace"],
                        patch_type="merge",
                        timeout=self.request_timeout,
                    )
                except errors.NotFound:
                    pass  # the event is gone (expired or never created): create it with its series
                else:
                    self.stats.patched += 1
                    return False
            body = copy.deepcopy(ev)
            body["metadata"].pop("resourceVersion", None)
            await self.client.create(EVENTS, body, meta["namespace"], timeout=self.request_timeout)
            self.stats.created += 1
            return False
        except errors.AlreadyExists:
            # Creating a series' event raced its own create: patching again will work.
            if series is not None:
                return True
            log.debug("event %s already exists: not retried", meta["name"])
            return False
        except (ConnectionFailed, errors.Timeout, errors.TooManyRequests, errors.ServerError) as e:
            log.warning("unable to write event %s (may retry): %s", meta["name"], e)
            return True
        except errors.ApiError as e:
            self.stats.failed += 1
            log.error("server rejected event %s (not retried): %s", meta["name"], e)
            return False

    # ---- the loop ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Send queued events until cancelled; then write what is pending, within shutdown_timeout."""
        ticker = asyncio.create_task(self._periodic(), name="event-series-refresh")
        try:
            while True:
                # Back-pressure: while max_inflight writes are pending (a slow or down server), stop
                # taking from the queue, so it is the bounded queue that fills, not memory.
                while len(self._tasks) >= self.max_inflight:
                    await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
                ev = await self._queue.get()
                self._observe(ev)
        finally:
            ticker.cancel()
            await asyncio.wait({ticker})
            await self._shutdown()

    async def _periodic(self) -> None:
        next_refresh = self._clock() + self.refresh_interval
        next_sweep = self._clock() + self.finish_time
        while True:
            now = self._clock()
            await self._sleep(max(min(next_refresh, next_sweep) - now, 0.0))
            now = self._clock()
            if now >= next_sweep:
                self.sweep()
                next_sweep = now + self.finish_time
            if now >= next_refresh:
                self.refresh()
                next_refresh = now + self.refresh_interval

    async def _shutdown(self) -> None:
        try:
            async with asyncio.timeout(self.shutdown_timeout):
                await self.flush()
        except TimeoutError:
            log.warning("event recorder: %d writes still pending at shutdown, abandoned", len(self._tasks))
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    @property
    def queued(self) -> int:
        return self._queue.qsize()


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    obj: Mapping[str, Any]
    type: str
    reason: str
    note: str
    action: str | None
    related: Mapping[str, Any] | None


class FakeRecorder:
    """An in-memory recorder for controller unit tests: ``events`` holds (type, reason, note) tuples."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.records: list[RecordedEvent] = []

    def event(
        self,
        obj: Mapping[str, Any],
        type: str,
        reason: str,
        note: str,
        *,
        action: str | None = None,
        related: Mapping[str, Any] | None = None,
    ) -> bool:
        self.events.append((type, reason, note))
        self.records.append(RecordedEvent(obj, type, reason, note, action, related))
        return True

    def eventf(self, obj: Mapping[str, Any], type: str, reason: str, fmt: str, *args: Any, **kw: Any) -> bool:
        return self.event(obj, type, reason, fmt % args if args else fmt, **kw)

    def clear(self) -> None:
        self.events.clear()
        self.records.clear()


class Recorder(Protocol):
    """What controllers depend on: :class:`EventRecorder` or :class:`FakeRecorder`."""

    def event(
        self,
        obj: Mapping[str, Any],
        type: str,
        reason: str,
        note: str,
        *,
        action: str | None = None,
        related: Mapping[str, Any] | None = None,
    ) -> object: ...
