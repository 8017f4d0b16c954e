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
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.operator import running_operator
from support.proc_guard import ProcessTreeGuard, process_name, process_tree
from support.rbac_audit import install_operator_identity
from support.wait import eventually, gone

from controllers.ray.utils.dashboard import DashboardClientFactory, KubernetesProxy
from internal.client import Client, ClientMetrics, Forbidden, api_client, load_configuration
from internal.client.resources import CONFIGMAPS, CORE_EVENTS, PODS, RAYCLUSTERS, RAYJOBS, RAYSERVICES
from internal.metrics import new_registry

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config" / "samples" / "ray-job.sample.yaml"
SERVICE_SAMPLE = REPO / "config" / "samples" / "ray-service.sample.yaml"
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
    plane = ControlPlane(
        bin_dir=default_bin_dir(), work_dir=work, local_bridge=f"krpyt{uuid.uuid4().hex[:4]}", pod_identities=True
    )
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


async def kubectl_logs(plane: Any, ns: str, pod: str, *args: str) -> str:
    out = await asyncio.to_thread(
        subprocess.run,
        ["kubectl", f"--kubeconfig={plane.kubeconfig}", "-n", ns, "logs", pod, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return out.stdout + out.stderr


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

    async def reported() -> bool:  # the node's events may land after the status
        events = (await lclient.list(CORE_EVENTS, ns))["items"]
        return any(e["reason"] == "Failed" and "/opt/app/server" in e["message"] for e in events) and any(
            e["reason"] == "Pulled" and "is not pulled" in e["message"] for e in events
        )

    await eventually(reported, 30, "the Failed and Pulled events")
    await lclient.delete(PODS, "odd", ns)
    await eventually(lambda: gone(lclient, PODS, "odd", ns), 60, "the pod to be removed by the node")


async def test_a_pod_reaches_kube_apiserver_as_its_service_account(local_plane: Any, lclient: Client) -> None:
    """As in a cluster: the ServiceAccount's token, the CA and the namespace mounted by admission, and
    https://kubernetes.default answering. The default ServiceAccount may not list pods, so the answer is
    a 403 that names the pod's identity: proof that the token authenticated."""
    ns = await new_namespace(lclient)
    script = (
        "import json, os, ssl, urllib.request, urllib.error\n"
        "d = '/var/run/secrets/kubernetes.io/serviceaccount/'\n"
        "ns = open(d + 'namespace').read()\n"
        "ctx = ssl.create_default_context(cafile=d + 'ca.crt')\n"
        "url = f'https://kubernetes.default.svc/api/v1/namespaces/{ns}/pods'\n"
        "req = urllib.request.Request(url, headers={'Authorization': 'Bearer ' + open(d + 'token').read()})\n"
        "try:\n"
        "    urllib.request.urlopen(req, context=ctx, timeout=30)\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code, json.load(e)['message'])\n"
        "except Exception as e:\n"  # said in the log the test shows, rather than a bare exit 1
        "    print('error', type(e).__name__, e)\n"
        "print('env', os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT'])\n"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "who", "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "who", "image": "python:3.11", "command": ["python", "-c", script]}],
        },
    }

    async def created() -> bool:  # admission refuses pods until the namespace's default ServiceAccount exists
        try:
            await lclient.create(PODS, pod, ns)
            return True
        except Forbidden:
            return False

    await eventually(created, 30, "the pod to be admitted")
    volumes = (await lclient.get(PODS, "who", ns))["spec"]["volumes"]
    assert any(v["name"].startswith("kube-api-access-") for v in volumes), volumes

    async def done() -> str | None:
        phase = ((await lclient.get(PODS, "who", ns)).get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = await eventually(done, 60, "the pod to finish", interval=0.5)
    out = await kubectl_logs(local_plane, ns, "who")
    assert phase == "Succeeded", out
    assert f'403 pods is forbidden: User "system:serviceaccount:{ns}:default" cannot list resource' in out, out
    assert "env 198.19.0.1 443" in out, out


async def test_http_mode_failing_entrypoint_ends_failed_with_the_real_exit_message(
    local_plane: Any, lclient: Client
) -> None:
    ns = await new_namespace(lclient)
    job = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": "bad", "namespace": ns},
        "spec": {
            "submissionMode": "HTTPMode",
            "entrypoint": "python -c \"import sys; print('about to fail'); sys.exit(3)\"",
            "shutdownAfterJobFinishes": True,
            "rayClusterSpec": {
                "rayVersion": "2.60.0",
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {"spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.60.0"}]}},
                },
            },
        },
    }
    async with running_operator(local_plane, config={"useKubernetesProxy": True}):
        await lclient.create(RAYJOBS, job, ns)

        async def failed() -> dict[str, Any] | None:
            st = (await lclient.get(RAYJOBS, "bad", ns)).get("status") or {}
            return st if st.get("jobDeploymentStatus") in ("Failed", "Complete") else None

        st = await eventually(failed, 240, "the RayJob to finish", interval=2)
        assert (st["jobDeploymentStatus"], st["jobStatus"], st["reason"]) == ("Failed", "FAILED", "AppFailed"), st
        assert "exit code 3" in st["message"] and "about to fail" in st["message"], st["message"]
        # shutdownAfterJobFinishes: the cluster goes, and its driver log stays.
        await eventually(lambda: gone(lclient, RAYCLUSTERS, st["rayClusterName"], ns), 120, "the RayCluster to go")
        cm = await lclient.get(CONFIGMAPS, "bad-driver-log", ns)
        assert "about to fail" in cm["data"]["driver.log"]


