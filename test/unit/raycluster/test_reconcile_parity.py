"""RayCluster reconciles as upstream's do, pass by pass, on an in-memory API (harness.py): the status
written, when nothing is written, how draining and unlabelled pods are counted, workersToDelete, the
Redis cleanup finalizer, the requeue interval and the events' actions."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from unit.raycluster.harness import NOW, Harness, run_pods

from controllers.ray import raycluster_controller as rcc
from controllers.ray.common import gcs_ft
from controllers.ray.common import pod as podb
from controllers.ray.utils import constants as C
from internal.client import Forbidden
from internal.client import resources as res
from internal.events import FakeRecorder

NS = "ns"

CLUSTER: dict[str, Any] = {
    "apiVersion": "ray.io/v1",
    "kind": "RayCluster",
    "metadata": {"name": "rc", "namespace": NS},
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
                "maxReplicas": 5,
                "rayStartParams": {},
                "template": {"spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.52.0"}]}},
            }
        ],
    },
}


def cluster(**spec: Any) -> dict[str, Any]:
    c = copy.deepcopy(CLUSTER)
    c["spec"].update(spec)
    return c


async def ready_cluster(h: Harness, c: dict[str, Any] | None = None) -> None:
    h.add(res.RAYCLUSTERS, c or cluster())
    await h.settle(NS, "rc")
    run_pods(h, NS)
    await h.settle(NS, "rc")


def status_writes(h: Harness) -> int:
    return sum(1 for verb, _, _ in h.store.calls if verb == "update_status")


def workers(h: Harness) -> list[dict[str, Any]]:
    return h.pods(NS, **{C.RAY_NODE_TYPE_LABEL_KEY: "worker"})


async def test_status_carries_only_what_go_writes() -> None:
    h = Harness()
    await ready_cluster(h)
    st = h.cluster(NS, "rc")["status"]
    assert st["state"] == "ready" and st["readyWorkerReplicas"] == 2
    # omitempty: no empty reason, no zero counters; structs and quantities always written
    assert "reason" not in st and "minWorkerReplicas" not in st
    assert st["desiredTPU"] == "0" and set(st["head"]) == {"podIP", "serviceIP", "podName", "serviceName"}
    # metav1.Condition: message has no omitempty, observedGeneration has
    for c in st["conditions"]:
        assert list(c) == ["type", "status", "lastTransitionTime", "reason", "message"]
    assert list(st)[:2] == ["state", "desiredCPU"]  # Go field order


async def test_steady_suspended_cluster_writes_no_status(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every reading of the clock is a new second, so a condition rewritten in a pass changes its
    # lastTransitionTime and shows up as a status write.
    ticks = itertools.count()

    def now() -> str:
        n = next(ticks)
        return f"2026-01-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"

    monkeypatch.setattr(rcc, "_now", now)
    h = Harness()
    await ready_cluster(h)
    h.cluster(NS, "rc")["spec"]["suspend"] = True
    await h.settle(NS, "rc")
    st = h.cluster(NS, "rc")["status"]
    assert st["state"] == "suspended" and not h.pods(NS)
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["RayClusterSuspended"]["status"] == "True"
    rv, writes = h.cluster(NS, "rc")["metadata"]["resourceVersion"], status_writes(h)
    for _ in range(5):
        result = await h.reconcile(NS, "rc")
        assert result.requeue_after == 300  # nothing changed: the long requeue, not 2 s
    assert status_writes(h) == writes and h.cluster(NS, "rc")["metadata"]["resourceVersion"] == rv
    # Resuming still works.
    h.cluster(NS, "rc")["spec"]["suspend"] = False
    await h.settle(NS, "rc")
    assert len(h.pods(NS)) == 3


@pytest.mark.parametrize("value", ["abc", "", "1.5", " 10"])
async def test_requeue_env_that_is_not_an_integer_falls_back_to_300(value: str) -> None:
    h = Harness(env={C.RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV: value})
    await ready_cluster(h)
    assert (await h.reconcile(NS, "rc")).requeue_after == 300


async def test_requeue_env_integer_is_used() -> None:
    h = Harness(env={C.RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV: "10"})
    await ready_cluster(h)
    assert (await h.reconcile(NS, "rc")).requeue_after == 10


async def test_terminating_worker_is_not_replaced_while_it_drains() -> None:
    h = Harness()
    await ready_cluster(h)
    victim = workers(h)[0]
    victim["metadata"]["finalizers"] = ["example.com/drain"]
    await h.client.delete(res.PODS, victim["metadata"]["name"], NS)
    assert victim["metadata"].get("deletionTimestamp")
    created = sum(1 for verb, plural, _ in h.store.calls if verb == "create" and plural == "pods")
    await h.settle(NS, "rc")
    assert sum(1 for verb, plural, _ in h.store.calls if verb == "create" and plural == "pods") == created
    # Once it is gone, it is replaced.
    victim["metadata"]["finalizers"] = []
    h.store.remove(res.PODS, victim["metadata"]["name"], NS)
    await h.settle(NS, "rc")
    assert len(workers(h)) == 2


async def test_multi_host_pod_without_replica_name_is_ignored() -> None:
    h = Harness()
    group = copy.deepcopy(CLUSTER["spec"]["workerGroupSpecs"][0])
    group.update(numOfHosts=2, replicas=1)
    await ready_cluster(h, cluster(workerGroupSpecs=[group]))
    assert len(workers(h)) == 2
    stray = copy.deepcopy(workers(h)[0])
    stray["metadata"]["name"] = "stray"
    del stray["metadata"]["labels"][C.RAY_WORKER_REPLICA_NAME_KEY]
    h.store.put(res.PODS, stray)
    await h.settle(NS, "rc")
    # Neither deleted as an "incomplete replica" nor counted as one: the replica is not recreated.
    names = {p["metadata"]["name"] for p in workers(h)}
    assert "stray" in names and len(names) == 3
    assert not any(verb == "delete" for verb, _, _ in h.store.calls)


async def test_workers_to_delete_deletes_by_name_and_refills_in_the_same_pass() -> None:
    h = Harness()
    await ready_cluster(h)
    victim = workers(h)[0]["metadata"]["name"]
    h.cluster(NS, "rc")["spec"]["workerGroupSpecs"][0]["scaleStrategy"] = {"workersToDelete": [victim, "gone"]}
    await h.reconcile(NS, "rc")  # an absent name is not an error
    names = {p["metadata"]["name"] for p in workers(h)}
    assert victim not in names and len(names) == 2
    deleted = [r for r in h.recorder.records if r.reason == "DeletedWorkerPod"]
    assert [r.action for r in deleted] == ["Delete"]


async def test_pods_without_a_ready_condition_count_as_running_not_ready() -> None:
    h = Harness()
    h.add(res.RAYCLUSTERS, cluster())
    await h.settle(NS, "rc")
    for p in h.pods(NS):
        p["status"] = {"phase": "Running", "podIP": "127.1.0.9"}
    await h.settle(NS, "rc")
    st = h.cluster(NS, "rc")["status"]
    conds = {c["type"]: c for c in st["conditions"]}
    assert st["state"] == "ready" and conds["RayClusterProvisioned"]["status"] == "True"
    assert st["availableWorkerReplicas"] == 2 and "readyWorkerReplicas" not in st


async def test_no_status_write_while_the_head_service_is_missing() -> None:
    h = Harness()
    create = h.client.create

    async def services_lag(r: Any, obj: Any, namespace: Any = None, **kw: Any) -> Any:
        out = await create(r, obj, namespace, **kw)
        if r.plural == "services":  # created, but not in the cache yet
            h.store.objects.pop((r.plural, NS, out["metadata"]["name"]))
        return out

    h.client.create = services_lag  # type: ignore[method-assign]
    h.add(res.RAYCLUSTERS, cluster())
    with pytest.raises(Exception, match="unable to find head service"):
        await h.reconcile(NS, "rc")
    assert status_writes(h) == 0 and "status" not in h.cluster(NS, "rc")


async def test_unnamed_head_service_port_is_not_an_endpoint() -> None:
    h = Harness()
    c = cluster()
    c["spec"]["headGroupSpec"]["headService"] = {"spec": {"ports": [{"port": 9999, "targetPort": 9999}]}}
    await ready_cluster(h, c)
    endpoints = h.cluster(NS, "rc")["status"]["endpoints"]
    assert "None" not in endpoints and "" not in endpoints
    assert endpoints["dashboard"] == "8265"


async def test_redis_finalizer_left_alone_when_ft_was_disabled_later() -> None:
    h = Harness()
    c = cluster()
    c["metadata"]["finalizers"] = [C.GCS_FAULT_TOLERANCE_REDIS_CLEANUP_FINALIZER]
    c["metadata"]["deletionTimestamp"] = NOW
    h.add(res.RAYCLUSTERS, c)
    await h.reconcile(NS, "rc")
    assert h.store.calls == []
    assert h.cluster(NS, "rc")["metadata"]["finalizers"] == [C.GCS_FAULT_TOLERANCE_REDIS_CLEANUP_FINALIZER]


async def test_redis_finalizer_not_handled_with_cleanup_disabled() -> None:
    h = Harness(env={C.ENABLE_GCS_FT_REDIS_CLEANUP: "false"})
    c = cluster(gcsFaultToleranceOptions={"redisAddress": "redis:6379"})
    h.add(res.RAYCLUSTERS, c)
    await h.settle(NS, "rc")
    assert not h.cluster(NS, "rc")["metadata"].get("finalizers")
    h.cluster(NS, "rc")["metadata"].update(
        finalizers=[C.GCS_FAULT_TOLERANCE_REDIS_CLEANUP_FINALIZER], deletionTimestamp=NOW
    )
    calls = len(h.store.calls)
    await h.reconcile(NS, "rc")
    assert len(h.store.calls) == calls  # no pod deletion, no cleanup Job, finalizer kept


@pytest.mark.parametrize(("value", "seconds"), [("60", 60), ("0", 300), ("-5", 300), ("abc", 300), (" 60", 300)])
def test_gcs_ft_deletion_timeout_must_be_a_positive_integer(value: str, seconds: int) -> None:
    c = cluster()
    c["metadata"]["annotations"] = {C.GCS_FT_DELETION_TIMEOUT_ANNOTATION_KEY: value}
    assert gcs_ft.gcs_ft_deletion_timeout_seconds(c) == seconds


async def test_events_carry_upstream_reasons_and_actions() -> None:
    h = Harness()
    await ready_cluster(h)
    got = {(r.type, r.reason, r.action) for r in h.recorder.records}
    assert got == {
        ("Normal", "CreatedService", "Create"),
        ("Normal", "CreatedHeadPod", "Create"),
        ("Normal", "CreatedWorkerPod", "Create"),
    }
    h.cluster(NS, "rc")["spec"]["suspend"] = True
    await h.settle(NS, "rc")
    assert ("Normal", "DeletedPod", "Delete") in {(r.type, r.reason, r.action) for r in h.recorder.records}


async def test_recreate_cluster_adopted_from_upstream_keeps_its_pods() -> None:
    """A head pod upstream created carries upstream's spec hash; the same spec must not recreate it."""
    spec = json.loads((Path(__file__).parents[1] / "builders/testdata/recreate_hash/autoscaler_v2.json").read_text())
    h = Harness()
    c = cluster()
    c["spec"] = spec
    stored = h.add(res.RAYCLUSTERS, c)
    h.add(res.SERVICEACCOUNTS, {"metadata": {"name": "sa", "namespace": NS}})  # named by the head template
    head = podb.build_head_pod(stored, env={}, features={})
    head["metadata"].update(name="rc-head-up", namespace=NS)
    head["metadata"]["annotations"][C.UPGRADE_STRATEGY_RECREATE_HASH_KEY] = (
        "RMFUIM6CH1LDE7CU12G9E9G8SJKVH19F"  # upstream v1.6.1 (test_recreate_hash.py)
    )
    head["metadata"]["annotations"][C.KUBERAY_VERSION_ANNOTATION_KEY] = C.KUBERAY_VERSION
    head["status"] = {"phase": "Running", "podIP": "127.1.0.1", "conditions": [{"type": "Ready", "status": "True"}]}
    h.store.put(res.PODS, head)
    await h.reconcile(NS, "rc")
    assert ("create", "pods", "rc-small-worker-") in {(v, p, n[:16]) for v, p, n in h.store.calls}
    assert not any(verb == "deletecollection" for verb, _, _ in h.store.calls)
    assert h.pods(NS, **{C.RAY_NODE_TYPE_LABEL_KEY: "head"})[0]["metadata"]["name"] == "rc-head-up"
    # A real spec change still recreates every pod.
    h.cluster(NS, "rc")["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = "ray:new"
    await h.reconcile(NS, "rc")
    assert ("deletecollection", "pods", "ray.io/cluster=rc") in h.store.calls


ROCKSDB_GATE = "GCSFaultToleranceEmbeddedStorage=true"


def rocksdb_cluster(**storage: Any) -> dict[str, Any]:
    return cluster(gcsFaultToleranceOptions={"backend": "rocksdb", "storage": storage})


def pvc(h: Harness) -> dict[str, Any]:
    return h.store.objects[(res.PVCS.plural, NS, "rc-gcs-pvc")]


async def test_gcs_pvc_owner_reference_follows_deletion_policy() -> None:
    h = Harness(gates=ROCKSDB_GATE)
    h.add(res.RAYCLUSTERS, rocksdb_cluster(size="2Gi"))
    await h.settle(NS, "rc")
    uid = h.cluster(NS, "rc")["metadata"]["uid"]
    assert pvc(h)["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert [r["uid"] for r in pvc(h)["metadata"]["ownerReferences"]] == [uid]
    assert ("Normal", "CreatedPVC", "Create") in {(r.type, r.reason, r.action) for r in h.recorder.records}

    storage = h.cluster(NS, "rc")["spec"]["gcsFaultToleranceOptions"]["storage"]
    storage["deletionPolicy"] = "Retain"
    await h.settle(NS, "rc")
    assert not pvc(h)["metadata"].get("ownerReferences")  # survives the cluster now
    storage["deletionPolicy"] = "DeleteWithCluster"
    await h.settle(NS, "rc")
    assert [r["uid"] for r in pvc(h)["metadata"]["ownerReferences"]] == [uid]


async def test_gcs_pvc_drift_is_a_warning_and_the_pvc_is_left_as_it_is() -> None:
    h = Harness(gates=ROCKSDB_GATE)
    h.add(res.RAYCLUSTERS, rocksdb_cluster(size="2Gi"))
    await h.settle(NS, "rc")
    h.cluster(NS, "rc")["spec"]["gcsFaultToleranceOptions"]["storage"]["size"] = "5Gi"
    await h.reconcile(NS, "rc")
    warnings = [r for r in h.recorder.records if r.type == "Warning"]
    assert [r.reason for r in warnings] == ["FailedToCreatePVC"] and "size 2Gi (spec: 5Gi)" in warnings[0].note
    assert pvc(h)["spec"]["resources"]["requests"]["storage"] == "2Gi"


async def test_missing_claim_name_pvc_is_a_warning_and_never_created() -> None:
    h = Harness(gates=ROCKSDB_GATE)
    h.add(res.RAYCLUSTERS, rocksdb_cluster(claimName="mine"))
    await h.reconcile(NS, "rc")
    assert not h.store.items(res.PVCS, NS)
    [warning] = [r for r in h.recorder.records if r.type == "Warning"]
    assert warning.reason == "FailedToCreatePVC" and "ns/mine" in warning.note
    h.add(res.PVCS, {"metadata": {"name": "mine", "namespace": NS}, "spec": {}})
    h.recorder.clear()
    await h.reconcile(NS, "rc")
    assert not [r for r in h.recorder.records if r.type == "Warning"]
    assert not h.store.objects[(res.PVCS.plural, NS, "mine")]["metadata"].get("ownerReferences")


def test_controller_watches_the_pvcs_it_owns() -> None:
    rt = SimpleNamespace(
        client=None,
        cache=SimpleNamespace(index_label=lambda res, key: None),
        recorder=lambda name: FakeRecorder(),
        config=SimpleNamespace(enableMetrics=False, reconcileConcurrency=1),
        registry=None,
        controller_metrics=None,
        queue_metrics=None,
    )
    [ctrl] = rcc.setup(rt, rcc.RayClusterOptions())
    watched = {w.resource.plural for w in ctrl.options.watches}
    assert {"rayclusters", "pods", "services", "secrets", "persistentvolumeclaims"} <= watched


async def test_gcs_pvc_owner_update_refused_by_rbac_does_not_stop_the_pods() -> None:
    h = Harness(gates=ROCKSDB_GATE)
    h.add(res.RAYCLUSTERS, rocksdb_cluster())
    await h.settle(NS, "rc")

    async def forbidden(*_: Any, **__: Any) -> Any:
        raise Forbidden("persistentvolumeclaims is forbidden: cannot patch", reason="Forbidden")

    h.client.patch = forbidden  # type: ignore[method-assign]
    h.cluster(NS, "rc")["spec"]["gcsFaultToleranceOptions"]["storage"]["deletionPolicy"] = "Retain"
    for p in list(h.pods(NS)):
        h.store.remove(res.PODS, p["metadata"]["name"], NS)
    await h.reconcile(NS, "rc")
    assert len(h.pods(NS)) == 3  # the lost pods are recreated in the same pass
    assert any(r.reason == "FailedToCreatePVC" and "owner reference" in r.note for r in h.recorder.records)


async def test_redis_cleanup_deletes_head_first_then_runs_the_cleanup_job() -> None:
    h = Harness()
    h.add(res.RAYCLUSTERS, cluster(gcsFaultToleranceOptions={"redisAddress": "redis:6379"}))
    await h.reconcile(NS, "rc")  # only the finalizer in the first pass
    assert h.cluster(NS, "rc")["metadata"]["finalizers"] == [C.GCS_FAULT_TOLERANCE_REDIS_CLEANUP_FINALIZER]
    assert not h.pods(NS)
    await h.settle(NS, "rc")
    head = h.pods(NS, **{C.RAY_NODE_TYPE_LABEL_KEY: "head"})[0]
    head["metadata"]["finalizers"] = ["example.com/slow"]  # the head takes a while to go
    h.cluster(NS, "rc")["metadata"]["deletionTimestamp"] = rcc._now()
    h.store.calls.clear()

    assert (await h.reconcile(NS, "rc")).requeue_after == 10  # waits for the head pod
    assert [c[2] for c in h.store.calls if c[0] == "deletecollection"] == [
        "ray.io/cluster=rc,ray.io/node-type=head",
        "ray.io/cluster=rc,ray.io/node-type=worker",
    ]
    h.store.calls.clear()
    await h.reconcile(NS, "rc")  # head terminating, no worker left: nothing deleted again
    assert not h.store.calls
    head["metadata"]["finalizers"] = []
    h.store.remove(res.PODS, head["metadata"]["name"], NS)

    await h.reconcile(NS, "rc")
    [job] = h.store.items(res.JOBS, NS)
    assert job["metadata"]["name"] == "rc-redis-cleanup"
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    await h.reconcile(NS, "rc")
    assert not h.cluster(NS, "rc")["metadata"].get("finalizers")
    reasons = {(r.reason, r.action) for r in h.recorder.records}
    assert ("CreatedRedisCleanupJob", "Create") in reasons


async def test_replica_failure_condition_reads_like_upstreams_joined_error() -> None:
    h = Harness()
    create = h.client.create

    async def refuse_pods(r: Any, obj: Any, namespace: Any = None, **kw: Any) -> Any:
        if r.plural == "pods":
            raise Forbidden('pods "rc-head-" is forbidden: exceeded quota', reason="Forbidden")
        return await create(r, obj, namespace, **kw)

    h.client.create = refuse_pods  # type: ignore[method-assign]
    h.add(res.RAYCLUSTERS, cluster())
    await h.settle(NS, "rc")
    conds = {c["type"]: c for c in h.cluster(NS, "rc")["status"]["conditions"]}
    failure = conds["ReplicaFailure"]
    assert (failure["status"], failure["reason"]) == ("True", "FailedCreateHeadPod")
    assert failure["message"] == 'FailedCreateHeadPod\npods "rc-head-" is forbidden: exceeded quota'
    assert ("Warning", "FailedToCreateHeadPod", "Create") in {(r.type, r.reason, r.action) for r in h.recorder.records}
    # The next pass without an error removes it.
    h.client.create = create  # type: ignore[method-assign]
    await h.settle(NS, "rc")
    assert "ReplicaFailure" not in {c["type"] for c in h.cluster(NS, "rc")["status"]["conditions"]}


# ---- event notes: upstream's words ------------------------------------------------------------------


def notes(h: Harness, reason: str) -> list[str]:
    return [r.note for r in h.recorder.records if r.reason == reason]


async def test_event_notes_are_upstreams() -> None:
    """Users grep these: the create, delete and failure notes read exactly as upstream's."""
    h = Harness()
    await ready_cluster(h, cluster(enableInTreeAutoscaling=True))
    assert notes(h, "CreatedServiceAccount") == [f"Created service account {NS}/rc"]
    assert notes(h, "CreatedRole") == [f"Created role {NS}/rc"]
    assert notes(h, "CreatedRoleBinding") == [f"Created role binding {NS}/rc"]
    assert notes(h, "CreatedService") == [f"Created service {NS}/rc-head-svc"]
    h.recorder.clear()
    # workersToDelete: "Deleted pod"; a plain scale-down: "Deleted Pod" (upstream's two spellings)
    victim = h.pods(NS, **{C.RAY_NODE_TYPE_LABEL_KEY: "worker"})[0]["metadata"]["name"]
    group = h.cluster(NS, "rc")["spec"]["workerGroupSpecs"][0]
    group["scaleStrategy"] = {"workersToDelete": [victim]}
    group["replicas"] = 1
    await h.reconcile(NS, "rc")
    assert notes(h, "DeletedWorkerPod") == [f"Deleted pod {NS}/{victim}"]


async def test_scale_down_note_and_unhealthy_worker_note() -> None:
    h = Harness()
    await ready_cluster(h)
    h.recorder.clear()
    h.cluster(NS, "rc")["spec"]["workerGroupSpecs"][0]["replicas"] = 1
    await h.reconcile(NS, "rc")
    [note] = notes(h, "DeletedWorkerPod")
    assert note.startswith(f"Deleted Pod {NS}/rc-small-worker-")
    h.recorder.clear()
    worker = h.pods(NS, **{C.RAY_NODE_TYPE_LABEL_KEY: "worker"})[0]
    worker["spec"]["restartPolicy"] = "Never"
    worker["status"]["containerStatuses"] = [
        {
            "name": "ray-worker",
            "state": {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": "2026-01-01T00:00:00Z",
                    "finishedAt": "2026-01-01T00:01:00Z",
                    "containerID": "containerd://abc",
                }
            },
        }
    ]
    with pytest.raises(rcc.ReconcileError, match="delete 1 unhealthy worker Pods"):
        await h.reconcile(NS, "rc")
    assert notes(h, "DeletedWorkerPod") == [
        f"Deleted worker Pod {NS}/{worker['metadata']['name']}; Pod status: Running; Pod restart policy: Never; "
        "Ray container terminated status: &{1 0 Error  2026-01-01 00:00:00 +0000 UTC 2026-01-01 00:01:00 +0000 UTC "
        "containerd://abc}"
    ]


async def test_pod_create_failure_notes() -> None:
    """The head pod has no name before the apiserver applies generateName, so upstream prints
    '<ns>/'; the worker note names the cluster."""
    h = Harness()
    h.store.refuse_create[res.PODS.plural] = Forbidden("pods is forbidden: exceeded quota", reason="Forbidden")
    h.add(res.RAYCLUSTERS, cluster())
    with pytest.raises(rcc.ReplicaError):
        await h.reconcile(NS, "rc")
    assert notes(h, "FailedToCreateHeadPod") == [f"Failed to create head Pod {NS}/, pods is forbidden: exceeded quota"]
    h2 = Harness()
    await ready_cluster(h2)
    h2.cluster(NS, "rc")["spec"]["workerGroupSpecs"][0]["replicas"] = 3
    h2.store.refuse_create[res.PODS.plural] = Forbidden("pods is forbidden: exceeded quota", reason="Forbidden")
    with pytest.raises(rcc.ReplicaError):
        await h2.reconcile(NS, "rc")
    assert notes(h2, "FailedToCreateWorkerPod") == [
        f"Failed to create worker Pod for the cluster {NS}/rc, pods is forbidden: exceeded quota"
    ]


# ---- the dashboard Ingress (raycluster-extensions.md §2) --------------------------------------------------


def ingress_cluster(**annotations: str) -> dict[str, Any]:
    c = cluster()
    c["spec"]["headGroupSpec"]["enableIngress"] = True
    if annotations:
        c["metadata"]["annotations"] = dict(annotations)
    return c


def live_ingress(h: Harness) -> dict[str, Any]:
    return h.store.objects[(res.INGRESSES.plural, NS, "rc-head-ingress")]


async def test_ingress_created_once_before_services_and_pods() -> None:
    h = Harness()
    await ready_cluster(h, ingress_cluster(**{"kubernetes.io/ingress.class": "nginx", "team": "a"}))
    creates = [(p, n) for v, p, n in h.store.calls if v == "create"]
    assert creates[0] == ("ingresses", "rc-head-ingress")  # before the head Service and the pods
    ing = live_ingress(h)
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["metadata"]["annotations"] == {"team": "a"}
    assert ing["metadata"]["ownerReferences"][0]["uid"] == h.cluster(NS, "rc")["metadata"]["uid"]
    assert notes(h, "CreatedIngress") == [f"Created ingress {NS}/rc-head-ingress"]
    # Steady state: no further write of the Ingress.
    await h.reconcile(NS, "rc")
    assert [c for c in h.store.calls if c[1] == "ingresses"] == [("create", "ingresses", "rc-head-ingress")]


async def test_ingress_drift_is_repaired_and_a_default_class_adopted() -> None:
    h = Harness()
    await ready_cluster(h, ingress_cluster())
    ing = live_ingress(h)
    ing["spec"]["ingressClassName"] = "cluster-default"  # the DefaultIngressClass admission plugin
    await h.reconcile(NS, "rc")
    assert not notes(h, "UpdatedIngress")  # adopted, not fought over
    ing["metadata"]["labels"]["extra"] = "x"
    ing["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/elsewhere"
    await h.reconcile(NS, "rc")
    ing = live_ingress(h)
    assert "extra" not in ing["metadata"]["labels"]
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/"
    assert ing["spec"]["ingressClassName"] == "cluster-default"
    assert notes(h, "UpdatedIngress") == [f"Updated ingress {NS}/rc-head-ingress"]


async def test_foreign_ingress_is_left_alone_with_a_warning() -> None:
    h = Harness()
    foreign = {"metadata": {"name": "rc-head-ingress", "namespace": NS, "labels": {"mine": "yes"}}, "spec": {}}
    h.add(res.INGRESSES, foreign)
    await ready_cluster(h, ingress_cluster())
    assert live_ingress(h)["metadata"]["labels"] == {"mine": "yes"}
    assert set(notes(h, "FailedToCreateIngress")) == {
        f"Ingress {NS}/rc-head-ingress already exists and is not owned by this RayCluster; not modifying it"
    }
    assert h.pods(NS)  # the chain went on


async def test_ingress_create_failure_blocks_services_and_pods() -> None:
    h = Harness()
    h.store.refuse_create[res.INGRESSES.plural] = Forbidden("admission webhook denied it", reason="Forbidden")
    h.add(res.RAYCLUSTERS, ingress_cluster())
    with pytest.raises(Forbidden):
        await h.reconcile(NS, "rc")
    assert notes(h, "FailedToCreateIngress") == [
        f"Failed creating ingress {NS}/rc-head-ingress, admission webhook denied it"
    ]
    assert not h.pods(NS) and not h.store.items(res.SERVICES, NS)
