"""The RayCluster controller on the simulated cluster (kube-scheduler binds pods, kwok makes them
Running and Ready with loopback IPs): the same objects and status as upstream KubeRay, through
scaling, workersToDelete, suspend, pod loss and deletion."""

from __future__ import annotations

import copy
import functools
import ipaddress
from typing import Any

import pytest
import yaml
from support.operator import running_operator
from support.wait import eventually, gone, stays, wait_events

from internal.client import Client, NotFound
from internal.client.resources import EVENTS, PODS, RAYCLUSTERS, SERVICES

pytestmark = pytest.mark.t2

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
          resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "1", memory: 2Gi}}
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
          resources: {requests: {cpu: "1", memory: 1Gi}, limits: {cpu: "1", memory: 1Gi}}
  - groupName: gpu
    replicas: 1
    minReplicas: 0
    maxReplicas: 4
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.52.0
          resources: {limits: {cpu: "2", memory: 4Gi, nvidia.com/gpu: "1"}}
"""
)


def cluster(name: str, ns: str, **changes: Any) -> dict[str, Any]:
    c = copy.deepcopy(CLUSTER)
    c["metadata"] = {"name": name, "namespace": ns}
    for k, v in changes.items():
        c["spec"][k] = v
    return c


async def pods_of(c: Client, ns: str, name: str, **labels: str) -> list[dict[str, Any]]:
    sel = ",".join([f"ray.io/cluster={name}", *(f"{k}={v}" for k, v in labels.items())])
    items = (await c.list(PODS, ns, label_selector=sel))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def status(c: Client, ns: str, name: str) -> dict[str, Any]:
    return (await c.get(RAYCLUSTERS, name, ns)).get("status") or {}


async def wait_ready(c: Client, ns: str, name: str, workers: int, timeout: float = 90) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        st = await status(c, ns, name)
        ok = st.get("state") == "ready" and st.get("readyWorkerReplicas") == workers
        return st if ok and len(await pods_of(c, ns, name)) == workers + 1 else None

    return await eventually(ready, timeout, f"RayCluster {name} ready with {workers} workers")


async def steady(c: Client, ns: str, name: str, window: float) -> bool:
    """True when the cluster's resourceVersion stays the same at every sample over ``window`` seconds."""

    async def version() -> str:
        return str((await c.get(RAYCLUSTERS, name, ns))["metadata"]["resourceVersion"])

    return await stays(version, window)


