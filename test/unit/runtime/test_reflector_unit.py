"""Reflector unit tests: list-then-watch against a scripted fake client, with an injected sleep and
an injected Backoff clock/rand. No API server, no real sleeps, no wall-clock assertions."""

from __future__ import annotations

import asyncio
import copy
import functools
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from internal.client import ConnectionFailed, Gone, Timeout, TooManyRequests, WatchStalled
from internal.client.resources import PODS
from internal.informer import Backoff, DeletedFinalStateUnknown, HandlerFuncs, Informer, Reflector

# ---- scripted fake client ------------------------------------------------------------------------

FOREVER = "forever"  # a watch step (or an exhausted script) that blocks until cancelled


@dataclass
class Call:
    verb: str
    namespace: str | None
    kw: dict[str, Any]


@dataclass
class FakeClient:
    """Duck-typed ``list``/``watch``: records each call's arguments and plays back a script.

    A list script entry is a response dict or an exception; a watch script entry is a list of steps,
    each an event dict, an exception to raise, an ``asyncio.Event`` to wait for, or FOREVER. When a
    script runs out, the call blocks until cancelled, so a looping reflector parks instead of spinning.
    """

    lists: deque[Any] = field(default_factory=deque)
    watches: deque[list[Any]] = field(default_factory=deque)
    calls: list[Call] = field(default_factory=list)

    def verbs(self) -> list[str]:
        return [c.verb for c in self.calls]

    def of(self, verb: str) -> list[Call]:
        return [c for c in self.calls if c.verb == verb]

    async def list(self, resource: Any, namespace: str | None = None, **kw: Any) -> dict[str, Any]:
        self.calls.append(Call("list", namespace, kw))
        await asyncio.sleep(0)  # always yield, so a hot loop cannot starve the test's deadlines
        if not self.lists:
            await asyncio.Event().wait()
        r = self.lists.popleft()
        if isinstance(r, BaseException):
            raise r
        return copy.deepcopy(r)

    async def watch(self, resource: Any, namespace: str | None = None, **kw: Any) -> AsyncIterator[dict[str, Any]]:
        self.calls.append(Call("watch", namespace, kw))
        await asyncio.sleep(0)
        steps = self.watches.popleft() if self.watches else [FOREVER]
        for s in steps:
            if isinstance(s, BaseException):
                raise s
            if isinstance(s, asyncio.Event):
                await s.wait()
            elif s == FOREVER:
                await asyncio.Event().wait()
            else:
                yield copy.deepcopy(s)


def pod(name: str, rv: str, ns: str = "default", **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv, **extra}, "spec": {}}


