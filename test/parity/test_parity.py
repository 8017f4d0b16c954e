"""The differential tier: this operator and upstream KubeRay (the oracle, hack/build-upstream-operator.sh)
on one T2 plane, each watching a namespace of its own, get the same inputs; once both settle, every
object they created or updated is normalised and diffed (harness.py). Differences not listed in
allowed_differences.yaml fail the test; test-artifacts/parity/ keeps a report per test.

Inputs: the samples and seed guides, the RayService samples, hypothesis-drawn RayClusters, and scripted
scenarios."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
import inputs
import pytest
from harness import KINDS, Driver, Result, Side, for_side, resource_of
from kuberay_operator.main import controller_setups
from oracle import UpstreamOperator, oracle_binary
from support.fake_dashboard import FakeDashboard
from support.operator import running_operator

from controllers.ray.utils.dashboard import DashboardClientFactory, Loopback, LoopbackProxyAddress
from internal.client import Client, NotFound
from internal.client.resources import NAMESPACES, PODS, RAYCLUSTERS, RAYJOBS, RAYSERVICES

pytestmark = [pytest.mark.t2, pytest.mark.parity]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "parity"
#: Hypothesis-drawn RayClusters per run (PARITY_GENERATED overrides); about 1.7 pods each.
GENERATED = int(os.environ.get("PARITY_GENERATED", "200"))


@pytest.fixture(scope="session")
def oracle() -> Path:
    path = oracle_binary()
    if not path.exists():
        pytest.fail(f"the upstream operator is not built ({path}): run `make oracle`", pytrace=False)
    return path


@dataclass
class Pair:
    client: Client
    ours: Side
    upstream: Side

    @property
    def sides(self) -> list[Side]:
        return [self.ours, self.upstream]

    async def apply(self, docs: list[dict[str, Any]]) -> None:
        """Creates each document in both namespaces (upstream's first, then ours, doc by doc)."""
        for doc in docs:
            for side in (self.upstream, self.ours):
                await self.client.create(resource_of(doc), for_side(doc, side.namespace))

    async def each(self, fn: Callable[[Side], Awaitable[Any]]) -> None:
        for side in (self.upstream, self.ours):
            await fn(side)

    async def patch(self, kind: str, name: str, body: dict[str, Any]) -> None:
        await self.each(lambda s: self.client.patch(KINDS[kind], name, body, s.namespace))

    async def json_patch(self, kind: str, name: str, ops: list[dict[str, Any]]) -> None:
        await self.each(lambda s: self.client.patch(KINDS[kind], name, ops, s.namespace, patch_type="json"))

    async def compare(
        self,
        label: str,
        timeout: float = 120.0,
        done: Callable[[], Any] | None = None,
        check_hashes: bool = False,
    ) -> Result:
        unsettled = await harness.settle(self.client, [s.namespace for s in self.sides], timeout, done=done)
        snaps = {s.name: await harness.snapshot(self.client, s.namespace) for s in self.sides}
        result = harness.compare(
            label,
            harness.normalise(snaps["ours"], self.ours.namespace),
            harness.normalise(snaps["upstream"], self.upstream.namespace),
        )
        result.unsettled = [("ours" if ns == self.ours.namespace else "upstream") + f" ({ns})" for ns in unsettled]
        if check_hashes:
            result.hash_problems = harness.recreate_hash_problems(snaps["ours"], snaps["upstream"])
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{label}.json").write_text(json.dumps(result.to_json(), indent=1, default=str))
        (ARTIFACTS / f"{label}.raw.json").write_text(json.dumps(snaps, default=str))
        harness.apply_allowed(result, harness.load_allowed())
        (ARTIFACTS / f"{label}.txt").write_text(result.report() + "\n")
        print(result.report())
        return result


def _cluster_of(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["labels"]["ray.io/cluster"])


def check(result: Result) -> None:
    bad = result.failures()
    if bad or result.unsettled or result.hash_problems:
        pytest.fail(result.report(), pytrace=False)


@contextlib.asynccontextmanager
async def pair(plane: Any, kclient: Client, oracle: Path, tmp_path: Path, gates: str = "") -> AsyncIterator[Pair]:
    tag = uuid.uuid4().hex[:8]
    nss = {"ours": f"parity-o-{tag}", "upstream": f"parity-u-{tag}"}
    for ns in nss.values():
        await kclient.create(NAMESPACES, {"metadata": {"name": ns}})
    try:
        async with FakeDashboard() as fake_ours, FakeDashboard() as fake_up:
            ours = Side("ours", nss["ours"], fake_ours)
            up = Side("upstream", nss["upstream"], fake_up)
            up.upstream = UpstreamOperator(oracle, plane.kubeconfig, nss["upstream"], tmp_path / "oracle", gates)
            factory = DashboardClientFactory(
                Loopback(lambda rc: ours.cluster(rc["metadata"]["name"]).base_url),
                # the head's Serve proxy (RayService): the same fake head, which serves /-/healthz
                proxies=LoopbackProxyAddress(lambda pod, _: ours.cluster(_cluster_of(pod)).base_url),
            )
            await asyncio.to_thread(up.upstream.start)
            try:
                async with running_operator(plane, controller_setups(factory), namespaces=nss["ours"], gates=gates):
                    p = Pair(kclient, ours, up)
                    driver = Driver(kclient, p.sides)
                    try:
                        async with driver.running():
                            yield p
                    finally:
                        ARTIFACTS.mkdir(parents=True, exist_ok=True)
                        (ARTIFACTS / f"driver-errors-{tag}.txt").write_text("\n".join(driver.errors[-200:]) + "\n")
            finally:
                await asyncio.to_thread(up.upstream.stop)
                await factory.close()
                log = up.upstream.log
                if log.exists():
                    ARTIFACTS.mkdir(parents=True, exist_ok=True)
                    (ARTIFACTS / f"upstream-{tag}.log").write_bytes(log.read_bytes())
    finally:
        for ns in nss.values():
            with contextlib.suppress(NotFound):
                await kclient.delete(NAMESPACES, ns)


# ---- samples, seeds, generated specs ---------------------------------------------------------------------


async def _rayjobs_final(p: Pair) -> bool:
    """Every RayJob in both namespaces is in a state that waits on nothing the test scripts."""
    for side in p.sides:
        for job in (await p.client.list(RAYJOBS, side.namespace))["items"]:
            st = job.get("status") or {}
            final = st.get("jobDeploymentStatus") in ("Complete", "Failed", "Suspended", "Waiting")
            # Running with a terminal Ray job: a submitter that kwok never finishes (sidecar, custom pod)
            if not final and st.get("jobStatus") not in ("SUCCEEDED", "FAILED", "STOPPED"):
                return False
    return True


async def test_samples_and_seeds(sim_cluster: Any, kclient: Client, oracle: Path, tmp_path: Path) -> None:
    docs = inputs.sample_docs()
    docs += inputs.seed_docs(docs)
    companions = [d for d in docs if not d["kind"].startswith("Ray") or d["kind"] == "RayCluster"]
    async with pair(sim_cluster, kclient, oracle, tmp_path) as p:
        await p.apply(companions)
        await p.apply([d for d in docs if d["kind"] == "RayJob"])
        check(await p.compare("samples", timeout=240, done=lambda: _rayjobs_final(p)))


async def _rayservices_ready(p: Pair) -> bool:
    """Every RayService in both namespaces is Ready (its applications RUNNING, traffic on its cluster)
    with no pending cluster."""
    for side in p.sides:
        for svc in (await p.client.list(RAYSERVICES, side.namespace))["items"]:
            st = svc.get("status") or {}
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or ())
            if not ready or (st.get("pendingServiceStatus") or {}).get("rayClusterName"):
                return False
    return True


