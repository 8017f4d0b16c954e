"""The RayCluster controller under load and its observability, on the simulated cluster (T2):
- concurrency: 20 RayClusters reconciled by 10 workers scale at once with no duplicate pod;
- the kuberay_cluster_* metrics (spec §8.1) on the operator's /metrics, removed with the RayCluster;
- the Pod cache is scoped by the KubeRay label selector and holds slim pods (no managedFields)."""

from __future__ import annotations

import asyncio
import copy
import time
from collections import Counter, defaultdict
from typing import Any

import aiohttp
import pytest
import yaml
from kuberay_operator.main import POD_SELECTOR
from prometheus_client.parser import text_string_to_metric_families
from support.operator import running_operator
from support.wait import eventually

from controllers.ray import raycluster_controller
from internal.app import Runtime
from internal.client import Client, NotFound
from internal.client.resources import PODS, RAYCLUSTERS, Resource
from internal.controller import Request, Result
from internal.informer import HandlerFuncs, Informer

pytestmark = pytest.mark.t2

RAYCLUSTER_ONLY = [raycluster_controller.setup]
RAY_PODS = "ray.io/cluster,ray.io/node-type in (head,worker)"
CLUSTER_METRICS = (
    "kuberay_cluster_info",
    "kuberay_cluster_condition_provisioned",
    "kuberay_cluster_provisioned_duration_seconds",
)

CLUSTER = yaml.safe_load(
    """
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: rc
spec:
  rayVersion: '2.52.0'
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.52.0
          resources: {requests: {cpu: "1", memory: 1Gi}, limits: {cpu: "1", memory: 1Gi}}
  workerGroupSpecs:
  - groupName: small
    replicas: 2
    minReplicas: 0
    maxReplicas: 10
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.52.0
          resources: {requests: {cpu: "100m", memory: 128Mi}, limits: {cpu: "100m", memory: 128Mi}}
"""
)


def cluster(name: str, ns: str, replicas: int = 2, labels: dict[str, str] | None = None) -> dict[str, Any]:
    c = copy.deepcopy(CLUSTER)
    c["metadata"] = {"name": name, "namespace": ns, **({"labels": labels} if labels else {})}
    c["spec"]["workerGroupSpecs"][0]["replicas"] = replicas
    return c


def _cluster_of(pod: dict[str, Any]) -> str:
    return str(((pod.get("metadata") or {}).get("labels") or {}).get("ray.io/cluster", ""))


