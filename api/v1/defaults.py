"""Defaulting, as pure functions.

Two kinds of defaults exist upstream:

* **CRD defaults** (``+kubebuilder:default``), which the API server writes into every object it stores:
  RayJob ``submissionMode: K8sJobMode``, ``backoffLimit: 0``, ``ttlSecondsAfterFinished: 0``;
  worker groups ``replicas: 0``, ``minReplicas: 0``, ``maxReplicas: 2147483647``, ``numOfHosts: 1``,
  ``priority: 0``; deletion conditions ``ttlSeconds: 0``; ``networkPolicy.mode: DenyAll``;
  ``clusterUpgradeOptions.maxSurgePercent: 100``; RayJob status ``succeeded: 0``/``failed: 0``.
  :func:`apply_crd_defaults` applies them, driven by the ``default`` of each field's metadata, with the
  API server's rules: a default fills a field that is absent or ``null``, and only inside objects that
  exist (an absent ``status`` gets no defaults). Kubernetes core types are left untouched.
* **Code defaults**, which upstream applies when it reads a field and which are never written back
  (submitter backoff limit 2, RayService deletion delay 60 s, ingress path ``/`` ...): the ``effective_*``
  functions return them.

Zero values need no defaulting: an absent ``shutdownAfterJobFinishes`` or ``suspend`` reads as
``False`` through the accessors, as in Go.

The functions never mutate their argument: :func:`apply_crd_defaults` returns a new view whose JSON
shares every unchanged subtree with the input and copies only the objects on the path to a default.
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from .constants import (
    DEFAULT_AUTOSCALER_IDLE_TIMEOUT_SECONDS,
    DEFAULT_GCS_STORAGE_ACCESS_MODES,
    DEFAULT_GCS_STORAGE_SIZE,
    DEFAULT_INGRESS_PATH,
    DEFAULT_INGRESS_PATH_TYPE,
    DEFAULT_MAX_SURGE_PERCENT,
    DEFAULT_RAY_CLUSTER_DELETION_DELAY_SECONDS,
    DEFAULT_SUBMITTER_BACKOFF_LIMIT,
    GcsFaultToleranceBackend,
    GCSStorageDeletionPolicy,
    JobSubmissionMode,
    NetworkPolicyMode,
)
from .fields import View
from .raycluster_types import (
    AutoscalerOptions,
    GcsEmbeddedStorage,
    GcsFaultToleranceOptions,
    IngressOptions,
    NetworkPolicyConfig,
    RayCluster,
)
from .rayjob_types import RayJob, RayJobSpec
from .rayservice_types import ClusterUpgradeOptions, RayService, RayServiceSpec

__all__ = [
    "apply_crd_defaults",
    "default_ray_cluster",
    "default_ray_job",
    "default_ray_service",
    "effective_autoscaler_idle_timeout_seconds",
    "effective_gcs_fault_tolerance_backend",
    "effective_gcs_storage_access_modes",
    "effective_gcs_storage_deletion_policy",
    "effective_gcs_storage_size",
    "effective_ingress_path",
    "effective_ingress_path_type",
    "effective_max_surge_percent",
    "effective_network_policy_mode",
    "effective_ray_cluster_deletion_delay_seconds",
    "effective_submission_mode",
    "effective_submitter_backoff_limit",
]

_V = TypeVar("_V", bound=View)


def apply_crd_defaults(obj: _V) -> _V:
    """Return ``obj`` with the CRD defaults applied (a new view; ``obj`` is not modified).

    When nothing needs defaulting the same view is returned.
    """
    raw = obj.raw
    defaulted = _default_object(type(obj), raw)
    if defaulted is raw:
        return obj
    return type(obj)(defaulted)


def default_ray_cluster(cluster: RayCluster) -> RayCluster:
    """The RayCluster as the API server would store it."""
    return apply_crd_defaults(cluster)


def default_ray_job(job: RayJob) -> RayJob:
    """The RayJob as the API server would store it."""
    return apply_crd_defaults(job)


def default_ray_service(service: RayService) -> RayService:
    """The RayService as the API server would store it."""
    return apply_crd_defaults(service)


def _default_object(cls: type[View], raw: dict[str, Any]) -> dict[str, Any]:
    if cls.__k8s_ref__ is not None:
        return raw
    out: dict[str, Any] | None = None
    for spec in cls.__fields__:
        key = spec.json_name
        value = raw.get(key)
        new: Any = value
        if value is None:
            if not spec.has_default:
                continue
            new = copy.deepcopy(spec.default)
        elif spec.ref is not None:
            if spec.kind == "object" and isinstance(value, dict):
                new = _default_object(spec.ref, value)
            elif spec.kind == "object_list" and isinstance(value, list):
                new = _default_list(spec.ref, value)
            elif spec.kind == "object_map" and isinstance(value, dict):
                new = _default_map(spec.ref, value)
        if new is not value:
            if out is None:
                out = dict(raw)
            out[key] = new
    return raw if out is None else out


def _default_list(cls: type[View], items: list[Any]) -> list[Any]:
    out: list[Any] | None = None
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        new = _default_object(cls, item)
        if new is not item:
            if out is None:
                out = list(items)
            out[index] = new
    return items if out is None else out


def _default_map(cls: type[View], items: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] | None = None
    for key, item in items.items():
        if not isinstance(item, dict):
            continue
        new = _default_object(cls, item)
        if new is not item:
            if out is None:
                out = dict(items)
            out[key] = new
    return items if out is None else out


# ---- code defaults --------------------------------------------------------------------------------


def effective_submission_mode(spec: RayJobSpec) -> str:
    """``spec.submissionMode``, or ``K8sJobMode`` when unset (the CRD default)."""
    return spec.submission_mode or JobSubmissionMode.K8S_JOB_MODE.value


def effective_submitter_backoff_limit(spec: RayJobSpec) -> int:
    """``submitterConfig.backoffLimit``, or 2: the backoffLimit of the submitter Kubernetes Job."""
    config = spec.submitter_config
    if config is not None and config.backoff_limit is not None:
        return config.backoff_limit
    return DEFAULT_SUBMITTER_BACKOFF_LIMIT


def effective_ray_cluster_deletion_delay_seconds(spec: RayServiceSpec) -> int:
    """``rayClusterDeletionDelaySeconds``, or 60."""
    value = spec.ray_cluster_deletion_delay_seconds
    return DEFAULT_RAY_CLUSTER_DELETION_DELAY_SECONDS if value is None else value


def effective_max_surge_percent(options: ClusterUpgradeOptions) -> int:
    """``maxSurgePercent``, or 100."""
    value = options.max_surge_percent
    return DEFAULT_MAX_SURGE_PERCENT if value is None else value


def effective_autoscaler_idle_timeout_seconds(options: AutoscalerOptions | None) -> int:
    """``autoscalerOptions.idleTimeoutSeconds``, or 60 (the value the autoscaler uses)."""
    if options is not None and options.idle_timeout_seconds is not None:
        return options.idle_timeout_seconds
    return DEFAULT_AUTOSCALER_IDLE_TIMEOUT_SECONDS


def effective_ingress_path(options: IngressOptions | None) -> str:
    """``ingressOptions.path``, or ``/``."""
    if options is not None and options.path is not None:
        return options.path
    return DEFAULT_INGRESS_PATH


def effective_ingress_path_type(options: IngressOptions | None) -> str:
    """``ingressOptions.pathType``, or ``Prefix``."""
    if options is not None and options.path_type is not None:
        return options.path_type
    return DEFAULT_INGRESS_PATH_TYPE.value


def effective_gcs_fault_tolerance_backend(options: GcsFaultToleranceOptions | None) -> str:
    """``GetGcsFaultToleranceBackend``: ``rocksdb`` only when set so; otherwise ``redis``."""
    if options is not None and options.backend == GcsFaultToleranceBackend.ROCKSDB:
        return GcsFaultToleranceBackend.ROCKSDB.value
    return GcsFaultToleranceBackend.REDIS.value


def effective_gcs_storage_size(storage: GcsEmbeddedStorage | None) -> str | int | float:
    """``storage.size``, or ``1Gi``."""
    if storage is not None and storage.size is not None:
        return storage.size
    return DEFAULT_GCS_STORAGE_SIZE


def effective_gcs_storage_access_modes(storage: GcsEmbeddedStorage | None) -> list[str]:
    """``storage.accessModes``, or ``[ReadWriteOnce]``."""
    if storage is not None:
        modes = storage.access_modes
        if modes:
            return list(modes)
    return list(DEFAULT_GCS_STORAGE_ACCESS_MODES)


def effective_gcs_storage_deletion_policy(storage: GcsEmbeddedStorage | None) -> str:
    """``storage.deletionPolicy``, or ``DeleteWithCluster``."""
    if storage is not None and storage.deletion_policy is not None:
        return storage.deletion_policy
    return GCSStorageDeletionPolicy.DELETE_WITH_CLUSTER.value


def effective_network_policy_mode(config: NetworkPolicyConfig) -> str:
    """``networkPolicy.mode``, or ``DenyAll`` (the kubebuilder default)."""
    return config.mode or NetworkPolicyMode.DENY_ALL.value
