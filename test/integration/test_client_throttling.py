"""429 Retry-After through the real apiserver path: the operator (shipped RBAC, its token) talks to
kube-apiserver through a loopback proxy that answers some of its writes as kube-apiserver's API
Priority and Fairness does when it sheds load (429, Status TooManyRequests, Retry-After). The
RayCluster still becomes ready, with exactly its pods, and each throttled request came back no sooner
than the server asked, as client-go's rest client does."""

from __future__ import annotations

import logging
import types
from pathlib import Path
from typing import Any

import pytest
from support.apiproxy import ThrottlingProxy
from support.operator import running_operator
from support.wait import eventually

from internal.client import Client
from internal.client.resources import PODS, RAYCLUSTERS

pytestmark = pytest.mark.t2

CLUSTER: dict[str, Any] = {
    "apiVersion": "ray.io/v1",
    "kind": "RayCluster",
    "spec": {
        "rayVersion": "2.52.0",
        "headGroupSpec": {
            "rayStartParams": {},
            "template": {"spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.52.0"}]}},
        },
        "workerGroupSpecs": [
            {
                "groupName": "small",
                "replicas": 2,
                "minReplicas": 0,
                "maxReplicas": 4,
                "rayStartParams": {},
                "template": {"spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.52.0"}]}},
            }
        ],
    },
}


async def pods_of(c: Client, ns: str, name: str) -> list[dict[str, Any]]:
    items = (await c.list(PODS, ns, label_selector=f"ray.io/cluster={name}"))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def wait_ready(c: Client, ns: str, name: str, workers: int, timeout: float) -> None:
    async def ready() -> bool:
        st = (await c.get(RAYCLUSTERS, name, ns)).get("status") or {}
        ok = st.get("state") == "ready" and st.get("readyWorkerReplicas") == workers
        return ok and len(await pods_of(c, ns, name)) == workers + 1

    await eventually(ready, timeout, f"RayCluster {name} ready with {workers} workers")


async def test_reconcile_completes_through_429s_waiting_as_told(
    sim_cluster: Any, kclient: Client, namespace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    budget = {"pods": 3, "status": 2}  # throttle the first 3 pod creates and the first 2 status writes

    def rule(method: str, path: str, _body: bytes) -> int | None:
        if f"/namespaces/{namespace}/" not in path:
            return None
        if method == "POST" and path.endswith("/pods") and budget["pods"] > 0:
            budget["pods"] -= 1
            return 2
        if method in ("PUT", "PATCH") and path.endswith("/status") and "rayclusters" in path and budget["status"] > 0:
            budget["status"] -= 1
            return 1
        return None

    proxy = ThrottlingProxy(sim_cluster.operator_kubeconfig, rule)
    await proxy.start()
    try:
        plane = types.SimpleNamespace(operator_kubeconfig=proxy.write_kubeconfig(tmp_path / "proxy.kubeconfig"))
        async with running_operator(plane) as rt:
            await kclient.create(RAYCLUSTERS, {**CLUSTER, "metadata": {"name": "thr", "namespace": namespace}})
            await wait_ready(kclient, namespace, "thr", 2, timeout=120)
            # No duplicate pod from a retried create: the head and its two workers only.
            assert len(await pods_of(kclient, namespace, "thr")) == 3
            retried = rt.registry.get_sample_value(
                "rest_client_request_retries_total",
                {"code": "429", "verb": "POST", "host": f"127.0.0.1:{proxy.port}"},
            )
            assert retried == 3
            # A retried 429 never reaches a reconciler. (Other reconcile errors, such as a 409 when a
            # status write races the informer, are ordinary optimistic concurrency, not this test's.)
            throttle_errors = [
                r.getMessage() + str(getattr(r, "error", ""))
                for r in caplog.records
                if r.getMessage() == "Reconciler error"
                and any(k in str(getattr(r, "error", "")) for k in ("429", "TooManyRequests", "Too many requests"))
            ]
            assert not throttle_errors, f"a 429 the client retried surfaced as a reconcile error: {throttle_errors}"
    finally:
        await proxy.stop()

    throttled = [a for a in proxy.arrivals if a.throttled is not None]
    assert budget == {"pods": 0, "status": 0} and len(throttled) == 5
    for t in throttled:
        assert t.throttled is not None
        # The same request (method, path, body) came back, and no sooner than Retry-After.
        later = [a for a in proxy.arrivals if a.key == t.key and a.at > t.at]
        assert later, f"{t.key} was not retried"
        assert later[0].at - t.at >= t.throttled - 0.05, (t.key, later[0].at - t.at)
