"""Informer unit tests: store + inline handler notification, late handlers, handler failures,
resync, transforms and sync state, driven through a scripted fake client (no API server)."""

from __future__ import annotations

import asyncio
import copy
import functools
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from internal.client.resources import PODS
from internal.informer import DeletedFinalStateUnknown, HandlerFuncs, Informer, Reflector
from internal.informer.informer import DEFAULT_RESYNC, strip_managed_fields

# ---- scripted fake client (same contract as in test_reflector_unit.py) ---------------------------

FOREVER = "forever"


@dataclass
class Call:
    verb: str
    namespace: str | None
    kw: dict[str, Any]


@dataclass
class FakeClient:
    """``list``/``watch`` that record arguments and play back a script; an exhausted script blocks."""

    lists: deque[Any] = field(default_factory=deque)
    watches: deque[list[Any]] = field(default_factory=deque)
    calls: list[Call] = field(default_factory=list)

    def of(self, verb: str) -> list[Call]:
        return [c for c in self.calls if c.verb == verb]

    async def list(self, resource: Any, namespace: str | None = None, **kw: Any) -> dict[str, Any]:
        self.calls.append(Call("list", namespace, kw))
        await asyncio.sleep(0)
        if not self.lists:
            await asyncio.Event().wait()
        r = self.lists.popleft()
        if isinstance(r, asyncio.Event):  # a gate before the answer
            await r.wait()
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


def pod(name: str, rv: str, ns: str = "default", **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv, **meta}, "spec": {}}


def listing(rv: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": rv}, "items": list(items)}


def ev(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


async def no_sleep(d: float) -> None:
    await asyncio.sleep(0)


async def wait_until(pred: Callable[[], bool], timeout: float = 2.0) -> None:
    async def poll() -> None:
        while not pred():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), timeout)