def listing(rv: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": rv}, "items": list(items)}


def ev(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


def bookmark(rv: str) -> dict[str, Any]:
    return {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": rv}}}


class Sleeper:
    """The injected sleep: records each requested delay; returns at once unless ``gate`` is set,
    in which case it waits for the gate (so a test can freeze the reflector inside a backoff)."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, d: float) -> None:
        self.delays.append(d)
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()


class RecordingSink:
    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def replace(self, items: list[dict[str, Any]], resource_version: str) -> None:
        self.log.append(("replace", [i["metadata"]["name"] for i in items], resource_version))

    def added(self, obj: dict[str, Any]) -> None:
        self.log.append(("added", obj["metadata"]["name"]))

    def modified(self, obj: dict[str, Any]) -> None:
        self.log.append(("modified", obj["metadata"]["name"]))

    def deleted(self, obj: dict[str, Any]) -> None:
        self.log.append(("deleted", obj["metadata"]["name"]))

    def bookmark(self, resource_version: str) -> None:
        self.log.append(("bookmark", resource_version))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def wait_until(pred: Callable[[], bool], timeout: float = 2.0) -> None:
    async def poll() -> None:
        while not pred():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), timeout)


class ReflEnv:
    """Builds reflectors on fake clients; ``start()`` runs one as a task, cancelled at teardown."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def __call__(
        self, *, rand: float = 0.0, backoff: Backoff | None = None
    ) -> tuple[FakeClient, Reflector, RecordingSink, Sleeper]:
        client, sink, sleeper = FakeClient(), RecordingSink(), Sleeper()
        r = Reflector(
            client,  # type: ignore[arg-type]
            PODS,
            sink,
            namespace="default",
            sleep=sleeper,
            rand=lambda: rand,
            backoff=backoff or Backoff(clock=FakeClock(), rand=lambda: 0.0),
        )
        return client, r, sink, sleeper

    def start(self, r: Reflector) -> None:
        self.tasks.append(asyncio.create_task(r.run()))


@pytest.fixture
async def refl_env() -> AsyncIterator[ReflEnv]:
    env = ReflEnv()
    yield env
    for t in env.tasks:
        t.cancel()
    for t in env.tasks:
        with pytest.raises(asyncio.CancelledError):
            await t


# ---- start-up: LIST then WATCH -------------------------------------------------------------------


async def test_first_request_is_list_rv0_limit500_then_watch_from_list_rv(refl_env: ReflEnv) -> None:
    client, r, sink, sleeper = refl_env(rand=0.0)
    client.lists.append(listing("100", pod("a", "90"), pod("b", "95")))
    refl_env.start(r)
    await wait_until(lambda: len(client.calls) >= 2)

    first = client.calls[0]
    assert first.verb == "list"
    assert first.kw["resource_version"] == "0"
    assert first.kw["limit"] == 500
    assert first.namespace == "default"
    assert sink.log[0] == ("replace", ["a", "b"], "100")

    w = client.calls[1]
    assert w.verb == "watch"
    assert w.kw["resource_version"] == "100"
    assert w.kw["allow_bookmarks"] is True
    assert 30 <= w.kw["timeout_seconds"] < 60  # short: the deadline past it finds a cut connection
    assert r.last_sync_rv == "100"
    assert sleeper.delays == []


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999999])
async def test_watch_timeout_seconds_is_in_30_60(refl_env: ReflEnv, rand: float) -> None:
    client, r, _, _ = refl_env(rand=rand)
    client.lists.append(listing("1"))
    refl_env.start(r)
    await wait_until(lambda: len(client.of("watch")) == 1)
    t = client.of("watch")[0].kw["timeout_seconds"]
    assert isinstance(t, int)
    assert 30 <= t < 60
    assert t == int(30 * (1 + rand))


async def test_clean_close_rewatches_from_last_seen_rv_without_relist(refl_env: ReflEnv) -> None:
    client, r, sink, sleeper = refl_env()
    client.lists.append(listing("10", pod("a", "10")))
    client.watches.append([ev("ADDED", pod("b", "11")), ev("MODIFIED", pod("a", "12"))])  # then closes
    client.watches.append([ev("DELETED", pod("b", "13"))])  # closes again
    refl_env.start(r)
    await wait_until(lambda: len(client.of("watch")) == 3)

    assert client.verbs() == ["list", "watch", "watch", "watch"]
    assert [w.kw["resource_version"] for w in client.of("watch")] == ["10", "12", "13"]
    assert r.lists == 1
    assert sleeper.delays == []  # a clean close re-watches at once
    assert sink.log == [("replace", ["a"], "10"), ("added", "b"), ("modified", "a"), ("deleted", "b")]


async def test_bookmark_advances_rv_and_reaches_no_handler(refl_env: ReflEnv) -> None:
    client, r, sink, _ = refl_env()
    client.lists.append(listing("10", pod("a", "10")))
    client.watches.append([ev("MODIFIED", pod("a", "11")), bookmark("50")])
    refl_env.start(r)
    await wait_until(lambda: len(client.of("watch")) == 2)
    assert client.of("watch")[1].kw["resource_version"] == "50"
    assert r.last_sync_rv == "50"
    assert r.lists == 1
    # The sink is told (so it can record the RV) but the informer turns it into no handler call.
    assert sink.log[-1] == ("bookmark", "50")


async def test_bookmark_produces_no_handler_call_at_informer_level() -> None:
    client, sleeper = FakeClient(), Sleeper()
    client.lists.append(listing("10", pod("a", "10")))
    client.watches.append([bookmark("77")])
    inf = Informer(
        client,  # type: ignore[arg-type]
        PODS,
        resync_period=None,
        reflector_factory=functools.partial(Reflector, sleep=sleeper, rand=lambda: 0.0),
    )
    calls: list[str] = []
    inf.add_event_handler(
        HandlerFuncs(
            lambda o, i: calls.append("add"), lambda o, n: calls.append("update"), lambda o: calls.append("del")
        )
    )
    task = asyncio.create_task(inf.run())
    try:
        await wait_until(lambda: len(client.of("watch")) == 2)
        assert calls == ["add"]  # only the initial list's add
        assert client.of("watch")[1].kw["resource_version"] == "77"
        assert inf.last_sync_resource_version == "77"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# ---- 410 handling --------------------------------------------------------------------------------


