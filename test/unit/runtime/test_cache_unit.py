"""Cache unit tests: read-only views, namespace/label/field-index lists, label-selected informers,
CacheNotStarted — all against a scripted fake client (no API server)."""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from internal.client import NotFound
from internal.client.resources import NODES, PODS
from internal.informer import (
    ByObject,
    Cache,
    CacheNotStarted,
    CacheOptions,
    FrozenDict,
    FrozenList,
    Indexer,
    Selector,
    thaw,
)
from internal.informer.store import field_index

FOREVER = "forever"


@dataclass
class Call:
    verb: str
    namespace: str | None
    kw: dict[str, Any]


@dataclass
class FakeClient:
    """``list``/``watch`` per namespace: each namespace (None = all) has its own script; an exhausted
    script blocks until cancelled."""

    lists: dict[str | None, deque[Any]] = field(default_factory=dict)
    watches: dict[str | None, deque[list[Any]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def of(self, verb: str) -> list[Call]:
        return [c for c in self.calls if c.verb == verb]

    async def list(self, resource: Any, namespace: str | None = None, **kw: Any) -> dict[str, Any]:
        self.calls.append(Call("list", namespace, kw))
        await asyncio.sleep(0)
        q = self.lists.get(namespace)
        if not q:
            await asyncio.Event().wait()
        assert q is not None
        r = q.popleft()
        if isinstance(r, BaseException):
            raise r
        return copy.deepcopy(r)

    async def watch(self, resource: Any, namespace: str | None = None, **kw: Any) -> AsyncIterator[dict[str, Any]]:
        self.calls.append(Call("watch", namespace, kw))
        await asyncio.sleep(0)
        q = self.watches.get(namespace)
        steps = q.popleft() if q else [FOREVER]
        for s in steps:
            if isinstance(s, BaseException):
                raise s
            if isinstance(s, asyncio.Event):
                await s.wait()
            elif s == FOREVER:
                await asyncio.Event().wait()
            else:
                yield copy.deepcopy(s)


def pod(name: str, ns: str = "default", rv: str = "1", labels: dict[str, str] | None = None, node: str = "") -> Any:
    return {
        "metadata": {"name": name, "namespace": ns, "resourceVersion": rv, "labels": labels or {}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "img:1", "env": [{"name": "A"}]}]},
    }


def listing(rv: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": rv}, "items": list(items)}


def ev(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


async def wait_until(pred: Callable[[], bool], timeout: float = 2.0) -> None:
    async def poll() -> None:
        while not pred():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), timeout)


def names(objs: list[FrozenDict]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)


class CacheEnv:
    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, cache: Cache, *resources: Any) -> None:
        for r in resources:
            cache.informers_for(r)
        self.tasks.append(asyncio.create_task(cache.run()))
        await cache.wait_for_sync(timeout=2)


@pytest.fixture
async def cache_env() -> AsyncIterator[CacheEnv]:
    env = CacheEnv()
    yield env
    for t in env.tasks:
        t.cancel()
    for t in env.tasks:
        with pytest.raises(asyncio.CancelledError):
            await t


POD_SET = [
    pod("web-1", "ns1", labels={"app": "web", "tier": "front"}, node="n1"),
    pod("web-2", "ns1", labels={"app": "web", "tier": "back"}, node="n2"),
    pod("db-1", "ns1", labels={"app": "db"}, node="n1"),
    pod("web-3", "ns2", labels={"app": "web", "tier": "front"}, node="n1"),
    pod("job-1", "ns2", labels={"app": "batch"}, node="n3"),
]


# ---- not started ---------------------------------------------------------------------------------


async def test_reads_before_start_raise_cache_not_started() -> None:
    cache = Cache(FakeClient())  # type: ignore[arg-type]
    with pytest.raises(CacheNotStarted):
        cache.get(PODS, "a", "default")
    with pytest.raises(CacheNotStarted):
        cache.list(PODS)


# ---- get: read-only views ------------------------------------------------------------------------


