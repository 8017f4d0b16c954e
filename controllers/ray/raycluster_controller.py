"""The RayCluster controller (upstream ``raycluster_controller.go``), kept in upstream's order:
validate → GCS FT finalizer → autoscaler RBAC → Ingress → auth secret → services → GCS PVC → pods →
status.

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
from api.v1._goutil import atoi
from api.v1.errors import ValidationError
from api.v1.raycluster_types import RayClusterStatus
from controllers.ray.common import gcs_ft, ingress, rbac, service
from controllers.ray.common import pod as podb
from controllers.ray.expectations import HEAD_GROUP, Action, ScaleExpectations
from controllers.ray.metrics import RayClusterMetrics
from controllers.ray.utils import constants as C
from controllers.ray.utils import gojson, own_writes
from controllers.ray.utils import util as U
from controllers.ray.utils.batch import slow_start_batch
from controllers.ray.utils.constants import EventReason as R
from internal.client import AlreadyExists, ApiError, Client, Forbidden, NotFound
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

# Upstream's logger name (ctrl.Log.WithName("controllers").WithName("RayCluster")).
log = logging.getLogger("controllers.RayCluster")

Obj = dict[str, Any]
DEFAULT_REQUEUE = 2.0
REDIS_CLEANUP_WAIT = 10.0
MANAGED_BY = "ray.io/kuberay-operator"
# events.k8s.io actions
CREATE, DELETE, UPDATE, VALIDATE = "Create", "Delete", "Update", "Validate"

# Condition types and reasons (api/v1 has them as enums; plain strings keep the JSON obvious here).
HEAD_POD_READY = "HeadPodReady"
PROVISIONED = "RayClusterProvisioned"
REPLICA_FAILURE = "ReplicaFailure"
SUSPENDING = "RayClusterSuspending"
SUSPENDED = "RayClusterSuspended"


class ReplicaError(ReconcileError):
    """An error that marks the ReplicaFailure condition with its reason. Its text is upstream's
    ``errors.Join(marker, err)``: the marker's reason, a newline, then the API error."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}\n{message}")
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


def check_all_pods_running(pods: Sequence[Mapping[str, Any]]) -> bool:
    """CheckAllPodsRunning: some pods, all Running, none with a Ready condition that is not True (a
    pod without a Ready condition counts as ready)."""
    if not pods:
        return False
    for p in pods:
        if _phase(p) != "Running":
            return False
        if any(
            c.get("type") == "Ready" and c.get("status") != "True"
            for c in (p.get("status") or {}).get("conditions") or ()
        ):
            return False
    return True


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
            else:
                c.pop("observedGeneration", None)
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


def _ray_container_terminated(pod: Mapping[str, Any], ray_container: str) -> Mapping[str, Any] | None:
    """getRayContainerStateTerminated: the Ray container's status found by name."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or ():
        if cs.get("name") == ray_container:
            terminated = (cs.get("state") or {}).get("terminated")
            return terminated if isinstance(terminated, Mapping) else None
    return None


def _go_time(value: object) -> str:
    """A metav1.Time as Go's ``%v`` prints it (time.Time.String, UTC as the operator's zone)."""
    if not value:
        return "0001-01-01 00:00:00 +0000 UTC"
    t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(dt.UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def _go_terminated(state: Mapping[str, Any] | None) -> str:
    """Go's ``%v`` of a ``*corev1.ContainerStateTerminated`` as upstream's notes print it."""
    if state is None:
        return "<nil>"
    fields = (
        str(state.get("exitCode") or 0),
        str(state.get("signal") or 0),
        str(state.get("reason") or ""),
        str(state.get("message") or ""),
        _go_time(state.get("startedAt")),
        _go_time(state.get("finishedAt")),
        str(state.get("containerID") or ""),
    )
    return "&{" + " ".join(fields) + "}"


def _pod_state_note(pod: Mapping[str, Any]) -> str:
    """The pod details upstream's unhealthy-pod delete notes carry."""
    return (
        f"Pod status: {_phase(pod)}; Pod restart policy: {(pod.get('spec') or {}).get('restartPolicy') or ''}; "
        f"Ray container terminated status: {_go_terminated(_ray_container_terminated(pod, _ray_container_name(pod)))}"
    )


def should_delete_pod(pod: Mapping[str, Any], node_type: str) -> tuple[bool, str]:
    """shouldDeletePod: Failed/Succeeded pods go; a Running pod whose Ray container terminated goes
    only with restartPolicy Never (otherwise the kubelet restarts it). The reason is upstream's text."""
    phase = _phase(pod)
    name = (pod.get("metadata") or {}).get("name")
    if phase in ("Failed", "Succeeded"):
        return True, (
            f"The {node_type} Pod {name} status is {phase} which is a terminal state. "
            "KubeRay will delete the Pod and create new Pods in the next reconciliation if necessary."
        )
    terminated = _ray_container_terminated(pod, _ray_container_name(pod))
    restart = (pod.get("spec") or {}).get("restartPolicy") or ""
    if phase == "Running" and terminated is not None:
        seen = (
            f"The Pod status of the {node_type} Pod {name} is {phase}, "
            f"and the Ray container terminated status is {_go_terminated(terminated)}. "
        )
        if restart == "Never":
            return (
                True,
                seen
                + f"The container is unable to restart due to its restart policy {restart}, so KubeRay will delete it.",
            )
        return False, seen + (
            f"However, KubeRay will not delete the Pod because its restartPolicy is set to {restart} "
            "and it should be able to restart automatically."
        )
    return False, (
        f"KubeRay does not need to delete the {node_type} Pod {name}. The Pod status is {phase}, "
        f"and the Ray container terminated status is {_go_terminated(terminated)}."
    )