async def test_rayservice_samples(sim_cluster: Any, kclient: Client, oracle: Path, tmp_path: Path) -> None:
    """The RayService samples (single- and multi-application) with their ConfigMaps: the cluster, the
    head and serve Services, the pods and their serve label, events and the RayService status."""
    docs = inputs.service_docs()
    async with pair(sim_cluster, kclient, oracle, tmp_path) as p:
        await p.apply([d for d in docs if d["kind"] != "RayService"])
        await p.apply([d for d in docs if d["kind"] == "RayService"])
        check(await p.compare("rayservices", timeout=180, done=lambda: _rayservices_ready(p), check_hashes=True))


async def test_generated_rayclusters(sim_cluster: Any, kclient: Client, oracle: Path, tmp_path: Path) -> None:
    specs = inputs.generated_clusters(GENERATED)
    async with pair(sim_cluster, kclient, oracle, tmp_path) as p:
        await p.apply(specs)
        check(await p.compare("generated", timeout=300, check_hashes=True))


# ---- scripted scenarios ----------------------------------------------------------------------------------


def _cluster(name: str, replicas: int = 2, **spec: Any) -> dict[str, Any]:
    ctr = {"name": "ray-head", "image": "rayproject/ray:2.46.0", "resources": {"requests": {"cpu": "1"}}}
    wctr = {"name": "ray-worker", "image": "rayproject/ray:2.46.0", "resources": {"requests": {"cpu": "1"}}}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name},
        "spec": {
            "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [ctr]}}},
            "workerGroupSpecs": [
                {
                    "groupName": "workers",
                    "replicas": replicas,
                    "minReplicas": 0,
                    "maxReplicas": 10,
                    "rayStartParams": {},
                    "template": {"spec": {"containers": [wctr]}},
                }
            ],
            **spec,
        },
    }


