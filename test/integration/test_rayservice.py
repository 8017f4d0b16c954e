"""The RayService controller on the simulated cluster (T2: kube-scheduler binds pods, kwok makes them
Running and Ready), with the RayCluster controller running too and a fake Ray head per cluster on
loopback (support/fake_serve.py models Serve: PUT → DEPLOYING → RUNNING, proxy health, faults).

kwok's loopback pod IPs are refused in EndpointSlices, so no EndpointSlice controller runs on T2; the
``endpoint_slices`` helper plays it for the RayService Services (ready Pods matching the selector, as the
real controller publishes them, with a non-loopback address nobody dials), as upstream's envtest does
by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
import pytest
import yaml
from support.fake_dashboard import FakeDashboard
from support.fake_serve import ServeTiming
from support.operator import running_operator
from support.wait import eventually

from controllers.ray import raycluster_controller, rayservice_controller
from controllers.ray.utils.dashboard import DashboardClientFactory, Loopback, LoopbackProxyAddress
from internal.app import Runtime
from internal.client import AlreadyExists, Client, NotFound
from internal.client.resources import ENDPOINTSLICES, EVENTS, PODS, RAYCLUSTERS, RAYSERVICES, SERVICES

pytestmark = pytest.mark.t2

SERVE_CONFIG = """\
applications:
- name: app1
  route_prefix: /
  import_path: hello:app
  deployments:
  - name: Hello
    num_replicas: 1
    user_config:
      greeting: hi
"""

RAYSERVICE = yaml.safe_load(
    """
apiVersion: ray.io/v1
kind: RayService
metadata:
  name: svc
spec:
  rayClusterDeletionDelaySeconds: 2
  rayClusterConfig:
    rayVersion: '2.52.0'
    headGroupSpec:
      rayStartParams: {}
      template:
        spec:
          containers:
          - name: ray-head
            image: rayproject/ray:2.52.0
            resources: {limits: {cpu: "1", memory: 2Gi}}
    workerGroupSpecs:
    - groupName: w
      replicas: 1
      minReplicas: 0
      maxReplicas: 2
      rayStartParams: {}
      template:
        spec:
          containers:
          - name: ray-worker
            image: rayproject/ray:2.52.0
            resources: {limits: {cpu: "1", memory: 1Gi}}
