"""Real Ray pods on the local node: the operator runs the sample RayJob to SUCCEEDED on one machine.

A control plane of this module's own runs the local node (internal/controlplane/localnode/) instead of
kwok: every pod's containers are host processes in network namespaces on the node's pod network
(198.19.0.0/16, a range nothing else uses, isolated from the rest of the machine), with the Ray
installed in this environment. The operator runs in this process as the shipped ServiceAccount and
reaches the Ray dashboards through the apiserver proxy, as an operator outside the cluster does.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.operator import running_operator
from support.proc_guard import ProcessTreeGuard, process_name, process_tree
from support.rbac_audit import install_operator_identity
from support.wait import eventually

from controllers.ray.utils.dashboard import DashboardClientFactory, KubernetesProxy
from internal.client import Client, ClientMetrics, NotFound, api_client, load_configuration
from internal.client.resources import CONFIGMAPS, CORE_EVENTS, PODS, RAYCLUSTERS, RAYJOBS
from internal.metrics import new_registry

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config" / "samples" / "ray-job.sample.yaml"
CRD_DIR = REPO / "config" / "crd" / "bases"


@pytest.fixture(scope="module")
def local_plane(tmp_path_factory: pytest.TempPathFactory, process_guard: ProcessTreeGuard) -> Iterator[Any]:
    from internal.controlplane import ControlPlane, PlaneError, default_bin_dir, missing_binaries
    from internal.controlplane.localnode import POD_CIDR

    # The node, its pods and the apiserver's proxy talk on the node's own pod network.
    process_guard.allow(POD_CIDR)

    if os.geteuid() != 0:
        pytest.fail("the local node needs root (network namespaces and mounts)", pytrace=False)
    if missing_binaries(default_bin_dir()):
        pytest.fail("control-plane binaries missing: run `make bins`", pytrace=False)
    work = tmp_path_factory.mktemp("local-node-plane")
    plane = ControlPlane(bin_dir=default_bin_dir(), work_dir=work, local_bridge=f"krpyt{uuid.uuid4().hex[:4]}")
    try:
        plane.start()
        plane.install_crds(sorted(CRD_DIR.glob("*.yaml")))
        plane.start_sim(node="local")
        plane.operator_kubeconfig = install_operator_identity(plane, work)
    except PlaneError as e:
        plane.stop()
        pytest.fail(f"the local plane did not start: {e}", pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
async def lclient(local_plane: Any) -> AsyncIterator[Client]:
    cfg = await load_configuration(str(local_plane.kubeconfig))
    c = Client(api_client(cfg, 8), metrics=ClientMetrics.register(new_registry()))
    try:
        yield c
    finally:
        await c.close()


def node_descendants(plane: Any) -> set[int]:
    pid = plane.processes["local-node"].popen.pid
    return process_tree(pid) - {pid}


async def new_namespace(c: Client) -> str:
    from internal.client.resources import NAMESPACES

    name = f"t-{uuid.uuid4().hex[:8]}"
    await c.create(NAMESPACES, {"metadata": {"name": name}})
    return name


async def test_sample_rayjob_succeeds_with_real_ray_and_deleting_it_stops_every_process(
    local_plane: Any, lclient: Client
) -> None:
    ns = await new_namespace(lclient)
    docs = {d["kind"]: d for d in yaml.safe_load_all(SAMPLE.read_text()) if d}
    cm, job = docs["ConfigMap"], docs["RayJob"]
    for obj in (cm, job):
        obj["metadata"]["namespace"] = ns
    await lclient.create(CONFIGMAPS, cm, ns)
    async with running_operator(local_plane, config={"useKubernetesProxy": True}):
        await lclient.create(RAYJOBS, job, ns)
        name = job["metadata"]["name"]

        async def finished() -> dict[str, Any] | None:
            st = (await lclient.get(RAYJOBS, name, ns)).get("status") or {}
            if st.get("jobDeploymentStatus") in ("Complete", "Failed"):
                return st
            return None

        st = await eventually(finished, 300, f"RayJob {name} to finish", interval=2)
        pods = (await lclient.list(PODS, ns))["items"]
        submitter = next(p for p in pods if (p["metadata"].get("labels") or {}).get("job-name") == name)
        # kubectl logs goes through kube-apiserver to the node's containerLogs endpoint.
        out = await asyncio.to_thread(
            subprocess.run,
            ["kubectl", f"--kubeconfig={local_plane.kubeconfig}", "-n", ns, "logs", submitter["metadata"]["name"]],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        outcome = (st["jobDeploymentStatus"], st.get("jobStatus"))
        assert outcome == ("Complete", "SUCCEEDED"), f"{st}\nsubmitter log:\n{out.stdout[-3000:]}{out.stderr}"
        assert out.returncode == 0 and "nodes: 3" in out.stdout, out.stderr + out.stdout[-2000:]
        # The driver's real output, read from the head's dashboard as the operator reads it.
        factory = DashboardClientFactory(KubernetesProxy(lclient))
        try:
            cluster = await lclient.get(RAYCLUSTERS, st["rayClusterName"], ns)
            logs = await factory.for_cluster(cluster, st.get("dashboardURL") or "").get_job_log(st["jobId"])
        finally:
            await factory.close()
        assert logs is not None and "nodes: 3" in logs, logs  # the head and both workers joined
        assert all(p["status"]["podIP"].startswith("198.19.") for p in pods if p["status"].get("podIP"))

        await lclient.delete(RAYJOBS, name, ns)

        left: list[str] = []

        async def all_gone() -> bool:
            pods = [p for p in (await lclient.list(PODS, ns))["items"] if p["spec"].get("nodeName")]
            procs = node_descendants(local_plane)
            left[:] = [
                f"pod {p['metadata']['name']} {p['status'].get('phase')} {p['metadata'].get('deletionTimestamp')}"
                for p in pods
            ]
            for res in (RAYJOBS, RAYCLUSTERS):
                left.extend(f"{res.plural} {o['metadata']['name']}" for o in (await lclient.list(res, ns))["items"])
            left.extend(f"pid {pid} {process_name(pid)}" for pid in sorted(procs))
            return not pods and not procs

        try:
            await eventually(all_gone, 120, "every pod and process of the RayJob to be gone", interval=1)
        except BaseException:
            print("left behind:", *left, sep="\n  ")
            raise


async def test_a_command_the_host_cannot_run_is_a_clear_waiting_reason(local_plane: Any, lclient: Client) -> None:
    ns = await new_namespace(lclient)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "odd", "namespace": ns},
        "spec": {"containers": [{"name": "app", "image": "example.com/app:1", "command": ["/opt/app/server"]}]},
    }
    await lclient.create(PODS, pod, ns)

    async def waiting() -> dict[str, Any] | None:
        st = (await lclient.get(PODS, "odd", ns)).get("status") or {}
        for c in st.get("containerStatuses") or ():
            w = (c.get("state") or {}).get("waiting") or {}
            if w.get("reason") == "CreateContainerError":
                return w
        return None

    w = await eventually(waiting, 60, "the container to wait with CreateContainerError")
    assert "/opt/app/server" in w["message"] and "not a program on this host" in w["message"]
    events = (await lclient.list(CORE_EVENTS, ns))["items"]
    assert any(e["reason"] == "Failed" and "/opt/app/server" in e["message"] for e in events)
    assert any(e["reason"] == "Pulled" and "is not pulled" in e["message"] for e in events)
    await lclient.delete(PODS, "odd", ns)
    await eventually(lambda: _gone(lclient, "odd", ns), 60, "the pod to be removed by the node")


async def _gone(c: Client, name: str, ns: str) -> bool:
    try:
        await c.get(PODS, name, ns)
    except NotFound:
        return True
    return False
