"""Every RayJob in the user's guides (../shared/seeds, kept as config/samples/ray-job.*.yaml) is applied
and reconciled to the objects upstream KubeRay would create for it: its RayCluster (or the selected
one), the RayJob head service, the submitter Job in K8sJobMode, the sidecar in SidecarMode, nothing at
all while suspended, and a Running RayJob."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support.fake_dashboard import FakeDashboard
from support.operator import running_operator
from support.wait import eventually

from controllers.ray import raycluster_controller, rayjob_controller
from controllers.ray.utils.dashboard import DashboardClientFactory, Loopback
from internal.app import Runtime
from internal.client import Client, NotFound
from internal.client.resources import CONFIGMAPS, JOBS, RAYCLUSTERS, RAYJOBS, SERVICEACCOUNTS, SERVICES

pytestmark = pytest.mark.t2

SAMPLES = Path(__file__).resolve().parents[2] / "config" / "samples"
RAYJOB_SAMPLES = sorted(SAMPLES.glob("ray-job.*.yaml"))
RESOURCES = {"ConfigMap": CONFIGMAPS, "RayCluster": RAYCLUSTERS, "RayJob": RAYJOBS, "ServiceAccount": SERVICEACCOUNTS}


async def _get(c: Client, r: Any, name: str, ns: str) -> dict[str, Any] | None:
    try:
        return await c.get(r, name, ns)
    except NotFound:
        return None


@pytest.fixture(scope="module")
def samples_present() -> None:
    if not RAYJOB_SAMPLES:
        pytest.fail("config/samples has no RayJob samples")


@pytest.mark.parametrize("path", RAYJOB_SAMPLES, ids=lambda p: p.name)
async def test_seed_rayjob_is_reconciled_to_upstreams_objects(
    path: Path, sim_cluster: Any, kclient: Client, namespace: str, samples_present: None
) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]  # noqa: ASYNC240 (a small local file)
    jobs = [d for d in docs if d["kind"] == "RayJob"]
    assert jobs, f"{path.name} has no RayJob"
    async with FakeDashboard() as fake:
        factory = DashboardClientFactory(Loopback(lambda cluster: fake.cluster(cluster["metadata"]["name"]).base_url))

        def rayjob_setup(rt: Runtime) -> list[Any]:
            return rayjob_controller.setup(rt, rayjob_controller.RayJobOptions(env={}, gates=rt.gates), factory)

        try:
            async with running_operator(sim_cluster, [raycluster_controller.setup, rayjob_setup]):
                for doc in docs:  # companions first (ConfigMaps, existing clusters, ServiceAccounts)
                    doc.setdefault("metadata", {})["namespace"] = namespace
                    if doc["kind"] != "RayJob":
                        await kclient.create(RESOURCES[doc["kind"]], doc)
                for job in jobs:
                    await kclient.create(RAYJOBS, job)
                for job in jobs:
                    await _check(kclient, namespace, job)
        finally:
            await factory.close()


async def _check(c: Client, ns: str, job: dict[str, Any]) -> None:
    name, spec = job["metadata"]["name"], job["spec"]
    mode = spec.get("submissionMode") or "K8sJobMode"
    if spec.get("suspend"):

        async def suspended() -> bool:
            st = (await c.get(RAYJOBS, name, ns)).get("status") or {}
            return st.get("jobDeploymentStatus") == "Suspended"

        await eventually(suspended, 60, f"{name} Suspended")
        owned = [
            r
            for r in (await c.list(RAYCLUSTERS, ns))["items"]
            if (r["metadata"].get("labels") or {}).get("ray.io/originated-from-cr-name") == name
        ]
        assert not owned, "a suspended RayJob must not create a RayCluster"
        return

    want = "Waiting" if mode == "InteractiveMode" else "Running"

    async def reached() -> dict[str, Any] | None:
        st = (await c.get(RAYJOBS, name, ns)).get("status") or {}
        return st if st.get("jobDeploymentStatus") == want else None

    st = await eventually(reached, 120, f"{name} {want}")
    cluster = await c.get(RAYCLUSTERS, st["rayClusterName"], ns)
    if spec.get("clusterSelector"):
        assert st["rayClusterName"] == spec["clusterSelector"]["ray.io/cluster"]
        assert "ray.io/originated-from-crd" not in (cluster["metadata"].get("labels") or {})
        assert await _get(c, SERVICES, f"{name}-head-svc", ns) is None
    else:
        labels = cluster["metadata"]["labels"]
        assert labels["ray.io/originated-from-crd"] == "RayJob" and labels["ray.io/originated-from-cr-name"] == name
        assert labels["ray.io/job-submission-mode"] == mode
        assert cluster["metadata"]["ownerReferences"][0]["name"] == name
        if want == "Running":
            await eventually(lambda: _get(c, SERVICES, f"{name}-head-svc", ns), 30, f"{name}-head-svc")
    submitter = await _get(c, JOBS, name, ns)
    if mode == "K8sJobMode":
        assert submitter is not None, "K8sJobMode creates the submitter Job"
        assert submitter["metadata"]["labels"]["app.kubernetes.io/created-by"] == "kuberay-operator"
        args = " ".join(submitter["spec"]["template"]["spec"]["containers"][0].get("args") or [])
        assert "ray job submit" in args or submitter["spec"]["template"]["spec"]["containers"][0].get("command")
    else:
        assert submitter is None, f"{mode} creates no submitter Job"
    if mode == "SidecarMode":
        head = cluster["spec"]["headGroupSpec"]["template"]["spec"]
        assert "ray-job-submitter" in [ct["name"] for ct in head["containers"]] and head["restartPolicy"] == "Never"
