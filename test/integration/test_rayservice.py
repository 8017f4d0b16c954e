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
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from support.clock import SkewedClock
from support.endpointslices import endpoint_slices
from support.fake_dashboard import FakeDashboard
from support.fake_serve import ServeTiming
from support.operator import running_operator
from support.wait import events_for, eventually, gone, wait_events

from api.v1.fields import parse_time
from controllers.ray import raycluster_controller, rayservice_controller
from controllers.ray.utils.dashboard import DashboardClientFactory, Loopback, LoopbackProxyAddress
from internal.app import Runtime
from internal.client import Client, Conflict, NotFound, Resource
from internal.client.resources import ENDPOINTSLICES, PODS, RAYCLUSTERS, RAYSERVICES, SERVICES

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
    """The fake heads: one virtual Ray head per RayCluster, set up on first use with the current Serve
    timing, import failures, and a black hole for the clusters of the RayServices in ``dead``."""

    def __init__(self, fake: FakeDashboard, timing: ServeTiming) -> None:
        self.fake = fake
        self.timing = timing
        self.failing_imports: dict[str, str] = {}
        self.dead: set[str] = set()
        self.put_faults: list[tuple[int, str]] = []

    def __call__(self, name: str) -> Any:
        new = name not in self.fake.clusters
        c = self.fake.cluster(name)
        if new:
            c.serve.timing = copy.copy(self.timing)
            c.serve.failing_imports = dict(self.failing_imports)
            if name.rsplit("-", 1)[0] in self.dead:
                c.hang()
            for status, body in self.put_faults:
                c.fail_next("serve_put", status, body)
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
    dead: set[str] | None = None,
    clock: Callable[[], float] = time.time,
    gates: str = "",
) -> AsyncIterator[tuple[Runtime, Heads]]:
    async with FakeDashboard() as fake:
        heads = Heads(fake, timing)
        heads.dead = set(dead or ())
        factory = DashboardClientFactory(
            Loopback(lambda cluster: heads(cluster["metadata"]["name"]).base_url),
            proxies=LoopbackProxyAddress(lambda pod, port: heads(_cluster_of(pod)).base_url),
            # Every fake head shares one host:port here; real heads each have their own, and so their
            # own per-host connection slots.
            limit_per_host=256,
        )
        opts = rayservice_controller.RayServiceOptions(env=dict(env or {}), clock=clock)

        def rayservice_setup(rt: Runtime) -> list[Any]:
            opts.gates = rt.gates
            return rayservice_controller.setup(rt, opts, factory)

        def raycluster_setup(rt: Runtime) -> list[Any]:
            return raycluster_controller.setup(
                rt, raycluster_controller.RayClusterOptions.from_configuration(rt.config, rt.gates)
            )

        mirror = asyncio.create_task(endpoint_slices(kclient, namespace))
        try:
            setups = [raycluster_setup, rayservice_setup]
            async with running_operator(plane, setups, concurrency=concurrency, gates=gates) as rt:
                yield rt, heads
        finally:
            mirror.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await mirror
            await factory.close()


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


async def wait_active(c: Client, ns: str, name: str, timeout: float = 90) -> dict[str, Any]:
    """Ready with an active cluster (in incremental mode the pending cluster's serve endpoints count too,
    so Ready can precede the first promotion by a pass)."""

    async def ready() -> dict[str, Any] | None:
        st = await status_of(c, ns, name)
        ok = cond(st, "Ready").get("status") == "True" and st["activeServiceStatus"].get("rayClusterName")
        return st if ok else None

    return await eventually(ready, timeout, f"RayService {name} Ready with an active cluster")


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
        for reason in ("CreatedRayCluster", "UpdatedServeApplications", "CreatedService", "UpdatedHeadPodServeLabel"):
            await wait_events(kclient, namespace, "svc", reason)
        # Autoscaler-style noise never rewrites the cluster.
        assert "UpdatedRayCluster" not in await reasons(kclient, namespace, "svc")

        # The metrics a user scrapes.
        text = _scrape(rt)
        assert f'kuberay_service_condition_ready{{condition="true",name="svc",namespace="{namespace}"' in text
        assert 'kuberay_service_info{name="svc"' in text


def _scrape(rt: Runtime) -> str:
    from prometheus_client import generate_latest

    return generate_latest(rt.registry).decode()


IMPORT_ERROR = "ModuleNotFoundError: No module named 'hello'"


async def test_serve_config_change_is_applied_in_place(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, heads):
        await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        cname = st["activeServiceStatus"]["rayClusterName"]
        changed = SERVE_CONFIG.replace("greeting: hi", "greeting: hello")
        await patch_spec(kclient, namespace, "svc", {"serveConfigV2": changed})
        fc = heads(cname)
        await eventually(lambda: len(fc.serve_configs) == 2, 30, "the new config PUT to the active cluster")
        assert fc.serve_configs[1]["applications"][0]["deployments"][0]["user_config"] == {"greeting": "hello"}

        async def running_again() -> bool:
            st = await status_of(kclient, namespace, "svc")
            app = st["activeServiceStatus"].get("applicationStatuses", {}).get("app1", {})
            return app.get("status") == "RUNNING" and fc.serve.app_status("app1") == "RUNNING"

        await eventually(running_again, 30, "app1 RUNNING with the new config")
        # A window of several passes: no second cluster, no pending name, Ready throughout.
        for _ in range(15):
            st = await status_of(kclient, namespace, "svc")
            assert not st["pendingServiceStatus"].get("rayClusterName")
            assert cond(st, "Ready")["status"] == "True"
            assert [c["metadata"]["name"] for c in await clusters_of(kclient, namespace, "svc")] == [cname]
            await asyncio.sleep(0.2)
        assert len(fc.serve_configs) == 2  # applied once, then remembered


async def test_cluster_spec_change_switches_traffic_only_when_pending_apps_run(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, heads):
        created = await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        old = st["activeServiceStatus"]["rayClusterName"]
        heads.timing = ServeTiming(deploy=6.0, redeploy=0.2, delete=0.3)  # the new cluster's apps take 6 s
        await patch_spec(kclient, namespace, "svc", {"rayClusterConfig": new_image(created["spec"], "ray:2.53.0")})

        async def pending_name() -> str | None:
            st = await status_of(kclient, namespace, "svc")
            return st["pendingServiceStatus"].get("rayClusterName")

        new = await eventually(pending_name, 30, "a pending cluster")
        assert new != old
        st = await status_of(kclient, namespace, "svc")
        assert cond(st, "UpgradeInProgress")["status"] == "True"
        assert cond(st, "UpgradeInProgress")["reason"] == "BothActivePendingClustersExist"
        await eventually(lambda: len(heads(new).serve_configs) == 1, 60, "the config PUT to the pending cluster")

        # Until the pending cluster's apps are RUNNING both Services keep selecting the old cluster.
        switched_while = None
        while True:
            app_status = heads(new).serve.app_status("app1")
            head_to = await selector_target(kclient, namespace, "svc-head-svc")
            serve_to = await selector_target(kclient, namespace, "svc-serve-svc")
            if head_to == new:
                switched_while = app_status
                break
            assert head_to == old and serve_to == old, (head_to, serve_to)
            assert app_status != "" and cond(await status_of(kclient, namespace, "svc"), "Ready")["status"] == "True"
            await asyncio.sleep(0.1)
        assert switched_while == "RUNNING"
        assert await selector_target(kclient, namespace, "svc-serve-svc") == new

        async def promoted() -> dict[str, Any] | None:
            st = await status_of(kclient, namespace, "svc")
            ok = st["activeServiceStatus"].get("rayClusterName") == new and not st["pendingServiceStatus"]
            return st if ok else None

        st = await eventually(promoted, 30, "the pending cluster promoted to active")
        assert cond(st, "UpgradeInProgress")["reason"] == "NoPendingCluster"
        # The old cluster goes after rayClusterDeletionDelaySeconds (2 s), not at once.
        assert old in [c["metadata"]["name"] for c in await clusters_of(kclient, namespace, "svc")]
        await eventually(lambda: gone(kclient, RAYCLUSTERS, old, namespace), 60, "the old cluster deleted")
        await wait_events(kclient, namespace, "svc", "DeletedRayCluster")
        await wait_events(kclient, namespace, "svc", "UpdatedService")