def _group(replicas: int) -> dict[str, Any]:
    group: dict[str, Any] = _cluster("x", replicas)["spec"]["workerGroupSpecs"][0]
    return group


def _retry_job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "python -c 'import sys; sys.exit(1)'",
            "backoffLimit": 1,
            "shutdownAfterJobFinishes": True,
            "rayClusterSpec": _cluster("x", 1)["spec"],
        },
    }


async def _pods(p: Pair, side: Any, cluster: str, node_type: str) -> list[dict[str, Any]]:
    sel = f"ray.io/cluster={cluster},ray.io/node-type={node_type}"
    return list((await p.client.list(PODS, side.namespace, label_selector=sel))["items"])


async def test_scenarios(sim_cluster: Any, kclient: Client, oracle: Path, tmp_path: Path) -> None:
    """Scale up and down, workersToDelete, suspend/resume of a cluster and of a worker group, head pod
    deletion, a Recreate upgrade and RayJob retries, each on a cluster of its own, in three phases."""
    names = ("sc-scale", "sc-wtd", "sc-suspend", "sc-group", "sc-head", "sc-recreate")
    found: list[Result] = []
    async with pair(sim_cluster, kclient, oracle, tmp_path) as p:
        for side in p.sides:
            side.outcomes["sc-retry"] = "FAILED"
        docs = [_cluster(n, 3 if n == "sc-wtd" else 2) for n in names[:-1]]
        docs.append(_cluster("sc-recreate", 2, upgradeStrategy={"type": "Recreate"}))
        await p.apply([*docs, _retry_job("sc-retry")])
        found.append(await p.compare("scenarios-1-created", timeout=150, done=lambda: _rayjobs_final(p)))

        await p.patch("RayCluster", "sc-scale", {"spec": {"workerGroupSpecs": [_group(4)]}})

        async def delete_worker(side: Side) -> None:
            # the same victim on both sides: the worker with replica index 1 (else the oldest)
            workers = sorted(
                await _pods(p, side, "sc-wtd", "worker"),
                key=lambda w: (
                    (w["metadata"].get("labels") or {}).get("ray.io/worker-group-replica-index") != "1",
                    w["metadata"]["creationTimestamp"],
                    w["metadata"]["name"],
                ),
            )
            victim = workers[0]["metadata"]["name"]
            group = _group(2)
            group["scaleStrategy"] = {"workersToDelete": [victim]}
            await p.client.patch(RAYCLUSTERS, "sc-wtd", {"spec": {"workerGroupSpecs": [group]}}, side.namespace)

        await p.each(delete_worker)
        await p.patch("RayCluster", "sc-suspend", {"spec": {"suspend": True}})
        await p.json_patch(
            "RayCluster",
            "sc-group",
            [{"op": "add", "path": "/spec/workerGroupSpecs/0/suspend", "value": True}],
        )

        async def delete_head(side: Side) -> None:
            for pod in await _pods(p, side, "sc-head", "head"):
                await p.client.delete(PODS, pod["metadata"]["name"], side.namespace)

        await p.each(delete_head)
        await p.json_patch(
            "RayCluster",
            "sc-recreate",
            [
                {
                    "op": "replace",
                    "path": "/spec/headGroupSpec/template/spec/containers/0/image",
                    "value": "rayproject/ray:2.47.0",
                }
            ],
        )
        found.append(await p.compare("scenarios-2-changed", timeout=90))

        await p.patch("RayCluster", "sc-scale", {"spec": {"workerGroupSpecs": [_group(1)]}})
        await p.patch("RayCluster", "sc-suspend", {"spec": {"suspend": False}})
        await p.json_patch(
            "RayCluster",
            "sc-group",
            [{"op": "replace", "path": "/spec/workerGroupSpecs/0/suspend", "value": False}],
        )
        found.append(await p.compare("scenarios-3-reverted", timeout=90))
    bad = [r for r in found if r.failures() or r.unsettled]
    if bad:
        pytest.fail("\n".join(r.report() for r in bad), pytrace=False)


