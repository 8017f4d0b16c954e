"""Every ray.io/v1 enum value, condition type and reason, name limit and well-known key, defined once.

Values are plain ``str`` subclasses (``StrEnum``) so they compare equal to the strings found in the
decoded JSON: ``job.status.job_status == JobStatus.SUCCEEDED`` works whether the value came from the
API server or from this module. Where upstream's Go type has *no* ``+kubebuilder:validation:Enum``
marker (e.g. ``JobSubmissionMode``, ``RayServiceUpgradeType``, ``ClusterState``) the CRD schema must not
restrict the value either; the field metadata in the ``*_types`` modules says which enums are enforced.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

GROUP: Final = "ray.io"
VERSION: Final = "v1"
API_VERSION: Final = "ray.io/v1"

# ---- RayJob ----------------------------------------------------------------------------------------


class JobStatus(StrEnum):
    """Ray job status as reported by the Ray dashboard (``rayjob_types.go`` ``JobStatus``)."""

    NEW = ""
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


ALL_JOB_STATUSES: Final = tuple(JobStatus)
TERMINAL_JOB_STATUSES: Final = frozenset({JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED})


def is_job_terminal(status: str) -> bool:
    """``IsJobTerminal``: STOPPED, SUCCEEDED and FAILED are terminal (mirrors Ray's ``is_terminal``)."""
    return status in TERMINAL_JOB_STATUSES


class JobDeploymentStatus(StrEnum):
    """RayJob lifecycle state, including the RayCluster and the submission (``JobDeploymentStatus``)."""

    NEW = ""
    INITIALIZING = "Initializing"
    RUNNING = "Running"
    COMPLETE = "Complete"
    FAILED = "Failed"
    VALIDATION_FAILED = "ValidationFailed"
    SUSPENDING = "Suspending"
    SUSPENDED = "Suspended"
    RETRYING = "Retrying"
    WAITING = "Waiting"


TERMINAL_JOB_DEPLOYMENT_STATUSES: Final = frozenset({JobDeploymentStatus.COMPLETE, JobDeploymentStatus.FAILED})


def is_job_deployment_terminal(status: str) -> bool:
    """``IsJobDeploymentTerminal``: Complete and Failed are terminal."""
    return status in TERMINAL_JOB_DEPLOYMENT_STATUSES


class JobFailedReason(StrEnum):
    """``status.reason`` of a RayJob (``JobFailedReason``)."""

    SUBMISSION_FAILED = "SubmissionFailed"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    PRE_RUNNING_DEADLINE_EXCEEDED = "PreRunningDeadlineExceeded"
    APP_FAILED = "AppFailed"
    JOB_DEPLOYMENT_STATUS_TRANSITION_GRACE_PERIOD_EXCEEDED = "JobDeploymentStatusTransitionGracePeriodExceeded"
    JOB_STATUS_CHECK_TIMEOUT_EXCEEDED = "JobStatusCheckTimeoutExceeded"
    VALIDATION_FAILED = "ValidationFailed"


class JobSubmissionMode(StrEnum):
    """``spec.submissionMode`` (no enum marker upstream; the CRD default is ``K8sJobMode``)."""

    K8S_JOB_MODE = "K8sJobMode"
    HTTP_MODE = "HTTPMode"
    INTERACTIVE_MODE = "InteractiveMode"
    SIDECAR_MODE = "SidecarMode"


class DeletionPolicyType(StrEnum):
    """Action of a deletion rule or legacy deletion policy."""

    DELETE_CLUSTER = "DeleteCluster"
    DELETE_WORKERS = "DeleteWorkers"
    DELETE_SELF = "DeleteSelf"
    DELETE_NONE = "DeleteNone"


#: Enum values the CRD accepts for ``deletionRules[*].condition.jobStatus``.
DELETION_CONDITION_JOB_STATUSES: Final = (JobStatus.SUCCEEDED, JobStatus.FAILED)
#: Enum values the CRD accepts for ``deletionRules[*].condition.jobDeploymentStatus``.
DELETION_CONDITION_JOB_DEPLOYMENT_STATUSES: Final = (JobDeploymentStatus.FAILED,)

# ---- RayCluster ------------------------------------------------------------------------------------


class ClusterState(StrEnum):
    """``status.state`` of a RayCluster. ``failed`` is deprecated and never set."""

    READY = "ready"
    FAILED = "failed"
    SUSPENDED = "suspended"


class RayClusterConditionType(StrEnum):
    """Condition types on ``RayCluster.status.conditions``."""

    RAY_CLUSTER_PROVISIONED = "RayClusterProvisioned"
    HEAD_POD_READY = "HeadPodReady"
    REPLICA_FAILURE = "ReplicaFailure"
    RAY_CLUSTER_SUSPENDING = "RayClusterSuspending"
    RAY_CLUSTER_SUSPENDED = "RayClusterSuspended"


class RayClusterConditionReason(StrEnum):
    """Reasons used on RayCluster conditions (``raycluster_types.go`` and the controller)."""

    ALL_POD_RUNNING_AND_READY_FIRST_TIME = "AllPodRunningAndReadyFirstTime"
    RAY_CLUSTER_PODS_PROVISIONING = "RayClusterPodsProvisioning"
    HEAD_POD_NOT_FOUND = "HeadPodNotFound"
    HEAD_POD_RUNNING_AND_READY = "HeadPodRunningAndReady"
    UNKNOWN = "Unknown"
    RAY_CLUSTER_SUSPENDING = "RayClusterSuspending"
    RAY_CLUSTER_SUSPENDED = "RayClusterSuspended"
    FAILED_DELETE_ALL_PODS = "FailedDeleteAllPods"
    FAILED_DELETE_HEAD_POD = "FailedDeleteHeadPod"
    FAILED_CREATE_HEAD_POD = "FailedCreateHeadPod"
    FAILED_DELETE_WORKER_POD = "FailedDeleteWorkerPod"
    FAILED_CREATE_WORKER_POD = "FailedCreateWorkerPod"


UNKNOWN_REASON: Final = "Unknown"


class RayNodeType(StrEnum):
    HEAD = "head"
    WORKER = "worker"
    REDIS_CLEANUP = "redis-cleanup"


class EventReason(StrEnum):
    """Event reasons declared in ``raycluster_types.go``."""

    RAY_CONFIG_ERROR = "RayConfigError"
    POD_RECONCILIATION_ERROR = "PodReconciliationError"


class RayClusterUpgradeType(StrEnum):
    """``spec.upgradeStrategy.type`` of a RayCluster (enum marker ``Recreate;None``)."""

    RECREATE = "Recreate"
    NONE = "None"


class UpscalingMode(StrEnum):
    DEFAULT = "Default"
    AGGRESSIVE = "Aggressive"
    CONSERVATIVE = "Conservative"


class AutoscalerVersion(StrEnum):
    V1 = "v1"
    V2 = "v2"


class AuthMode(StrEnum):
    DISABLED = "disabled"
    TOKEN = "token"


class GcsFaultToleranceBackend(StrEnum):
    REDIS = "redis"
    ROCKSDB = "rocksdb"


class GCSStorageDeletionPolicy(StrEnum):
    DELETE_WITH_CLUSTER = "DeleteWithCluster"
    RETAIN = "Retain"


class NetworkPolicyMode(StrEnum):
    DENY_ALL = "DenyAll"
    DENY_ALL_INGRESS = "DenyAllIngress"
    DENY_ALL_EGRESS = "DenyAllEgress"


class IngressPathType(StrEnum):
    EXACT = "Exact"
    PREFIX = "Prefix"
    IMPLEMENTATION_SPECIFIC = "ImplementationSpecific"


class ManagedBy(StrEnum):
    """The two values the ``managedBy`` CEL rule accepts."""

    KUBERAY_OPERATOR = "ray.io/kuberay-operator"
    MULTIKUEUE = "kueue.x-k8s.io/multikueue"


# ---- RayService ------------------------------------------------------------------------------------


class RayServiceUpgradeType(StrEnum):
    """``spec.upgradeStrategy.type`` of a RayService (no enum marker upstream)."""

    NEW_CLUSTER_WITH_INCREMENTAL_UPGRADE = "NewClusterWithIncrementalUpgrade"
    NEW_CLUSTER = "NewCluster"
    NONE = "None"


class ServiceStatus(StrEnum):
    """Deprecated ``status.serviceStatus``: ``Running`` iff the Ready condition is True."""

    RUNNING = "Running"
    NOT_RUNNING = ""


class RayServiceConditionType(StrEnum):
    READY = "Ready"
    UPGRADE_IN_PROGRESS = "UpgradeInProgress"
    ROLLBACK_IN_PROGRESS = "RollbackInProgress"
    SUSPENDING = "Suspending"
    SUSPENDED = "Suspended"


class RayServiceConditionReason(StrEnum):
    INITIALIZING = "Initializing"
    INITIALIZING_TIMEOUT = "InitializingTimeout"
    ZERO_SERVE_ENDPOINTS = "ZeroServeEndpoints"
    NON_ZERO_SERVE_ENDPOINTS = "NonZeroServeEndpoints"
    BOTH_ACTIVE_PENDING_CLUSTERS_EXIST = "BothActivePendingClustersExist"
    NO_PENDING_CLUSTER = "NoPendingCluster"
    NO_ACTIVE_CLUSTER = "NoActiveCluster"
    VALIDATION_FAILED = "ValidationFailed"
    DESIRED_CLUSTER_SPEC_CHANGED = "DesiredClusterSpecChanged"
    SUSPEND_REQUESTED = "SuspendRequested"
    SUSPEND_IN_PROGRESS = "SuspendInProgress"
    SUSPEND_COMPLETE = "SuspendComplete"
    RAY_SERVICE_RESUMED = "RayServiceResumed"


class ApplicationStatus(StrEnum):
    """Ray Serve application status values."""

    NOT_STARTED = "NOT_STARTED"
    DEPLOYING = "DEPLOYING"
    RUNNING = "RUNNING"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    DELETING = "DELETING"
    UNHEALTHY = "UNHEALTHY"


class DeploymentStatus(StrEnum):
    """Ray Serve deployment status values."""

    UPDATING = "UPDATING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"


# ---- Kubernetes condition status -------------------------------------------------------------------


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


# ---- name limits (utils/constant.go) ---------------------------------------------------------------

#: 63 - len("-serve-svc")
MAX_RAY_CLUSTER_NAME_LENGTH: Final = 53
#: 53 - 6 for the "-xxxxx" suffix of the generated RayCluster name
MAX_RAY_JOB_NAME_LENGTH: Final = 47
MAX_RAY_SERVICE_NAME_LENGTH: Final = 47
#: 47 - 11
MAX_RAY_CRON_JOB_NAME_LENGTH: Final = 36

MAX_INT32: Final = 2147483647
MIN_INT32: Final = -2147483648
MAX_INT64: Final = 9223372036854775807
MIN_INT64: Final = -9223372036854775808

# ---- well-known keys -------------------------------------------------------------------------------

RAY_CONTAINER_INDEX: Final = 0
RAY_CLUSTER_LABEL_KEY: Final = "ray.io/cluster"
#: ``spec.clusterSelector`` key naming the RayCluster a RayJob runs on.
RAY_JOB_CLUSTER_SELECTOR_KEY: Final = "ray.io/cluster"
RAY_ORIGINATED_FROM_CRD_LABEL_KEY: Final = "ray.io/originated-from-crd"
RAY_ORIGINATED_FROM_CR_NAME_LABEL_KEY: Final = "ray.io/originated-from-cr-name"
RAY_FT_ENABLED_ANNOTATION_KEY: Final = "ray.io/ft-enabled"
RAY_EXTERNAL_STORAGE_NS_ANNOTATION_KEY: Final = "ray.io/external-storage-namespace"
RAY_SERVICE_INITIALIZING_TIMEOUT_ANNOTATION: Final = "ray.io/initializing-timeout"


class CRDType(StrEnum):
    """``utils.CRDType``; unknown ``ray.io/originated-from-crd`` values map to RayCluster."""

    RAY_CLUSTER = "RayCluster"
    RAY_JOB = "RayJob"
    RAY_SERVICE = "RayService"


def get_crd_type(value: str) -> CRDType:
    """``GetCRDType``: the CRD type named by a label value, RayCluster when unknown."""
    for crd in CRDType:
        if crd.value == value:
            return crd
    return CRDType.RAY_CLUSTER


# ---- environment variable, volume and container names used by validation ---------------------------

RAY_REDIS_ADDRESS: Final = "RAY_REDIS_ADDRESS"
REDIS_PASSWORD: Final = "REDIS_PASSWORD"
REDIS_USERNAME: Final = "REDIS_USERNAME"
RAY_ENABLE_AUTOSCALER_V2: Final = "RAY_enable_autoscaler_v2"
KUBERAY_GEN_AUTOSCALER_START_CMD: Final = "KUBERAY_GEN_AUTOSCALER_START_CMD"
RAY_GCS_STORAGE: Final = "RAY_gcs_storage"
RAY_GCS_STORAGE_PATH: Final = "RAY_gcs_storage_path"
GCS_STORAGE_VOLUME_NAME: Final = "gcs-storage"
GCS_STORAGE_MOUNT_PATH: Final = "/data/gcs"
RAY_USE_TLS: Final = "RAY_USE_TLS"
RAY_TLS_SERVER_CERT: Final = "RAY_TLS_SERVER_CERT"
RAY_TLS_SERVER_KEY: Final = "RAY_TLS_SERVER_KEY"
RAY_TLS_CA_CERT: Final = "RAY_TLS_CA_CERT"
RAY_TLS_VOLUME_NAME: Final = "ray-tls"
RAY_TLS_CERT_MOUNT_PATH: Final = "/etc/ray/tls"
COLLECTOR_CONTAINER_NAME: Final = "ray-history-collector"

# History-server collector env vars that KubeRay injects (and users must not set), and the
# storage-backend variables it checks.
POD_IP: Final = "POD_IP"
FQ_RAY_IP: Final = "FQ_RAY_IP"
RAY_CLUSTER_NAME: Final = "RAY_CLUSTER_NAME"
RAY_CLUSTER_NAMESPACE: Final = "RAY_CLUSTER_NAMESPACE"
RAY_ROLE: Final = "RAY_ROLE"
OWNER_KIND: Final = "OWNER_KIND"
OWNER_NAME: Final = "OWNER_NAME"
EVENTS_PORT: Final = "EVENTS_PORT"
STORAGE_BACKEND: Final = "STORAGE_BACKEND"
GCS_BUCKET: Final = "GCS_BUCKET"
S3_REGION: Final = "S3_REGION"
AZURE_STORAGE_AUTH_MODE: Final = "AZURE_STORAGE_AUTH_MODE"
AZURE_STORAGE_CONNECTION_STRING: Final = "AZURE_STORAGE_CONNECTION_STRING"
AZURE_STORAGE_ACCOUNT_URL: Final = "AZURE_STORAGE_ACCOUNT_URL"
ALIYUN_BUCKET: Final = "ALIYUN_BUCKET"
ALIYUN_ENDPOINT: Final = "ALIYUN_ENDPOINT"
ALIYUN_REGION: Final = "ALIYUN_REGION"

# ---- feature gates (pkg/features/features.go) ------------------------------------------------------


class FeatureGate(StrEnum):
    RAY_CLUSTER_STATUS_CONDITIONS = "RayClusterStatusConditions"
    RAY_JOB_DELETION_POLICY = "RayJobDeletionPolicy"
    RAY_MULTI_HOST_INDEXING = "RayMultiHostIndexing"
    RAY_SERVICE_INCREMENTAL_UPGRADE = "RayServiceIncrementalUpgrade"
    RAY_CRON_JOB = "RayCronJob"
    SIDECAR_SUBMITTER_RESTART = "SidecarSubmitterRestart"
    RAY_CLUSTER_NETWORK_POLICY = "RayClusterNetworkPolicy"
    GCS_FAULT_TOLERANCE_EMBEDDED_STORAGE = "GCSFaultToleranceEmbeddedStorage"
    RAY_CLUSTER_MTLS = "RayClusterMTLS"
    RAY_CLUSTER_HISTORY_SERVER = "RayClusterHistoryServer"
    KUBERNETES_WAS = "KubernetesWAS"


#: Upstream defaults of every gate (§9). Validators take gate values as a parameter and fall back
#: to these for gates the caller does not mention.
DEFAULT_FEATURE_GATES: Final[dict[str, bool]] = {
    FeatureGate.RAY_CLUSTER_STATUS_CONDITIONS: True,
    FeatureGate.RAY_JOB_DELETION_POLICY: True,
    FeatureGate.RAY_MULTI_HOST_INDEXING: True,
    FeatureGate.RAY_SERVICE_INCREMENTAL_UPGRADE: True,
    FeatureGate.RAY_CRON_JOB: False,
    FeatureGate.SIDECAR_SUBMITTER_RESTART: False,
    FeatureGate.RAY_CLUSTER_NETWORK_POLICY: False,
    FeatureGate.GCS_FAULT_TOLERANCE_EMBEDDED_STORAGE: False,
    FeatureGate.RAY_CLUSTER_MTLS: False,
    FeatureGate.RAY_CLUSTER_HISTORY_SERVER: False,
    FeatureGate.KUBERNETES_WAS: False,
}

# ---- defaults that upstream applies in code (not in the CRD) ---------------------------------------

DEFAULT_SUBMITTER_BACKOFF_LIMIT: Final = 2
DEFAULT_RAY_CLUSTER_DELETION_DELAY_SECONDS: Final = 60
DEFAULT_AUTOSCALER_IDLE_TIMEOUT_SECONDS: Final = 60
DEFAULT_INGRESS_PATH: Final = "/"
DEFAULT_INGRESS_PATH_TYPE: Final = IngressPathType.PREFIX
DEFAULT_GCS_STORAGE_SIZE: Final = "1Gi"
DEFAULT_GCS_STORAGE_ACCESS_MODES: Final = ("ReadWriteOnce",)
DEFAULT_MAX_SURGE_PERCENT: Final = 100