async def test_pending_cluster_that_never_becomes_healthy_keeps_the_old_one(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, heads):
        created = await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        old = st["activeServiceStatus"]["rayClusterName"]
        heads.failing_imports = {"hello:app": IMPORT_ERROR}  # new heads cannot import the app
        await patch_spec(kclient, namespace, "svc", {"rayClusterConfig": new_image(created["spec"], "ray:2.53.0")})

        async def failed() -> dict[str, Any] | None:
            st = await status_of(kclient, namespace, "svc")
            app = st["pendingServiceStatus"].get("applicationStatuses", {}).get("app1", {})
            return st if app.get("status") == "DEPLOY_FAILED" else None

        st = await eventually(failed, 60, "the pending cluster's app DEPLOY_FAILED")
        new = st["pendingServiceStatus"]["rayClusterName"]
        assert IMPORT_ERROR in st["pendingServiceStatus"]["applicationStatuses"]["app1"]["message"]
        for _ in range(20):  # 4 s: nothing switches, nothing is deleted
            st = await status_of(kclient, namespace, "svc")
            assert st["activeServiceStatus"]["rayClusterName"] == old
            assert st["pendingServiceStatus"]["rayClusterName"] == new
            assert cond(st, "Ready")["status"] == "True"
            assert cond(st, "UpgradeInProgress")["status"] == "True"
            assert await selector_target(kclient, namespace, "svc-serve-svc") == old
            assert await selector_target(kclient, namespace, "svc-head-svc") == old
            assert {c["metadata"]["name"] for c in await clusters_of(kclient, namespace, "svc")} == {old, new}
            await asyncio.sleep(0.2)


async def test_initializing_timeout(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, heads):
        heads.failing_imports = {"hello:app": IMPORT_ERROR}
        s = rayservice("slow", namespace)
        s["metadata"]["annotations"] = {"ray.io/initializing-timeout": "8s"}
        await kclient.create(RAYSERVICES, s)

        async def timed_out() -> dict[str, Any] | None:
            st = await status_of(kclient, namespace, "slow")
            return st if cond(st, "Ready").get("reason") == "InitializingTimeout" else None

        st = await eventually(timed_out, 90, "Ready=False/InitializingTimeout")
        ready = cond(st, "Ready")
        assert ready["status"] == "False"
        assert ready["message"].startswith(
            "RayService failed to become ready within the configured timeout of 8s. Time spent initializing: "
        )
        assert not st["activeServiceStatus"].get("rayClusterName")
        assert not st["pendingServiceStatus"].get("rayClusterName")
        await wait_events(kclient, namespace, "slow", "RayServiceInitializingTimeout")
        # The cluster it was waiting for is deleted after the deletion delay, and nothing recovers it.
        await eventually(lambda: _no_clusters(kclient, namespace, "slow"), 60, "the cluster deleted")
        await patch_spec(kclient, namespace, "slow", {"serveConfigV2": SERVE_CONFIG + "# edit\n"})
        for _ in range(10):
            st = await status_of(kclient, namespace, "slow")
            assert cond(st, "Ready")["reason"] == "InitializingTimeout"
            assert not await clusters_of(kclient, namespace, "slow")
            await asyncio.sleep(0.3)
        # Upstream's way out besides delete and recreate (Q7): suspend, then resume, starts over.
        heads.failing_imports = {}
        await patch_spec(kclient, namespace, "slow", {"suspend": True})

        async def suspended() -> bool:
            return cond(await status_of(kclient, namespace, "slow"), "Suspended").get("status") == "True"

        await eventually(suspended, 60, "Suspended=True")
        await kclient.patch(
            RAYSERVICES, "slow", {"metadata": {"annotations": {"ray.io/initializing-timeout": "2m"}}}, namespace
        )
        await patch_spec(kclient, namespace, "slow", {"suspend": False})
        st = await wait_ready(kclient, namespace, "slow", 120)
        assert st["activeServiceStatus"]["rayClusterName"]


async def all_clusters_of(c: Client, ns: str, name: str) -> list[dict[str, Any]]:
    """Every RayCluster of RayService ``name``, terminating ones included."""
    return list((await c.list(RAYCLUSTERS, ns, label_selector=f"ray.io/originated-from-cr-name={name}"))["items"])


async def _no_clusters(c: Client, ns: str, name: str) -> bool:
    return not await all_clusters_of(c, ns, name)


async def test_head_restart_reapplies_serve_config(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, heads):
        await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        cname = st["activeServiceStatus"]["rayClusterName"]
        fc = heads(cname)
        assert len(fc.serve_configs) == 1
        sel = f"ray.io/cluster={cname},ray.io/node-type=head"
        head = (await kclient.list(PODS, namespace, label_selector=sel))["items"][0]
        # The head restarts without GCS FT: its Serve applications are gone with it.
        fc.serve.restart()
        await kclient.delete(PODS, head["metadata"]["name"], namespace)

        async def new_head() -> bool:
            pods = (await kclient.list(PODS, namespace, label_selector=sel))["items"]
            return any(p["metadata"]["uid"] != head["metadata"]["uid"] for p in pods)

        await eventually(new_head, 60, "the RayCluster controller to recreate the head")
        await eventually(lambda: len(fc.serve_configs) == 2, 60, "the config re-applied to the new head")
        await eventually(lambda: fc.serve.app_status("app1") == "RUNNING", 30, "app1 RUNNING again")
        st = await wait_ready(kclient, namespace, "svc")
        assert st["activeServiceStatus"]["rayClusterName"] == cname
        assert [c["metadata"]["name"] for c in await clusters_of(kclient, namespace, "svc")] == [cname]


async def test_upgrade_strategy_none_never_creates_a_second_cluster(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, heads):
        created = await kclient.create(RAYSERVICES, rayservice("svc", namespace, upgradeStrategy={"type": "None"}))
        st = await wait_ready(kclient, namespace, "svc")
        cname = st["activeServiceStatus"]["rayClusterName"]
        await patch_spec(kclient, namespace, "svc", {"rayClusterConfig": new_image(created["spec"], "ray:2.53.0")})
        for _ in range(15):  # 3 s of passes: the cluster-spec change is ignored
            st = await status_of(kclient, namespace, "svc")
            assert not st["pendingServiceStatus"].get("rayClusterName")
            assert cond(st, "UpgradeInProgress")["status"] == "False"
            await asyncio.sleep(0.2)
        assert [c["metadata"]["name"] for c in await clusters_of(kclient, namespace, "svc")] == [cname]
        # serveConfigV2 edits still reach the active cluster.
        await patch_spec(kclient, namespace, "svc", {"serveConfigV2": SERVE_CONFIG.replace("hi", "hey")})
        await eventually(lambda: len(heads(cname).serve_configs) == 2, 30, "the serve config applied in place")