def cond(st: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions") or () if c["type"] == ctype), {})


async def test_cluster_reaches_ready_with_upstream_objects_and_status(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with running_operator(sim_cluster):
        await kclient.create(RAYCLUSTERS, cluster("rc", namespace))
        st = await wait_ready(kclient, namespace, "rc", 3)

        assert st["desiredWorkerReplicas"] == 3 and st["availableWorkerReplicas"] == 3
        assert st["maxWorkerReplicas"] == 14
        # As Go's omitempty writes it: no zero counters, empty reason or message-less extras.
        assert "minWorkerReplicas" not in st and "reason" not in st
        assert all(set(c) == {"type", "status", "reason", "message", "lastTransitionTime"} for c in st["conditions"])
        assert st["desiredCPU"] == "5" and st["desiredMemory"] == "8Gi" and st["desiredGPU"] == "1"
        assert cond(st, "HeadPodReady")["status"] == "True"
        assert cond(st, "RayClusterProvisioned")["reason"] == "AllPodRunningAndReadyFirstTime"
        assert st["observedGeneration"] == 1

        [head] = await pods_of(kclient, namespace, "rc", **{"ray.io/node-type": "head"})
        assert head["metadata"]["name"].startswith("rc-head-")
        assert head["metadata"]["labels"]["ray.io/group"] == "headgroup"
        assert head["metadata"]["ownerReferences"][0]["kind"] == "RayCluster"
        assert ipaddress.ip_address(st["head"]["podIP"]).is_loopback
        assert st["head"]["serviceName"] == "rc-head-svc"
        assert st["head"]["serviceIP"] == st["head"]["podIP"]  # headless head service
        svc = await kclient.get(SERVICES, "rc-head-svc", namespace)
        assert svc["spec"]["clusterIP"] == "None"
        assert st["endpoints"]["dashboard"] == "8265"
        workers = await pods_of(kclient, namespace, "rc", **{"ray.io/group": "small"})
        assert len(workers) == 2 and all(w["metadata"]["name"].startswith("rc-small-worker-") for w in workers)
        cmd = " ".join(workers[0]["spec"]["containers"][0]["args"])
        assert "--address=rc-head-svc." in cmd and "--block" in cmd


async def test_scaling_workers_to_delete_and_pod_recovery(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with running_operator(sim_cluster):
        await kclient.create(RAYCLUSTERS, cluster("rc", namespace))
        await wait_ready(kclient, namespace, "rc", 3)
        groups = (await kclient.get(RAYCLUSTERS, "rc", namespace))["spec"]["workerGroupSpecs"]

        groups[0]["replicas"] = 5
        await kclient.patch(RAYCLUSTERS, "rc", {"spec": {"workerGroupSpecs": groups}}, namespace)
        await wait_ready(kclient, namespace, "rc", 6)

        groups[0]["replicas"] = 1
        await kclient.patch(RAYCLUSTERS, "rc", {"spec": {"workerGroupSpecs": groups}}, namespace)
        await wait_ready(kclient, namespace, "rc", 2)

        # workersToDelete removes exactly that pod; the group is refilled to its replicas.
        [victim] = await pods_of(kclient, namespace, "rc", **{"ray.io/group": "small"})
        groups[0]["scaleStrategy"] = {"workersToDelete": [victim["metadata"]["name"]]}
        await kclient.patch(RAYCLUSTERS, "rc", {"spec": {"workerGroupSpecs": groups}}, namespace)

        async def replaced() -> bool:
            names = [
                p["metadata"]["name"] for p in await pods_of(kclient, namespace, "rc", **{"ray.io/group": "small"})
            ]
            return len(names) == 1 and names[0] != victim["metadata"]["name"]

        await eventually(replaced, 60, "the listed worker replaced")

        # A deleted worker and a deleted head are recreated.
        [worker] = await pods_of(kclient, namespace, "rc", **{"ray.io/group": "gpu"})
        await kclient.delete(PODS, worker["metadata"]["name"], namespace)
        [head] = await pods_of(kclient, namespace, "rc", **{"ray.io/node-type": "head"})
        await kclient.delete(PODS, head["metadata"]["name"], namespace)

        async def recovered() -> bool:
            pods = await pods_of(kclient, namespace, "rc")
            names = {p["metadata"]["name"] for p in pods}
            return len(pods) == 3 and worker["metadata"]["name"] not in names and head["metadata"]["name"] not in names

        await eventually(recovered, 60, "the deleted head and worker recreated")
        await wait_ready(kclient, namespace, "rc", 2)


async def test_suspend_and_resume_cluster_and_group(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with running_operator(sim_cluster):
        await kclient.create(RAYCLUSTERS, cluster("rc", namespace))
        await wait_ready(kclient, namespace, "rc", 3)

        await kclient.patch(RAYCLUSTERS, "rc", {"spec": {"suspend": True}}, namespace)

        async def suspended() -> dict[str, Any] | None:
            st = await status(kclient, namespace, "rc")
            return st if st.get("state") == "suspended" and not await pods_of(kclient, namespace, "rc") else None

        st = await eventually(suspended, 60, "the cluster suspended with no pods")
        assert cond(st, "RayClusterSuspended")["status"] == "True"
        assert cond(st, "RayClusterSuspending")["status"] == "False"

        # A steady Suspended cluster is left alone: sampled over 3 s past the 2 s requeue that
        # follows the last status write, its resourceVersion never moves.
        await eventually(
            lambda: steady(kclient, namespace, "rc", window=3.0), 30, "the suspended cluster to stop changing"
        )
        rv = (await kclient.get(RAYCLUSTERS, "rc", namespace))["metadata"]["resourceVersion"]
        assert await steady(kclient, namespace, "rc", window=6.0)
        assert (await kclient.get(RAYCLUSTERS, "rc", namespace))["metadata"]["resourceVersion"] == rv

        await kclient.patch(RAYCLUSTERS, "rc", {"spec": {"suspend": False}}, namespace)
        await wait_ready(kclient, namespace, "rc", 3)

        groups = (await kclient.get(RAYCLUSTERS, "rc", namespace))["spec"]["workerGroupSpecs"]
        groups[1]["suspend"] = True
        await kclient.patch(RAYCLUSTERS, "rc", {"spec": {"workerGroupSpecs": groups}}, namespace)

        async def group_gone() -> bool:
            return not await pods_of(kclient, namespace, "rc", **{"ray.io/group": "gpu"})

        await eventually(group_gone, 60, "the suspended group's pods deleted")
        await wait_ready(kclient, namespace, "rc", 2)


async def test_multi_host_group_gets_num_of_hosts_pods_per_replica(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    c = cluster("mh", namespace)
    c["spec"]["workerGroupSpecs"] = [{**c["spec"]["workerGroupSpecs"][0], "numOfHosts": 2, "replicas": 2}]
    async with running_operator(sim_cluster):
        await kclient.create(RAYCLUSTERS, c)
        await wait_ready(kclient, namespace, "mh", 4)
        workers = await pods_of(kclient, namespace, "mh", **{"ray.io/node-type": "worker"})
        replicas: dict[str, list[str]] = {}
        for w in workers:
            labels = w["metadata"]["labels"]
            replicas.setdefault(labels["ray.io/worker-group-replica-name"], []).append(
                labels["ray.io/replica-host-index"]
            )
        assert len(replicas) == 2 and all(sorted(h) == ["0", "1"] for h in replicas.values())
        await kclient.get(SERVICES, "mh-headless", namespace)


async def test_deleting_the_cluster_removes_everything_it_owns(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with running_operator(sim_cluster):
        await kclient.create(RAYCLUSTERS, cluster("rc", namespace))
        await wait_ready(kclient, namespace, "rc", 3)
        await kclient.delete(RAYCLUSTERS, "rc", namespace, propagation_policy="Background")

        async def gone() -> bool:
            pods = (await kclient.list(PODS, namespace, label_selector="ray.io/cluster=rc"))["items"]
            try:
                await kclient.get(SERVICES, "rc-head-svc", namespace)
            except NotFound:
                return not pods
            return False

        await eventually(gone, 90, "the cluster's pods and services garbage-collected")


async def test_a_gcs_ft_cluster_whose_cleanup_job_cannot_be_made_is_force_deleted_on_time(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """Found by the fuzz tier: a GCS fault-tolerant cluster whose head template kube-apiserver refuses
    (here an env var with an empty valueFrom, from redisPassword) never gets a head pod, and its Redis
    cleanup Job, built from the same template, can never be created. On deletion the operator retries
    the Job no later than the ray.io/gcs-ft-deletion-timeout and then force-removes its finalizer with
    a ForceDeletedStuckCluster Warning, instead of being pushed past it by the backoff of its failures."""
    async with running_operator(sim_cluster):
        rc = cluster(
            "stuck",
            namespace,
            gcsFaultToleranceOptions={"redisAddress": "redis:6379", "redisPassword": {"valueFrom": {}}},
        )
        rc["metadata"]["annotations"] = {"ray.io/gcs-ft-deletion-timeout": "5"}
        await kclient.create(RAYCLUSTERS, rc)
        await wait_events(kclient, namespace, "stuck", "FailedToCreateHeadPod", 60)

        async def has_finalizer() -> bool:
            obj = await kclient.get(RAYCLUSTERS, "stuck", namespace)
            return "ray.io/gcs-ft-redis-cleanup-finalizer" in (obj["metadata"].get("finalizers") or [])

        await eventually(has_finalizer, 60, "the Redis cleanup finalizer")
        await kclient.delete(RAYCLUSTERS, "stuck", namespace)
        await wait_events(kclient, namespace, "stuck", "FailedToCreateRedisCleanupJob", 60)

        await eventually(
            functools.partial(gone, kclient, RAYCLUSTERS, "stuck", namespace),
            60,
            "the cluster deleted after the 5 s deletion timeout",
        )
        assert await wait_events(kclient, namespace, "stuck", "ForceDeletedStuckCluster")


async def test_invalid_cluster_gets_a_warning_event_and_no_pods(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    bad = cluster("bad", namespace)
    bad["spec"]["workerGroupSpecs"][0]["minReplicas"] = 5
    bad["spec"]["workerGroupSpecs"][0]["maxReplicas"] = 1
    async with running_operator(sim_cluster):
        await kclient.create(RAYCLUSTERS, bad)

        async def warned() -> dict[str, Any] | None:
            events = (await kclient.list(EVENTS, namespace))["items"]
            return next((e for e in events if e.get("reason") == "InvalidRayClusterSpec"), None)

        ev = await eventually(warned, 30, "an InvalidRayClusterSpec event")
        assert ev["type"] == "Warning" and ev["regarding"]["name"] == "bad"
        assert not await pods_of(kclient, namespace, "bad")


async def test_autoscaler_gets_its_service_account_role_and_binding(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    # The operator creates a Role for the autoscaler; Kubernetes lets it grant only what it holds
    # itself, so this is also the proof that the shipped ClusterRole carries those permissions.
    from internal.client.resources import ROLEBINDINGS, ROLES, SERVICEACCOUNTS

    rc = cluster("auto", namespace)
    rc["spec"]["enableInTreeAutoscaling"] = True
    async with running_operator(sim_cluster):
        await kclient.create(RAYCLUSTERS, rc)
        await wait_ready(kclient, namespace, "auto", 3)
        sa = await kclient.get(SERVICEACCOUNTS, "auto", namespace)
        role = await kclient.get(ROLES, "auto", namespace)
        binding = await kclient.get(ROLEBINDINGS, "auto", namespace)
        assert sa["metadata"]["ownerReferences"][0]["kind"] == "RayCluster"
        granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
        assert {("", "pods"), ("", "pods/resize"), ("ray.io", "rayclusters")} <= granted
        assert binding["roleRef"]["name"] == "auto" and binding["subjects"][0]["name"] == "auto"
        [head] = await pods_of(kclient, namespace, "auto", **{"ray.io/node-type": "head"})
        assert head["spec"]["serviceAccountName"] == "auto"
        assert [c["name"] for c in head["spec"]["containers"]] == ["ray-head", "autoscaler"]


async def test_gcs_rocksdb_pvc_follows_deletion_policy_and_is_watched(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    from internal.client.resources import PVCS

    rc = cluster("gcs", namespace)
    rc["spec"]["gcsFaultToleranceOptions"] = {"backend": "rocksdb", "storage": {"size": "2Gi"}}
    rc["spec"]["suspend"] = True  # no pods, so no pod event can stand in for the PVC watch below
    async with running_operator(sim_cluster, gates="GCSFaultToleranceEmbeddedStorage=true"):
        created = await kclient.create(RAYCLUSTERS, rc)
        uid = created["metadata"]["uid"]

        async def pvc_owned_by(owners: list[str]) -> dict[str, Any] | None:
            try:
                pvc = await kclient.get(PVCS, "gcs-gcs-pvc", namespace)
            except NotFound:
                return None
            got = [r["uid"] for r in pvc["metadata"].get("ownerReferences") or ()]
            return pvc if got == owners else None

        pvc = await eventually(lambda: pvc_owned_by([uid]), 60, "the GCS PVC owned by its cluster")
        assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"

        # The controller watches the PVCs it owns: deleted, it is back well before the 300 s requeue.
        await eventually(lambda: steady(kclient, namespace, "gcs", window=3.0), 30, "the suspended cluster settled")
        await kclient.delete(PVCS, "gcs-gcs-pvc", namespace)
        # No pvc-protection controller runs on this plane: drop its finalizer as it would.
        await kclient.patch(PVCS, "gcs-gcs-pvc", {"metadata": {"finalizers": None}}, namespace)

        async def recreated() -> bool:
            new = await pvc_owned_by([uid])
            return new is not None and new["metadata"]["uid"] != pvc["metadata"]["uid"]

        await eventually(recreated, 30, "the deleted PVC recreated")

        storage = {"size": "2Gi", "deletionPolicy": "Retain"}
        patch = {"spec": {"gcsFaultToleranceOptions": {"backend": "rocksdb", "storage": storage}}}
        await kclient.patch(RAYCLUSTERS, "gcs", patch, namespace)
        await eventually(lambda: pvc_owned_by([]), 60, "the retained PVC without an owner reference")


async def test_history_collector_runs_beside_every_ray_container_with_the_gate(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """Gate RayClusterHistoryServer: with collectorOptions every pod the operator creates (and the API
    server admits) has the collector sidecar sharing /tmp/ray with Ray; the cluster becomes ready."""
    rc = cluster("hist", namespace)
    rc["spec"]["historyServerOptions"] = {
        "collectorOptions": {
            "image": "kuberay/history-collector:v1.7.0",
            "env": [{"name": "STORAGE_BACKEND", "value": "S3"}, {"name": "S3_REGION", "value": "eu-west-1"}],
        }
    }
    async with running_operator(sim_cluster, gates="RayClusterHistoryServer=true"):
        await kclient.create(RAYCLUSTERS, rc)
        await wait_ready(kclient, namespace, "hist", 3)
        for pod in await pods_of(kclient, namespace, "hist"):
            containers = pod["spec"]["containers"]
            assert containers[-1]["name"] == "ray-history-collector", [c["name"] for c in containers]
            role = "Head" if pod["metadata"]["labels"]["ray.io/node-type"] == "head" else "Worker"
            assert {"name": "RAY_ROLE", "value": role} in containers[-1]["env"]
            for c in (containers[0], containers[-1]):
                assert {"name": "ray-logs", "mountPath": "/tmp/ray"} in c["volumeMounts"]
            assert {"name": "RAY_enable_ray_event", "value": "true"} in containers[0]["env"]


async def test_enable_ingress_creates_the_dashboard_ingress_and_repairs_it(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """raycluster-extensions.md §2: <cluster>-head-ingress to the head Service's dashboard port, the
    class from the cluster annotation, created under the shipped RBAC; a user's edit is undone at the
    next reconcile, and the Ingress goes with its cluster."""
    from internal.client.resources import INGRESSES

    rc = cluster("dash", namespace)
    rc["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "nginx", "team": "a"}
    rc["spec"]["headGroupSpec"]["enableIngress"] = True

    async def reasons() -> list[str]:
        events = (await kclient.list(EVENTS, namespace))["items"]
        return [e["reason"] for e in events if e["regarding"]["name"] == "dash"]

    async with running_operator(sim_cluster):
        await kclient.create(RAYCLUSTERS, rc)
        await wait_ready(kclient, namespace, "dash", 3)
        ing = await kclient.get(INGRESSES, "dash-head-ingress", namespace)
        assert ing["spec"]["ingressClassName"] == "nginx"
        assert ing["metadata"]["annotations"] == {"team": "a"}
        assert ing["metadata"]["labels"]["ray.io/cluster"] == "dash"
        [rule] = ing["spec"]["rules"]
        [path] = rule["http"]["paths"]
        assert (path["path"], path["pathType"]) == ("/", "Prefix")
        assert path["backend"]["service"] == {"name": "dash-head-svc", "port": {"number": 8265}}
        assert ing["metadata"]["ownerReferences"][0]["name"] == "dash"
        await wait_events(kclient, namespace, "dash", "CreatedIngress")
        got = await reasons()
        assert got.count("CreatedIngress") == 1
        assert "UpdatedIngress" not in got  # what the apiserver stored is what was built

        path["path"] = "/elsewhere"
        await kclient.update(INGRESSES, ing)
        await kclient.patch(RAYCLUSTERS, "dash", {"metadata": {"labels": {"nudge": "1"}}}, namespace)

        async def repaired() -> bool:
            live = await kclient.get(INGRESSES, "dash-head-ingress", namespace)
            return bool(live["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/")

        await eventually(repaired, 30, "the Ingress path restored")
        await wait_events(kclient, namespace, "dash", "UpdatedIngress")

        await kclient.delete(RAYCLUSTERS, "dash", namespace, propagation_policy="Background")

        await eventually(
            functools.partial(gone, kclient, INGRESSES, "dash-head-ingress", namespace),
            60,
            "the Ingress garbage-collected with its cluster",
        )
