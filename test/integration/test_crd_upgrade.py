"""Upgrading from upstream KubeRay: on a plane of its own that starts with upstream's v1.6.1 CRDs (read
from the Go module cache, as upstream's chart installs them), the operator works on upstream's CRDs, and
this project's CRDs then replace upstream's on a cluster whose storedVersions lists v1alpha1: existing
objects still read and write, and the operator reconciles them."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.rayjob_operator import operator_with_fake
from support.rbac_audit import install_operator_identity
from support.wait import eventually, gone, wait_events

from internal.client import Client, ClientMetrics, api_client, load_configuration
from internal.client.resources import CONFIGMAPS, PODS, RAYCLUSTERS, RAYJOBS
from internal.metrics import new_registry

pytestmark = pytest.mark.t2

REPO = Path(__file__).resolve().parents[2]
OURS = REPO / "config" / "crd" / "bases"
UPSTREAM = Path("/root/go/pkg/mod/github.com/ray-project/kuberay/ray-operator@v1.6.1/config/crd/bases")
CRD_BASE = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
KINDS = ("rayclusters", "rayjobs", "rayservices", "raycronjobs")

HEAD = {
    "rayStartParams": {},
    "template": {
        "spec": {
            "containers": [
                {
                    "name": "ray-head",
                    "image": "rayproject/ray:2.52.0",
                    "resources": {"limits": {"cpu": "1", "memory": "2Gi"}},
                }
            ]
        }
    },
}


def rayjob(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "entrypoint": "python -c \"print('hello')\"",
            "submissionMode": "HTTPMode",
            "rayClusterSpec": {"rayVersion": "2.52.0", "headGroupSpec": copy.deepcopy(HEAD)},
            **spec,
        },
    }


@pytest.fixture(scope="module")
def upstream_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """T2 with upstream's CRDs (installed before the simulated cluster starts, so the garbage collector
    knows the kinds) and the operator's shipped identity."""
    from internal.controlplane import ControlPlane, PlaneError, default_bin_dir, missing_binaries

    if not UPSTREAM.is_dir():
        pytest.fail(f"upstream KubeRay CRDs not found at {UPSTREAM}")
    if missing_binaries(default_bin_dir()):
        pytest.fail("control-plane binaries missing; run `make bins`")
    work = tmp_path_factory.mktemp("upgrade-plane")
    plane = ControlPlane(bin_dir=default_bin_dir(), work_dir=work)
    try:
        plane.start()
        plane.install_crds([UPSTREAM / f"ray.io_{k}.yaml" for k in KINDS])
        plane.start_sim()
        plane.operator_kubeconfig = install_operator_identity(plane, work)  # type: ignore[attr-defined]
    except PlaneError:
        plane.stop()
        raise
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
async def client(upstream_plane: Any) -> AsyncIterator[Client]:
    cfg = await load_configuration(str(upstream_plane.kubeconfig))
    c = Client(api_client(cfg, 16), metrics=ClientMetrics.register(new_registry()))
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
def ns(upstream_plane: Any) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    assert upstream_plane.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}}).status == 201
    yield name
    upstream_plane.request("DELETE", f"/api/v1/namespaces/{name}")


async def wait_state(c: Client, ns: str, name: str, state: str, timeout: float = 90) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        st = (await c.get(RAYJOBS, name, ns)).get("status") or {}
        return st if st.get("jobDeploymentStatus") == state else None

    return await eventually(reached, timeout, f"RayJob {name} to reach {state}")


async def run_to_complete(c: Client, fake: Any, ns: str, name: str, log_text: str = "") -> dict[str, Any]:
    st = await wait_state(c, ns, name, "Running")
    cname, jid = st["rayClusterName"], st["jobId"]
    await eventually(lambda: jid in fake.cluster(cname).jobs, 30, f"the submission of {name}")
    fake.cluster(cname).jobs[jid].log_text = log_text
    fake.cluster(cname).finish(jid, "SUCCEEDED")
    return await wait_state(c, ns, name, "Complete")


