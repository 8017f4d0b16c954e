"""The NetworkPolicy controller (upstream v1.7.0 ``networkpolicy_controller.go``, behind gate
``RayClusterNetworkPolicy``): for a RayCluster with ``spec.networkPolicy``, a NetworkPolicy for the head
and one per worker group (``controllers/ray/common/networkpolicy.py``); without it, none.

The reconcile keeps upstream's steps (spec ``raycluster-extensions.md`` §5.4): read the cluster (gone,
deleting or managed elsewhere: nothing), delete this cluster's policies when ``networkPolicy`` is unset,
else create or update the head's and each group's in spec order, then delete the policies of groups
that are gone. A policy of the same name that this cluster does not control is never touched
(``NetworkPolicyNameCollision``). Purely event-driven: a spec change (generation) or a change to an
owned policy brings the cluster back; no periodic requeue. Cleanup on cluster deletion is garbage
collection's. RayCluster validation is the RayCluster controller's: this controller does not run it,
as upstream.

Deliberate difference: the existing policy is looked up in the cache before creating, where upstream
creates first and reads back on ``AlreadyExists``; the objects and events are the same, without a
refused create per policy and pass.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from controllers.ray.common import networkpolicy as npb
from controllers.ray.utils import constants as C
from controllers.ray.utils import util as U
from controllers.ray.utils.constants import NetworkPolicyEventReason as R
from internal.client import AlreadyExists, ApiError, Client, NotFound
from internal.client import resources as res
from internal.controller import Controller, ControllerOptions, ForOwner, ReconcileError, Request, Result, for_object
from internal.controller.predicates import GenerationChanged
from internal.events import Recorder
from internal.informer import Cache, thaw

log = logging.getLogger("controllers.NetworkPolicy")

Obj = dict[str, Any]


class _Retry(ReconcileError):
    """Requeue with backoff (upstream returns the error)."""


class NetworkPolicyReconciler:
    def __init__(self, client: Client, cache: Cache, recorder: Recorder) -> None:
        self.client = client
        self.cache = cache
        self.recorder = recorder

    async def reconcile(self, request: Request) -> Result:
        try:
            cluster: Obj = thaw(self.cache.get(res.RAYCLUSTERS, request.name, request.namespace))
        except NotFound:
            return Result()
        meta = cluster["metadata"]
        if meta.get("deletionTimestamp"):
            return Result()
        managed_by = (cluster.get("spec") or {}).get("managedBy")
        if managed_by and managed_by != C.KUBERAY_OPERATOR_MANAGER:
            return Result()

        if (cluster.get("spec") or {}).get("networkPolicy") is None:
            await self._delete_stale(cluster, keep=set())
            return Result()

        desired = npb.build_network_policies(cluster)
        for policy in desired:
            await self._create_or_update(cluster, policy)
        await self._delete_stale(cluster, keep={p["metadata"]["name"] for p in desired})
        return Result()

    def _owned(self, cluster: Obj) -> list[Obj]:
        meta = cluster["metadata"]
        listed = self.cache.list(res.NETWORKPOLICIES, meta["namespace"], labels={C.RAY_CLUSTER_LABEL_KEY: meta["name"]})
        policies: list[Obj] = [thaw(p) for p in listed]
        return [p for p in policies if U.is_controlled_by(p, cluster)]

    async def _create_or_update(self, cluster: Obj, desired: Obj) -> None:
        ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        key = f"{ns}/{name}"
        try:
            live: Obj | None = thaw(self.cache.get(res.NETWORKPOLICIES, name, ns))
        except NotFound:
            live = None
        if live is None:
            try:
                await self.client.create(res.NETWORKPOLICIES, desired)
            except AlreadyExists:
                live = await self.client.get(res.NETWORKPOLICIES, name, ns)  # not in the cache yet
            except ApiError as e:
                self._event(
                    cluster, "Warning", R.FAILED_TO_CREATE, f"Failed to create NetworkPolicy {key}: {e}", "Create"
                )
                raise _Retry(f"failed to create NetworkPolicy {key}: {e}") from e
            else:
                log.info("Created NetworkPolicy", extra={"NetworkPolicy": key})
                self._event(cluster, "Normal", R.CREATED, f"Created NetworkPolicy {key}", "Create")
                return
        assert live is not None
        if not U.is_controlled_by(live, cluster):
            self._event(
                cluster,
                "Warning",
                R.NAME_COLLISION,
                f"NetworkPolicy {key} already exists and is not owned by this RayCluster, network isolation will "
                "not be applied. Rename the existing NetworkPolicy or use a different RayCluster name to avoid "
                "the collision",
                "Validate",
            )
            raise _Retry(f"NetworkPolicy {key} already exists and is not owned by this RayCluster")
        want_spec = npb.normalize_spec(desired["spec"])
        want_labels = desired["metadata"]["labels"]
        if (
            npb.normalize_spec(live.get("spec") or {}) == want_spec
            and (live["metadata"].get("labels") or {}) == want_labels
        ):
            return
        # Spec and labels are the operator's; annotations and owner references stay as they are.
        live["spec"] = copy.deepcopy(desired["spec"])
        live["metadata"]["labels"] = dict(want_labels)
        try:
            await self.client.update(res.NETWORKPOLICIES, live)
        except ApiError as e:
            self._event(cluster, "Warning", R.FAILED_TO_UPDATE, f"Failed to update NetworkPolicy {key}: {e}", "Update")
            raise _Retry(f"failed to update NetworkPolicy {key}: {e}") from e
        log.info("Updated NetworkPolicy", extra={"NetworkPolicy": key})
        self._event(cluster, "Normal", R.UPDATED, f"Updated NetworkPolicy {key}", "Update")

    async def _delete_stale(self, cluster: Obj, keep: set[str]) -> None:
        for policy in self._owned(cluster):
            meta = policy["metadata"]
            if meta["name"] in keep:
                continue
            key = f"{meta['namespace']}/{meta['name']}"
            try:
                await self.client.delete(res.NETWORKPOLICIES, meta["name"], meta["namespace"])
            except NotFound:
                continue
            except ApiError as e:
                self._event(
                    cluster, "Warning", R.FAILED_TO_DELETE, f"Failed to delete NetworkPolicy {key}: {e}", "Delete"
                )
                raise _Retry(f"failed to delete NetworkPolicy {key}: {e}") from e
            log.info("Deleted NetworkPolicy", extra={"NetworkPolicy": key})
            self._event(cluster, "Normal", R.DELETED, f"Deleted NetworkPolicy {key}", "Delete")

    def _event(self, cluster: Obj, etype: str, reason: str, note: str, action: str) -> None:
        self.recorder.event(cluster, etype, reason, note, action=action)


def setup(rt: Any) -> list[Controller]:
    """Register the NetworkPolicy controller (internal.app.Runtime): RayClusters on spec changes only
    (labels and owner references do not bring them back, as upstream), and their NetworkPolicies."""
    ctrl = Controller(
        "networkpolicy",
        NetworkPolicyReconciler(rt.client, rt.cache, rt.recorder("networkpolicy-controller")),
        rt.cache,
        ControllerOptions(workers=rt.config.reconcileConcurrency),
        metrics=rt.controller_metrics,
        queue_metrics=rt.queue_metrics,
    )
    ctrl.watch(res.RAYCLUSTERS, for_object, GenerationChanged)
    ctrl.watch(res.NETWORKPOLICIES, ForOwner(kind=C.RAY_CLUSTER_KIND, group=C.RAY_API_GROUP))
    return [ctrl]