@dataclass
class RayClusterOptions:
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    gates: FeatureGates = field(default_factory=FeatureGates)
    pod_config: podb.PodConfig = podb.DEFAULT_POD_CONFIG
    #: the API server serves OpenShift's groups (detected once at start-up, as upstream)
    openshift: bool = False

    @classmethod
    def from_configuration(cls, cfg: Configuration, gates: FeatureGates, openshift: bool = False) -> RayClusterOptions:
        """Upstream's ``RayClusterReconcilerOptions`` from the operator Configuration: the sidecars and
        the pod defaults every Ray pod gets."""
        return cls(
            gates=gates,
            openshift=openshift,
            pod_config=podb.PodConfig(
                head_sidecar_containers=tuple(cfg.headSidecarContainers),
                worker_sidecar_containers=tuple(cfg.workerSidecarContainers),
                default_container_envs=tuple(cfg.defaultContainerEnvs),
                default_pod_labels=dict(cfg.defaultPodLabels),
                default_pod_annotations=dict(cfg.defaultPodAnnotations),
            ),
        )

    @property
    def use_route(self) -> bool:
        """The dashboard is exposed by a Route on OpenShift, unless ``USE_INGRESS_ON_OPENSHIFT=true``."""
        return self.openshift and self.env.get(C.USE_INGRESS_ON_OPENSHIFT, "").lower() != "true"

    @property
    def default_requeue(self) -> float:
        """``strconv.Atoi(RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV)``, 300 when unset or not an integer."""
        try:
            return float(atoi(self.env.get(C.RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV, "")))
        except ValueError:
            return float(C.RAYCLUSTER_DEFAULT_REQUEUE_SECONDS)


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
        self.own_writes = own_writes.OwnWrites()

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
            self.own_writes.forget(str(request))
            if self.metrics:
                self.metrics.forget_cluster(request.name, request.namespace)
            return Result()
        if self.own_writes.unseen(str(request), cached["metadata"].get("resourceVersion") or ""):
            # Our last status write is not in the cache yet: this pass would redo it and conflict.
            return Result(requeue_after=own_writes.RECHECK_SECONDS)
        cluster: Obj = thaw(cached)
        spec = cluster.setdefault("spec", {})
        managed_by = spec.get("managedBy")
        if managed_by is not None and managed_by != MANAGED_BY:  # "" is external too, as upstream
            log.info("RayCluster %s is managed by %s; skipping", request, managed_by)
            return Result()
        _set_defaults(cluster)

        where = f"{request.namespace}/{request.name}"
        try:
            v.validate_ray_cluster_metadata(cluster)
        except ValidationError as e:
            note = f"The RayCluster metadata is invalid {where}: {e}"
            self.recorder.event(cluster, "Warning", R.INVALID_RAY_CLUSTER_METADATA, note, action=VALIDATE)
            return Result()
        try:
            v.validate_ray_cluster_spec(spec, cluster["metadata"].get("annotations"), self._features)
        except ValidationError as e:
            note = f"The RayCluster spec is invalid {where}: {e}"
            self.recorder.event(cluster, "Warning", R.INVALID_RAY_CLUSTER_SPEC, note, action=VALIDATE)
            return Result()
        try:
            v.validate_ray_cluster_upgrade_options(cluster)
        except ValidationError as e:
            note = f"The RayCluster UpgradeStrategy is invalid {where}: {e}"
            self.recorder.event(cluster, "Warning", R.INVALID_RAY_CLUSTER_SPEC, note, action=VALIDATE)
            return Result()
        try:
            v.validate_ray_cluster_status(cluster)
        except ValidationError as e:
            note = f"The RayCluster status is invalid {where}, {e}"
            self.recorder.event(cluster, "Warning", R.INVALID_RAY_CLUSTER_STATUS, note, action=VALIDATE)
            raise

        # The Redis cleanup finalizer is handled only while cleanup is on and FT is enabled: a finalizer
        # left from an earlier FT spec, or with ENABLE_GCS_FT_REDIS_CLEANUP=false, is left alone.
        if U.is_gcs_ft_redis_cleanup_enabled(self.options.env) and U.is_gcs_fault_tolerance_enabled(cluster):
            done = await self._reconcile_gcs_ft_finalizer(cluster)
            if done is not None:
                return done
        if _deleting(cluster):
            return Result()

        old_status = gojson.normalise(cluster.get("status"), RayClusterStatus)
        reconcile_err: Exception | None = None
        try:
            for step in (
                self._reconcile_autoscaler_rbac,
                self._reconcile_ingress,
                self._reconcile_auth_secret,
                self._reconcile_head_service,
                self._reconcile_headless_service,
                self._reconcile_serve_service,
                self._reconcile_gcs_pvc,
                self._reconcile_pods,
            ):
                await step(cluster)
        except (ApiError, ReconcileError) as e:
            reconcile_err = e

        # calculateStatus errors (no head Service yet, several heads) skip the status write.
        changed = False
        try:
            new_status = gojson.normalise(self.calculate_status(cluster, reconcile_err), RayClusterStatus)
        except _Retry as e:
            log.info("RayCluster %s: not writing the status: %s", request, e)
            if reconcile_err is None:
                reconcile_err = e
        else:
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
        by_type = {t: self._pods(cluster, **{C.RAY_NODE_TYPE_LABEL_KEY: t}) for t in ("head", "worker")}
        for node_type, pods in by_type.items():  # head first
            if any(not _deleting(p) for p in pods):  # deleteAllPods: only while some pod is not terminating
                selector = f"{sel},{C.RAY_NODE_TYPE_LABEL_KEY}={node_type}"
                await self.client.delete_collection(res.PODS, ns, label_selector=selector)
        if by_type["head"]:
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
                action=DELETE,
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
                action=CREATE,
            )
        except AlreadyExists:
            pass
        except ApiError as e:
            self.recorder.event(
                cluster,
                "Warning",
                R.FAILED_TO_CREATE_REDIS_CLEANUP_JOB,
                f"Failed to create Redis cleanup Job {ns}/{job['metadata']['name']}, {e}",
                action=CREATE,
            )
            # Upstream returns the error, and the exponential backoff of a cluster whose pods kept
            # failing can push the next pass minutes past the force-delete deadline. Here the retry
            # comes no later than that deadline, so a Job that can never be created (a head template
            # kube-apiserver refuses) ends in ForceDeletedStuckCluster on time (found by the fuzz tier).
            left = timeout - (dt.datetime.now(dt.UTC) - deleted_at).total_seconds()
            log.info("RayCluster %s/%s: retrying the Redis cleanup Job in at most %.0fs: %s", ns, name, left, e)
            return Result(requeue_after=max(1.0, min(REDIS_CLEANUP_WAIT, left)))
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
        """Create, with upstream's notes ("Created role binding <ns>/<name>", "Failed creating ...");
        AlreadyExists is no event and no error."""
        ns = cluster["metadata"]["namespace"]
        noun = _EVENT_NOUNS[r.kind]
        try:
            out = await self.client.create(r, obj, ns)
        except AlreadyExists:
            return None
        except ApiError as e:
            self.recorder.event(
                cluster, "Warning", failed, f"Failed creating {noun} {ns}/{_name_of(obj)}, {e}", action=CREATE
            )
            raise
        self.recorder.event(cluster, "Normal", ok, f"Created {noun} {ns}/{out['metadata']['name']}", action=CREATE)
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
                self.recorder.event(cluster, "Warning", R.AUTOSCALER_SERVICE_ACCOUNT_NOT_FOUND, msg, action=CREATE)
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

    async def _reconcile_ingress(self, cluster: Obj) -> None:
        """reconcileIngressKubernetes (extensions §2.3): create the dashboard Ingress, or bring an
        owned one back to the desired labels, annotations and spec; a foreign one is left alone with
        a Warning on every pass. On OpenShift, the Route instead (§2.4). Read from the API server:
        Ingresses and Routes are not cached (upstream does not watch them)."""
        if not ingress.is_ingress_enabled(cluster):
            return
        if self.options.use_route:
            await self._reconcile_route(cluster)
            return
        ns = cluster["metadata"]["namespace"]
        desired = ingress.build_ingress_for_head_service(cluster)
        name = desired["metadata"]["name"]
        live = await self._get_or_none(res.INGRESSES, name, ns)
        if live is None:
            await self._create(res.INGRESSES, desired, cluster, R.CREATED_INGRESS, R.FAILED_TO_CREATE_INGRESS)
            return
        if not U.is_controlled_by(live, cluster):
            note = f"Ingress {ns}/{name} already exists and is not owned by this RayCluster; not modifying it"
            self.recorder.event(cluster, "Warning", R.FAILED_TO_CREATE_INGRESS, note, action=CREATE)
            return
        live_meta, want_meta = live["metadata"], desired["metadata"]
        changed = False
        for key in ("labels", "annotations"):
            if (live_meta.get(key) or {}) != (want_meta.get(key) or {}):
                live_meta[key] = want_meta.get(key) or {}
                changed = True
        want_spec = desired["spec"]
        live_spec = live.get("spec") or {}
        if "ingressClassName" not in want_spec and "ingressClassName" in live_spec:
            # adopt what the DefaultIngressClass admission plugin set, or this would update forever
            want_spec["ingressClassName"] = live_spec["ingressClassName"]
        if live_spec != want_spec:
            live["spec"] = want_spec
            changed = True
        if not changed:
            return
        try:
            await self.client.update(res.INGRESSES, live)
        except ApiError as e:
            note = f"Failed updating ingress {ns}/{name}, {e}"
            self.recorder.event(cluster, "Warning", R.FAILED_TO_UPDATE_INGRESS, note, action=UPDATE)
            raise
        self.recorder.event(cluster, "Normal", R.UPDATED_INGRESS, f"Updated ingress {ns}/{name}", action=UPDATE)

    async def _reconcile_route(self, cluster: Obj) -> None:
        """reconcileRouteOpenShift: create the Route when no Route carries the cluster's label (owned or
        not); one is left as it is, never updated; several are left alone."""
        meta = cluster["metadata"]
        selector = f"{C.RAY_CLUSTER_LABEL_KEY}={meta['name']}"
        routes = (await self.client.list(res.ROUTES, meta["namespace"], label_selector=selector))["items"]
        if routes:
            return
        await self._create(
            res.ROUTES,
            ingress.build_route_for_head_service(cluster),
            cluster,
            R.CREATED_ROUTE,
            R.FAILED_TO_CREATE_ROUTE,
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
                C.RAY_ID_LABEL_KEY: U.check_label(U.generate_identifier(meta["name"], C.RayNodeType.HEAD.value)),
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
        """The GCS RocksDB PVC: a ``claimName`` PVC is the user's (never created or owned; a Warning
        while it is missing); the managed ``<cluster>-gcs-pvc`` is created once, never updated (drift
        gives a Warning), and owned by the cluster exactly while ``deletionPolicy`` is not Retain."""
        if not (U.is_gcs_fault_tolerance_enabled(cluster) and U.is_gcs_fault_tolerance_embedded(cluster)):
            return
        meta = cluster["metadata"]
        ns, name = meta["namespace"], U.get_gcs_storage_pvc_name(cluster)
        try:
            existing: Obj | None = thaw(self.cache.get(res.PVCS, name, ns))
        except NotFound:
            existing = None
        desired = gcs_ft.build_gcs_storage_pvc(cluster)
        if desired is None:
            if existing is None:
                self.recorder.event(
                    cluster,
                    "Warning",
                    R.FAILED_TO_CREATE_PVC,
                    f"PVC {ns}/{name} named in gcsFaultToleranceOptions.storage.claimName was not found",
                    action=CREATE,
                )
            return
        if existing is None:
            await self._create(res.PVCS, desired, cluster, R.CREATED_PVC, R.FAILED_TO_CREATE_PVC)
            return
        drift = gcs_ft.gcs_storage_pvc_drift(existing, desired)
        if drift:
            self.recorder.event(
                cluster,
                "Warning",
                R.FAILED_TO_CREATE_PVC,
                f"PVC {ns}/{name} differs from gcsFaultToleranceOptions.storage and is not updated: "
                + "; ".join(drift),
                action=UPDATE,
            )
        uid = meta.get("uid")
        refs = [dict(r) for r in (existing.get("metadata") or {}).get("ownerReferences") or ()]
        owned = any(r.get("uid") == uid for r in refs)
        want_owned = bool(desired["metadata"].get("ownerReferences"))
        if owned != want_owned:
            kept = [r for r in refs if r.get("uid") != uid]
            new_refs = [*kept, U.owner_reference(cluster)] if want_owned else kept
            body = {
                "metadata": {
                    "ownerReferences": new_refs or None,
                    "resourceVersion": existing["metadata"]["resourceVersion"],
                }
            }
            try:
                await self.client.patch(res.PVCS, name, body, ns)
            except Forbidden as e:
                # A ClusterRole without PVC patch (upstream's chart) must not stop the pods' reconcile.
                note = f"Cannot update the owner reference of PVC {ns}/{name} for deletionPolicy: {e}"
                self.recorder.event(cluster, "Warning", R.FAILED_TO_CREATE_PVC, note, action=UPDATE)

    # ---- pods ------------------------------------------------------------------------------------

    def _pods(self, cluster: Obj, **labels: str) -> Sequence[Mapping[str, Any]]:
        meta = cluster["metadata"]
        return self.cache.list(res.PODS, meta["namespace"], labels={C.RAY_CLUSTER_LABEL_KEY: meta["name"], **labels})

    async def _delete_pod(
        self,
        cluster: Obj,
        pod: Mapping[str, Any],
        group: str,
        ok: str,
        failed: str,
        note: str,
        failed_note: str,
        missing_ok: bool = True,
    ) -> bool:
        """Delete one pod, expect its deletion and record ``note`` (``failed_note, <err>`` on an
        error); False when it was already gone (an error instead with ``missing_ok=False``, as
        upstream's unhealthy-pod path has it)."""
        meta = cluster["metadata"]
        ns, name = meta["namespace"], pod["metadata"]["name"]
        try:
            await self.client.delete(res.PODS, name, ns)
        except NotFound as e:
            if not missing_ok:
                self.recorder.event(cluster, "Warning", failed, f"{failed_note}, {e}", action=DELETE)
                raise ReplicaError(_delete_marker(group), str(e)) from e
            return False
        except ApiError as e:
            self.recorder.event(cluster, "Warning", failed, f"{failed_note}, {e}", action=DELETE)
            raise ReplicaError(_delete_marker(group), str(e)) from e
        self.expectations.expect(ns, meta["name"], group, name, Action.DELETE)
        self.recorder.event(cluster, "Normal", ok, note, action=DELETE)
        return True

    async def _delete_all_pods(
        self, cluster: Obj, labels: Mapping[str, str], failed: str, marker: str, reason: str, message: str
    ) -> None:
        """deleteAllPods (DeleteAllOf only while some matching pod is not terminating), then the
        caller's event, which upstream records on every pass."""
        meta = cluster["metadata"]
        pods = self.cache.list(res.PODS, meta["namespace"], labels=dict(labels))
        if any(not _deleting(p) for p in pods):
            selector = ",".join(f"{k}={v}" for k, v in labels.items())
            try:
                await self.client.delete_collection(res.PODS, meta["namespace"], label_selector=selector)
            except ApiError as e:
                self.recorder.event(cluster, "Warning", failed, f"{message} failed: {e}", action=DELETE)
                raise ReplicaError(marker, str(e)) from e
        self.recorder.event(cluster, "Normal", reason, message, action=DELETE)

    async def _create_pod(self, cluster: Obj, pod: Obj, group: str) -> None:
        meta = cluster["metadata"]
        head = group == HEAD_GROUP
        try:
            out = await self.client.create(res.PODS, pod, meta["namespace"])
        except ApiError as e:
            reason = R.FAILED_TO_CREATE_HEAD_POD if head else R.FAILED_TO_CREATE_WORKER_POD
            # Upstream prints the head pod's name, empty before the apiserver applied generateName.
            name = (pod.get("metadata") or {}).get("name") or ""
            what = (
                f"head Pod {meta['namespace']}/{name}"
                if head
                else f"worker Pod for the cluster {meta['namespace']}/{meta['name']}"
            )
            self.recorder.event(cluster, "Warning", reason, f"Failed to create {what}, {e}", action=CREATE)
            raise ReplicaError("FailedCreateHeadPod" if head else "FailedCreateWorkerPod", str(e)) from e
        name = out["metadata"]["name"]
        self.expectations.expect(meta["namespace"], meta["name"], group, name, Action.CREATE)
        reason = R.CREATED_HEAD_POD if head else R.CREATED_WORKER_POD
        what = "head" if head else "worker"
        log.info(f"Created {what} Pod for RayCluster", extra={"Pod": name})
        self.recorder.event(cluster, "Normal", reason, f"Created {what} Pod {meta['namespace']}/{name}", action=CREATE)

    async def _create_pods(self, cluster: Obj, pods: Sequence[Obj], group: str) -> None:
        """Worker pods of one group, in slow-start batches (upstream creates them one after another;
        only the order of their events can tell). The first failure stops the rest, as upstream's loop."""
        await slow_start_batch(pods, lambda pod: self._create_pod(cluster, pod, group))

    async def _reconcile_pods(self, cluster: Obj) -> None:
        meta, spec, status = cluster["metadata"], cluster["spec"], cluster.get("status") or {}
        ns, name = meta["namespace"], meta["name"]
        all_pods = {C.RAY_CLUSTER_LABEL_KEY: name}
        gate = self.options.gates.enabled("RayClusterStatusConditions")
        suspend_status = _suspend_status(status.get("conditions") or ())
        if suspend_status == SUSPENDING or (not gate and spec.get("suspend") is True):
            await self._delete_all_pods(
                cluster,
                all_pods,
                R.FAILED_TO_DELETE_POD_COLLECTION,
                "FailedDeleteAllPods",
                R.DELETED_POD,
                f"Deleted Pods for RayCluster {ns}/{name} due to suspension",
            )
            return
        if gate and (suspend_status == SUSPENDED or spec.get("suspend") is True):
            return  # suspended, or about to be (the status write sets Suspending first)

        if await self._should_recreate_pods_for_upgrade(cluster):
            await self._delete_all_pods(
                cluster,
                all_pods,
                R.FAILED_TO_DELETE_POD_COLLECTION,
                "FailedDeleteAllPods",
                R.DELETED_POD,
                f"Deleted all Pods for RayCluster {ns}/{name} due to spec change with Recreate upgradeStrategy",
            )
            self.expectations.delete_cluster(ns, name)
            return

        # Head. Terminating pods are listed too, as upstream's cache lists them.
        head_pods = self._pods(cluster, **{C.RAY_NODE_TYPE_LABEL_KEY: C.RayNodeType.HEAD.value})
        if self.expectations.is_satisfied(ns, name, HEAD_GROUP):
            if len(head_pods) == 1:
                head = head_pods[0]
                delete, why = should_delete_pod(head, C.RayNodeType.HEAD.value)
                if delete:
                    what = f"head Pod {ns}/{head['metadata']['name']}; {_pod_state_note(head)}"
                    await self._delete_pod(
                        cluster,
                        head,
                        HEAD_GROUP,
                        R.DELETED_HEAD_POD,
                        R.FAILED_TO_DELETE_HEAD_POD,
                        f"Deleted {what}",
                        f"Failed deleting {what}",
                        missing_ok=False,
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
                names = [p["metadata"]["name"] for p in head_pods]
                raise _Retry(f"{len(head_pods)} head pods found {names}. Please delete extra head pods")

        autoscaling = bool(U.is_autoscaling_enabled(cluster))
        random_delete = autoscaling and U.is_random_pod_delete_enabled(self.options.env)
        for group in U.worker_group_specs(cluster):
            gname = str(group.get("groupName") or "")
            if not self.expectations.is_satisfied(ns, name, gname):
                continue
            group_pods = {C.RAY_CLUSTER_LABEL_KEY: name, C.RAY_NODE_GROUP_LABEL_KEY: gname}
            pods = self._pods(cluster, **{C.RAY_NODE_GROUP_LABEL_KEY: gname})
            if group.get("suspend") is True:
                await self._delete_all_pods(
                    cluster,
                    group_pods,
                    R.FAILED_TO_DELETE_WORKER_POD_COLLECTION,
                    "FailedDeleteWorkerPod",
                    R.DELETED_WORKER_POD,
                    f"Deleted all pods for suspended worker group {gname} in RayCluster {ns}/{name}",
                )
                continue
            if U.as_int(group.get("numOfHosts"), 1) > 1 and self.options.gates.enabled("RayMultiHostIndexing"):
                await self._reconcile_multi_host_group(cluster, group, pods, autoscaling, random_delete)
                continue
            await self._reconcile_group(cluster, group, pods, autoscaling, random_delete)

    async def _reconcile_group(
        self, cluster: Obj, group: Obj, pods: Sequence[Mapping[str, Any]], autoscaling: bool, random_delete: bool
    ) -> None:
        """One single-host worker group. Pods being deleted still count towards the group's size, so a
        draining pod is not replaced before it is gone."""
        ns, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
        gname = str(group.get("groupName") or "")
        deleted: set[str] = set()
        for p in pods:
            delete, _ = should_delete_pod(p, C.RayNodeType.WORKER.value)
            if delete:
                deleted.add(p["metadata"]["name"])
                what = f"worker Pod {ns}/{p['metadata']['name']}; {_pod_state_note(p)}"
                await self._delete_pod(
                    cluster,
                    p,
                    gname,
                    R.DELETED_WORKER_POD,
                    R.FAILED_TO_DELETE_WORKER_POD,
                    f"Deleted {what}",
                    f"Failed deleting {what}",
                    missing_ok=False,
                )
        if deleted:
            raise _Retry(f"delete {len(deleted)} unhealthy worker Pods")
        # Every name in workersToDelete is deleted, whatever replicas says; an absent pod is fine.
        for pod_name in (group.get("scaleStrategy") or {}).get("workersToDelete") or ():
            target = {"metadata": {"name": pod_name, "namespace": ns}}
            what = f"pod {ns}/{pod_name}"
            if await self._delete_pod(
                cluster,
                target,
                gname,
                R.DELETED_WORKER_POD,
                R.FAILED_TO_DELETE_WORKER_POD,
                f"Deleted {what}",
                f"Failed deleting {what}",
            ):
                deleted.add(pod_name)
        remaining = [p for p in pods if p["metadata"]["name"] not in deleted]
        desired = U.get_worker_group_desired_replicas(group)
        diff = desired - len(remaining)
        log.debug("group %s of %s/%s: desired %d, running %d, diff %d", gname, ns, name, desired, len(remaining), diff)
        indexing = self.options.gates.enabled("RayMultiHostIndexing")
        if diff > 0:
            used = _replica_indices(remaining) if indexing else set()
            index = 0
            new_pods = []
            for _ in range(diff):
                while index in used:
                    index += 1
                used.add(index)
                new_pods.append(
                    podb.build_worker_pod(
                        cluster,
                        group,
                        env=self.options.env,
                        features=self._features,
                        config=self.options.pod_config,
                        replica_index=index,
                    )
                )
            await self._create_pods(cluster, new_pods, gname)
        elif diff < 0 and (not autoscaling or random_delete):
            # Without the autoscaler (or with ENABLE_RANDOM_POD_DELETE) the first pods in the list go;
            # otherwise the autoscaler is the only one that scales down.
            for p in remaining[:-diff]:
                what = f"Pod {ns}/{p['metadata']['name']}"
                if not await self._delete_pod(
                    cluster,
                    p,
                    gname,
                    R.DELETED_WORKER_POD,
                    R.FAILED_TO_DELETE_WORKER_POD,
                    f"Deleted {what}",
                    f"Failed deleting {what}",
                ):
                    # Already gone: upstream expects the deletion and records the event all the same.
                    self.expectations.expect(ns, name, gname, p["metadata"]["name"], Action.DELETE)
                    self.recorder.event(cluster, "Normal", R.DELETED_WORKER_POD, f"Deleted {what}", action=DELETE)

    async def _reconcile_multi_host_group(
        self, cluster: Obj, group: Obj, pods: Sequence[Mapping[str, Any]], autoscaling: bool, random_delete: bool
    ) -> None:
        """reconcileMultiHostWorkerGroup: whole replicas (pods sharing a replica name) are created and
        deleted together. Pods without a replica-name label are not part of any replica: they are
        neither counted nor deleted."""
        gname = str(group.get("groupName") or "")
        hosts = U.as_int(group.get("numOfHosts"), 1)
        replicas: dict[str, list[Mapping[str, Any]]] = {}
        for p in pods:
            replica = _labels(p).get(C.RAY_WORKER_REPLICA_NAME_KEY)
            if replica is not None:
                replicas.setdefault(replica, []).append(p)

        async def delete_replica(members: Sequence[Mapping[str, Any]], why: str) -> None:
            for p in members:
                what = f"worker Pod {cluster['metadata']['namespace']}/{p['metadata']['name']} for group {gname}"
                await self._delete_pod(
                    cluster,
                    p,
                    gname,
                    R.DELETED_WORKER_POD,
                    R.FAILED_TO_DELETE_WORKER_POD,
                    f"Deleted {what}: {why}",
                    f"Failed deleting {what}; {_pod_state_note(p)}",
                )

        for r, members in replicas.items():
            if len(members) < hosts:
                await delete_replica(members, "cleanup of incomplete multi-host group")
                raise _Retry(f"cleaned up incomplete replica group {r}, requeueing")
        deleted: set[str] = set()
        for p in pods:
            if p["metadata"]["name"] in deleted:
                continue
            delete, why = should_delete_pod(p, C.RayNodeType.WORKER.value)
            same_replica = replicas.get(_labels(p).get(C.RAY_WORKER_REPLICA_NAME_KEY, ""))
            if delete and same_replica is not None:
                await delete_replica(same_replica, why)
                deleted.update(m["metadata"]["name"] for m in same_replica)
        to_delete = (group.get("scaleStrategy") or {}).get("workersToDelete") or ()
        doomed: dict[str, Mapping[str, Any]] = {}
        for pod_name in to_delete:
            for p in pods:
                if p["metadata"]["name"] == pod_name:
                    for m in replicas.get(_labels(p).get(C.RAY_WORKER_REPLICA_NAME_KEY, ""), ()):
                        doomed[m["metadata"]["name"]] = m
                    break
        if doomed:
            await delete_replica(list(doomed.values()), "autoscaler scale-down request")
            raise _Retry(f"deleted {len(doomed)} worker Pods based on ScaleStrategy, requeueing")
        healthy = {
            r: members for r, members in replicas.items() if not any(m["metadata"]["name"] in deleted for m in members)
        }
        desired = U.get_worker_group_desired_replicas(group)
        if desired % hosts != 0:
            raise _Retry(f"desired worker pods ({desired}) is not a multiple of NumOfHosts ({hosts}) for group {gname}")
        diff = desired // hosts - len(healthy)
        if diff > 0:
            used = _replica_indices([members[0] for members in healthy.values()])
            index = 0
            for _ in range(diff):
                while index in used:
                    index += 1
                used.add(index)
                replica = U.generate_replica_group_name(gname, lambda: U.random_string(C.RANDOM_SUFFIX_LENGTH, _RNG))
                replica_pods = [
                    podb.build_worker_pod(
                        cluster,
                        group,
                        env=self.options.env,
                        features=self._features,
                        config=self.options.pod_config,
                        replica_index=index,
                        replica_name=replica,
                        host_index=host,
                    )
                    for host in range(hosts)
                ]
                await self._create_pods(cluster, replica_pods, gname)
        elif diff < 0 and (not autoscaling or random_delete):
            for r in list(healthy)[:-diff]:
                await delete_replica(healthy[r], "scaling down")

    async def _should_recreate_pods_for_upgrade(self, cluster: Obj) -> bool:
        """shouldRecreatePodsForUpgrade: only with upgradeStrategy Recreate, when the head pod's hash
        differs. A head pod from another KubeRay version is re-annotated instead of recreated."""
        spec, meta = cluster["spec"], cluster["metadata"]
        if (spec.get("upgradeStrategy") or {}).get("type") != "Recreate":
            return False
        heads = self._pods(cluster, **{C.RAY_NODE_TYPE_LABEL_KEY: C.RayNodeType.HEAD.value})
        if not heads:
            return False
        head = heads[0]
        ann = (head.get("metadata") or {}).get("annotations") or {}
        want = U.generate_hash_without_replicas_and_workers_to_delete(spec)
        version = ann.get(C.KUBERAY_VERSION_ANNOTATION_KEY, "")
        if version and version != C.KUBERAY_VERSION:
            patch = {C.UPGRADE_STRATEGY_RECREATE_HASH_KEY: want, C.KUBERAY_VERSION_ANNOTATION_KEY: C.KUBERAY_VERSION}
            try:
                await self.client.patch(
                    res.PODS, head["metadata"]["name"], {"metadata": {"annotations": patch}}, meta["namespace"]
                )
            except ApiError as e:  # upstream logs the failed update and goes on
                log.warning("failed to update the head pod annotations after a KubeRay version change: %s", e)
            return False
        have = ann.get(C.UPGRADE_STRATEGY_RECREATE_HASH_KEY, "")
        return bool(have) and have != want

    # ---- status ----------------------------------------------------------------------------------

    def calculate_status(self, cluster: Obj, reconcile_err: Exception | None) -> Obj:
        """calculateStatus, step by step. Raises :class:`_Retry` where upstream returns a calculate
        error (several head pods or head Services, no head Service, an empty ClusterIP): the reconcile
        then writes no status."""
        meta, spec = cluster["metadata"], cluster["spec"]
        old_state = (cluster.get("status") or {}).get("state")
        status: Obj = thaw(cluster.get("status") or {})
        conditions: list[Obj] = status.setdefault("conditions", [])
        gate = self.options.gates.enabled("RayClusterStatusConditions")
        if gate:
            if isinstance(reconcile_err, ReplicaError):
                set_condition(conditions, REPLICA_FAILURE, "True", reconcile_err.reason, str(reconcile_err))
            elif reconcile_err is None:
                conditions[:] = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
        status["observedGeneration"] = meta.get("generation") or 0

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

        all_running = check_all_pods_running(pods)
        if reconcile_err is None and len(pods) == status["desiredWorkerReplicas"] + 1 and all_running:
            status["state"] = "ready"
            status["reason"] = ""

        if gate:
            head = self._head_pod(cluster)
            set_condition(conditions, *_head_pod_ready_condition(head))
            suspend_status = _suspend_status(conditions)
            if not condition_true(status, PROVISIONED) and suspend_status != SUSPENDED:
                # Provisioned is set until it first becomes True (or again after a suspend).
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
            if suspend_status == SUSPENDING:
                if not pods:
                    set_condition(
                        conditions, PROVISIONED, "False", "RayClusterPodsProvisioning", "RayCluster has been suspended"
                    )
                    set_condition(conditions, SUSPENDING, "False", SUSPENDING, "")
                    set_condition(conditions, SUSPENDED, "True", SUSPENDED, "")
            elif suspend_status == SUSPENDED:
                # Only an explicit suspend: false resumes; a steady suspended cluster changes nothing.
                if spec.get("suspend") is False:
                    set_condition(conditions, SUSPENDED, "False", SUSPENDED, "")
            else:
                set_condition(conditions, SUSPENDED, "False", SUSPENDED, "")
                set_condition(
                    conditions, SUSPENDING, "True" if spec.get("suspend") is True else "False", SUSPENDING, ""
                )

        if spec.get("suspend") is True and not pods:
            status["state"] = "suspended"

        head_svcs = self._head_services(cluster)
        if head_svcs:
            # updateEndpoints adds to the existing map: a port that goes away keeps its entry.
            endpoints = status.setdefault("endpoints", {})
            for port in (head_svcs[0].get("spec") or {}).get("ports") or ():
                name = port.get("name")
                if not name:
                    continue  # upstream skips unnamed ports
                target = port.get("targetPort")
                if port.get("nodePort"):
                    endpoints[name] = str(port["nodePort"])
                elif isinstance(target, int) and not isinstance(target, bool) and target:
                    endpoints[name] = str(target)
                elif isinstance(target, str) and target:
                    endpoints[name] = target
        head = self._head_pod(cluster)
        head_info: Obj = status.setdefault("head", {})
        head_info["podIP"] = str((head.get("status") or {}).get("podIP") or "") if head else ""
        head_info["podName"] = str(head["metadata"]["name"]) if head else ""
        head_info["serviceIP"], head_info["serviceName"] = self._head_service_ip_and_name(cluster, head_svcs, head)

        now = _now()
        status["lastUpdateTime"] = now
        if status.get("state") != old_state:
            status.setdefault("stateTransitionTimes", {})[status.get("state") or ""] = now
        return status

    def _head_pod(self, cluster: Obj) -> Mapping[str, Any] | None:
        """GetRayClusterHeadPod: None when there is none, an error when there are several."""
        heads = self._pods(cluster, **{C.RAY_NODE_TYPE_LABEL_KEY: C.RayNodeType.HEAD.value})
        if len(heads) > 1:
            raise _Retry(f"found multiple heads for RayCluster {cluster['metadata']['name']}")
        return heads[0] if heads else None

    def _head_service_ip_and_name(
        self, cluster: Obj, svcs: Sequence[Mapping[str, Any]], head: Mapping[str, Any] | None
    ) -> tuple[str, str]:
        """getHeadServiceIPAndName: a headless head Service reports the head pod's IP."""
        name = cluster["metadata"]["name"]
        if not svcs:
            raise _Retry(f"unable to find head service. cluster name {name}")
        if len(svcs) > 1:
            raise _Retry(f"found multiple head services. cluster name {name}")
        svc = svcs[0]
        ip = str((svc.get("spec") or {}).get("clusterIP") or "")
        if not ip:
            raise _Retry(f"head service IP is empty. cluster name {name}")
        if ip == "None":
            return (str((head.get("status") or {}).get("podIP") or "") if head else ""), svc["metadata"]["name"]
        return ip, svc["metadata"]["name"]

    async def _update_status(self, cluster: Obj, old: Mapping[str, Any], new: Obj) -> None:
        body = {**cluster, "status": new}
        body["metadata"] = {k: v for k, v in cluster["metadata"].items() if k != "managedFields"}
        log.info("updateRayClusterStatus", extra={"old status": old, "new status": new})
        await self.client.update_status(res.RAYCLUSTERS, body)
        meta = cluster["metadata"]
        self.own_writes.wrote(f"{meta['namespace']}/{meta['name']}", meta.get("resourceVersion") or "")
        if self.metrics and condition_true(new, PROVISIONED) and not condition_true(old, PROVISIONED):
            self.metrics.observe_provisioned(cluster)


class _Retry(ReconcileError):
    """A reconcile that must be retried: returned as an error after the status is written."""


_RNG = random.Random()


#: The object nouns of upstream's create notes (the GCS PVC, v1.7-only, keeps its kind).
_EVENT_NOUNS: dict[str, str] = {
    "Service": "service",
    "ServiceAccount": "service account",
    "Role": "role",
    "RoleBinding": "role binding",
    "Ingress": "ingress",
    "Route": "route",
    "PersistentVolumeClaim": "PersistentVolumeClaim",
}


def _name_of(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("name") or meta.get("generateName") or "")


def _ray_container_name(pod: Mapping[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or ()
    return str(containers[0].get("name")) if containers else ""


def _delete_marker(group: str) -> str:
    return "FailedDeleteHeadPod" if group == HEAD_GROUP else "FailedDeleteWorkerPod"


def _replica_indices(pods: Sequence[Mapping[str, Any]]) -> set[int]:
    """Replica indices in use (labels that are not integers are ignored, as strconv.Atoi fails)."""
    used: set[int] = set()
    for p in pods:
        raw = _labels(p).get(C.RAY_WORKER_REPLICA_INDEX_KEY)
        if raw is not None:
            try:
                used.add(atoi(raw))
            except ValueError:
                pass
    return used


def _head_pod_ready_condition(head: Mapping[str, Any] | None) -> tuple[str, str, str, str]:
    """FindHeadPodReadyCondition (or HeadPodNotFound)."""
    if head is None:
        return HEAD_POD_READY, "False", "HeadPodNotFound", "Head Pod not found"
    status, reason, message = "False", "Unknown", ""
    for c in (head.get("status") or {}).get("conditions") or ():
        if c.get("type") != "Ready":
            continue
        status = str(c.get("status") or "")
        message = str(c.get("message") or "")
        cond_reason = str(c.get("reason") or "")
        if status == "True" and not cond_reason:
            cond_reason = "HeadPodRunningAndReady"
        if cond_reason:
            reason = cond_reason
        if cond_reason == "ContainersNotReady":
            # The first waiting or terminated container says why.
            for cs in (head.get("status") or {}).get("containerStatuses") or ():
                state = cs.get("state") or {}
                detail = state.get("waiting") or state.get("terminated")
                if detail is not None:
                    message = (message + "; " if message else "") + f"{cs.get('name')}: {detail.get('message') or ''}"
                    reason = str(detail.get("reason") or "")
                    break
        break
    return HEAD_POD_READY, status, reason, message


def _suspend_status(conditions: Sequence[Mapping[str, Any]]) -> str:
    """FindRayClusterSuspendStatus: the first of Suspending/Suspended that is True, else ""."""
    for c in conditions:
        if c.get("type") in (SUSPENDING, SUSPENDED) and c.get("status") == "True":
            return str(c["type"])
    return ""


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
    # Every reconcile lists its cluster's pods and Services by ray.io/cluster: one index bucket, not a
    # scan of the namespace.
    for r in (res.PODS, res.SERVICES):
        rt.cache.index_label(r, C.RAY_CLUSTER_LABEL_KEY)
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
    for r in (res.PODS, res.SERVICES, res.SECRETS, res.PVCS):
        ctrl.watch(r, owner)
    return [ctrl]
