"""Informers and the shared cache against a real API server: they end with exactly the server's state
through live changes, an API server restart, a forced 410 and a watch that goes silent; and the client
drops a pool whose connections went silent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.tcpproxy import BlackholeProxy
from support.wait import eventually

import internal.client.client as client_mod
from internal.client import Client, Gone, NotFound, Timeout, api_client, load_configuration
from internal.client.resources import CONFIGMAPS, PODS
from internal.informer import ByObject, Cache, CacheOptions, DeletedFinalStateUnknown, HandlerFuncs, Informer


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def handler(self) -> HandlerFuncs:
        return HandlerFuncs(
            add=lambda o, initial: self.events.append(("add", (o["metadata"]["name"], initial))),
            update=lambda old, new: self.events.append(("update", new["metadata"]["name"])),
            delete=lambda o: self.events.append(("delete", o)),
        )


async def server_state(c: Client, ns: str) -> dict[str, str]:
    items = (await c.list(CONFIGMAPS, ns))["items"]
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in items}


def cache_state(inf: Informer) -> dict[str, str]:
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in inf.list()}


@contextlib.asynccontextmanager
async def running(*runnables: Any) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(r.run()) for r in runnables]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def cm(c: Client, ns: str, name: str, **data: str) -> dict[str, Any]:
    return await c.create(CONFIGMAPS, {"metadata": {"name": name, "namespace": ns}, "data": data})


async def test_informer_lists_then_follows_live_changes(kclient: Client, namespace: str) -> None:
    for i in range(3):
        await cm(kclient, namespace, f"pre-{i}")
    inf = Informer(kclient, CONFIGMAPS, namespace=namespace)
    rec = Recorder()
    inf.add_event_handler(rec.handler())
    async with running(inf):
        await inf.wait_for_sync(30)
        assert sorted(e[1] for e in rec.events) == [(f"pre-{i}", True) for i in range(3)]
        assert all("managedFields" not in o["metadata"] for o in inf.list())
        await cm(kclient, namespace, "live")
        await kclient.patch(CONFIGMAPS, "pre-0", {"data": {"k": "v"}}, namespace)
        await kclient.delete(CONFIGMAPS, "pre-1", namespace)
        want = await server_state(kclient, namespace)
        await eventually(lambda: cache_state(inf) == want, 30, "cache to match the server")
        kinds = [(k, v if k != "delete" else v["metadata"]["name"]) for k, v in rec.events[3:]]
        assert kinds == [("add", ("live", False)), ("update", "pre-0"), ("delete", "pre-1")]


async def test_label_selected_cache_keeps_only_matching_pods(kclient: Client, namespace: str) -> None:
    cache = Cache(
        kclient,
        CacheOptions(by_object={PODS: ByObject(label_selector="ray.io/node-type in (head,worker,redis-cleanup)")}),
    )

    def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }

    await kclient.create(PODS, pod("head", {"ray.io/node-type": "head"}))
    await kclient.create(PODS, pod("unrelated", {"app": "web"}))
    [inf] = cache.informers_for(PODS)
    rec = Recorder()
    inf.add_event_handler(rec.handler())
    async with running(cache):
        await cache.wait_for_sync(30)
        assert [p["metadata"]["name"] for p in cache.list(PODS, namespace)] == ["head"]
        with pytest.raises(NotFound):
            cache.get(PODS, "unrelated", namespace)
        head = cache.get(PODS, "head", namespace)
        with pytest.raises(TypeError):
            head["metadata"]["labels"]["x"] = "y"  # type: ignore[index]
        # A pod that stops matching the selector is seen as deleted.
        await kclient.patch(PODS, "head", {"metadata": {"labels": {"ray.io/node-type": None}}}, namespace)
        await eventually(lambda: not cache.list(PODS, namespace), 30, "head pod to leave the cache")
        assert rec.events[-1][0] == "delete"


async def test_field_index_answers_within_and_across_namespaces(kclient: Client, namespace: str) -> None:
    cache = Cache(kclient)
    cache.index_field(CONFIGMAPS, "team", lambda o: [(o.get("data") or {}).get("team", "")])
    cache.informers_for(CONFIGMAPS)  # informers are registered up front, as a controller's watches do
    await cm(kclient, namespace, "a", team="ray")
    await cm(kclient, namespace, "b", team="web")
    async with running(cache):
        await cache.wait_for_sync(30)
        assert [o["metadata"]["name"] for o in cache.list(CONFIGMAPS, namespace, field=("team", "ray"))] == ["a"]
        across = cache.list(CONFIGMAPS, None, field=("team", "ray"))
        assert {o["metadata"]["name"] for o in across} >= {"a"}
        await kclient.patch(CONFIGMAPS, "b", {"data": {"team": "ray"}}, namespace)
        await eventually(
            lambda: len(cache.list(CONFIGMAPS, namespace, field=("team", "ray"))) == 2, 30, "index to follow an update"
        )
        await kclient.delete(CONFIGMAPS, "a", namespace)
        await eventually(
            lambda: [o["metadata"]["name"] for o in cache.list(CONFIGMAPS, namespace, field=("team", "ray"))] == ["b"],
            30,
            "index to follow a delete",
        )


class PartitionableClient(Client):
    """A real client whose next watch can be held (a network partition) and then fail with 410."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.partitioned = asyncio.Event()
        self.healed = asyncio.Event()
        self.healed.set()

    async def watch(self, *a: Any, **kw: Any) -> Any:  # type: ignore[override]
        if not self.healed.is_set():
            self.partitioned.set()
            await self.healed.wait()
            raise Gone("too old resource version (injected)", reason="Expired")
        async for ev in super().watch(*a, **kw):
            yield ev


