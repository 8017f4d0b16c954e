"""ray.io/v1: RayCluster, RayJob, RayService (and RayCronJob) types, defaulting and validation.

Decode::

    job = RayJob.from_json(body)          # orjson.loads + O(1) wrap; unknown fields are kept
    job = RayJob(raw_dict)                # wrap an already decoded dict (no copy)
    obj = decode(body)                    # by ``kind``

Read and write through typed accessors (Go zero values for absent non-pointer fields)::

    job.spec.submission_mode              # "K8sJobMode"
    for group in job.spec.ray_cluster_spec.worker_group_specs:
        group.replicas = 3
    job.to_json() == body                 # when nothing was written

Default and validate::

    job = apply_crd_defaults(job)         # pure: a new view, the input is untouched
    validate_ray_job(job, gates={"RayJobDeletionPolicy": True})   # raises ValidationError

Schema metadata for CRD generation: ``RayJobSpec.__fields__`` (a tuple of :class:`FieldSpec`),
``type_schema(RayJobSpec)``, and ``RayJob.__kind__`` (:class:`KindInfo`).
"""

from __future__ import annotations

from typing import Any

import orjson

from . import constants
from .constants import (
    API_VERSION,
    DEFAULT_FEATURE_GATES,
    GROUP,
    VERSION,
    ApplicationStatus,
    AuthMode,
    AutoscalerVersion,
    ClusterState,
    ConditionStatus,
    CRDType,
    DeletionPolicyType,
    DeploymentStatus,
    FeatureGate,
    GcsFaultToleranceBackend,
    GCSStorageDeletionPolicy,
    IngressPathType,
    JobDeploymentStatus,
    JobFailedReason,
    JobStatus,
    JobSubmissionMode,
    NetworkPolicyMode,
    RayClusterConditionReason,
    RayClusterConditionType,
    RayClusterUpgradeType,
    RayNodeType,
    RayServiceConditionReason,
    RayServiceConditionType,
    RayServiceUpgradeType,
    ServiceStatus,
    UpscalingMode,
    is_job_deployment_terminal,
    is_job_terminal,
)
from .core import (
    Condition,
    Container,
    EnvVar,
    ObjectMeta,
    PodSpec,
    PodTemplate,
    Volume,
    VolumeMount,
    env_var,
    env_var_exists,
    find_condition,
    is_condition_true,
    set_condition,
)
from .defaults import (
    apply_crd_defaults,
    default_ray_cluster,
    default_ray_job,
    default_ray_service,
    effective_autoscaler_idle_timeout_seconds,
    effective_gcs_fault_tolerance_backend,
    effective_gcs_storage_access_modes,
    effective_gcs_storage_deletion_policy,
    effective_gcs_storage_size,
    effective_ingress_path,
    effective_ingress_path_type,
    effective_max_surge_percent,
    effective_network_policy_mode,
    effective_ray_cluster_deletion_delay_seconds,
    effective_submission_mode,
    effective_submitter_backoff_limit,
)
from .errors import FieldRangeError, FieldTypeError, ValidationError
from .fields import (
    MISSING,
    FieldSpec,
    KindInfo,
    PrinterColumn,
    TypeSchema,
    View,
    ViewList,
    ViewMap,
    XValidation,
    format_time,
    parse_time,
    type_schema,
)
from .object import ListMeta, TopLevel
from .raycluster_types import (
    AuthOptions,
    AutoscalerOptions,
    CollectorOptions,
    GcsEmbeddedStorage,
    GcsFaultToleranceOptions,
    HeadGroupSpec,
    HeadInfo,
    HistoryServerOptions,
    IngressOptions,
    NetworkPolicyConfig,
    NetworkPolicyRules,
    RayCluster,
    RayClusterList,
    RayClusterSpec,
    RayClusterStatus,
    RayClusterUpgradeStrategy,
    RedisCredential,
    ScaleStrategy,
    TLSOptions,
    WorkerGroupNetworkPolicyRules,
    WorkerGroupSpec,
)
from .raycronjob_types import RayCronJob, RayCronJobList, RayCronJobSpec, RayCronJobStatus
from .rayjob_types import (
    DeletionCondition,
    DeletionPolicy,
    DeletionRule,
    DeletionStrategy,
    RayJob,
    RayJobList,
    RayJobSpec,
    RayJobStatus,
    RayJobStatusInfo,
    SubmitterConfig,
)
from .rayservice_types import (
    AppStatus,
    ClusterUpgradeOptions,
    RayService,
    RayServiceList,
    RayServiceSpec,
    RayServiceStatus,
    RayServiceStatuses,
    RayServiceUpgradeStrategy,
    ServeDeploymentStatus,
)
from .validation import (
    FeatureGates,
    feature_enabled,
    is_auth_enabled,
    is_autoscaling_enabled,
    is_autoscaling_v2_enabled,
    is_gcs_fault_tolerance_enabled,
    is_incremental_upgrade_enabled,
    is_k8s_auth_enabled,
    is_tls_enabled,
    validate_cluster_upgrade_options,
    validate_initializing_timeout,
    validate_ray_cluster,
    validate_ray_cluster_metadata,
    validate_ray_cluster_spec,
    validate_ray_cluster_status,
    validate_ray_cluster_upgrade_options,
    validate_ray_job,
    validate_ray_job_metadata,
    validate_ray_job_spec,
    validate_ray_job_status,
    validate_ray_service,
    validate_ray_service_metadata,
    validate_ray_service_spec,
)

