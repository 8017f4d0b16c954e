"""The RayCluster controller (upstream ``raycluster_controller.go``), kept in upstream's order:
validate → GCS FT finalizer → autoscaler RBAC → auth secret → services → GCS PVC → pods → status.

Objects are built by the pure functions in ``controllers/ray/common``; this module only decides what
to create or delete and computes the status. Reads come from the shared cache (pods selected by the
KubeRay label selector); writes go to the API server. Scale expectations keep a lagging cache from
causing duplicate creates or double deletes.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from api.config.v1alpha1 import Configuration
from api.v1 import validation as v
from api.v1.errors import ValidationError
from controllers.ray.common import gcs_ft, rbac, service
from controllers.ray.common import pod as podb
from controllers.ray.expectations import HEAD_GROUP, Action, ScaleExpectations
from controllers.ray.metrics import RayClusterMetrics
from controllers.ray.utils import constants as C
from controllers.ray.utils import util as U
from controllers.ray.utils.constants import EventReason as R
from internal.client import AlreadyExists, ApiError, Client, NotFound
from internal.client import resources as res
from internal.controller import (
    Controller,
    ControllerOptions,
    ForOwner,
    ReconcileError,
    Request,
    Result,
    for_object,
)
from internal.controller.predicates import AnnotationsChanged, GenerationChanged, LabelsChanged, any_of
from internal.events import Recorder
from internal.features import FeatureGates
from internal.informer import Cache, thaw

log = logging.getLogger("kuberay.raycluster")

Obj = dict[str, Any]
DEFAULT_REQUEUE = 2.0
REDIS_CLEANUP_WAIT = 10.0
MANAGED_BY = "ray.io/kuberay-operator"

# Condition types and reasons (api/v1 has them as enums; plain strings keep the JSON obvious here).
HEAD_POD_READY = "HeadPodReady"
PROVISIONED = "RayClusterProvisioned"
REPLICA_FAILURE = "ReplicaFailure"
SUSPENDING = "RayClusterSuspending"
SUSPENDED = "RayClusterSuspended"


class ReplicaError(ReconcileError):
    """An error that marks the ReplicaFailure condition with its reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def _deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def set_condition(
    conditions: list[Obj], ctype: str, status: str, reason: str, message: str, generation: int | None = None
) -> None:
    """meta.SetStatusCondition: lastTransitionTime moves only when the status changes."""
    for c in conditions:
        if c.get("type") == ctype:
            if c.get("status") != status:
                c["status"] = status
                c["lastTransitionTime"] = _now()
            c["reason"] = reason
            c["message"] = message
            if generation is not None:
                c["observedGeneration"] = generation
            return
    cond: Obj = {"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": _now()}
    if generation is not None:
        cond["observedGeneration"] = generation
    conditions.append(cond)


def condition_true(status: Mapping[str, Any], ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in status.get("conditions") or ())