async def live_pods(c: Client, ns: str) -> dict[str, list[dict[str, Any]]]:
    """The Ray pods of the namespace from the API server (not deleting), by cluster."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in (await c.list(PODS, ns, label_selector=RAY_PODS))["items"]:
        if not p["metadata"].get("deletionTimestamp"):
            out[_cluster_of(p)].append(p)
    return out


async def wait_all_ready(c: Client, ns: str, names: list[str], workers: int, timeout: float) -> None:
    """Every named RayCluster reports state ready with ``workers`` ready workers and has workers+1 pods."""

    async def ready() -> bool:
        items = {rc["metadata"]["name"]: rc for rc in (await c.list(RAYCLUSTERS, ns))["items"]}
        for n in names:
            st = (items.get(n) or {}).get("status") or {}
            assert st.get("state") == "ready" and st.get("readyWorkerReplicas") == workers, f"{n}: {st.get('state')}"
        pods = await live_pods(c, ns)
        for n in names:
            assert len(pods[n]) == workers + 1, f"{n} has {len(pods[n])} pods"
        return True

    await eventually(ready, timeout, f"{len(names)} RayClusters ready with {workers} workers", interval=0.5)


def raycluster_reconciler(rt: Runtime) -> raycluster_controller.RayClusterReconciler:
    [ctrl] = [c for c in rt.manager.controllers if c.name == "raycluster"]
    rec = ctrl.reconciler
    assert isinstance(rec, raycluster_controller.RayClusterReconciler)
    return rec


# ---- concurrency -------------------------------------------------------------------------------------


async def test_twenty_clusters_scale_at_once_with_no_duplicate_pods(
    sim_cluster: Any, kclient: Client, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"c{i:02d}" for i in range(20)]

    # An independent watch of the namespace's Ray pods: every pod name ever created, per cluster.
    seen: dict[str, set[str]] = defaultdict(set)
    watcher = Informer(kclient, PODS, namespace=namespace, label_selector=RAY_PODS)
    watcher.add_event_handler(HandlerFuncs(add=lambda p, _initial: seen[_cluster_of(p)].add(p["metadata"]["name"])))
    watch_task = asyncio.create_task(watcher.run())
    try:
        await _scale_twenty(sim_cluster, kclient, namespace, monkeypatch, names, watcher, seen)
    finally:
        watch_task.cancel()
        await asyncio.gather(watch_task, return_exceptions=True)


async def _scale_twenty(
    sim_cluster: Any,
    kclient: Client,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    names: list[str],
    watcher: Informer,
    seen: dict[str, set[str]],
) -> None:
    async with running_operator(sim_cluster, RAYCLUSTER_ONLY, concurrency=10, enable_metrics=False) as rt:
        assert rt.config.reconcileConcurrency == 10
        # Count the operator's pod creates (attempts and successes) per cluster and node type.
        attempts: Counter[tuple[str, str]] = Counter()
        created: Counter[tuple[str, str]] = Counter()
        real_create = rt.client.create

        async def counting_create(res: Resource, obj: dict[str, Any], namespace: str | None = None, **kw: Any) -> Any:
            key = (_cluster_of(obj), str(obj["metadata"]["labels"].get("ray.io/node-type"))) if res == PODS else None
            if key:
                attempts[key] += 1
            out = await real_create(res, obj, namespace, **kw)
            if key:
                created[key] += 1
            return out

        monkeypatch.setattr(rt.client, "create", counting_create)

        # When each cluster's latest finished reconcile started, to know that one ran after it was ready.
        reconciler = raycluster_reconciler(rt)
        real_reconcile = reconciler.reconcile
        last_done: dict[str, float] = {}

        async def timed_reconcile(req: Request) -> Result:
            started = time.monotonic()
            try:
                return await real_reconcile(req)
            finally:
                last_done[req.name] = started  # the start of the latest finished reconcile

        monkeypatch.setattr(reconciler, "reconcile", timed_reconcile)
        await watcher.wait_for_sync(30)

        await asyncio.gather(*(kclient.create(RAYCLUSTERS, cluster(n, namespace)) for n in names))
        await wait_all_ready(kclient, namespace, names, 2, 60)
        for n in names:
            assert created[(n, "head")] == 1 and created[(n, "worker")] == 2, n

        # Scale every group 2 -> 5 at once.
        groups = [{**CLUSTER["spec"]["workerGroupSpecs"][0], "replicas": 5}]
        await asyncio.gather(
            *(kclient.patch(RAYCLUSTERS, n, {"spec": {"workerGroupSpecs": groups}}, namespace) for n in names)
        )
        await wait_all_ready(kclient, namespace, names, 5, 60)

        # Poke every cluster (an annotation change is reconciled) and wait until each has been reconciled
        # again from a settled cache: a late duplicate would have been created by now.
        poked_at = time.monotonic()
        await asyncio.gather(
            *(
                kclient.patch(RAYCLUSTERS, n, {"metadata": {"annotations": {"test/poke": "1"}}}, namespace)
                for n in names
            )
        )
        await eventually(
            lambda: all(last_done.get(n, 0) > poked_at for n in names), 30, "a reconcile of every ready cluster"
        )
        # A reconcile already running when the poke landed may finish first and leave the last
        # expectation for the poke's own (queued) reconcile to clear: wait for that, don't race it.
        await eventually(lambda: reconciler.expectations.pending() == 0, 30, "every scale expectation satisfied")

        pods = await live_pods(kclient, namespace)
        for n in names:
            assert attempts[(n, "head")] == created[(n, "head")] == 1, (n, attempts, created)
            assert attempts[(n, "worker")] == created[(n, "worker")] == 5, (n, attempts, created)
            assert len(pods[n]) == 6, (n, [p["metadata"]["name"] for p in pods[n]])
            assert len(seen[n]) == 6, (n, sorted(seen[n]))
            assert seen[n] == {p["metadata"]["name"] for p in pods[n]}
            indexes = sorted(
                int(p["metadata"]["labels"]["ray.io/worker-group-replica-index"])
                for p in pods[n]
                if p["metadata"]["labels"]["ray.io/node-type"] == "worker"
            )
            assert indexes == [0, 1, 2, 3, 4], (n, indexes)
        assert sum(created.values()) == 20 * 6


# ---- metrics -----------------------------------------------------------------------------------------


async def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The operator's /metrics, as {metric name: [(labels, value)]} for the kuberay_cluster_* families."""
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200
        text = await r.text()
    out: dict[str, list[tuple[dict[str, str], float]]] = {m: [] for m in CLUSTER_METRICS}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name in out:
                out[sample.name].append((dict(sample.labels), sample.value))
    return out


def series_of(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str, ns: str) -> dict[str, Any]:
    """The samples of one RayCluster, by metric name."""
    return {
        m: [(labels, v) for labels, v in samples if labels.get("name") == name and labels.get("namespace") == ns]
        for m, samples in metrics.items()
    }