async def test_forced_410_relists_to_exactly_the_server_state(
    control_plane: Any, kclient: Client, namespace: str
) -> None:
    for name in ("keep", "change", "remove"):
        await cm(kclient, namespace, name)
    cfg = await load_configuration(str(control_plane.kubeconfig))
    pc = PartitionableClient(api_client(cfg, 4))
    # Short server-side watch timeouts make the reflector start new watches often.
    inf = Informer(pc, CONFIGMAPS, namespace=namespace)
    inf.reflector.min_watch_timeout = 1
    rec = Recorder()
    inf.add_event_handler(rec.handler())
    try:
        async with running(inf):
            await inf.wait_for_sync(30)
            lists_before = inf.reflector.lists
            pc.healed.clear()
            await asyncio.wait_for(pc.partitioned.wait(), 30)
            rec.events.clear()
            # While the informer is cut off: one object changes, one goes, one arrives.
            await kclient.patch(CONFIGMAPS, "change", {"data": {"v": "2"}}, namespace)
            await kclient.delete(CONFIGMAPS, "remove", namespace)
            await cm(kclient, namespace, "new")
            pc.healed.set()
            want = await server_state(kclient, namespace)
            await eventually(lambda: cache_state(inf) == want, 30, "cache to match the server after the 410")
            assert inf.reflector.lists == lists_before + 1
            deletes = [e[1] for e in rec.events if e[0] == "delete"]
            assert len(deletes) == 1 and isinstance(deletes[0], DeletedFinalStateUnknown)
            assert deletes[0].key == f"{namespace}/remove"
            assert deletes[0].obj["metadata"]["name"] == "remove"
            assert ("add", ("new", False)) in rec.events
            assert ("update", "change") in rec.events
    finally:
        await pc.close()


async def test_informer_survives_an_apiserver_restart(private_plane: Any) -> None:
    cfg = await load_configuration(str(private_plane.kubeconfig))
    c = Client(api_client(cfg, 8))
    try:
        await cm(c, "default", "before")
        inf = Informer(c, CONFIGMAPS, namespace="default")
        async with running(inf):
            await inf.wait_for_sync(30)
            await asyncio.to_thread(private_plane.restart_apiserver)
            await cm(c, "default", "after")
            await c.delete(CONFIGMAPS, "before", "default")
            want = await server_state(c, "default")
            await eventually(lambda: cache_state(inf) == want, 60, "cache to match the server after a restart")
    finally:
        await c.close()


async def through_proxy(plane: Any, pool: int) -> tuple[BlackholeProxy, Client]:
    """A client reaching kube-apiserver through a loopback TCP proxy that can black-hole connections."""
    cfg = await load_configuration(str(plane.kubeconfig))
    host, port = cfg.host.removeprefix("https://").rsplit(":", 1)
    proxy = BlackholeProxy(host, int(port))
    await proxy.start()
    cfg.host = f"https://127.0.0.1:{proxy.port}"
    return proxy, Client(api_client(cfg, pool))


@pytest.mark.parametrize("by", ["inactivity", "deadline"])
async def test_a_silent_watch_is_detected_and_restarted(
    control_plane: Any, kclient: Client, namespace: str, by: str
) -> None:
    """A watch connection cut silently (half-open) is restarted: by the inactivity timeout, or, on a
    quiet resource before that, because it is still open past the time the server was asked to close it."""
    proxy, c = await through_proxy(control_plane, 4)
    inf = Informer(c, CONFIGMAPS, namespace=namespace, read_timeout=2.0 if by == "inactivity" else 90.0)
    if by == "deadline":
        inf.reflector.min_watch_timeout = 2  # the server closes each watch after 2-4 s; dead if open at 12-14 s
    try:
        async with running(inf):
            await inf.wait_for_sync(30)
            watches = inf.reflector.watches
            proxy.blackhole_existing()  # the watch's connection is now half-open: no bytes, no close
            await cm(kclient, namespace, "while-silent")
            await eventually(
                lambda: "while-silent" in cache_state(inf), 30, "the change made during the silence to arrive"
            )
            assert inf.reflector.watches > watches
    finally:
        await c.close()
        await proxy.stop()


async def test_a_request_left_unanswered_drops_the_whole_pool(
    control_plane: Any, kclient: Client, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path to kube-apiserver silently loses every open connection (half-open, as a load balancer
    that forgot them). The first request on one waits its whole timeout; then the client drops its pool,
    so the next requests open new connections and succeed instead of each waiting out a dead one."""
    monkeypatch.setattr(client_mod, "POOL_RESET_AFTER", 2.5)  # the default is the 30 s request timeout
    await cm(kclient, namespace, "x")
    proxy, c = await through_proxy(control_plane, 8)
    try:
        # Several requests at once: several kept-alive connections in the pool.
        await asyncio.gather(*(c.get(CONFIGMAPS, "x", namespace) for _ in range(6)))
        assert proxy.connections >= 2
        proxy.blackhole_existing()
        with pytest.raises(Timeout):
            await c.get(CONFIGMAPS, "x", namespace, timeout=3.0)
        for _ in range(6):  # each would have picked a dead connection and timed out, pool not dropped
            assert (await c.get(CONFIGMAPS, "x", namespace, timeout=3.0))["metadata"]["name"] == "x"
    finally:
        await c.close()
        await proxy.stop()