def inconsistent_status(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """InconsistentRayClusterStatus: only these fields justify a status write."""
    keys = (
        "state",
        "reason",
        "readyWorkerReplicas",
        "availableWorkerReplicas",
        "desiredWorkerReplicas",
        "minWorkerReplicas",
        "maxWorkerReplicas",
        "endpoints",
        "head",
        "conditions",
    )
    return any(old.get(k) != new.get(k) for k in keys)


def should_delete_pod(pod: Mapping[str, Any], ray_container: str) -> tuple[bool, str]:
    """shouldDeletePod: Failed/Succeeded pods go; a Running pod whose Ray container terminated goes
    only with restartPolicy Never (otherwise the kubelet restarts it)."""
    phase = _phase(pod)
    name = (pod.get("metadata") or {}).get("name")
    if phase in ("Failed", "Succeeded"):
        return True, f"The pod {name} is in phase {phase}; deleting it so it is recreated."
    restart = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    if phase == "Running" and restart == "Never":
        for cs in (pod.get("status") or {}).get("containerStatuses") or ():
            if cs.get("name") == ray_container and (cs.get("state") or {}).get("terminated"):
                return True, f"The Ray container of pod {name} has terminated and restartPolicy is Never."
    return False, ""


@dataclass
class RayClusterOptions:
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    gates: FeatureGates = field(default_factory=FeatureGates)
    pod_config: podb.PodConfig = podb.DEFAULT_POD_CONFIG

    @classmethod
    def from_configuration(cls, cfg: Configuration, gates: FeatureGates) -> RayClusterOptions:
        """Upstream's ``RayClusterReconcilerOptions`` from the operator Configuration: the sidecars and
        the pod defaults every Ray pod gets."""
        return cls(
            gates=gates,
            pod_config=podb.PodConfig(
                head_sidecar_containers=tuple(cfg.headSidecarContainers),
                worker_sidecar_containers=tuple(cfg.workerSidecarContainers),
                default_container_envs=tuple(cfg.defaultContainerEnvs),
                default_pod_labels=dict(cfg.defaultPodLabels),
                default_pod_annotations=dict(cfg.defaultPodAnnotations),
            ),
        )

    @property
    def default_requeue(self) -> float:
        return float(self.env.get("RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV") or 300)


class RayClusterReconciler:
    def __init__(
        self,
        client: Client,
        cache: Cache,
        recorder: Recorder,
        options: RayClusterOptions | None = None,
        metrics: RayClusterMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.cache = cache
        self.recorder = recorder
        self.options = options or RayClusterOptions()
        self.metrics = metrics
        self.clock = clock
        self.expectations = ScaleExpectations(self._pod_cached)

    @property
    def _features(self) -> Mapping[str, bool]:
        return self.options.gates.values

    def _pod_cached(self, namespace: str, name: str) -> bool:
        try:
            self.cache.get(res.PODS, name, namespace)
        except NotFound:
            return False
        return True

    # ---- entry -----------------------------------------------------------------------------------

    async def reconcile(self, request: Request) -> Result:
        try:
            cached = self.cache.get(res.RAYCLUSTERS, request.name, request.namespace)
        except NotFound:
            self.expectations.delete_cluster(request.namespace, request.name)
            if self.metrics:
                self.metrics.forget_cluster(request.name, request.namespace)
            return Result()
        cluster: Obj = thaw(cached)
        spec = cluster.setdefault("spec", {})
        managed_by = spec.get("managedBy")
        if managed_by and managed_by != MANAGED_BY:
            log.info("RayCluster %s is managed by %s; skipping", request, managed_by)
            return Result()
        _set_defaults(cluster)

        try:
            v.validate_ray_cluster_metadata(cluster)
        except ValidationError as e:
            self.recorder.event(cluster, "Warning", R.INVALID_RAY_CLUSTER_METADATA, str(e), action="Validate")
            return Result()
        try:
            v.validate_ray_cluster_spec(spec, cluster["metadata"].get("annotations"), self._features)
            v.validate_ray_cluster_upgrade_options(cluster)
        except ValidationError as e:
            self.recorder.event(cluster, "Warning", R.INVALID_RAY_CLUSTER_SPEC, str(e), action="Validate")
            return Result()
        try:
            v.validate_ray_cluster_status(cluster)
        except ValidationError as e:
            self.recorder.event(cluster, "Warning", R.INVALID_RAY_CLUSTER_STATUS, str(e), action="Validate")
            raise

        if U.is_gcs_fault_tolerance_enabled(cluster) or (cluster["metadata"].get("finalizers") or []):
            done = await self._reconcile_gcs_ft_finalizer(cluster)
            if done is not None:
                return done
        if _deleting(cluster):
            return Result()

        old_status = dict(cluster.get("status") or {})
        reconcile_err: Exception | None = None
        try:
            for step in (
                self._reconcile_autoscaler_rbac,
                self._reconcile_auth_secret,
                self._reconcile_head_service,
                self._reconcile_headless_service,
                self._reconcile_serve_service,
                self._reconcile_gcs_pvc,
                self._reconcile_pods,
            ):
                await step(cluster)
        except ApiError as e:
            reconcile_err = e
        except ReplicaError as e:
            reconcile_err = e
        except _Retry as e:
            reconcile_err = e

        new_status = self.calculate_status(cluster, reconcile_err)
        changed = inconsistent_status(old_status, new_status)
        if changed:
            await self._update_status(cluster, old_status, new_status)
        if reconcile_err is not None:
            raise reconcile_err
        return Result(requeue_after=DEFAULT_REQUEUE if changed else self.options.default_requeue)

    # ---- GCS fault tolerance finalizer ------------------------------------------------------------

    async def _reconcile_gcs_ft_finalizer(self, cluster: Obj) -> Result | None:
        meta = cluster["metadata"]
        finalizers: list[str] = list(meta.get("finalizers") or [])
        has = C.GCS_FAULT_TOLERANCE_REDIS_CLEANUP_FINALIZER in finalizers
        needs = gcs_ft.needs_redis_cleanup_finalizer(cluster, self.options.env)
        ns, name = meta["namespace"], meta["name"]
        if not _deleting(cluster):
            if needs and not has:
                await self.client.patch(
                    res.RAYCLUSTERS,
                    name,
                    {
                        "metadata": {
                            "finalizers": [*finalizers, C.GCS_FAULT_TOLERANCE_REDIS_CLEANUP_FINALIZER],
                            "resourceVersion": meta["resourceVersion"],
                        }
                    },
                    ns,
                )
                return Result(requeue_after=DEFAULT_REQUEUE)
            return None
        if not has:
            return None
        if U.is_gcs_fault_tolerance_embedded(cluster):
            await self._remove_finalizer(cluster, C.GCS_FAULT_TOLERANCE_REDIS_CLEANUP_FINALIZER)
            return Result()
        # Delete the Ray pods first: the cleanup must not race a live GCS.
        sel = f"{C.RAY_CLUSTER_LABEL_KEY}={name}"
        heads = self.cache.list(res.PODS, ns, labels={C.RAY_CLUSTER_LABEL_KEY: name, C.RAY_NODE_TYPE_LABEL_KEY: "head"})
        await self.client.delete_collection(res.PODS, ns, label_selector=f"{sel},{C.RAY_NODE_TYPE_LABEL_KEY}=head")
        await self.client.delete_collection(res.PODS, ns, label_selector=f"{sel},{C.RAY_NODE_TYPE_LABEL_KEY}=worker")
        if heads:
            return Result(requeue_after=REDIS_CLEANUP_WAIT)
        jobs = (
            await self.client.list(
                res.JOBS, ns, label_selector=f"{sel},{C.RAY_NODE_TYPE_LABEL_KEY}={C.RayNodeType.REDIS_CLEANUP.value}"
            )
        )["items"]
        deleted_at = dt.datetime.fromisoformat(str(meta["deletionTimestamp"]).replace("Z", "+00:00"))
        timeout = gcs_ft.gcs_ft_deletion_timeout_seconds(cluster)
        if (dt.datetime.now(dt.UTC) - deleted_at).total_seconds() >= timeout:
            self.recorder.event(
                cluster,
                "Warning",
                R.FORCE_DELETED_STUCK_CLUSTER,
                f"Force-removed the finalizer after {timeout}s: the Redis cleanup Job did not finish.",
            )
            await self._remove_finalizer(cluster, C.GCS_FAULT_TOLERANCE_REDIS_CLEANUP_FINALIZER)
            return Result()
        if jobs:
            conds = {c.get("type"): c.get("status") for c in (jobs[0].get("status") or {}).get("conditions") or ()}
            if any(conds.get(t) == "True" for t in ("Complete", "Failed", "FailureTarget")):
                await self._remove_finalizer(cluster, C.GCS_FAULT_TOLERANCE_REDIS_CLEANUP_FINALIZER)
                return Result()
            return Result(requeue_after=DEFAULT_REQUEUE)
        job = gcs_ft.build_redis_cleanup_job(
            cluster, env=self.options.env, features=self._features, config=self.options.pod_config
        )
        try:
            await self.client.create(res.JOBS, job, ns)
            self.recorder.event(
                cluster,
                "Normal",
                R.CREATED_REDIS_CLEANUP_JOB,
                f"Created Redis cleanup Job {ns}/{job['metadata']['name']}",
            )
        except AlreadyExists:
            pass
        except ApiError as e:
            self.recorder.event(cluster, "Warning", R.FAILED_TO_CREATE_REDIS_CLEANUP_JOB, str(e))
            raise
        return Result(requeue_after=DEFAULT_REQUEUE)

    async def _remove_finalizer(self, cluster: Obj, finalizer: str) -> None:
        meta = cluster["metadata"]
        remaining = [f for f in meta.get("finalizers") or [] if f != finalizer]
        await self.client.patch(
            res.RAYCLUSTERS,
            meta["name"],
            {"metadata": {"finalizers": remaining or None, "resourceVersion": meta["resourceVersion"]}},
            meta["namespace"],
        )

    # ---- dependents ------------------------------------------------------------------------------

    async def _get_or_none(self, r: res.Resource, name: str, ns: str) -> Obj | None:
        try:
            return await self.client.get(r, name, ns)
        except NotFound:
            return None

    async def _create(self, r: res.Resource, obj: Obj, cluster: Obj, ok: str, failed: str) -> Obj | None:
        ns = cluster["metadata"]["namespace"]
        try:
            out = await self.client.create(r, obj, ns)
        except AlreadyExists:
            return None
        except ApiError as e:
            self.recorder.event(cluster, "Warning", failed, f"Failed to create {r.kind} {ns}/{_name_of(obj)}: {e}")
            raise
        self.recorder.event(cluster, "Normal", ok, f"Created {r.kind} {ns}/{out['metadata']['name']}")
        return out

    async def _reconcile_autoscaler_rbac(self, cluster: Obj) -> None:
        if not U.is_autoscaling_enabled(cluster):
            return
        ns = cluster["metadata"]["namespace"]
        sa_name = U.get_head_group_service_account_name(cluster)
        named = (U.head_group_spec(cluster).get("template") or {}).get("spec", {}).get("serviceAccountName")
        if await self._get_or_none(res.SERVICEACCOUNTS, sa_name, ns) is None:
            if named:
                msg = f"The autoscaler ServiceAccount {ns}/{sa_name} named in the head template does not exist."
                self.recorder.event(cluster, "Warning", R.AUTOSCALER_SERVICE_ACCOUNT_NOT_FOUND, msg)
                raise _Retry(msg)
            await self._create(
                res.SERVICEACCOUNTS,
                rbac.build_service_account(cluster),
                cluster,
                R.CREATED_SERVICE_ACCOUNT,
                R.FAILED_TO_CREATE_SERVICE_ACCOUNT,
            )
        role = rbac.build_role(cluster)
        if await self._get_or_none(res.ROLES, role["metadata"]["name"], ns) is None:
            await self._create(res.ROLES, role, cluster, R.CREATED_ROLE, R.FAILED_TO_CREATE_ROLE)
        binding = rbac.build_role_binding(cluster)
        if await self._get_or_none(res.ROLEBINDINGS, binding["metadata"]["name"], ns) is None:
            await self._create(
                res.ROLEBINDINGS, binding, cluster, R.CREATED_ROLE_BINDING, R.FAILED_TO_CREATE_ROLE_BINDING
            )

    async def _reconcile_auth_secret(self, cluster: Obj) -> None:
        spec = cluster["spec"]
        auth = spec.get("authOptions") or {}
        if auth.get("mode") != "token" or U.is_k8s_auth_enabled(auth) or auth.get("secretName"):
            return
        meta = cluster["metadata"]
        name = U.check_name(meta["name"])
        try:
            self.cache.get(res.SECRETS, name, meta["namespace"])
            return
        except NotFound:
            pass
        secret: Obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": {C.RAY_CLUSTER_LABEL_KEY: meta["name"]},
                "ownerReferences": [U.owner_reference(cluster)],
            },
            "stringData": {"auth_token": base64.b64encode(secrets.token_bytes(32)).decode()},
        }
        try:
            await self.client.create(res.SECRETS, secret, meta["namespace"])
        except AlreadyExists:
            pass

    def _head_services(self, cluster: Obj) -> Sequence[Mapping[str, Any]]:
        meta = cluster["metadata"]
        return self.cache.list(
            res.SERVICES,
            meta["namespace"],
            labels={
                C.RAY_CLUSTER_LABEL_KEY: meta["name"],
                C.RAY_NODE_TYPE_LABEL_KEY: C.RayNodeType.HEAD.value,
                C.RAY_ID_LABEL_KEY: U.generate_identifier(meta["name"], C.RayNodeType.HEAD.value),
            },
        )

    async def _reconcile_head_service(self, cluster: Obj) -> None:
        found = self._head_services(cluster)
        if len(found) == 1:
            return  # never updated, as upstream
        if len(found) > 1:
            raise _Retry(f"found {len(found)} head services for RayCluster {cluster['metadata']['name']}")
        svc = service.build_head_service(cluster, env=self.options.env)
        await self._create(res.SERVICES, svc, cluster, R.CREATED_SERVICE, R.FAILED_TO_CREATE_SERVICE)

    async def _reconcile_headless_service(self, cluster: Obj) -> None:
        if not U.needs_headless_worker_service(cluster):
            return
        meta = cluster["metadata"]
        try:
            self.cache.get(res.SERVICES, U.headless_service_name(meta["name"]), meta["namespace"])
        except NotFound:
            svc = service.build_headless_service(cluster)
            await self._create(res.SERVICES, svc, cluster, R.CREATED_SERVICE, R.FAILED_TO_CREATE_SERVICE)

    async def _reconcile_serve_service(self, cluster: Obj) -> None:
        if not service.is_serve_service_enabled(cluster):
            return
        meta = cluster["metadata"]
        try:
            self.cache.get(res.SERVICES, U.generate_serve_service_name(meta["name"]), meta["namespace"])
        except NotFound:
            svc = service.build_serve_service(cluster)
            await self._create(res.SERVICES, svc, cluster, R.CREATED_SERVICE, R.FAILED_TO_CREATE_SERVICE)

    async def _reconcile_gcs_pvc(self, cluster: Obj) -> None:
        if not (U.is_gcs_fault_tolerance_enabled(cluster) and U.is_gcs_fault_tolerance_embedded(cluster)):
            return
        pvc = gcs_ft.build_gcs_storage_pvc(cluster)
        if pvc is None:
            return
        ns = cluster["metadata"]["namespace"]
        if await self._get_or_none(res.PVCS, pvc["metadata"]["name"], ns) is None:
            await self._create(res.PVCS, pvc, cluster, R.CREATED_PVC, R.FAILED_TO_CREATE_PVC)

    # ---- pods ------------------------------------------------------------------------------------

    def _pods(self, cluster: Obj, **labels: str) -> Sequence[Mapping[str, Any]]:
        meta = cluster["metadata"]
        return self.cache.list(res.PODS, meta["namespace"], labels={C.RAY_CLUSTER_LABEL_KEY: meta["name"], **labels})

    async def _delete_pod(
        self, cluster: Obj, pod: Mapping[str, Any], group: str, ok: str, failed: str, why: str
    ) -> bool:
        meta = cluster["metadata"]
        name = pod["metadata"]["name"]
        try:
            await self.client.delete(res.PODS, name, meta["namespace"])
        except NotFound:
            return False
        except ApiError as e:
            self.recorder.event(cluster, "Warning", failed, f"Failed deleting pod {meta['namespace']}/{name}: {e}")
            raise ReplicaError("FailedDeleteHeadPod" if group == HEAD_GROUP else "FailedDeleteWorkerPod", str(e)) from e
        self.expectations.expect(meta["namespace"], meta["name"], group, name, Action.DELETE)
        self.recorder.event(cluster, "Normal", ok, f"Deleted pod {meta['namespace']}/{name}. {why}".strip())
        return True

    async def _delete_all_pods(self, cluster: Obj, selector: str, reason: str, message: str) -> None:
        meta = cluster["metadata"]
        live = [p for p in self._pods(cluster) if not _deleting(p)]
        try:
            await self.client.delete_collection(res.PODS, meta["namespace"], label_selector=selector)
        except ApiError as e:
            self.recorder.event(cluster, "Warning", R.FAILED_TO_DELETE_POD_COLLECTION, str(e))
            raise ReplicaError("FailedDeleteAllPods", str(e)) from e
        if live:
            self.recorder.event(cluster, "Normal", reason, message)

    async def _create_pod(self, cluster: Obj, pod: Obj, group: str) -> None:
        meta = cluster["metadata"]
        head = group == HEAD_GROUP
        try:
            out = await self.client.create(res.PODS, pod, meta["namespace"])
        except ApiError as e:
            reason = R.FAILED_TO_CREATE_HEAD_POD if head else R.FAILED_TO_CREATE_WORKER_POD
            self.recorder.event(cluster, "Warning", reason, f"Failed to create {'head' if head else 'worker'} Pod: {e}")
            raise ReplicaError("FailedCreateHeadPod" if head else "FailedCreateWorkerPod", str(e)) from e
        name = out["metadata"]["name"]
        self.expectations.expect(meta["namespace"], meta["name"], group, name, Action.CREATE)
        reason = R.CREATED_HEAD_POD if head else R.CREATED_WORKER_POD
        what = "head" if head else "worker"
        self.recorder.event(cluster, "Normal", reason, f"Created {what} Pod {meta['namespace']}/{name}")

    async def _reconcile_pods(self, cluster: Obj) -> None:
        meta, spec, status = cluster["metadata"], cluster["spec"], cluster.get("status") or {}
        ns, name = meta["namespace"], meta["name"]
        conditions_on = self.options.gates.enabled("RayClusterStatusConditions")
        suspending = condition_true(status, SUSPENDING) if conditions_on else bool(spec.get("suspend"))
        if suspending:
            await self._delete_all_pods(
                cluster,
                f"{C.RAY_CLUSTER_LABEL_KEY}={name}",
                R.DELETED_POD,
                f"Deleted Pods for RayCluster {ns}/{name} due to suspension",
            )
            self.expectations.delete_cluster(ns, name)
            return
        if condition_true(status, SUSPENDED) or spec.get("suspend"):
            return

        # Recreate upgrades.
        head_pods = self._pods(cluster, **{C.RAY_NODE_TYPE_LABEL_KEY: C.RayNodeType.HEAD.value})
        recreate = (spec.get("upgradeStrategy") or {}).get("type") == "Recreate"
        if recreate and head_pods and await self._recreate_if_spec_changed(cluster, head_pods[0]):
            return

        # Head.
        if self.expectations.is_satisfied(ns, name, HEAD_GROUP):
            if len(head_pods) == 1:
                delete, why = should_delete_pod(head_pods[0], _ray_container_name(head_pods[0]))
                if delete and not _deleting(head_pods[0]):
                    await self._delete_pod(
                        cluster, head_pods[0], HEAD_GROUP, R.DELETED_HEAD_POD, R.FAILED_TO_DELETE_HEAD_POD, why
                    )
                    raise _Retry(why)
            elif not head_pods:
                provisioned = condition_true(status, PROVISIONED)
                no_restart = (meta.get("annotations") or {}).get(
                    C.DISABLE_PROVISIONED_HEAD_RESTART_ANNOTATION_KEY
                ) == "true"
                if not (provisioned and no_restart):
                    pod = podb.build_head_pod(
                        cluster, env=self.options.env, features=self._features, config=self.options.pod_config
                    )
                    await self._create_pod(cluster, pod, HEAD_GROUP)
            else:
                raise _Retry(f"{len(head_pods)} head pods found for RayCluster {ns}/{name}; expected one")

        autoscaling = U.is_autoscaling_enabled(cluster)
        random_delete = U.is_random_pod_delete_enabled(self.options.env)
        for group in U.worker_group_specs(cluster):
            gname = str(group.get("groupName") or "")
            if not self.expectations.is_satisfied(ns, name, gname):
                continue
            pods = self._pods(
                cluster, **{C.RAY_NODE_GROUP_LABEL_KEY: gname, C.RAY_NODE_TYPE_LABEL_KEY: C.RayNodeType.WORKER.value}
            )
            if group.get("suspend") is True:
                if pods:
                    await self._delete_all_pods(
                        cluster,
                        f"{C.RAY_CLUSTER_LABEL_KEY}={name},{C.RAY_NODE_GROUP_LABEL_KEY}={gname}",
                        R.DELETED_WORKER_POD,
                        f"Deleted all pods of suspended worker group {gname} of RayCluster {ns}/{name}",
                    )
                continue
            hosts = max(1, U.as_int(group.get("numOfHosts"), 1))
            if hosts > 1 and self.options.gates.enabled("RayMultiHostIndexing"):
                await self._reconcile_multi_host_group(cluster, group, pods, autoscaling or False, random_delete)
                continue
            await self._reconcile_group(cluster, group, pods, autoscaling or False, random_delete)

    async def _reconcile_group(
        self, cluster: Obj, group: Obj, pods: Sequence[Mapping[str, Any]], autoscaling: bool, random_delete: bool
    ) -> None:
        ns, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
        gname = str(group.get("groupName") or "")
        live = [p for p in pods if not _deleting(p)]
        deleted = 0
        for p in live:
            delete, why = should_delete_pod(p, _ray_container_name(p))
            if delete and await self._delete_pod(
                cluster, p, gname, R.DELETED_WORKER_POD, R.FAILED_TO_DELETE_WORKER_POD, why
            ):
                deleted += 1
        if deleted:
            raise _Retry(f"delete {deleted} unhealthy worker Pods")
        to_delete = set((group.get("scaleStrategy") or {}).get("workersToDelete") or ())
        for p in live:
            if p["metadata"]["name"] in to_delete and await self._delete_pod(
                cluster, p, gname, R.DELETED_WORKER_POD, R.FAILED_TO_DELETE_WORKER_POD, "listed in workersToDelete"
            ):
                deleted += 1
        remaining = [p for p in live if p["metadata"]["name"] not in to_delete]
        desired = U.get_worker_group_desired_replicas(group)
        diff = desired - (len(live) - deleted)
        if diff > 0:
            used = {
                U.as_int((p["metadata"].get("labels") or {}).get(C.RAY_WORKER_REPLICA_INDEX_KEY), -1) for p in remaining
            }
            index = 0
            for _ in range(diff):
                while index in used:
                    index += 1
                used.add(index)
                pod = podb.build_worker_pod(
                    cluster,
                    group,
                    env=self.options.env,
                    features=self._features,
                    config=self.options.pod_config,
                    replica_index=index,
                )
                await self._create_pod(cluster, pod, gname)
        elif diff < 0 and (not autoscaling or random_delete):
            for p in remaining[:-diff]:
                await self._delete_pod(
                    cluster, p, gname, R.DELETED_WORKER_POD, R.FAILED_TO_DELETE_WORKER_POD, "scaling down"
                )
        log.debug("group %s of %s/%s: desired %d, live %d, diff %d", gname, ns, name, desired, len(live), diff)

    async def _reconcile_multi_host_group(
        self, cluster: Obj, group: Obj, pods: Sequence[Mapping[str, Any]], autoscaling: bool, random_delete: bool
    ) -> None:
        gname = str(group.get("groupName") or "")
        hosts = U.as_int(group.get("numOfHosts"), 1)
        live = [p for p in pods if not _deleting(p)]
        replicas: dict[str, list[Mapping[str, Any]]] = {}
        for p in live:
            replicas.setdefault(_labels(p).get(C.RAY_WORKER_REPLICA_NAME_KEY, ""), []).append(p)

        async def delete_replica(members: Sequence[Mapping[str, Any]], why: str) -> None:
            for p in members:
                await self._delete_pod(cluster, p, gname, R.DELETED_WORKER_POD, R.FAILED_TO_DELETE_WORKER_POD, why)

        broken = [r for r, members in replicas.items() if len(members) < hosts]
        for r in broken:
            await delete_replica(replicas[r], f"replica {r} has fewer than {hosts} hosts")
        if broken:
            raise _Retry(f"deleted {len(broken)} incomplete multi-host replicas of group {gname}")
        unhealthy = [
            r
            for r, members in replicas.items()
            if any(should_delete_pod(p, _ray_container_name(p))[0] for p in members)
        ]
        for r in unhealthy:
            await delete_replica(replicas[r], f"replica {r} has an unhealthy host")
        to_delete = set((group.get("scaleStrategy") or {}).get("workersToDelete") or ())
        doomed = [
            r
            for r, members in replicas.items()
            if r not in unhealthy and any(p["metadata"]["name"] in to_delete for p in members)
        ]
        for r in doomed:
            await delete_replica(replicas[r], "a host is listed in workersToDelete")
        if doomed:
            raise _Retry(f"deleted {len(doomed)} multi-host replicas listed in workersToDelete")
        desired = U.get_worker_group_desired_replicas(group)
        if desired % hosts != 0:
            raise _Retry(f"desired workers {desired} of group {gname} is not a multiple of numOfHosts {hosts}")
        healthy = {r: m for r, m in replicas.items() if r not in unhealthy}
        diff = desired // hosts - len(healthy)
        if diff > 0:
            used = {U.as_int(_labels(m[0]).get(C.RAY_WORKER_REPLICA_INDEX_KEY), -1) for m in healthy.values()}
            index = 0
            for _ in range(diff):
                while index in used:
                    index += 1
                used.add(index)
                replica = U.generate_replica_group_name(gname, lambda: U.random_string(C.RANDOM_SUFFIX_LENGTH, _RNG))
                for host in range(hosts):
                    pod = podb.build_worker_pod(
                        cluster,
                        group,
                        env=self.options.env,
                        features=self._features,
                        config=self.options.pod_config,
                        replica_index=index,
                        replica_name=replica,
                        host_index=host,
                    )
                    await self._create_pod(cluster, pod, gname)
        elif diff < 0 and (not autoscaling or random_delete):
            for r in list(healthy)[:-diff]:
                await delete_replica(healthy[r], "scaling down")

    async def _recreate_if_spec_changed(self, cluster: Obj, head: Mapping[str, Any]) -> bool:
        ann = (head.get("metadata") or {}).get("annotations") or {}
        version = ann.get(C.KUBERAY_VERSION_ANNOTATION_KEY, "")
        want = U.generate_hash_without_replicas_and_workers_to_delete(cluster["spec"])
        meta = cluster["metadata"]
        if version and version != C.KUBERAY_VERSION:
            await self.client.patch(
                res.PODS,
                head["metadata"]["name"],
                {
                    "metadata": {
                        "annotations": {
                            C.UPGRADE_STRATEGY_RECREATE_HASH_KEY: want,
                            C.KUBERAY_VERSION_ANNOTATION_KEY: C.KUBERAY_VERSION,
                        }
                    }
                },
                meta["namespace"],
            )
            return False
        have = ann.get(C.UPGRADE_STRATEGY_RECREATE_HASH_KEY, "")
        if have and have != want:
            await self._delete_all_pods(
                cluster,
                f"{C.RAY_CLUSTER_LABEL_KEY}={meta['name']}",
                R.DELETED_POD,
                f"Deleted all Pods of RayCluster {meta['namespace']}/{meta['name']}: its spec changed (Recreate)",
            )
            self.expectations.delete_cluster(meta["namespace"], meta["name"])
            return True
        return False

    # ---- status ----------------------------------------------------------------------------------

    def calculate_status(self, cluster: Obj, reconcile_err: Exception | None) -> Obj:
        meta, spec = cluster["metadata"], cluster["spec"]
        status: Obj = thaw(cluster.get("status") or {})
        conditions: list[Obj] = status.setdefault("conditions", [])
        gen = meta.get("generation")
        if isinstance(reconcile_err, ReplicaError):
            set_condition(conditions, REPLICA_FAILURE, "True", reconcile_err.reason, str(reconcile_err))
        elif reconcile_err is None:
            conditions[:] = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
        status["observedGeneration"] = gen
        pods = self._pods(cluster)
        workers = [p for p in pods if _labels(p).get(C.RAY_NODE_TYPE_LABEL_KEY) == C.RayNodeType.WORKER.value]
        status["readyWorkerReplicas"] = sum(1 for p in workers if _phase(p) == "Running" and _pod_ready(p))
        status["availableWorkerReplicas"] = sum(1 for p in workers if _phase(p) == "Running")
        status["desiredWorkerReplicas"] = U.calculate_desired_replicas(cluster)
        status["minWorkerReplicas"] = U.calculate_min_replicas(cluster)
        status["maxWorkerReplicas"] = U.calculate_max_replicas(cluster)
        totals = U.calculate_desired_resources(cluster)
        status["desiredCPU"] = str(totals.get("cpu") or "0")
        status["desiredMemory"] = str(totals.get("memory") or "0")
        status["desiredGPU"] = str(U.sum_gpus(totals))
        status["desiredTPU"] = str(totals.get(C.TPU_CONTAINER_RESOURCE_NAME) or "0")

        all_running = bool(pods) and all(_phase(p) == "Running" and _pod_ready(p) for p in pods)
        old_state = status.get("state")
        if reconcile_err is None and len(pods) == status["desiredWorkerReplicas"] + 1 and all_running:
            status["state"] = "ready"
            status["reason"] = ""
        if self.options.gates.enabled("RayClusterStatusConditions"):
            heads = [p for p in pods if _labels(p).get(C.RAY_NODE_TYPE_LABEL_KEY) == C.RayNodeType.HEAD.value]
            set_condition(conditions, *_head_pod_ready_condition(heads[0] if heads else None))
            suspended_now = condition_true(status, SUSPENDED)
            if not condition_true(status, PROVISIONED) and not suspended_now:
                if all_running:
                    set_condition(
                        conditions,
                        PROVISIONED,
                        "True",
                        "AllPodRunningAndReadyFirstTime",
                        "All Ray Pods are ready for the first time",
                    )
                else:
                    set_condition(
                        conditions,
                        PROVISIONED,
                        "False",
                        "RayClusterPodsProvisioning",
                        "RayCluster Pods are being provisioned for first time",
                    )
            suspending = condition_true(status, SUSPENDING)
            if not suspending:
                set_condition(conditions, SUSPENDED, "False", SUSPENDED, "")
                set_condition(conditions, SUSPENDING, "True" if spec.get("suspend") else "False", SUSPENDING, "")
                if suspended_now and not spec.get("suspend"):
                    set_condition(conditions, SUSPENDED, "False", SUSPENDED, "")
                elif suspended_now:
                    set_condition(conditions, SUSPENDED, "True", SUSPENDED, "")
                    set_condition(conditions, SUSPENDING, "False", SUSPENDING, "")
            elif not pods:
                set_condition(
                    conditions, PROVISIONED, "False", "RayClusterPodsProvisioning", "RayCluster has been suspended"
                )
                set_condition(conditions, SUSPENDING, "False", SUSPENDING, "")
                set_condition(conditions, SUSPENDED, "True", SUSPENDED, "")
        if spec.get("suspend") and not pods:
            status["state"] = "suspended"

        head_svcs = self._head_services(cluster)
        if head_svcs:
            svc = head_svcs[0]
            endpoints = {}
            for port in (svc.get("spec") or {}).get("ports") or ():
                value = port.get("nodePort") or port.get("targetPort") or port.get("port")
                endpoints[str(port.get("name"))] = str(value)
            status["endpoints"] = endpoints
        head_info: Obj = {}
        heads = [p for p in pods if _labels(p).get(C.RAY_NODE_TYPE_LABEL_KEY) == C.RayNodeType.HEAD.value]
        if heads:
            head_info["podIP"] = (heads[0].get("status") or {}).get("podIP", "")
            head_info["podName"] = heads[0]["metadata"]["name"]
        if head_svcs:
            svc = head_svcs[0]
            ip = (svc.get("spec") or {}).get("clusterIP") or ""
            head_info["serviceIP"] = head_info.get("podIP", "") if ip == "None" else ip
            head_info["serviceName"] = svc["metadata"]["name"]
        if head_info:
            status["head"] = {k: v for k, v in head_info.items() if v}
        if not conditions:
            status.pop("conditions", None)
        now = _now()
        status["lastUpdateTime"] = now
        if status.get("state") and status.get("state") != old_state:
            status.setdefault("stateTransitionTimes", {})[status["state"]] = now
        return status

    async def _update_status(self, cluster: Obj, old: Mapping[str, Any], new: Obj) -> None:
        body = {**cluster, "status": new}
        body["metadata"] = {k: v for k, v in cluster["metadata"].items() if k != "managedFields"}
        await self.client.update_status(res.RAYCLUSTERS, body)
        if self.metrics and condition_true(new, PROVISIONED) and not condition_true(old, PROVISIONED):
            self.metrics.observe_provisioned(cluster)