async def test_get_returns_read_only_views_and_thaw_gives_independent_copy(cache_env: CacheEnv) -> None:
    client = FakeClient()
    client.lists[None] = deque([listing("10", pod("a", "ns1", labels={"app": "web"}))])
    cache = Cache(client)  # type: ignore[arg-type]
    await cache_env.start(cache, PODS)

    obj = cache.get(PODS, "a", "ns1")
    assert isinstance(obj, FrozenDict)
    assert obj["metadata"]["labels"] == {"app": "web"}
    with pytest.raises(TypeError):
        obj["kind"] = "Pod"  # type: ignore[index]
    with pytest.raises(TypeError):
        del obj["metadata"]  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        obj["metadata"]["labels"]["app"] = "evil"
    containers = obj["spec"]["containers"]
    assert isinstance(containers, FrozenList)
    with pytest.raises(TypeError):
        containers[0] = {}
    with pytest.raises(TypeError):
        containers[0]["image"] = "evil:1"
    with pytest.raises(TypeError):
        containers[0]["env"][0]["value"] = "x"
    with pytest.raises(AttributeError):
        containers.append({})  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        obj["metadata"]["labels"].update({"x": "y"})
    # Views via .get/.items/.values are frozen too.
    assert isinstance(obj.get("metadata"), FrozenDict)
    assert all(isinstance(v, FrozenDict) for k, v in obj.items() if k in ("metadata", "spec"))

    copy_ = thaw(obj)
    assert isinstance(copy_, dict)
    assert isinstance(copy_["spec"]["containers"], list)
    copy_["metadata"]["labels"]["app"] = "changed"
    copy_["spec"]["containers"][0]["image"] = "img:2"
    copy_["spec"]["containers"].append({"name": "sidecar"})
    again = cache.get(PODS, "a", "ns1")
    assert again["metadata"]["labels"]["app"] == "web"
    assert again["spec"]["containers"][0]["image"] == "img:1"
    assert len(again["spec"]["containers"]) == 1
    assert thaw(again) == pod("a", "ns1", labels={"app": "web"})


async def test_get_missing_is_not_found(cache_env: CacheEnv) -> None:
    client = FakeClient()
    client.lists[None] = deque([listing("10", pod("a", "ns1"))])
    cache = Cache(client)  # type: ignore[arg-type]
    await cache_env.start(cache, PODS)
    with pytest.raises(NotFound):
        cache.get(PODS, "a", "ns2")
    with pytest.raises(NotFound):
        cache.get(PODS, "b", "ns1")


async def test_get_cluster_scoped(cache_env: CacheEnv) -> None:
    client = FakeClient()
    client.lists[None] = deque([listing("10", {"metadata": {"name": "n1", "resourceVersion": "3"}})])
    cache = Cache(client)  # type: ignore[arg-type]
    await cache_env.start(cache, NODES)
    assert cache.get(NODES, "n1")["metadata"]["resourceVersion"] == "3"


# ---- list ----------------------------------------------------------------------------------------


async def test_list_by_namespace_and_label_selector(cache_env: CacheEnv) -> None:
    client = FakeClient()
    client.lists[None] = deque([listing("10", *POD_SET)])
    cache = Cache(client)  # type: ignore[arg-type]
    await cache_env.start(cache, PODS)

    assert names(cache.list(PODS)) == ["db-1", "job-1", "web-1", "web-2", "web-3"]
    assert names(cache.list(PODS, "ns1")) == ["db-1", "web-1", "web-2"]
    assert names(cache.list(PODS, "nope")) == []
    assert all(isinstance(o, FrozenDict) for o in cache.list(PODS))
    # map form
    assert names(cache.list(PODS, labels={"app": "web"})) == ["web-1", "web-2", "web-3"]
    assert names(cache.list(PODS, "ns1", labels={"app": "web", "tier": "front"})) == ["web-1"]
    # string forms
    assert names(cache.list(PODS, labels="app=web,tier=front")) == ["web-1", "web-3"]
    assert names(cache.list(PODS, labels="app==db")) == ["db-1"]
    assert names(cache.list(PODS, labels="app in (db, batch)")) == ["db-1", "job-1"]
    assert names(cache.list(PODS, labels="app in (web),tier notin (back)")) == ["web-1", "web-3"]
    assert names(cache.list(PODS, "ns1", labels="app!=web")) == ["db-1"]
    assert names(cache.list(PODS, labels="tier")) == ["web-1", "web-2", "web-3"]
    assert names(cache.list(PODS, labels="!tier")) == ["db-1", "job-1"]
    assert names(cache.list(PODS, labels="")) == names(cache.list(PODS))