async def test_gone_during_watch_backs_off_then_relists_at_last_synced_rv(refl_env: ReflEnv) -> None:
    client, r, sink, sleeper = refl_env()
    client.lists.append(listing("10", pod("a", "10")))
    client.watches.append([ev("MODIFIED", pod("a", "12")), Gone("too old resource version", reason="Expired")])
    client.lists.append(listing("20", pod("a", "19")))
    refl_env.start(r)
    await wait_until(lambda: len(client.of("watch")) == 2)

    assert client.verbs() == ["list", "watch", "list", "watch"]
    relist = client.of("list")[1]
    assert relist.kw["resource_version"] == "12"  # last synced, not "" (the watch path sets no flag)
    assert relist.kw["limit"] == 0  # a specific RV is served whole from the watch cache
    assert len(sleeper.delays) == 1  # one backoff step before relisting
    assert client.of("watch")[1].kw["resource_version"] == "20"
    assert sink.log == [("replace", ["a"], "10"), ("modified", "a"), ("replace", ["a"], "20")]


async def test_list_gone_is_retried_immediately_with_empty_rv(refl_env: ReflEnv) -> None:
    client, r, sink, sleeper = refl_env()
    client.lists.append(Gone("too old resource version", reason="Expired"))
    client.lists.append(listing("30", pod("a", "29")))
    refl_env.start(r)
    await wait_until(lambda: len(client.of("watch")) == 1)

    assert [c.kw["resource_version"] for c in client.of("list")] == ["0", ""]
    assert client.of("list")[1].kw["limit"] == 500
    assert sleeper.delays == []  # retried at once, no backoff
    assert sink.log == [("replace", ["a"], "30")]
    assert client.of("watch")[0].kw["resource_version"] == "30"


async def test_relist_after_watch_gone_answered_gone_retries_consistently(refl_env: ReflEnv) -> None:
    client, r, _, sleeper = refl_env()
    client.lists.append(listing("10"))
    client.watches.append([ev("ADDED", pod("a", "15")), Gone("gone")])
    client.lists.append(Gone("too old resource version", reason="Expired"))
    client.lists.append(listing("40", pod("a", "15")))
    refl_env.start(r)
    await wait_until(lambda: len(client.of("watch")) == 2)
    assert [c.kw["resource_version"] for c in client.of("list")] == ["0", "15", ""]
    assert len(sleeper.delays) == 1  # only the backoff after the watch's 410
    assert client.of("watch")[1].kw["resource_version"] == "40"


async def test_list_too_large_rv_is_retried_immediately_with_empty_rv(refl_env: ReflEnv) -> None:
    client, r, _, sleeper = refl_env()
    client.lists.append(Timeout("Too large resource version: 500, current: 100", reason="Timeout"))
    client.lists.append(listing("100"))
    refl_env.start(r)
    await wait_until(lambda: len(client.of("watch")) == 1)
    assert [c.kw["resource_version"] for c in client.of("list")] == ["0", ""]
    assert sleeper.delays == []


async def test_list_other_timeout_backs_off_and_relists(refl_env: ReflEnv) -> None:
    client, r, _, sleeper = refl_env()
    client.lists.append(Timeout("the server was slow", reason="Timeout"))
    client.lists.append(listing("100"))
    refl_env.start(r)
    await wait_until(lambda: len(client.of("watch")) == 1)
    assert [c.kw["resource_version"] for c in client.of("list")] == ["0", "0"]
    assert sleeper.delays == [0.8]


# ---- 429 / connection refused / silent stream ----------------------------------------------------