class _Retry(ReconcileError):
    """A reconcile that must be retried: returned as an error after the status is written."""


_RNG = random.Random()


def _name_of(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("name") or meta.get("generateName") or "")


def _ray_container_name(pod: Mapping[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or ()
    return str(containers[0].get("name")) if containers else ""


def _head_pod_ready_condition(head: Mapping[str, Any] | None) -> tuple[str, str, str, str]:
    if head is None:
        return HEAD_POD_READY, "False", "HeadPodNotFound", "Head Pod not found"
    for c in (head.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            status = str(c.get("status") or "Unknown")
            reason = str(c.get("reason") or "")
            message = str(c.get("message") or "")
            if status == "True" and not reason:
                reason = "HeadPodRunningAndReady"
            if reason == "ContainersNotReady":
                for cs in (head.get("status") or {}).get("containerStatuses") or ():
                    state = cs.get("state") or {}
                    detail = state.get("waiting") or state.get("terminated")
                    if detail:
                        reason = str(detail.get("reason") or reason)
                        message = f"{message}; {cs.get('name')}: {detail.get('message', '')}".strip("; ")
                        break
            return HEAD_POD_READY, status, reason or "Unknown", message
    return HEAD_POD_READY, "False", "Unknown", ""


def _set_defaults(cluster: Obj) -> None:
    spec = cluster["spec"]
    head = spec.setdefault("headGroupSpec", {})
    if head.get("rayStartParams") is None:
        head["rayStartParams"] = {}
    for g in spec.get("workerGroupSpecs") or ():
        if g.get("rayStartParams") is None:
            g["rayStartParams"] = {}


def setup(rt: Any, options: RayClusterOptions | None = None) -> list[Controller]:
    """Register the RayCluster controller with the operator (internal.app.Runtime); without
    ``options``, they come from the runtime's Configuration and feature gates."""
    opts = options or RayClusterOptions.from_configuration(rt.config, rt.gates)
    metrics = RayClusterMetrics(rt.registry, rt.cache) if rt.config.enableMetrics else None
    reconciler = RayClusterReconciler(rt.client, rt.cache, rt.recorder("raycluster-controller"), opts, metrics)
    ctrl = Controller(
        "raycluster",
        reconciler,
        rt.cache,
        ControllerOptions(workers=rt.config.reconcileConcurrency),
        metrics=rt.controller_metrics,
        queue_metrics=rt.queue_metrics,
    )
    ctrl.watch(res.RAYCLUSTERS, for_object, any_of(GenerationChanged, LabelsChanged, AnnotationsChanged))
    owner = ForOwner(kind="RayCluster", group="ray.io")
    for r in (res.PODS, res.SERVICES, res.SECRETS):
        ctrl.watch(r, owner)
    return [ctrl]