def test_selector_parse_and_match() -> None:
    sel = Selector.parse("app in (a,b), env!=prod,has,!gone")
    assert sel.matches({"app": "a", "has": ""})
    assert sel.matches({"app": "b", "env": "dev", "has": "1"})
    assert not sel.matches({"app": "c", "has": ""})
    assert not sel.matches({"app": "a", "env": "prod", "has": ""})
    assert not sel.matches({"app": "a"})
    assert not sel.matches({"app": "a", "has": "", "gone": "x"})
    assert Selector.parse(None).matches(None)
    assert str(Selector.from_labels({"b": "2", "a": "1"})) == "a=1,b=2"


async def test_field_index_within_namespace_and_across_namespaces_tracks_changes(cache_env: CacheEnv) -> None:
    gate = asyncio.Event()
    client = FakeClient()
    client.lists[None] = deque([listing("10", *POD_SET)])
    client.watches[None] = deque(
        [
            [
                gate,
                ev("MODIFIED", pod("web-1", "ns1", rv="11", labels={"app": "web"}, node="n2")),  # n1 → n2
                ev("ADDED", pod("new-1", "ns2", rv="12", node="n1")),
                ev("DELETED", pod("web-3", "ns2", rv="13", node="n1")),
                FOREVER,
            ]
        ]
    )
    cache = Cache(client)  # type: ignore[arg-type]
    cache.index_field(PODS, "spec.nodeName", lambda o: [o["spec"]["nodeName"]])
    await cache_env.start(cache, PODS)

    on = ("spec.nodeName", "n1")
    assert names(cache.list(PODS, "ns1", field=on)) == ["db-1", "web-1"]
    assert names(cache.list(PODS, "ns2", field=on)) == ["web-3"]
    assert names(cache.list(PODS, field=on)) == ["db-1", "web-1", "web-3"]
    assert names(cache.list(PODS, field=("spec.nodeName", "n9"))) == []
    # Field and label filters combine.
    assert names(cache.list(PODS, field=on, labels={"app": "web"})) == ["web-1", "web-3"]

    inf = cache.informers_for(PODS)[0]
    assert inf.indexer.index_keys("field:spec.nodeName", "ns1/n1") == ["ns1/db-1", "ns1/web-1"]
    assert inf.indexer.index_keys("field:spec.nodeName", "__all_namespaces/n3") == ["ns2/job-1"]

    gate.set()
    await wait_until(lambda: inf.last_sync_resource_version == "13")
    assert names(cache.list(PODS, "ns1", field=on)) == ["db-1"]  # update moved web-1 away
    assert names(cache.list(PODS, "ns1", field=("spec.nodeName", "n2"))) == ["web-1", "web-2"]
    assert names(cache.list(PODS, "ns2", field=on)) == ["new-1"]  # add in, delete out
    assert names(cache.list(PODS, field=on)) == ["db-1", "new-1"]
    assert "ns2/n1" in inf.indexer.index_values("field:spec.nodeName")
    assert inf.indexer.index_keys("field:spec.nodeName", "__all_namespaces/n1") == ["ns1/db-1", "ns2/new-1"]


async def test_field_index_added_after_the_informer_exists(cache_env: CacheEnv) -> None:
    client = FakeClient()
    client.lists[None] = deque([listing("10", *POD_SET)])
    cache = Cache(client)  # type: ignore[arg-type]
    await cache_env.start(cache, PODS)
    cache.index_field(PODS, "spec.nodeName", lambda o: [o["spec"]["nodeName"]])
    assert names(cache.list(PODS, field=("spec.nodeName", "n1"))) == ["db-1", "web-1", "web-3"]