class Recorder:
    """An EventHandler that records every call as a tuple of names and flags."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = fail

    def on_add(self, obj: dict[str, Any], initial: bool) -> None:
        self.calls.append(("add", obj["metadata"]["name"], initial))
        if self.fail:
            raise RuntimeError("handler bug")

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.calls.append(("update", new["metadata"]["name"], old is new))
        if self.fail:
            raise RuntimeError("handler bug")

    def on_delete(self, obj: Any) -> None:
        name = obj.key if isinstance(obj, DeletedFinalStateUnknown) else obj["metadata"]["name"]
        self.calls.append(("delete", name))
        if self.fail:
            raise RuntimeError("handler bug")


class InformerEnv:
    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def make(self, client: FakeClient, **kw: Any) -> Informer:
        kw.setdefault("resync_period", None)
        return Informer(
            client,  # type: ignore[arg-type]
            PODS,
            reflector_factory=functools.partial(Reflector, sleep=no_sleep, rand=lambda: 0.0),
            **kw,
        )

    def start(self, inf: Informer) -> asyncio.Task[None]:
        t = asyncio.create_task(inf.run())
        self.tasks.append(t)
        return t


@pytest.fixture
async def inf_env() -> AsyncIterator[InformerEnv]:
    env = InformerEnv()
    yield env
    for t in env.tasks:
        t.cancel()
    for t in env.tasks:
        with pytest.raises(asyncio.CancelledError):
            await t


# ---- sync state ----------------------------------------------------------------------------------


async def test_has_synced_and_wait_for_sync(inf_env: InformerEnv) -> None:
    gate = asyncio.Event()
    client = FakeClient()
    client.lists.extend([gate, listing("10", pod("a", "1"))])
    inf = inf_env.make(client)
    assert not inf.has_synced()
    inf_env.start(inf)
    await wait_until(lambda: len(client.of("list")) == 1)
    with pytest.raises(TimeoutError):
        await inf.wait_for_sync(timeout=0.01)  # the list is still in flight
    assert not inf.has_synced()
    gate.set()
    await inf.wait_for_sync(timeout=2)
    assert inf.has_synced()
    assert [o["metadata"]["name"] for o in inf.list()] == ["a"]


async def test_empty_list_still_syncs(inf_env: InformerEnv) -> None:
    client = FakeClient()
    client.lists.append(listing("10"))
    inf = inf_env.make(client)
    reg = inf.add_event_handler(Recorder())
    inf_env.start(inf)
    await inf.wait_for_sync(timeout=2)
    assert inf.has_synced() and reg.has_synced()
    assert inf.list() == []


# ---- handlers ------------------------------------------------------------------------------------


async def test_initial_list_and_live_events_reach_handlers(inf_env: InformerEnv) -> None:
    client = FakeClient()
    client.lists.append(listing("10", pod("a", "1"), pod("b", "2")))
    client.watches.append(
        [
            ev("ADDED", pod("c", "11")),
            ev("MODIFIED", pod("a", "12")),
            ev("DELETED", pod("b", "13")),
            ev("DELETED", pod("zz", "14")),  # never known: dropped
            FOREVER,
        ]
    )
    inf = inf_env.make(client)
    rec = Recorder()
    reg = inf.add_event_handler(rec)
    assert not reg.has_synced()
    inf_env.start(inf)
    await wait_until(lambda: len(rec.calls) == 5)
    assert reg.has_synced()
    assert rec.calls == [
        ("add", "a", True),
        ("add", "b", True),
        ("add", "c", False),
        ("update", "a", False),
        ("delete", "b"),
    ]
    assert inf.get("default/b") is None
    assert inf.get("default/a")["metadata"]["resourceVersion"] == "12"  # type: ignore[index]


async def test_watch_delete_hands_over_the_final_object_not_a_tombstone(inf_env: InformerEnv) -> None:
    client = FakeClient()
    client.lists.append(listing("10", pod("a", "1")))
    client.watches.append([ev("DELETED", pod("a", "20", labels={"final": "yes"})), FOREVER])
    inf = inf_env.make(client)
    got: list[Any] = []
    inf.add_event_handler(HandlerFuncs(delete=got.append))
    inf_env.start(inf)
    await wait_until(lambda: len(got) == 1)
    assert not isinstance(got[0], DeletedFinalStateUnknown)
    assert got[0]["metadata"]["labels"] == {"final": "yes"}


async def test_late_handler_gets_initial_adds_for_every_cached_object_before_live_events(
    inf_env: InformerEnv,
) -> None:
    gate = asyncio.Event()
    client = FakeClient()
    client.lists.append(listing("10", pod("a", "1"), pod("b", "2"), pod("c", "3")))
    client.watches.append([gate, ev("ADDED", pod("d", "11")), ev("MODIFIED", pod("a", "12")), FOREVER])
    inf = inf_env.make(client)
    early = Recorder()
    inf.add_event_handler(early)
    inf_env.start(inf)
    await inf.wait_for_sync(timeout=2)

    late = Recorder()
    reg = inf.add_event_handler(late)
    # Delivered inline before registration returns, so the registration is synced at once.
    assert sorted(late.calls) == [("add", "a", True), ("add", "b", True), ("add", "c", True)]
    assert reg.has_synced()

    gate.set()
    await wait_until(lambda: len(late.calls) == 5)
    assert late.calls[3:] == [("add", "d", False), ("update", "a", False)]
    assert early.calls[3:] == late.calls[3:]


async def test_removed_handler_gets_nothing_more(inf_env: InformerEnv) -> None:
    gate = asyncio.Event()
    client = FakeClient()
    client.lists.append(listing("10", pod("a", "1")))
    client.watches.append([gate, ev("ADDED", pod("b", "11")), FOREVER])
    inf = inf_env.make(client)
    gone, kept = Recorder(), Recorder()
    reg = inf.add_event_handler(gone)
    inf.add_event_handler(kept)
    inf_env.start(inf)
    await inf.wait_for_sync(timeout=2)
    inf.remove_event_handler(reg)
    gate.set()
    await wait_until(lambda: len(kept.calls) == 2)
    assert gone.calls == [("add", "a", True)]


async def test_handler_exception_does_not_stop_other_handlers_and_is_counted(inf_env: InformerEnv) -> None:
    client = FakeClient()
    client.lists.append(listing("10", pod("a", "1"), pod("b", "2")))
    client.watches.append([ev("MODIFIED", pod("a", "11")), ev("DELETED", pod("b", "12")), FOREVER])
    inf = inf_env.make(client)
    bad, good = Recorder(fail=True), Recorder()
    inf.add_event_handler(bad)
    inf.add_event_handler(good)
    inf_env.start(inf)
    await wait_until(lambda: len(good.calls) == 4)
    assert good.calls == [("add", "a", True), ("add", "b", True), ("update", "a", False), ("delete", "b")]
    assert bad.calls == good.calls  # the failing handler kept being called too
    assert inf.handler_errors == 4
    # The store is unaffected by handler failures.
    assert [o["metadata"]["name"] for o in inf.list()] == ["a"]


async def test_late_handler_failing_on_initial_adds_is_counted_and_still_registered(
    inf_env: InformerEnv,
) -> None:
    client = FakeClient()
    client.lists.append(listing("10", pod("a", "1"), pod("b", "2")))
    inf = inf_env.make(client)
    inf_env.start(inf)
    await inf.wait_for_sync(timeout=2)
    bad = Recorder(fail=True)
    inf.add_event_handler(bad)
    assert len(bad.calls) == 2
    assert inf.handler_errors == 2


# ---- resync --------------------------------------------------------------------------------------


async def test_resync_delivers_update_obj_obj_for_every_cached_object(inf_env: InformerEnv) -> None:
    client = FakeClient()
    client.lists.append(listing("10", pod("a", "1"), pod("b", "2")))
    inf = inf_env.make(client)
    rec = Recorder()
    inf.add_event_handler(rec)
    inf_env.start(inf)
    await inf.wait_for_sync(timeout=2)
    n_list = len(client.calls)

    task = asyncio.create_task(inf._resync_loop(0))  # period 0: every loop turn is a resync
    try:
        await wait_until(lambda: len(rec.calls) >= 6)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    resyncs = rec.calls[2:]
    assert all(c[0] == "update" and c[2] is True for c in resyncs)  # on_update(obj, obj): same object
    assert resyncs[:4] == [("update", "a", True), ("update", "b", True)] * 2
    assert len(client.calls) == n_list  # a resync never contacts the server


async def test_resync_waits_for_sync(inf_env: InformerEnv) -> None:
    client = FakeClient()  # the list never answers
    inf = inf_env.make(client)
    rec = Recorder()
    inf.add_event_handler(rec)
    inf_env.start(inf)
    task = asyncio.create_task(inf._resync_loop(0))
    try:
        for _ in range(50):
            await asyncio.sleep(0)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert rec.calls == []


def test_resync_period_is_jittered_per_informer_within_10_percent() -> None:
    periods = [
        Informer(FakeClient(), PODS, resync_period=100.0).resync_period  # type: ignore[arg-type]
        for _ in range(200)
    ]
    assert all(p is not None and 90.0 <= p <= 110.0 for p in periods)
    assert len(set(periods)) > 1
    assert DEFAULT_RESYNC == 10 * 3600.0
    assert Informer(FakeClient(), PODS, resync_period=None).resync_period is None  # type: ignore[arg-type]


# ---- transform -----------------------------------------------------------------------------------


MF = [{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]


async def test_managed_fields_are_stripped_by_default(inf_env: InformerEnv) -> None:
    client = FakeClient()
    client.lists.append(listing("10", pod("a", "1", managedFields=MF)))
    client.watches.append([ev("ADDED", pod("b", "11", managedFields=MF)), FOREVER])
    inf = inf_env.make(client)
    seen: list[dict[str, Any]] = []
    inf.add_event_handler(HandlerFuncs(add=lambda o, i: seen.append(o)))
    inf_env.start(inf)
    await wait_until(lambda: len(seen) == 2)
    for o in [*seen, *inf.list()]:
        assert "managedFields" not in o["metadata"]
        assert o["metadata"]["resourceVersion"]


async def test_transform_none_keeps_managed_fields(inf_env: InformerEnv) -> None:
    client = FakeClient()
    client.lists.append(listing("10", pod("a", "1", managedFields=MF)))
    inf = inf_env.make(client, transform=None)
    inf_env.start(inf)
    await inf.wait_for_sync(timeout=2)
    assert inf.list()[0]["metadata"]["managedFields"] == MF


def test_strip_managed_fields_tolerates_missing_metadata() -> None:
    assert strip_managed_fields({"kind": "X"}) == {"kind": "X"}
    assert strip_managed_fields({"metadata": {"name": "a", "managedFields": []}}) == {"metadata": {"name": "a"}}


# ---- replace (relist) directly -------------------------------------------------------------------


def test_replace_after_sync_orders_deletes_first_and_skips_unchanged() -> None:
    inf = Informer(FakeClient(), PODS, resync_period=None)  # type: ignore[arg-type]
    rec = Recorder()
    inf.add_event_handler(rec)
    inf.replace([pod("a", "1"), pod("b", "2"), pod("c", "3")], "10")
    assert rec.calls == [("add", "a", True), ("add", "b", True), ("add", "c", True)]
    rec.calls.clear()
    inf.replace([pod("c", "30"), pod("b", "2"), pod("d", "4")], "40")
    assert rec.calls == [("delete", "default/a"), ("update", "c", False), ("add", "d", False)]
    assert sorted(inf.indexer.list_keys()) == ["default/b", "default/c", "default/d"]