def _service(name: str, **spec: Any) -> dict[str, Any]:
    """The basic RayService sample under another name (its ConfigMap is applied once per namespace)."""
    base = next(d for d in inputs.service_docs() if d["kind"] == "RayService" and "multi" not in d["metadata"]["name"])
    doc = copy.deepcopy(base)
    doc["metadata"] = {"name": name}
    doc["spec"].update(spec)
    return doc


async def _service_clusters(p: Pair, side: Side, name: str) -> list[str]:
    sel = f"ray.io/originated-from-cr-name={name},ray.io/originated-from-crd=RayService"
    items = (await p.client.list(RAYCLUSTERS, side.namespace, label_selector=sel))["items"]
    return [rc["metadata"]["name"] for rc in items]


async def test_rayservice_scenarios(sim_cluster: Any, kclient: Client, oracle: Path, tmp_path: Path) -> None:
    """A RayService's lifecycle on both operators: created to Ready; then a Serve config edit (applied
    in place), a rayClusterConfig edit (a pending cluster, traffic switched once its applications run,
    the old cluster deleted after rayClusterDeletionDelaySeconds) and a deletion (finalizer, clusters
    and Services gone), each on a RayService of its own. Suspend is not here: v1.6.1 has no
    RayService ``spec.suspend`` (test/integration/test_rayservice.py covers it)."""
    apps = next(d for d in inputs.service_docs() if d["kind"] == "ConfigMap" and "multi" not in d["metadata"]["name"])
    found: list[Result] = []
    async with pair(sim_cluster, kclient, oracle, tmp_path) as p:
        await p.apply([apps, _service("ps-serve"), _service("ps-upgrade", rayClusterDeletionDelaySeconds=5)])
        await p.apply([_service("ps-delete")])
        found.append(await p.compare("rayservice-1-ready", timeout=180, done=lambda: _rayservices_ready(p)))

        first = {s.name: await _service_clusters(p, s, "ps-upgrade") for s in p.sides}
        serve = _service("ps-serve")["spec"]["serveConfigV2"].replace("greeting: Hello", "greeting: Hi")
        await p.patch("RayService", "ps-serve", {"spec": {"serveConfigV2": serve}})
        await p.json_patch(
            "RayService",
            "ps-upgrade",
            [
                {
                    "op": "add",
                    "path": "/spec/rayClusterConfig/headGroupSpec/template/spec/containers/0/env",
                    "value": [{"name": "UPGRADE", "value": "2"}],
                }
            ],
        )
        await p.each(lambda s: p.client.delete(RAYSERVICES, "ps-delete", s.namespace))

        async def switched() -> bool:
            for side in p.sides:
                clusters = await _service_clusters(p, side, "ps-upgrade")
                if len(clusters) != 1 or clusters == first[side.name]:
                    return False  # the old cluster is still there, or no new one yet
                if await _service_clusters(p, side, "ps-delete"):
                    return False
                with contextlib.suppress(NotFound):
                    await p.client.get(RAYSERVICES, "ps-delete", side.namespace)
                    return False
            return await _rayservices_ready(p)

        found.append(await p.compare("rayservice-2-changed", timeout=180, done=switched))
    bad = [r for r in found if r.failures() or r.unsettled]
    if bad:
        pytest.fail("\n".join(r.report() for r in bad), pytrace=False)