def test_field_index_layout_namespaced_and_cluster_scoped() -> None:
    fn = field_index(lambda o: o["spec"]["values"])
    idx = Indexer({"field:v": fn})
    idx.upsert("ns1/a", {"metadata": {"name": "a", "namespace": "ns1"}, "spec": {"values": ["x", "y"]}})
    idx.upsert("c", {"metadata": {"name": "c"}, "spec": {"values": ["x"]}})
    assert sorted(idx.index_values("field:v")) == sorted(["ns1/x", "ns1/y", "__all_namespaces/x", "__all_namespaces/y"])
    assert idx.index_keys("field:v", "__all_namespaces/x") == ["c", "ns1/a"]
    idx.delete("ns1/a")
    assert sorted(idx.index_values("field:v")) == ["__all_namespaces/x"]
    assert idx.index_keys("namespace", "ns1") == []


# ---- label-selected cache ------------------------------------------------------------------------


async def test_label_selected_cache_is_server_side_and_non_matching_objects_are_not_found(
    cache_env: CacheEnv,
) -> None:
    gate = asyncio.Event()
    client = FakeClient()
    # The server applies the selector: only matching objects are listed.
    client.lists[None] = deque([listing("10", pod("a", "ns1", labels={"app": "ray"}))])
    client.watches[None] = deque(
        [
            [
                gate,
                # "a" stops matching: a selector watch reports it as DELETED.
                ev("DELETED", pod("a", "ns1", rv="11", labels={"app": "other"})),
                FOREVER,
            ]
        ]
    )
    cache = Cache(client, CacheOptions(by_object={PODS: ByObject(label_selector="app=ray")}))  # type: ignore[arg-type]
    await cache_env.start(cache, PODS)
    for c in client.calls:
        assert c.kw["label_selector"] == "app=ray"
    assert cache.get(PODS, "a", "ns1")["metadata"]["labels"]["app"] == "ray"
    with pytest.raises(NotFound):
        cache.get(PODS, "outside", "ns1")

    inf = cache.informers_for(PODS)[0]
    gate.set()
    await wait_until(lambda: inf.last_sync_resource_version == "11")
    with pytest.raises(NotFound):
        cache.get(PODS, "a", "ns1")
    assert cache.list(PODS) == []


async def test_informers_are_shared_per_resource(cache_env: CacheEnv) -> None:
    client = FakeClient()
    client.lists[None] = deque([listing("10")])
    cache = Cache(client)  # type: ignore[arg-type]
    a = cache.informers_for(PODS)
    b = cache.informers_for(PODS)
    assert a == b and len(a) == 1
    await cache_env.start(cache)
    assert len(client.of("list")) == 1  # one watch per resource, however many users


async def test_multi_namespace_cache_one_informer_per_namespace(cache_env: CacheEnv) -> None:
    client = FakeClient()
    client.lists["ns1"] = deque([listing("10", pod("a", "ns1"))])
    client.lists["ns2"] = deque([listing("20", pod("b", "ns2"))])
    cache = Cache(client, CacheOptions(namespaces=["ns1", "ns2"]))  # type: ignore[arg-type]
    await cache_env.start(cache, PODS)
    assert sorted(c.namespace or "" for c in client.of("list")) == ["ns1", "ns2"]
    assert names(cache.list(PODS)) == ["a", "b"]
    assert names(cache.list(PODS, "ns2")) == ["b"]
    assert cache.get(PODS, "a", "ns1")["metadata"]["name"] == "a"
    with pytest.raises(NotFound):
        cache.get(PODS, "a", "ns2")


async def test_informer_created_after_start_is_run(cache_env: CacheEnv) -> None:
    client = FakeClient()
    client.lists[None] = deque([listing("10", pod("a", "ns1"))])
    cache = Cache(client)  # type: ignore[arg-type]
    await cache_env.start(cache)  # no informers yet
    inf = cache.informers_for(PODS)[0]
    await inf.wait_for_sync(timeout=2)
    assert names(cache.list(PODS)) == ["a"]