async def test_the_operator_runs_on_upstreams_crds(upstream_plane: Any, client: Client, ns: str) -> None:
    async with operator_with_fake(upstream_plane) as (_rt, fake):
        await client.create(RAYJOBS, rayjob("up", ns, shutdownAfterJobFinishes=True, ttlSecondsAfterFinished=0))
        st = await run_to_complete(client, fake, ns, "up", "driver says hi\n")
        assert st["jobStatus"] == "SUCCEEDED" and st["succeeded"] == 1
        await eventually(lambda: gone(client, RAYCLUSTERS, st["rayClusterName"], ns), 60, "the RayCluster deleted")

        # Upstream's schema prunes status.driverLogConfigMap: the ConfigMap is found by its labels,
        # and the event on the RayJob names it.
        sel = "ray.io/originated-from-cr-name=up,ray.io/originated-from-crd=RayJob"
        found = (await client.list(CONFIGMAPS, ns, label_selector=sel))["items"]
        assert [cm["metadata"]["name"] for cm in found] == ["up-driver-log"]
        assert found[0]["data"]["driver.log"] == "driver says hi\n"
        assert "driverLogConfigMap" not in (await client.get(RAYJOBS, "up", ns))["status"]
        saved = await wait_events(client, ns, "up", "SavedDriverLog")
        assert f"{ns}/up-driver-log" in saved[0]["note"]


async def test_our_crds_replace_upstreams_after_v1alpha1_was_stored(
    upstream_plane: Any, client: Client, ns: str
) -> None:
    plane = upstream_plane
    # Objects made before the upgrade, one of them through the old API version.
    old_cluster = {
        "apiVersion": "ray.io/v1alpha1",
        "kind": "RayCluster",
        "metadata": {"name": "old", "namespace": ns},
        "spec": {"rayVersion": "2.52.0", "headGroupSpec": copy.deepcopy(HEAD)},
    }
    r = plane.request("POST", f"/apis/ray.io/v1alpha1/namespaces/{ns}/rayclusters", old_cluster)
    assert r.status == 201, r.body
    await client.create(RAYJOBS, rayjob("before", ns))
    # A cluster that once stored v1alpha1 still lists it.
    for kind in ("rayclusters", "rayjobs", "rayservices"):
        patch = {"status": {"storedVersions": ["v1alpha1", "v1"]}}
        r = plane.request("PATCH", f"{CRD_BASE}/{kind}.ray.io/status", patch, "application/merge-patch+json")
        assert r.status == 200, r.body

    # Why v1alpha1 must still be served: a CRD without it is refused on such a cluster.
    crd = yaml.safe_load((OURS / "ray.io_rayjobs.yaml").read_text())
    crd["spec"]["versions"] = [v for v in crd["spec"]["versions"] if v["name"] != "v1alpha1"]
    crd["metadata"]["resourceVersion"] = plane.request("GET", f"{CRD_BASE}/rayjobs.ray.io").json()["metadata"][
        "resourceVersion"
    ]
    refused = plane.request("PUT", f"{CRD_BASE}/rayjobs.ray.io", crd)
    assert refused.status == 422 and "storedVersions" in refused.body.decode(), refused.body

    plane.install_crds([OURS / f"ray.io_{k}.yaml" for k in KINDS])  # replace (PUT), then wait Established
    live = plane.request("GET", f"{CRD_BASE}/rayjobs.ray.io").json()
    assert live["status"]["storedVersions"] == ["v1alpha1", "v1"]
    assert {v["name"]: v["storage"] for v in live["spec"]["versions"]} == {"v1": True, "v1alpha1": False}

    # Existing objects read and write through both versions.
    for version in ("v1", "v1alpha1"):
        path = f"/apis/ray.io/{version}/namespaces/{ns}/rayclusters/old"
        got = plane.request("GET", path)
        assert got.status == 200 and got.json()["spec"]["headGroupSpec"]["template"], got.body
        patch = {"metadata": {"labels": {f"touched-{version}": "yes"}}}
        assert plane.request("PATCH", path, patch, "application/merge-patch+json").status == 200
    labels = (await client.get(RAYCLUSTERS, "old", ns))["metadata"]["labels"]
    assert labels == {"touched-v1": "yes", "touched-v1alpha1": "yes"}

    # The operator picks up what was there before the upgrade.
    async with operator_with_fake(plane) as (_rt, fake):

        async def head_pod() -> bool:
            sel = "ray.io/cluster=old,ray.io/node-type=head"
            return bool((await client.list(PODS, ns, label_selector=sel))["items"])

        await eventually(head_pod, 60, "a head pod for the RayCluster created through v1alpha1")
        st = await run_to_complete(client, fake, ns, "before")
        assert st["jobStatus"] == "SUCCEEDED"
        await client.create(RAYJOBS, rayjob("after", ns))
        await run_to_complete(client, fake, ns, "after")
    await client.get(RAYCLUSTERS, "old", ns)  # never deleted: the user's cluster, not the operator's