@pytest.mark.parametrize(
    "err",
    [TooManyRequests("slow down"), ConnectionFailed("connection refused")],
    ids=["429", "connection-refused"],
)
async def test_429_and_connection_refused_back_off_and_rewatch_same_rv(refl_env: ReflEnv, err: Exception) -> None:
    client, r, _, sleeper = refl_env()
    client.lists.append(listing("10"))
    client.watches.append([err])  # at watch start
    client.watches.append([ev("ADDED", pod("a", "11")), err])  # during the watch
    refl_env.start(r)
    await wait_until(lambda: len(client.of("watch")) == 3)

    assert client.verbs() == ["list", "watch", "watch", "watch"]  # no relist
    assert [w.kw["resource_version"] for w in client.of("watch")] == ["10", "10", "11"]
    assert sleeper.delays == [0.8, 1.6]


async def test_silent_stream_timeout_rewatches_from_same_rv(refl_env: ReflEnv) -> None:
    client, r, _, sleeper = refl_env()
    client.lists.append(listing("10"))
    client.watches.append([ev("ADDED", pod("a", "11")), WatchStalled("watch /api/v1/pods: silent for 90s")])
    refl_env.start(r)
    await wait_until(lambda: len(client.of("watch")) == 2)
    assert client.verbs() == ["list", "watch", "watch"]
    assert client.of("watch")[1].kw["resource_version"] == "11"
    assert client.of("watch")[0].kw["read_timeout"] == 90.0
    assert sleeper.delays == []


async def test_each_watch_has_a_deadline_past_its_server_timeout(refl_env: ReflEnv) -> None:
    """A half-open watch of a quiet resource is found by its deadline (the server was asked to close it
    by then), not only by the 90 s inactivity timeout."""
    client, r, _, sleeper = refl_env()
    client.lists.append(listing("10"))
    client.watches.append([WatchStalled("watch /api/v1/pods: open past its 40s deadline")])
    refl_env.start(r)
    await wait_until(lambda: len(client.of("watch")) == 2)
    for w in client.of("watch"):
        asked = w.kw["timeout_seconds"]
        assert 30 <= asked < 60
        assert w.kw["deadline"] == asked + 10
    assert client.verbs() == ["list", "watch", "watch"]  # re-watched at once, from the same RV, no relist
    assert client.of("watch")[1].kw["resource_version"] == "10"
    assert sleeper.delays == []


async def test_watch_answered_timeout_at_once_backs_off(refl_env: ReflEnv) -> None:
    """A 504 at watch start (no event at all) must not be retried in a tight loop."""
    client, r, _, sleeper = refl_env()
    sleeper.gate = asyncio.Event()
    client.lists.append(listing("10"))
    for _ in range(5):
        client.watches.append([Timeout("Too large resource version", reason="Timeout")])
    refl_env.start(r)
    await wait_until(lambda: len(sleeper.delays) == 1)
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(client.of("watch")) == 1  # parked in the backoff, not looping
    assert sleeper.delays == [0.8]


async def test_instantly_closed_empty_watch_backs_off_instead_of_hot_looping(refl_env: ReflEnv) -> None:
    client, r, _, sleeper = refl_env()
    sleeper.gate = asyncio.Event()
    client.lists.append(listing("10"))
    client.lists.append(listing("10"))
    client.watches.extend([[], [], []])  # each closes at once with no events
    refl_env.start(r)
    await wait_until(lambda: len(sleeper.delays) == 1)
    for _ in range(20):
        await asyncio.sleep(0)  # give a hot loop every chance to show itself
    assert client.verbs() == ["list", "watch"]
    assert sleeper.delays == [0.8]

    sleeper.gate.set()  # release: the next attempt relists (VeryShortWatchError is an ordinary error)
    await wait_until(lambda: len(client.of("list")) == 3)  # the third list has no script: it parks
    assert client.verbs() == ["list", "watch", "list", "watch", "list"]
    assert sleeper.delays == [0.8, 1.6]  # every instant close costs a (growing) backoff step


# ---- backoff -------------------------------------------------------------------------------------


def test_backoff_sequence_with_jitter_and_cap() -> None:
    clock = FakeClock()
    lo = Backoff(clock=clock, rand=lambda: 0.0)
    hi = Backoff(clock=clock, rand=lambda: 0.999999)
    expected = [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0, 30.0]
    got_lo = [lo.next() for _ in expected]
    got_hi = [hi.next() for _ in expected]
    assert got_lo == pytest.approx(expected)
    for d, s in zip(expected, got_hi, strict=True):
        assert d <= s < 2 * d  # every sleep in [d, 2d): [0.8,1.6), [1.6,3.2) … capped [30,60)