async def test_cluster_metrics_are_served_and_removed_with_the_cluster(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with running_operator(sim_cluster, RAYCLUSTER_ONLY, enable_metrics=True) as rt:
        port = rt.manager.metrics_port
        assert port
        await kclient.create(RAYCLUSTERS, cluster("gone", namespace, replicas=1))
        await kclient.create(
            RAYCLUSTERS, cluster("kept", namespace, replicas=1, labels={"ray.io/originated-from-crd": "RayJob"})
        )
        await wait_all_ready(kclient, namespace, ["gone", "kept"], 1, 60)
        uids = {n: (await kclient.get(RAYCLUSTERS, n, namespace))["metadata"]["uid"] for n in ("gone", "kept")}

        async def provisioned(name: str) -> dict[str, Any] | None:
            s = series_of(await scrape(port), name, namespace)
            return s if all(s.values()) else None

        for name, owner_kind in (("gone", "None"), ("kept", "RayJob")):
            s = await eventually(lambda name=name: provisioned(name), 30, f"metrics of {name}")
            base = {"name": name, "namespace": namespace, "uid": uids[name]}
            assert s["kuberay_cluster_info"] == [({**base, "owner_kind": owner_kind}, 1.0)]
            assert s["kuberay_cluster_condition_provisioned"] == [({**base, "condition": "true"}, 1.0)]
            [(labels, seconds)] = s["kuberay_cluster_provisioned_duration_seconds"]
            assert labels == base
            assert 0 <= seconds < 120

        await kclient.delete(RAYCLUSTERS, "gone", namespace, propagation_policy="Background")

        async def removed() -> bool:
            m = await scrape(port)
            return not any(series_of(m, "gone", namespace).values()) and all(series_of(m, "kept", namespace).values())

        await eventually(removed, 30, "the deleted RayCluster's series removed, the other's kept")


# ---- cache scoping -----------------------------------------------------------------------------------


def plain_pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    }


async def test_pod_cache_is_scoped_by_the_kuberay_selector_and_slim(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    unrelated = {
        "plain": {"app": "web"},
        "lookalike": {"ray.io/cluster": "rc", "ray.io/node-type": "driver"},  # not head/worker/redis-cleanup
    }
    for name, labels in unrelated.items():
        await kclient.create(PODS, plain_pod(name, labels), namespace)

    async def running(name: str) -> bool:
        return bool(((await kclient.get(PODS, name, namespace)).get("status") or {}).get("phase") == "Running")

    for name in unrelated:  # created, scheduled and made Running: every event they will ever have
        await eventually(lambda name=name: running(name), 30, f"pod {name} Running")

    async with running_operator(sim_cluster, RAYCLUSTER_ONLY, enable_metrics=False) as rt:
        [inf] = rt.cache.informers_for(PODS)
        assert inf.label_selector == POD_SELECTOR
        cached_names: set[str] = set()
        inf.add_event_handler(
            HandlerFuncs(
                add=lambda p, _i: cached_names.add(p["metadata"]["name"]),
                update=lambda _o, p: cached_names.add(p["metadata"]["name"]),
            )
        )

        await kclient.create(RAYCLUSTERS, cluster("rc", namespace, replicas=2))
        await wait_all_ready(kclient, namespace, ["rc"], 2, 60)

        def ray_pods_cached() -> list[Any] | None:
            pods = [p for p in rt.cache.list(PODS, namespace) if (p.get("status") or {}).get("phase") == "Running"]
            return pods if len(pods) == 3 else None

        ray_pods = await eventually(ray_pods_cached, 30, "the 3 Ray pods Running in the operator's cache")
        assert {p["metadata"]["labels"]["ray.io/node-type"] for p in ray_pods} == {"head", "worker"}
        assert {p["metadata"]["name"] for p in ray_pods} <= cached_names

        # The unrelated pods exist on the server, yet the cache never received them.
        for name in unrelated:
            await kclient.get(PODS, name, namespace)
            with pytest.raises(NotFound):
                rt.cache.get(PODS, name, namespace)
        cached = {p["metadata"]["name"] for p in rt.cache.list(PODS, namespace)}
        assert not cached & set(unrelated) and not cached_names & set(unrelated)
        assert not rt.cache.list(PODS, namespace, labels={"ray.io/node-type": "driver"})

        # Slim: the server's pods carry managedFields, the cached copies do not.
        for p in ray_pods:
            assert "managedFields" not in p["metadata"]
            assert (await kclient.get(PODS, p["metadata"]["name"], namespace))["metadata"].get("managedFields")