#: The top-level kinds of ray.io/v1, by ``kind``.
KINDS: dict[str, type[TopLevel]] = {
    "RayCluster": RayCluster,
    "RayJob": RayJob,
    "RayService": RayService,
    "RayCronJob": RayCronJob,
}


def decode(data: bytes | bytearray | memoryview | str | dict[str, Any]) -> TopLevel:
    """Decode a ray.io/v1 object (JSON text or an already decoded dict), choosing the view by ``kind``.

    Raises :class:`ValidationError` when the input is not a JSON object of a known kind.
    """
    raw = data if isinstance(data, dict) else orjson.loads(data)
    if not isinstance(raw, dict):
        raise FieldTypeError("", "object", raw)
    kind = raw.get("kind")
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValidationError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return cls(raw)


__all__ = [
    "API_VERSION",
    "DEFAULT_FEATURE_GATES",
    "GROUP",
    "KINDS",
    "MISSING",
    "VERSION",
    "AppStatus",
    "ApplicationStatus",
    "AuthMode",
    "AuthOptions",
    "AutoscalerOptions",
    "AutoscalerVersion",
    "CRDType",
    "ClusterState",
    "ClusterUpgradeOptions",
    "CollectorOptions",
    "Condition",
    "ConditionStatus",
    "Container",
    "DeletionCondition",
    "DeletionPolicy",
    "DeletionPolicyType",
    "DeletionRule",
    "DeletionStrategy",
    "DeploymentStatus",
    "EnvVar",
    "FeatureGate",
    "FeatureGates",
    "FieldRangeError",
    "FieldSpec",
    "FieldTypeError",
    "GCSStorageDeletionPolicy",
    "GcsEmbeddedStorage",
    "GcsFaultToleranceBackend",
    "GcsFaultToleranceOptions",
    "HeadGroupSpec",
    "HeadInfo",
    "HistoryServerOptions",
    "IngressOptions",
    "IngressPathType",
    "JobDeploymentStatus",
    "JobFailedReason",
    "JobStatus",
    "JobSubmissionMode",
    "KindInfo",
    "ListMeta",
    "NetworkPolicyConfig",
    "NetworkPolicyMode",
    "NetworkPolicyRules",
    "ObjectMeta",
    "PodSpec",
    "PodTemplate",
    "PrinterColumn",
    "RayCluster",
    "RayClusterConditionReason",
    "RayClusterConditionType",
    "RayClusterList",
    "RayClusterSpec",
    "RayClusterStatus",
    "RayClusterUpgradeStrategy",
    "RayClusterUpgradeType",
    "RayCronJob",
    "RayCronJobList",
    "RayCronJobSpec",
    "RayCronJobStatus",
    "RayJob",
    "RayJobList",
    "RayJobSpec",
    "RayJobStatus",
    "RayJobStatusInfo",
    "RayNodeType",
    "RayService",
    "RayServiceConditionReason",
    "RayServiceConditionType",
    "RayServiceList",
    "RayServiceSpec",
    "RayServiceStatus",
    "RayServiceStatuses",
    "RayServiceUpgradeStrategy",
    "RayServiceUpgradeType",
    "RedisCredential",
    "ScaleStrategy",
    "ServeDeploymentStatus",
    "ServiceStatus",
    "SubmitterConfig",
    "TLSOptions",
    "TopLevel",
    "TypeSchema",
    "UpscalingMode",
    "ValidationError",
    "View",
    "ViewList",
    "ViewMap",
    "Volume",
    "VolumeMount",
    "WorkerGroupNetworkPolicyRules",
    "WorkerGroupSpec",
    "XValidation",
    "apply_crd_defaults",
    "constants",
    "decode",
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
    "env_var",
    "env_var_exists",
    "feature_enabled",
    "find_condition",
    "format_time",
    "is_auth_enabled",
    "is_autoscaling_enabled",
    "is_autoscaling_v2_enabled",
    "is_condition_true",
    "is_gcs_fault_tolerance_enabled",
    "is_incremental_upgrade_enabled",
    "is_job_deployment_terminal",
    "is_job_terminal",
    "is_k8s_auth_enabled",
    "is_tls_enabled",
    "parse_time",
    "set_condition",
    "type_schema",
    "validate_cluster_upgrade_options",
    "validate_initializing_timeout",
    "validate_ray_cluster",
    "validate_ray_cluster_metadata",
    "validate_ray_cluster_spec",
    "validate_ray_cluster_status",
    "validate_ray_cluster_upgrade_options",
    "validate_ray_job",
    "validate_ray_job_metadata",
    "validate_ray_job_spec",
    "validate_ray_job_status",
    "validate_ray_service",
    "validate_ray_service_metadata",
    "validate_ray_service_spec",
]