def test_backoff_resets_after_two_minutes_without_failures() -> None:
    clock = FakeClock()
    b = Backoff(clock=clock, rand=lambda: 0.0)
    assert [b.next() for _ in range(4)] == pytest.approx([0.8, 1.6, 3.2, 6.4])
    clock.now += 119.0  # not yet 2 min since the last failure
    assert b.next() == pytest.approx(12.8)
    clock.now += 121.0  # 2 min without a failure
    assert b.next() == pytest.approx(0.8)
    assert b.next() == pytest.approx(1.6)


async def test_repeated_watch_failures_sleep_along_the_backoff_sequence(refl_env: ReflEnv) -> None:
    clock = FakeClock()
    client, r, _, sleeper = refl_env(backoff=Backoff(clock=clock, rand=lambda: 0.5))
    client.lists.append(listing("10"))
    for _ in range(9):
        client.watches.append([TooManyRequests("slow down")])
    refl_env.start(r)
    await wait_until(lambda: len(sleeper.delays) == 9)
    bases = [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0, 30.0]
    assert sleeper.delays == pytest.approx([1.5 * d for d in bases])
    assert r.lists == 1
    assert {w.kw["resource_version"] for w in client.of("watch")} == {"10"}


async def test_repeated_list_failures_back_off_and_retry_forever(refl_env: ReflEnv) -> None:
    client, r, _, sleeper = refl_env()
    for _ in range(4):
        client.lists.append(ConnectionFailed("connection refused"))
    client.lists.append(listing("10"))
    refl_env.start(r)
    await wait_until(lambda: len(client.of("watch")) == 1)
    assert sleeper.delays == pytest.approx([0.8, 1.6, 3.2, 6.4])
    assert [c.kw["resource_version"] for c in client.of("list")] == ["0"] * 5


# ---- 410 relist at the informer level: tombstones, updates, adds ---------------------------------


async def test_relist_after_410_produces_tombstones_updates_and_adds() -> None:
    client, sleeper = FakeClient(), Sleeper()
    client.lists.append(listing("10", pod("a", "1"), pod("b", "2"), pod("c", "3")))
    client.watches.append([ev("MODIFIED", pod("b", "5")), Gone("too old resource version")])
    # While disconnected: a deleted, c changed, d created; b unchanged since the watch saw it.
    client.lists.append(listing("20", pod("b", "5"), pod("c", "8"), pod("d", "9")))
    inf = Informer(
        client,  # type: ignore[arg-type]
        PODS,
        resync_period=None,
        reflector_factory=functools.partial(Reflector, sleep=sleeper, rand=lambda: 0.0),
    )
    seen: list[tuple[Any, ...]] = []
    inf.add_event_handler(
        HandlerFuncs(
            add=lambda o, initial: seen.append(("add", o["metadata"]["name"], initial)),
            update=lambda old, new: seen.append(
                (
                    "update",
                    new["metadata"]["name"],
                    old["metadata"]["resourceVersion"],
                    new["metadata"]["resourceVersion"],
                )
            ),
            delete=lambda o: seen.append(("delete", o)),
        )
    )
    task = asyncio.create_task(inf.run())
    try:
        await wait_until(lambda: len(client.of("watch")) == 2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert client.of("list")[1].kw["resource_version"] == "5"
    initial = [("add", "a", True), ("add", "b", True), ("add", "c", True), ("update", "b", "2", "5")]
    assert seen[:4] == initial
    after = seen[4:]
    # Deletions first (as client-go's ReplacedAll), then updates/adds in list order.
    assert after[0][0] == "delete"
    tomb = after[0][1]
    assert isinstance(tomb, DeletedFinalStateUnknown)
    assert tomb.key == "default/a"
    assert tomb.obj["metadata"]["resourceVersion"] == "1"  # the last state this cache knew
    # b did not change (same RV): no notification, as client-go drops same-RV "sync" updates
    # for listeners not due for resync.
    assert after[1:] == [("update", "c", "3", "8"), ("add", "d", False)]
    # The cache equals the relist exactly: nothing lost, nothing duplicated.
    assert sorted((o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in inf.list()) == [
        ("b", "5"),
        ("c", "8"),
        ("d", "9"),
    ]
    assert inf.last_sync_resource_version == "20"