"""
)
RAYSERVICE["spec"]["serveConfigV2"] = SERVE_CONFIG

FAST = ServeTiming(deploy=1.0, redeploy=0.2, delete=0.3)


def rayservice(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    s = copy.deepcopy(RAYSERVICE)
    s["metadata"] = {"name": name, "namespace": ns}
    s["spec"].update(spec)
    return s


def _cluster_of(pod: Mapping[str, Any]) -> str:
    return str(pod["metadata"]["labels"]["ray.io/cluster"])


class Heads:
    """The fake heads: one virtual Ray head per RayCluster, with Serve timing set on first use."""

    def __init__(self, fake: FakeDashboard, timing: ServeTiming) -> None:
        self.fake = fake
        self.timing = timing

    def __call__(self, name: str) -> Any:
        new = name not in self.fake.clusters
        c = self.fake.cluster(name)
        if new:
            c.serve.timing = copy.copy(self.timing)
        return c


@contextlib.asynccontextmanager
async def operator_with_heads(
    plane: Any,
    kclient: Client,
    namespace: str,
    *,
    env: Mapping[str, str] | None = None,
    timing: ServeTiming = FAST,
    concurrency: int = 4,
) -> AsyncIterator[tuple[Runtime, Heads]]:
    async with FakeDashboard() as fake:
        heads = Heads(fake, timing)
        factory = DashboardClientFactory(
            Loopback(lambda cluster: heads(cluster["metadata"]["name"]).base_url),
            proxies=LoopbackProxyAddress(lambda pod, port: heads(_cluster_of(pod)).base_url),
        )
        opts = rayservice_controller.RayServiceOptions(env=dict(env or {}))

        def rayservice_setup(rt: Runtime) -> list[Any]:
            opts.gates = rt.gates
            return rayservice_controller.setup(rt, opts, factory)

        def raycluster_setup(rt: Runtime) -> list[Any]:
            return raycluster_controller.setup(
                rt, raycluster_controller.RayClusterOptions.from_configuration(rt.config, rt.gates)
            )

        mirror = asyncio.create_task(endpoint_slices(kclient, namespace))
        try:
            async with running_operator(plane, [raycluster_setup, rayservice_setup], concurrency=concurrency) as rt:
                yield rt, heads
        finally:
            mirror.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await mirror
            await factory.close()


async def endpoint_slices(c: Client, ns: str) -> None:
    """Play the EndpointSlice controller for RayService Services in ``ns``: one slice per Service with
    the ready Pods its selector matches."""
    while True:
        try:
            services = (await c.list(SERVICES, ns, label_selector="ray.io/originated-from-crd=RayService"))["items"]
            pods = (await c.list(PODS, ns))["items"]
            for svc in services:
                await _publish(c, ns, svc, pods)
        except NotFound:
            pass
        await asyncio.sleep(0.2)


async def _publish(c: Client, ns: str, svc: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> None:
    selector = (svc.get("spec") or {}).get("selector") or {}
    endpoints = []
    for p in pods:
        labels = p["metadata"].get("labels") or {}
        if p["metadata"].get("deletionTimestamp") or any(labels.get(k) != v for k, v in selector.items()):
            continue
        ip = (p.get("status") or {}).get("podIP") or ""
        ready = any(
            x["type"] == "Ready" and x["status"] == "True" for x in (p.get("status") or {}).get("conditions") or ()
        )
        if not ip:
            continue
        endpoints.append(
            {
                "addresses": ["10." + ".".join(ip.split(".")[1:])],  # loopback pod IPs are refused here
                "conditions": {"ready": ready},
                "targetRef": {
                    "kind": "Pod",
                    "name": p["metadata"]["name"],
                    "namespace": ns,
                    "uid": p["metadata"]["uid"],
                },
            }
        )
    name = svc["metadata"]["name"]
    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-sim",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": name},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Service", "name": name, "uid": svc["metadata"]["uid"], "controller": True}
            ],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [
            {"name": p.get("name"), "port": p["port"], "protocol": "TCP"} for p in svc["spec"].get("ports") or ()
        ],
    }
    try:
        old = await c.get(ENDPOINTSLICES, f"{name}-sim", ns)
    except NotFound:
        with contextlib.suppress(AlreadyExists, NotFound):
            await c.create(ENDPOINTSLICES, body, ns)
        return
    if old.get("endpoints") != endpoints or old["metadata"]["ownerReferences"][0]["uid"] != svc["metadata"]["uid"]:
        body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        with contextlib.suppress(NotFound):
            if old["metadata"]["ownerReferences"][0]["uid"] != svc["metadata"]["uid"]:
                await c.delete(ENDPOINTSLICES, f"{name}-sim", ns)
            else:
                await c.update(ENDPOINTSLICES, body)


# ---- helpers ---------------------------------------------------------------------------------------------


async def status_of(c: Client, ns: str, name: str) -> dict[str, Any]:
    return (await c.get(RAYSERVICES, name, ns)).get("status") or {}


def cond(status: Mapping[str, Any], ctype: str) -> dict[str, Any]:
    return next((x for x in status.get("conditions") or () if x["type"] == ctype), {})


async def wait_ready(c: Client, ns: str, name: str, timeout: float = 90) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        st = await status_of(c, ns, name)
        return st if cond(st, "Ready").get("status") == "True" else None

    return await eventually(ready, timeout, f"RayService {name} Ready")


async def events_for(c: Client, ns: str, name: str) -> list[dict[str, Any]]:
    items = (await c.list(EVENTS, ns))["items"]
    return [e for e in items if (e.get("regarding") or {}).get("name") == name]


async def reasons(c: Client, ns: str, name: str) -> list[str]:
    return [e["reason"] for e in await events_for(c, ns, name)]


async def clusters_of(c: Client, ns: str, name: str) -> list[dict[str, Any]]:
    items = (await c.list(RAYCLUSTERS, ns, label_selector=f"ray.io/originated-from-cr-name={name}"))["items"]
    return [i for i in items if not i["metadata"].get("deletionTimestamp")]


async def selector_target(c: Client, ns: str, svc: str) -> str | None:
    try:
        return (await c.get(SERVICES, svc, ns))["spec"]["selector"]["ray.io/cluster"]  # type: ignore[no-any-return]
    except NotFound:
        return None


async def patch_spec(c: Client, ns: str, name: str, spec: dict[str, Any]) -> None:
    await c.patch(RAYSERVICES, name, {"spec": spec}, ns)


def new_image(spec: Mapping[str, Any], image: str) -> dict[str, Any]:
    config = copy.deepcopy(spec["rayClusterConfig"])
    config["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = image
    return config


# ---- tests -----------------------------------------------------------------------------------------------


async def test_create_reaches_ready(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (rt, heads):
        await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        assert st["serviceStatus"] == "Running" and st["numServeEndpoints"] >= 1
        assert st["observedGeneration"] >= 1 and st["lastUpdateTime"]
        assert cond(st, "Ready")["reason"] == "NonZeroServeEndpoints"
        assert cond(st, "UpgradeInProgress") | {"lastTransitionTime": None} == {
            "type": "UpgradeInProgress",
            "status": "False",
            "reason": "NoPendingCluster",
            "message": "Active Ray cluster exists and no pending Ray cluster",
            "lastTransitionTime": None,
            "observedGeneration": cond(st, "UpgradeInProgress").get("observedGeneration"),
        }
        active = st["activeServiceStatus"]
        cname = active["rayClusterName"]
        assert cname.startswith("svc-") and len(cname) == len("svc-") + 5
        assert active["applicationStatuses"]["app1"]["status"] == "RUNNING"
        assert active["applicationStatuses"]["app1"]["serveDeploymentStatuses"]["Hello"] == {"status": "HEALTHY"}
        assert st["pendingServiceStatus"] == {}  # nothing pending: no empty name or status written

        svc = await kclient.get(RAYSERVICES, "svc", namespace)
        assert svc["metadata"]["finalizers"] == ["ray.io/rayservice-finalizer"]
        cluster = await kclient.get(RAYCLUSTERS, cname, namespace)
        meta = cluster["metadata"]
        assert meta["labels"]["ray.io/originated-from-crd"] == "RayService"
        assert meta["labels"]["ray.io/originated-from-cr-name"] == "svc"
        assert meta["annotations"]["ray.io/num-worker-groups"] == "1"
        assert meta["annotations"]["ray.io/kuberay-version"] == "v1.7.0"
        assert len(meta["annotations"]["ray.io/hash-without-replicas-and-workers-to-delete"]) == 32
        assert meta["ownerReferences"][0]["kind"] == "RayService" and meta["ownerReferences"][0]["controller"]

        head_svc = await kclient.get(SERVICES, "svc-head-svc", namespace)
        serve_svc = await kclient.get(SERVICES, "svc-serve-svc", namespace)
        assert head_svc["spec"]["selector"]["ray.io/cluster"] == cname
        assert head_svc["metadata"]["labels"] == {
            "ray.io/originated-from-cr-name": "svc",
            "ray.io/originated-from-crd": "RayService",
            "ray.io/node-type": "head",
            "ray.io/identifier": "svc-head",
        }
        assert serve_svc["spec"]["selector"] == {"ray.io/cluster": cname, "ray.io/serve": "true"}
        assert [p["name"] for p in serve_svc["spec"]["ports"]] == ["serve"]
        assert serve_svc["metadata"]["labels"]["ray.io/serve"] == "svc-serve"

        head = (await kclient.list(PODS, namespace, label_selector=f"ray.io/cluster={cname},ray.io/node-type=head"))[
            "items"
        ][0]
        assert head["metadata"]["labels"]["ray.io/serve"] == "true"  # its proxy answered /-/healthz

        fc = heads(cname)
        assert len(fc.serve_configs) == 1
        assert fc.serve_configs[0] == orjson.loads(orjson.dumps(yaml.safe_load(SERVE_CONFIG)))
        put = next(r for r in fc.requests if r.endpoint == "serve_put")
        assert put.headers["Content-Type"] == "application/json"
        got = await reasons(kclient, namespace, "svc")
        for reason in ("CreatedRayCluster", "UpdatedServeApplications", "CreatedService", "UpdatedHeadPodServeLabel"):
            assert reason in got, (reason, got)
        assert "UpdatedRayCluster" not in got  # autoscaler-style noise never rewrites the cluster

        # The metrics a user scrapes.
        text = _scrape(rt)
        assert f'kuberay_service_condition_ready{{condition="true",name="svc",namespace="{namespace}"' in text
        assert 'kuberay_service_info{name="svc"' in text


def _scrape(rt: Runtime) -> str:
    from prometheus_client import generate_latest

    return generate_latest(rt.registry).decode()