async def test_head_and_worker_are_both_alive_in_ray_status(local_plane: Any, lclient: Client) -> None:
    ns = await new_namespace(lclient)
    # CPU limits: the autoscaler derives each group's resources from them (or from --num-cpus).
    container = {
        "name": "ray-head",
        "image": "rayproject/ray:2.60.0",
        "resources": {"limits": {"cpu": "1", "memory": "2Gi"}},
    }
    cluster = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": "duo", "namespace": ns},
        "spec": {
            "rayVersion": "2.60.0",
            # The autoscaler sidecar runs too: it reads and patches the RayCluster through kube-apiserver
            # with the token of the ServiceAccount the operator made for it.
            "enableInTreeAutoscaling": True,
            "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [container]}}},
            "workerGroupSpecs": [
                {
                    "groupName": "w",
                    "replicas": 1,
                    "minReplicas": 1,
                    "maxReplicas": 1,
                    "rayStartParams": {},
                    "template": {"spec": {"containers": [{**container, "name": "ray-worker"}]}},
                }
            ],
        },
    }
    async with running_operator(local_plane, config={"useKubernetesProxy": True}):
        await lclient.create(RAYCLUSTERS, cluster, ns)

        async def ready() -> bool:
            st = (await lclient.get(RAYCLUSTERS, "duo", ns)).get("status") or {}
            return st.get("state") == "ready" and st.get("readyWorkerReplicas") == 1

        await eventually(ready, 180, "the RayCluster to be ready", interval=1)
        head = next(
            p["metadata"]["name"]
            for p in (await lclient.list(PODS, ns, label_selector="ray.io/node-type=head"))["items"]
        )
        # `ray status` inside the head container (the node's exec: its namespaces, env and directory).
        node_exec = [sys.executable, "-m", "internal.controlplane.localnode", "exec", "-n", ns, "-c", "ray-head"]
        ran = await asyncio.to_thread(
            subprocess.run,
            [*node_exec, f"--kubeconfig={local_plane.kubeconfig}", head, "--", "ray", "status"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        out = ran.stdout
        # Alive nodes are listed under Active: and Idle: by group ("1 headgroup", "1 w"), before Pending:.
        alive = out.split("Node status", 1)[-1].split("Pending:", 1)[0]
        counts = {line.split()[1]: int(line.split()[0]) for line in alive.splitlines() if line.strip()[:1].isdigit()}
        assert counts == {"headgroup": 1, "w": 1}, out

        async def autoscaler_read_the_cluster() -> bool:
            return "Fetched pod data" in await kubectl_logs(local_plane, ns, head, "-c", "autoscaler")

        await eventually(autoscaler_read_the_cluster, 60, "the autoscaler to list the cluster's pods", interval=2)
        statuses = (await lclient.get(PODS, head, ns))["status"]["containerStatuses"]
        autoscaler = next(c for c in statuses if c["name"] == "autoscaler")
        assert autoscaler["restartCount"] == 0 and "running" in autoscaler["state"], autoscaler


async def test_sample_rayservice_serves_real_requests_and_applies_a_new_config_in_place(
    local_plane: Any, lclient: Client
) -> None:
    """The RayService sample on real Ray Serve: Ready, its serve Service answers a pod's request, and a
    changed serveConfigV2 answers anew from the same cluster."""
    ns = await new_namespace(lclient)
    docs = {d["kind"]: d for d in yaml.safe_load_all(SERVICE_SAMPLE.read_text()) if d}
    apps, svc = docs["ConfigMap"], docs["RayService"]
    name = svc["metadata"]["name"]
    for obj in (apps, svc):
        obj["metadata"]["namespace"] = ns
    url = f"http://{name}-serve-svc.{ns}.svc.cluster.local:8000/?name=Ray"
    fetch = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).read().decode())"

    async def ask(pod: str) -> str:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod, "namespace": ns},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "ask", "image": "python:3.11", "command": ["python", "-c", fetch]}],
            },
        }
        await lclient.create(PODS, body, ns)

        async def done() -> str | None:
            phase = ((await lclient.get(PODS, pod, ns)).get("status") or {}).get("phase")
            return phase if phase in ("Succeeded", "Failed") else None

        await eventually(done, 60, f"pod {pod} to finish", interval=0.5)
        return await kubectl_logs(local_plane, ns, pod)

    async with running_operator(local_plane, config={"useKubernetesProxy": True}):
        await lclient.create(CONFIGMAPS, apps, ns)
        await lclient.create(RAYSERVICES, svc, ns)

        async def ready() -> dict[str, Any] | None:
            st = (await lclient.get(RAYSERVICES, name, ns)).get("status") or {}
            ok = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or ())
            return st if ok else None

        st = await eventually(ready, 240, "the RayService to be Ready", interval=2)
        cluster = st["activeServiceStatus"]["rayClusterName"]
        assert "Hello, Ray!" in await ask("ask-1")

        deployment = svc["spec"]["serveConfigV2"].replace("greeting: Hello", "greeting: Bonjour")
        await lclient.patch(RAYSERVICES, name, {"spec": {"serveConfigV2": deployment}}, ns)

        async def answers_anew() -> bool:
            pod = f"ask-{uuid.uuid4().hex[:6]}"
            return "Bonjour, Ray!" in await ask(pod)

        await eventually(answers_anew, 120, "the new greeting", interval=1)
        st = (await lclient.get(RAYSERVICES, name, ns))["status"]
        assert st["activeServiceStatus"]["rayClusterName"] == cluster and not st.get("pendingServiceStatus", {}).get(
            "rayClusterName"
        )


async def test_a_pod_larger_than_the_machine_is_refused_and_can_still_be_deleted(
    local_plane: Any, lclient: Client
) -> None:
    ns = await new_namespace(lclient)
    container = {"name": "big", "image": "x", "command": ["sleep", "600"], "resources": {"requests": {"memory": "4Ti"}}}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "big", "namespace": ns},
        "spec": {"containers": [container]},
    }
    await lclient.create(PODS, pod, ns)

    async def refused() -> dict[str, Any] | None:
        st = (await lclient.get(PODS, "big", ns)).get("status") or {}
        return st if st.get("reason") == "OutOfmemory" else None

    st = await eventually(refused, 60, "the node to refuse the pod")
    assert st["phase"] == "Failed" and "memory" in st["message"]
    await lclient.delete(PODS, "big", ns)
    await eventually(lambda: gone(lclient, PODS, "big", ns), 60, "the refused pod to be removed on deletion")