async def test_zero_downtime_disabled_by_env(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    env = {"ENABLE_ZERO_DOWNTIME": "FALSE"}
    async with operator_with_heads(sim_cluster, kclient, namespace, env=env) as (_rt, _heads):
        created = await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        cname = st["activeServiceStatus"]["rayClusterName"]
        await patch_spec(kclient, namespace, "svc", {"rayClusterConfig": new_image(created["spec"], "ray:2.53.0")})
        for _ in range(10):
            st = await status_of(kclient, namespace, "svc")
            assert not st["pendingServiceStatus"].get("rayClusterName")
            await asyncio.sleep(0.2)
        assert [c["metadata"]["name"] for c in await clusters_of(kclient, namespace, "svc")] == [cname]


async def test_deletion_removes_everything(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, _heads):
        await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        cname = st["activeServiceStatus"]["rayClusterName"]
        await kclient.delete(RAYSERVICES, "svc", namespace)
        # The finalizer holds the RayService until its clusters are deleted, then everything is GC'd.
        await eventually(lambda: gone(kclient, RAYSERVICES, "svc", namespace), 60, "the RayService gone")
        await eventually(lambda: gone(kclient, RAYCLUSTERS, cname, namespace), 60, "its RayCluster gone")
        await eventually(lambda: gone(kclient, SERVICES, "svc-head-svc", namespace), 60, "the head Service gone")
        await eventually(lambda: gone(kclient, SERVICES, "svc-serve-svc", namespace), 60, "the serve Service gone")
        await wait_events(kclient, namespace, "svc", "DeletedRayCluster")


async def test_validation_failure_is_an_event_and_a_condition(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, _heads):
        await kclient.create(RAYSERVICES, rayservice("bad", namespace, upgradeStrategy={"type": "Rolling"}))
        msg = (
            "The RayService spec is invalid: Spec.UpgradeStrategy.Type value Rolling is invalid, valid options are "
            "NewClusterWithIncrementalUpgrade, NewCluster, or None"
        )

        async def failed() -> dict[str, Any] | None:
            st = await status_of(kclient, namespace, "bad")
            return st if cond(st, "Ready").get("reason") == "ValidationFailed" else None

        st = await eventually(failed, 30, "Ready=False/ValidationFailed")
        assert cond(st, "Ready")["message"] == msg and cond(st, "Ready")["status"] == "False"
        events = await wait_events(kclient, namespace, "bad", "InvalidRayServiceSpec")
        assert events and events[0]["type"] == "Warning" and events[0]["note"] == f"{namespace}/bad: {msg}"
        assert events[0]["action"] == "Validate"
        assert not await clusters_of(kclient, namespace, "bad")


async def test_suspend_deletes_everything_and_resume_recreates(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, _heads):
        await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        cname = st["activeServiceStatus"]["rayClusterName"]
        await patch_spec(kclient, namespace, "svc", {"suspend": True})

        async def suspended() -> dict[str, Any] | None:
            st = await status_of(kclient, namespace, "svc")
            return st if cond(st, "Suspended").get("status") == "True" else None

        st = await eventually(suspended, 60, "Suspended=True")
        assert cond(st, "Ready")["reason"] == "SuspendComplete" and cond(st, "Suspending")["status"] == "False"
        await eventually(lambda: gone(kclient, SERVICES, "svc-serve-svc", namespace), 30, "the serve Service gone")
        await eventually(lambda: _no_clusters(kclient, namespace, "svc"), 60, "the clusters gone")
        await patch_spec(kclient, namespace, "svc", {"suspend": False})
        st = await wait_ready(kclient, namespace, "svc", 120)
        assert cond(st, "Suspended")["reason"] == "RayServiceResumed"
        assert st["activeServiceStatus"]["rayClusterName"] != cname


async def test_black_holed_heads_do_not_delay_the_others(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    total, dead = 20, {"s00", "s01"}
    async with operator_with_heads(sim_cluster, kclient, namespace, dead=dead) as (_rt, _heads):
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(total):
            s = rayservice(f"s{i:02d}", namespace)
            s["spec"]["rayClusterConfig"]["workerGroupSpecs"] = []
            await kclient.create(RAYSERVICES, s)
        ready_at: dict[str, float] = {}

        async def healthy_ready() -> bool:
            for item in (await kclient.list(RAYSERVICES, namespace))["items"]:
                name = item["metadata"]["name"]
                if name not in ready_at and cond(item.get("status") or {}, "Ready").get("status") == "True":
                    ready_at[name] = loop.time() - start
            return len([n for n in ready_at if n not in dead]) == total - len(dead)

        await eventually(healthy_ready, 180, "every RayService with a live head Ready")
        assert not dead & set(ready_at)
        # Each dead head costs a worker at most the 2 s client timeout per call; the others are not held
        # behind it (measured: the slowest healthy one Ready after about 10 s on 2 cores).
        assert max(ready_at.values()) < 60
        print(f"\n{total - len(dead)} RayServices Ready; slowest after {max(ready_at.values()):.1f}s")
        for name in dead:
            st = await status_of(kclient, namespace, name)
            assert cond(st, "Ready")["status"] == "False"


async def test_managed_by_another_controller_is_left_alone(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, _heads):
        await kclient.create(RAYSERVICES, rayservice("mk", namespace, managedBy="kueue.x-k8s.io/multikueue"))
        await kclient.create(RAYSERVICES, rayservice("ours", namespace))
        await wait_ready(kclient, namespace, "ours")  # the operator is working; "mk" was seen long ago
        for _ in range(10):
            got = await kclient.get(RAYSERVICES, "mk", namespace)
            assert not got["metadata"].get("finalizers") and not got.get("status")
            assert not await clusters_of(kclient, namespace, "mk")
            await asyncio.sleep(0.2)


async def test_exclude_head_pod_from_serve_service(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, heads):
        await kclient.create(RAYSERVICES, rayservice("svc", namespace, excludeHeadPodFromServeSvc=True))
        st = await wait_ready(kclient, namespace, "svc")  # the worker serves
        cname = st["activeServiceStatus"]["rayClusterName"]
        sel = f"ray.io/cluster={cname},ray.io/node-type=head"
        head = (await kclient.list(PODS, namespace, label_selector=sel))["items"][0]
        assert head["metadata"]["labels"]["ray.io/serve"] == "false"
        assert heads(cname).calls["proxy_healthz"] == 0  # no health check for an excluded head
        slices = await kclient.list(
            ENDPOINTSLICES, namespace, label_selector="kubernetes.io/service-name=svc-serve-svc"
        )
        uids = {e["targetRef"]["uid"] for s in slices["items"] for e in s["endpoints"]}
        assert head["metadata"]["uid"] not in uids and st["numServeEndpoints"] == 1


async def test_appended_worker_group_updates_the_active_cluster_in_place(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, _heads):
        created = await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        cname = st["activeServiceStatus"]["rayClusterName"]
        config = copy.deepcopy(created["spec"]["rayClusterConfig"])
        config["workerGroupSpecs"].append(copy.deepcopy(config["workerGroupSpecs"][0]) | {"groupName": "w2"})
        await patch_spec(kclient, namespace, "svc", {"rayClusterConfig": config})

        async def updated() -> bool:
            c = await kclient.get(RAYCLUSTERS, cname, namespace)
            groups = [g["groupName"] for g in c["spec"]["workerGroupSpecs"]]
            return groups == ["w", "w2"] and c["metadata"]["annotations"]["ray.io/num-worker-groups"] == "2"

        await eventually(updated, 30, "the active cluster updated with the new group")
        await wait_events(kclient, namespace, "svc", "UpdatedRayCluster")
        st = await status_of(kclient, namespace, "svc")
        assert not st["pendingServiceStatus"].get("rayClusterName")
        assert [c["metadata"]["name"] for c in await clusters_of(kclient, namespace, "svc")] == [cname]


async def test_spec_change_during_an_upgrade_replaces_the_pending_cluster(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, heads):
        created = await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        old = st["activeServiceStatus"]["rayClusterName"]
        heads.failing_imports = {"hello:app": IMPORT_ERROR}
        await patch_spec(kclient, namespace, "svc", {"rayClusterConfig": new_image(created["spec"], "ray:2.53.0")})

        async def pending_name() -> str | None:
            return (await status_of(kclient, namespace, "svc"))["pendingServiceStatus"].get("rayClusterName")

        first = await eventually(pending_name, 30, "a first pending cluster")
        heads(first)  # its head cannot import the app
        await eventually(lambda: _exists(kclient, RAYCLUSTERS, first, namespace), 30, "the first pending created")
        heads.failing_imports = {}
        await patch_spec(kclient, namespace, "svc", {"rayClusterConfig": new_image(created["spec"], "ray:2.54.0")})
        second = await eventually(
            lambda: _other(pending_name(), first), 30, "a second pending cluster replacing the first"
        )
        # The second is healthy: it becomes active; the abandoned first and the old active are deleted.
        await eventually(lambda: _active_is(kclient, namespace, "svc", second), 90, "the second cluster active")
        await eventually(lambda: gone(kclient, RAYCLUSTERS, first, namespace), 60, "the abandoned pending deleted")
        await eventually(lambda: gone(kclient, RAYCLUSTERS, old, namespace), 60, "the old active deleted")
        c = await kclient.get(RAYCLUSTERS, second, namespace)
        assert c["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == "ray:2.54.0"


async def _exists(c: Client, r: Any, name: str, ns: str) -> bool:
    return not await gone(c, r, name, ns)


async def _other(name: Any, not_this: str) -> str | None:
    got = await name
    return got if got and got != not_this else None


async def _active_is(c: Client, ns: str, name: str, cluster: str) -> bool:
    st = await status_of(c, ns, name)
    return bool(st["activeServiceStatus"].get("rayClusterName") == cluster and cond(st, "Ready")["status"] == "True")


async def test_dashboard_errors_are_events_and_retried(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, heads):
        heads.put_faults = [(500, "Internal Server Error: injected")]
        await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")  # the next pass retried the PUT
        cname = st["activeServiceStatus"]["rayClusterName"]
        assert heads(cname).calls["serve_put"] == 2 and len(heads(cname).serve_configs) == 1
        events = await wait_events(kclient, namespace, "svc", "FailedToUpdateServeApplications")
        assert events and events[0]["type"] == "Warning"
        assert "UpdateDeployments fail: 500 Internal Server Error Internal Server Error: injected" in events[0]["note"]


async def test_invalid_serve_config_is_reported_and_never_ready(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    bad = "applications:\n- name: app1\n  import_path: nodots\n"
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, _heads):
        await kclient.create(RAYSERVICES, rayservice("svc", namespace, serveConfigV2=bad))

        async def rejected() -> list[dict[str, Any]]:
            return [
                e
                for e in await events_for(kclient, namespace, "svc")
                if e["reason"] == "FailedToUpdateServeApplications"
            ]

        events = await eventually(rejected, 60, "the 400 from Serve reported as an event")
        assert "UpdateDeployments fail: 400 Bad Request" in events[0]["note"]
        assert (
            'Got invalid import path "nodots"' in events[0]["note"]
            or 'invalid import path "nodots"' in events[0]["note"]
        )
        for _ in range(10):
            st = await status_of(kclient, namespace, "svc")
            assert cond(st, "Ready")["status"] == "False" and not st["activeServiceStatus"].get("rayClusterName")
            await asyncio.sleep(0.2)


# ---- NewClusterWithIncrementalUpgrade ----------------------------------------------------------------------

GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api@v1.4.1"
GATEWAYS = Resource("gateway.networking.k8s.io", "v1", "gateways", "Gateway")
HTTPROUTES = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
GATEWAY_CONTROLLER = "example.net/sim-gateway-controller"


async def install_gateway_api(plane: Any) -> None:
    """The Gateway API CRDs (standard channel) from their Go module, as the plane's binaries come from Go
    modules."""
    proc = await asyncio.create_subprocess_exec(
        "go", "mod", "download", "-json", GATEWAY_API_MODULE, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, out
    crds = Path(orjson.loads(out)["Dir"]) / "config" / "crd" / "standard"
    paths = [crds / f"gateway.networking.k8s.io_{k}.yaml" for k in ("gatewayclasses", "gateways", "httproutes")]
    await asyncio.to_thread(plane.install_crds, paths)


def _true(kind: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True",
        "reason": kind,
        "message": "",
        "observedGeneration": generation,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


async def gateway_controller(c: Client, ns: str) -> None:
    """Play a Gateway implementation: accept and program every Gateway, accept every HTTPRoute whose
    backends resolve (their Services exist)."""
    while True:
        for gw in (await c.list(GATEWAYS, ns))["items"]:
            gen = gw["metadata"]["generation"]
            if [x["type"] for x in (gw.get("status") or {}).get("conditions") or () if x["status"] == "True"] != [
                "Accepted",
                "Programmed",
            ]:
                gw["status"] = {"conditions": [_true("Accepted", gen), _true("Programmed", gen)]}
                with contextlib.suppress(NotFound, Conflict):
                    await c.update_status(GATEWAYS, gw)
        services = {s["metadata"]["name"] for s in (await c.list(SERVICES, ns))["items"]}
        for route in (await c.list(HTTPROUTES, ns))["items"]:
            gen = route["metadata"]["generation"]
            backends = [b["name"] for r in route["spec"].get("rules") or () for b in r.get("backendRefs") or ()]
            if not all(b in services for b in backends):
                continue
            parents = [
                {
                    "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", **p},
                    "controllerName": GATEWAY_CONTROLLER,
                    "conditions": [_true("Accepted", gen), _true("ResolvedRefs", gen)],
                }
                for p in route["spec"]["parentRefs"]
            ]
            if (route.get("status") or {}).get("parents") != parents:
                route["status"] = {"parents": parents}
                with contextlib.suppress(NotFound, Conflict):
                    await c.update_status(HTTPROUTES, route)
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def gateway_api(plane: Any, kclient: Client, namespace: str) -> AsyncIterator[None]:
    """The Gateway API CRDs installed and a Gateway implementation playing in ``namespace``."""
    await install_gateway_api(plane)
    gwc = asyncio.create_task(gateway_controller(kclient, namespace))
    try:
        yield
    finally:
        gwc.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gwc


def _weights(route: Mapping[str, Any]) -> dict[str, int]:
    return {b["name"]: b["weight"] for r in route["spec"]["rules"] for b in r["backendRefs"]}


def incremental_rayservice(name: str, ns: str) -> dict[str, Any]:
    """NewClusterWithIncrementalUpgrade: 25 % of the traffic every 2 s, capacity in steps of 50 %."""
    options = {"gatewayClassName": "sim", "stepSizePercent": 25, "intervalSeconds": 2, "maxSurgePercent": 50}
    s = rayservice(name, ns, upgradeStrategy={"type": "NewClusterWithIncrementalUpgrade"})
    s["spec"]["upgradeStrategy"]["clusterUpgradeOptions"] = options
    s["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] = True
    return s


async def test_incremental_upgrade_moves_traffic_in_steps(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    s = incremental_rayservice("inc", namespace)
    async with (
        gateway_api(sim_cluster, kclient, namespace),
        operator_with_heads(sim_cluster, kclient, namespace) as (_rt, heads),
    ):
        created = await kclient.create(RAYSERVICES, s)
        gw = await eventually(lambda: _get(kclient, GATEWAYS, "inc-gateway", namespace), 30, "the Gateway")
        assert gw["spec"]["gatewayClassName"] == "sim"
        listeners = [(x["name"], x["protocol"], x["port"]) for x in gw["spec"]["listeners"]]
        assert listeners == [("http", "HTTP", 80)]
        assert gw["metadata"]["ownerReferences"][0]["kind"] == "RayService"
        st = await wait_active(kclient, namespace, "inc")
        old = st["activeServiceStatus"]["rayClusterName"]
        assert st["activeServiceStatus"]["targetCapacity"] == 100
        assert heads(old).serve_configs[0]["target_capacity"] == 100
        # No <rs>-serve-svc in this mode: each cluster has its own, owned by the cluster.
        assert await gone(kclient, SERVICES, "inc-serve-svc", namespace)
        own = await kclient.get(SERVICES, f"{old}-serve-svc", namespace)
        assert own["metadata"]["ownerReferences"][0]["kind"] == "RayCluster"
        route = await eventually(lambda: _get(kclient, HTTPROUTES, "inc-httproute", namespace), 30, "the route")
        assert _weights(route) == {f"{old}-serve-svc": 100}
        assert route["spec"]["parentRefs"] == [
            {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "inc-gateway", "namespace": namespace}
        ]

        await patch_spec(kclient, namespace, "inc", {"rayClusterConfig": new_image(created["spec"], "ray:2.53.0")})

        async def pending() -> str | None:
            return (await status_of(kclient, namespace, "inc"))["pendingServiceStatus"].get("rayClusterName")

        new = await eventually(pending, 30, "a pending cluster")
        seen: list[tuple[int, int]] = []

        async def upgraded() -> bool:
            route = await kclient.get(HTTPROUTES, "inc-httproute", namespace)
            w = _weights(route)
            pair = (w.get(f"{old}-serve-svc", 0), w.get(f"{new}-serve-svc", 0))
            if not seen or seen[-1] != pair:
                seen.append(pair)
            st = await status_of(kclient, namespace, "inc")
            return st["activeServiceStatus"].get("rayClusterName") == new and not st["pendingServiceStatus"]

        await eventually(upgraded, 120, "traffic moved in steps and the new cluster promoted")
        # Traffic moved 25 % at a time, never ahead of the new cluster's capacity.
        assert seen[:5] == [(100, 0), (75, 25), (50, 50), (25, 75), (0, 100)], seen
        caps = [c.get("target_capacity") for c in heads(new).serve_configs]
        assert caps[0] == 0 and 50 in caps and caps[-1] == 100
        assert [c.get("target_capacity") for c in heads(old).serve_configs][-1] == 0
        await wait_events(kclient, namespace, "inc", "UpdatedServeTargetCapacity")
        await wait_events(kclient, namespace, "inc", "UpdatedHTTPRoute")
        await eventually(lambda: gone(kclient, RAYCLUSTERS, old, namespace), 60, "the old cluster deleted")

        async def one_backend() -> bool:
            route = await kclient.get(HTTPROUTES, "inc-httproute", namespace)
            return _weights(route) == {f"{new}-serve-svc": 100}

        await eventually(one_backend, 30, "the route down to the new cluster")
        assert await selector_target(kclient, namespace, "inc-head-svc") == new


async def _get(c: Client, r: Any, name: str, ns: str) -> dict[str, Any] | None:
    try:
        return await c.get(r, name, ns)
    except NotFound:
        return None


async def test_incremental_upgrade_rolls_back_when_the_spec_is_reverted(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    s = incremental_rayservice("inc", namespace)
    async with (
        gateway_api(sim_cluster, kclient, namespace),
        operator_with_heads(sim_cluster, kclient, namespace) as (_rt, heads),
    ):
        created = await kclient.create(RAYSERVICES, s)
        st = await wait_active(kclient, namespace, "inc")
        old = st["activeServiceStatus"]["rayClusterName"]
        original = copy.deepcopy(created["spec"]["rayClusterConfig"])
        await patch_spec(kclient, namespace, "inc", {"rayClusterConfig": new_image(created["spec"], "ray:2.53.0")})

        async def some_traffic_moved() -> str | None:
            st = await status_of(kclient, namespace, "inc")
            pend = st["pendingServiceStatus"]
            return pend.get("rayClusterName") if (pend.get("trafficRoutedPercent") or 0) >= 25 else None

        new = await eventually(some_traffic_moved, 90, "traffic moving to the new cluster")
        await patch_spec(kclient, namespace, "inc", {"rayClusterConfig": original})  # changed our mind

        async def rolling_back() -> dict[str, Any] | None:
            st = await status_of(kclient, namespace, "inc")
            return st if cond(st, "RollbackInProgress").get("status") == "True" else None

        st = await eventually(rolling_back, 30, "RollbackInProgress")
        assert cond(st, "RollbackInProgress")["reason"] == "DesiredClusterSpecChanged"
        assert cond(st, "RollbackInProgress")["message"] == "Goal state reverted to original cluster, rolling back."

        async def rolled_back() -> dict[str, Any] | None:
            st = await status_of(kclient, namespace, "inc")
            done = not st["pendingServiceStatus"] and not cond(st, "RollbackInProgress")
            return st if done else None

        st = await eventually(rolled_back, 90, "the rollback complete")
        assert st["activeServiceStatus"]["rayClusterName"] == old
        assert st["activeServiceStatus"]["trafficRoutedPercent"] == 100
        assert st["activeServiceStatus"]["targetCapacity"] == 100
        assert cond(st, "UpgradeInProgress")["status"] == "False"

        async def route_back() -> bool:
            route = await kclient.get(HTTPROUTES, "inc-httproute", namespace)
            return _weights(route) == {f"{old}-serve-svc": 100}

        await eventually(route_back, 30, "the route down to the original cluster")
        assert await selector_target(kclient, namespace, "inc-head-svc") == old
        await eventually(lambda: gone(kclient, RAYCLUSTERS, new, namespace), 60, "the abandoned cluster deleted")
        assert heads(old).serve_configs[-1]["target_capacity"] == 100


async def test_created_suspended_creates_nothing(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, _heads):
        await kclient.create(RAYSERVICES, rayservice("sus", namespace, suspend=True))

        async def suspended() -> dict[str, Any] | None:
            st = await status_of(kclient, namespace, "sus")
            return st if cond(st, "Suspended").get("status") == "True" else None

        st = await eventually(suspended, 60, "Suspended=True")
        assert cond(st, "Ready")["reason"] == "SuspendComplete"
        assert cond(st, "UpgradeInProgress")["reason"] == "SuspendComplete"
        for _ in range(10):  # it stays so, with nothing created
            assert not await clusters_of(kclient, namespace, "sus")
            assert await gone(kclient, SERVICES, "sus-head-svc", namespace)
            await asyncio.sleep(0.2)
        assert "CreatedRayCluster" not in await reasons(kclient, namespace, "sus")


# ---- details a user notices: delays, upgrades, suspend, passes --------------------------------------------


def _sample(rt: Runtime, metric: str, **labels: str) -> float:
    """The sum of the operator's ``metric`` samples whose labels include ``labels``."""
    return sum(
        smp.value
        for fam in rt.registry.collect()
        for smp in fam.samples
        if smp.name == metric and labels.items() <= smp.labels.items()
    )


async def test_an_upgrade_keeps_the_old_cluster_a_minute_by_default_and_the_serve_ip(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """Without rayClusterDeletionDelaySeconds the old cluster stays 60 s after the switch. While the new
    cluster is prepared the old one is not asked for its Serve status, the upgrade metric says so, and
    the serve Service keeps its ClusterIP across the switch (clients need no new address)."""
    clock = SkewedClock()
    async with operator_with_heads(sim_cluster, kclient, namespace, clock=clock) as (rt, heads):
        s = rayservice("svc", namespace)
        del s["spec"]["rayClusterDeletionDelaySeconds"]
        created = await kclient.create(RAYSERVICES, s)
        st = await wait_ready(kclient, namespace, "svc")
        old = st["activeServiceStatus"]["rayClusterName"]
        ip = (await kclient.get(SERVICES, "svc-serve-svc", namespace))["spec"]["clusterIP"]
        labels = {"name": "svc", "namespace": namespace}
        assert _sample(rt, "kuberay_service_condition_upgrade_in_progress", condition="false", **labels) == 1
        heads.timing = ServeTiming(deploy=8.0, redeploy=0.2, delete=0.3)
        await patch_spec(kclient, namespace, "svc", {"rayClusterConfig": new_image(created["spec"], "ray:2.53.0")})

        async def pending_name() -> str | None:
            return (await status_of(kclient, namespace, "svc"))["pendingServiceStatus"].get("rayClusterName")

        new = await eventually(pending_name, 30, "a pending cluster")
        asked = sum(r.endpoint == "serve_get" for r in heads(old).requests)
        metric = _sample(rt, "kuberay_service_condition_upgrade_in_progress", condition="true", **labels)
        assert metric == 1
        # The old head's proxy stops answering mid-upgrade: its pod leaves the serve Service's selection.
        heads(old).fail_next("proxy_healthz", 503, "proxy draining", times=100_000)
        sel = f"ray.io/cluster={old},ray.io/node-type=head"

        async def old_head_unlabelled() -> bool:
            pods = (await kclient.list(PODS, namespace, label_selector=sel))["items"]
            return bool(pods) and pods[0]["metadata"]["labels"].get("ray.io/serve") == "false"

        await eventually(old_head_unlabelled, 30, "the old head labelled ray.io/serve=false")
        assert (await status_of(kclient, namespace, "svc"))["pendingServiceStatus"].get("rayClusterName") == new

        async def promoted() -> bool:
            st = await status_of(kclient, namespace, "svc")
            return st["activeServiceStatus"].get("rayClusterName") == new and not st["pendingServiceStatus"]

        await eventually(promoted, 60, "the new cluster promoted")
        assert sum(r.endpoint == "serve_get" for r in heads(old).requests) == asked
        assert (await kclient.get(SERVICES, "svc-serve-svc", namespace))["spec"]["clusterIP"] == ip
        assert await selector_target(kclient, namespace, "svc-serve-svc") == new
        assert _sample(rt, "kuberay_service_condition_upgrade_in_progress", condition="false", **labels) == 1

        clock.offset = 45.0  # 45 s of operator time later (plus the real seconds of this window)
        for _ in range(15):
            assert old in [c["metadata"]["name"] for c in await clusters_of(kclient, namespace, "svc")]
            await asyncio.sleep(0.2)
        clock.offset = 61.0
        await eventually(lambda: gone(kclient, RAYCLUSTERS, old, namespace), 30, "the old cluster deleted at 60 s")
        events = await wait_events(kclient, namespace, "svc", "DeletedRayCluster")
        assert events[0]["note"] == f"Deleted the RayCluster {namespace}/{old}"


async def _watch_log(c: Client, ns: str, rv: str, seen: list[tuple[int, str, dict[str, Any]]]) -> None:
    """Every RayService and RayCluster change in ``ns`` after ``rv``, with its resourceVersion (one etcd
    orders them all)."""

    async def one(r: Resource) -> None:
        async with contextlib.aclosing(c.watch(r, ns, resource_version=rv, timeout_seconds=300)) as stream:
            async for ev in stream:
                obj = ev["object"]
                if ev["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    seen.append((int(obj["metadata"]["resourceVersion"]), obj["kind"], obj))

    async with asyncio.TaskGroup() as tg:
        tg.create_task(one(RAYSERVICES))
        tg.create_task(one(RAYCLUSTERS))


async def test_suspend_is_recorded_before_deleting_holds_and_resume_starts_over(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """Suspend is a two-phase commit: Suspending is stored before anything is deleted; once stored, a
    flip back of spec.suspend is ignored until every owned object is gone (a RayCluster held by a
    finalizer holds it); the resume then re-initialises Ready, with a fresh transition time."""
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, _heads):
        await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        cname = st["activeServiceStatus"]["rayClusterName"]
        hold = {"metadata": {"finalizers": ["test.ray.io/hold"]}}
        await kclient.patch(RAYCLUSTERS, cname, hold, namespace)
        seen: list[tuple[int, str, dict[str, Any]]] = []
        rv = (await kclient.list(RAYSERVICES, namespace))["metadata"]["resourceVersion"]
        watcher = asyncio.create_task(_watch_log(kclient, namespace, rv, seen))
        try:
            await patch_spec(kclient, namespace, "svc", {"suspend": True})

            async def held() -> dict[str, Any] | None:
                st = await status_of(kclient, namespace, "svc")
                waiting = cond(st, "Suspending").get("reason") == "SuspendInProgress"
                return st if waiting else None

            st = await eventually(held, 60, "Suspending=True, waiting for the held cluster")
            assert cond(st, "Suspending")["message"] == (
                "Waiting for all Kubernetes resources owned by this RayService to be deleted."
            )
            assert cond(st, "Ready")["reason"] == "SuspendInProgress" and st["activeServiceStatus"] == {}
            await eventually(lambda: gone(kclient, SERVICES, "svc-serve-svc", namespace), 30, "the serve Service gone")

            def first(kind: str, test: Callable[[dict[str, Any]], bool]) -> int:
                return min((v for v, k, o in seen if k == kind and test(o)), default=0)

            staged = first("RayService", lambda o: cond(o.get("status") or {}, "Suspending").get("status") == "True")
            deleted = first("RayCluster", lambda o: bool(o["metadata"].get("deletionTimestamp")))
            assert 0 < staged < deleted, (staged, deleted)

            await patch_spec(kclient, namespace, "svc", {"suspend": False})  # changed our mind: too late
            for _ in range(15):
                st = await status_of(kclient, namespace, "svc")
                assert cond(st, "Suspending").get("status") == "True"
                assert not st["activeServiceStatus"].get("rayClusterName")
                assert [c["metadata"]["name"] for c in await all_clusters_of(kclient, namespace, "svc")] == [cname]
                await asyncio.sleep(0.2)
            notes = {e["note"] for e in await events_for(kclient, namespace, "svc")}
            assert f"Deleted the RayCluster {namespace}/{cname} during suspend" in notes
            # one DeletedService series (events.k8s.io keys a series without its note): either Service's
            assert notes & {f"Deleted the Service {namespace}/svc-{k}-svc during suspend" for k in ("head", "serve")}

            released = time.time()
            await kclient.patch(
                RAYCLUSTERS, cname, [{"op": "remove", "path": "/metadata/finalizers"}], namespace, patch_type="json"
            )

            async def initializing() -> dict[str, Any] | None:
                st = await status_of(kclient, namespace, "svc")
                return st if cond(st, "Suspended").get("reason") == "RayServiceResumed" else None

            st = await eventually(initializing, 60, "resumed")
            ready = cond(st, "Ready")
            if ready["status"] == "False":  # still initialising: the new cluster is not serving yet
                assert ready["reason"] == "Initializing"
                assert ready["message"] == "RayService is initializing after resuming from suspend."
            assert parse_time(ready["lastTransitionTime"]).timestamp() >= int(released)
            assert not cond(st, "Suspending") or cond(st, "Suspending")["status"] == "False"
            st = await wait_ready(kclient, namespace, "svc", 90)
            assert st["activeServiceStatus"]["rayClusterName"] != cname
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def test_an_active_cluster_made_by_another_kuberay_version_is_updated_in_place(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """After an operator upgrade the active cluster carries the old ray.io/kuberay-version: it is
    rebuilt in place (same cluster, labels and annotations replaced wholesale), never replaced."""
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, _heads):
        await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        cname = st["activeServiceStatus"]["rayClusterName"]
        await kclient.patch(
            RAYCLUSTERS,
            cname,
            {"metadata": {"annotations": {"ray.io/kuberay-version": "v1.6.1"}, "labels": {"team": "added-by-hand"}}},
            namespace,
        )

        async def rebuilt() -> dict[str, Any] | None:
            rc = await kclient.get(RAYCLUSTERS, cname, namespace)
            return rc if rc["metadata"]["annotations"]["ray.io/kuberay-version"] == "v1.7.0" else None

        rc = await eventually(rebuilt, 30, "the active cluster rebuilt by this version")
        assert "team" not in rc["metadata"]["labels"]
        events = await wait_events(kclient, namespace, "svc", "UpdatedRayCluster")
        assert events[0]["note"] == f"Updated the active RayCluster {namespace}/{cname}"
        for _ in range(10):
            st = await status_of(kclient, namespace, "svc")
            assert st["activeServiceStatus"]["rayClusterName"] == cname and not st["pendingServiceStatus"]
            assert cond(st, "Ready")["status"] == "True"
            assert [c["metadata"]["name"] for c in await clusters_of(kclient, namespace, "svc")] == [cname]
            await asyncio.sleep(0.2)


async def test_a_serving_rayservice_is_polled_every_two_seconds_and_a_suspended_one_not_at_all(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """The requeue table as an SRE sees it in controller_runtime_reconcile_total: a Ready RayService is
    reconciled about every 2 s (Serve status, endpoints); once Suspended, never until it changes."""
    async with operator_with_heads(sim_cluster, kclient, namespace) as (rt, _heads):
        await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        await wait_ready(kclient, namespace, "svc")

        def passes() -> float:  # every result: success, requeue_after, requeue, error
            return _sample(rt, "controller_runtime_reconcile_total", controller="rayservice")

        async def steady() -> float | None:
            """Passes per second over a 6 s window, once the cluster's own start-up events are over."""
            before, t0 = passes(), time.monotonic()
            await asyncio.sleep(6.0)  # a sampling window
            rate = (passes() - before) / (time.monotonic() - t0)
            return rate if rate <= 1.0 else None

        rate = await eventually(steady, 60, "one pass per ~2 s")
        assert rate >= 0.3, rate  # still polled: Serve status and endpoints are not watched

        await patch_spec(kclient, namespace, "svc", {"suspend": True})

        async def suspended() -> bool:
            return cond(await status_of(kclient, namespace, "svc"), "Suspended").get("status") == "True"

        await eventually(suspended, 60, "Suspended=True")
        await eventually(lambda: _no_clusters(kclient, namespace, "svc"), 60, "the clusters gone")

        async def quiet() -> bool:  # the last requeue of SuspendComplete (2 s) has run out
            before = passes()
            await asyncio.sleep(2.5)
            return passes() == before

        await eventually(quiet, 30, "no more passes")
        before = passes()
        for _ in range(25):  # 5 s: no pass at all
            assert passes() == before
            await asyncio.sleep(0.2)


async def test_incremental_upgrade_repairs_its_gateway_and_reports_what_it_cannot_roll_back(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """A hand-edited Gateway listener is put back; a third rayClusterConfig during an incremental
    upgrade rolls back to the original cluster ("changed mid-upgrade"); and once that original cluster
    is gone, every pass says the rollback is impossible (a Warning event), as upstream does."""
    s = incremental_rayservice("inc", namespace)
    async with (
        gateway_api(sim_cluster, kclient, namespace),
        operator_with_heads(sim_cluster, kclient, namespace) as (_rt, _heads),
    ):
        created = await kclient.create(RAYSERVICES, s)
        st = await wait_active(kclient, namespace, "inc")
        old = st["activeServiceStatus"]["rayClusterName"]

        await kclient.patch(
            GATEWAYS,
            "inc-gateway",
            [{"op": "replace", "path": "/spec/listeners/0/port", "value": 8080}],
            namespace,
            patch_type="json",
        )

        async def repaired() -> bool:
            gw = await kclient.get(GATEWAYS, "inc-gateway", namespace)
            return [x["port"] for x in gw["spec"]["listeners"]] == [80]

        await eventually(repaired, 30, "the Gateway listener put back")
        events = await wait_events(kclient, namespace, "inc", "UpdatedGateway")
        assert events[0]["note"] == f"Updated the Gateway {namespace}/inc-gateway"

        await patch_spec(kclient, namespace, "inc", {"rayClusterConfig": new_image(created["spec"], "ray:2.53.0")})

        async def some_traffic_moved() -> str | None:
            pend = (await status_of(kclient, namespace, "inc"))["pendingServiceStatus"]
            return pend.get("rayClusterName") if (pend.get("trafficRoutedPercent") or 0) >= 25 else None

        await eventually(some_traffic_moved, 90, "traffic moving to the new cluster")
        await patch_spec(kclient, namespace, "inc", {"rayClusterConfig": new_image(created["spec"], "ray:2.54.0")})

        async def rolling_back() -> dict[str, Any] | None:
            st = await status_of(kclient, namespace, "inc")
            return st if cond(st, "RollbackInProgress").get("status") == "True" else None

        st = await eventually(rolling_back, 30, "RollbackInProgress")
        assert cond(st, "RollbackInProgress")["message"] == (
            "Goal state changed mid-upgrade, rolling back to original cluster."
        )

        await kclient.delete(RAYCLUSTERS, old, namespace)
        events = await wait_events(kclient, namespace, "inc", "RollbackImpossible")
        assert events[0]["type"] == "Warning"
        assert events[0]["note"] == "Active cluster not found, rollback cannot be initiated"

        async def repeated() -> bool:  # every pass while the active cluster is missing: a series
            found = await events_for(kclient, namespace, "inc")
            counts = [(e.get("series") or {}).get("count", 1) for e in found if e["reason"] == "RollbackImpossible"]
            return max(counts, default=0) >= 2

        await eventually(repeated, 30, "RollbackImpossible repeated")

        # Suspending takes the Gateway and the HTTPRoute with everything else.
        await patch_spec(kclient, namespace, "inc", {"suspend": True})

        async def suspended() -> bool:
            return cond(await status_of(kclient, namespace, "inc"), "Suspended").get("status") == "True"

        await eventually(suspended, 60, "Suspended=True")
        assert await gone(kclient, GATEWAYS, "inc-gateway", namespace)
        assert await gone(kclient, HTTPROUTES, "inc-httproute", namespace)
        notes = {e["note"] for e in await events_for(kclient, namespace, "inc")}
        assert f"Deleted the Gateway {namespace}/inc-gateway during suspend" in notes
        assert f"Deleted the HTTPRoute {namespace}/inc-httproute during suspend" in notes


async def test_without_the_status_conditions_gate_the_head_pod_itself_says_ready(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """With RayClusterStatusConditions off, RayClusters carry no HeadPodReady condition: the head counts
    as ready when its Pod is Running and Ready, and the RayService gets there all the same."""
    gates = "RayClusterStatusConditions=false"
    async with operator_with_heads(sim_cluster, kclient, namespace, gates=gates) as (_rt, heads):
        await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        cname = st["activeServiceStatus"]["rayClusterName"]
        rc = await kclient.get(RAYCLUSTERS, cname, namespace)
        assert not [c for c in (rc.get("status") or {}).get("conditions") or () if c["type"] == "HeadPodReady"]
        assert len(heads(cname).serve_configs) == 1  # the Serve config went to a head it judged ready


async def test_ready_follows_endpoints_not_application_health(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """A deployment turning UNHEALTHY shows in the application statuses, but Ready stays True while the
    serve Service has endpoints (upstream: Ready means "requests can be sent", Q22). The active status
    carries a copy of its RayCluster's status."""
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, heads):
        await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        cname = st["activeServiceStatus"]["rayClusterName"]
        copied = st["activeServiceStatus"]["rayClusterStatus"]
        live = (await kclient.get(RAYCLUSTERS, cname, namespace))["status"]
        assert copied["state"] == live["state"] == "ready"
        assert copied["head"]["podName"] == live["head"]["podName"]
        heads(cname).serve.set_deployment_status("app1", "Hello", "UNHEALTHY", "replica died")

        async def unhealthy() -> dict[str, Any] | None:
            st = await status_of(kclient, namespace, "svc")
            app = st["activeServiceStatus"]["applicationStatuses"]["app1"]
            return st if app["status"] == "UNHEALTHY" else None

        st = await eventually(unhealthy, 30, "app1 UNHEALTHY in the status")
        assert st["activeServiceStatus"]["applicationStatuses"]["app1"]["serveDeploymentStatuses"]["Hello"] == {
            "status": "UNHEALTHY",
            "message": "replica died",
        }
        for _ in range(10):
            st = await status_of(kclient, namespace, "svc")
            assert cond(st, "Ready")["status"] == "True" and st["serviceStatus"] == "Running"
            await asyncio.sleep(0.2)


async def test_without_a_head_pod_every_pass_fails_and_the_status_stays_as_it_was(
    sim_cluster: Any, kclient: Client, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The active cluster suspended by hand (as Kueue would): its head Pod goes, and each pass stops at
    the serve-label step with upstream's "found 0 head" error, retried with backoff; the status is not
    rewritten meanwhile (Q14), and nothing replaces the cluster."""
    async with operator_with_heads(sim_cluster, kclient, namespace) as (rt, _heads):
        await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        cname = st["activeServiceStatus"]["rayClusterName"]
        await kclient.patch(RAYCLUSTERS, cname, {"spec": {"suspend": True}}, namespace)
        sel = f"ray.io/cluster={cname},ray.io/node-type=head"

        async def no_head() -> bool:
            return not (await kclient.list(PODS, namespace, label_selector=sel))["items"]

        await eventually(no_head, 60, "the head Pod gone")
        text = f"found 0 head. cluster name {cname}, namespace {namespace}"

        def logged() -> bool:
            return any(getattr(r, "error", "") == text for r in caplog.records)

        await eventually(logged, 30, "the reconcile error logged")
        frozen = (await kclient.get(RAYSERVICES, "svc", namespace))["metadata"]["resourceVersion"]
        errors = _sample(rt, "controller_runtime_reconcile_errors_total", controller="rayservice")
        for _ in range(15):
            svc = await kclient.get(RAYSERVICES, "svc", namespace)
            assert svc["metadata"]["resourceVersion"] == frozen
            assert [c["metadata"]["name"] for c in await clusters_of(kclient, namespace, "svc")] == [cname]
            await asyncio.sleep(0.2)
        assert _sample(rt, "controller_runtime_reconcile_errors_total", controller="rayservice") > errors
        assert (await kclient.get(RAYCLUSTERS, cname, namespace))["spec"]["suspend"] is True  # the edit is kept


async def test_any_cluster_with_the_association_labels_is_cleaned_up_as_the_services(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """A RayCluster made by hand with a RayService's association labels is taken for one of its old
    clusters and deleted after rayClusterDeletionDelaySeconds (upstream Q21): the labels are the link."""
    async with operator_with_heads(sim_cluster, kclient, namespace) as (_rt, _heads):
        await kclient.create(RAYSERVICES, rayservice("svc", namespace))
        st = await wait_ready(kclient, namespace, "svc")
        stray = {
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "metadata": {
                "name": "by-hand",
                "labels": {"ray.io/originated-from-crd": "RayService", "ray.io/originated-from-cr-name": "svc"},
            },
            "spec": copy.deepcopy(RAYSERVICE["spec"]["rayClusterConfig"]),
        }
        await kclient.create(RAYCLUSTERS, stray, namespace)
        await eventually(lambda: gone(kclient, RAYCLUSTERS, "by-hand", namespace), 60, "the stray cluster deleted")
        events = await wait_events(kclient, namespace, "svc", "DeletedRayCluster")
        assert f"Deleted the RayCluster {namespace}/by-hand" in {e["note"] for e in events}
        st = await status_of(kclient, namespace, "svc")
        assert cond(st, "Ready")["status"] == "True"
