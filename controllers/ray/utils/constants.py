"""Every name the RayCluster object builders put on the objects they create, defined once.

Labels, annotations, environment variables, port names and numbers, container and volume names,
default names, finalizers, event reasons and operator environment switches used by
``controllers.ray.common`` (upstream ``utils/constant.go``, ``common/pod.go``, ``common/service.go``).
Values are byte-for-byte upstream (KubeRay v1.7.0, spec ``kuberay-behaviour.md`` §4.3-§4.9, §7.3).

Enums that are part of the API (node types, CRD types, submission modes) come from ``api.v1.constants``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from api.v1.constants import API_VERSION, DEFAULT_GCS_STORAGE_SIZE, GROUP, RAY_JOB_CLUSTER_SELECTOR_KEY
from api.v1.constants import COLLECTOR_CONTAINER_NAME as COLLECTOR_CONTAINER_NAME
from api.v1.constants import DEFAULT_SUBMITTER_BACKOFF_LIMIT as DEFAULT_SUBMITTER_BACKOFF_LIMIT
from api.v1.constants import EVENTS_PORT as EVENTS_PORT
from api.v1.constants import FQ_RAY_IP as FQ_RAY_IP
from api.v1.constants import GCS_STORAGE_MOUNT_PATH as GCS_STORAGE_MOUNT_PATH
from api.v1.constants import GCS_STORAGE_VOLUME_NAME as GCS_STORAGE_VOLUME_NAME
from api.v1.constants import KUBERAY_GEN_AUTOSCALER_START_CMD as KUBERAY_GEN_AUTOSCALER_START_CMD
from api.v1.constants import MAX_INT32 as MAX_INT32
from api.v1.constants import MAX_RAY_CLUSTER_NAME_LENGTH as MAX_RAY_CLUSTER_NAME_LENGTH
from api.v1.constants import MAX_RAY_JOB_NAME_LENGTH as MAX_RAY_JOB_NAME_LENGTH
from api.v1.constants import MAX_RAY_SERVICE_NAME_LENGTH as MAX_RAY_SERVICE_NAME_LENGTH
from api.v1.constants import OWNER_KIND as OWNER_KIND
from api.v1.constants import OWNER_NAME as OWNER_NAME
from api.v1.constants import POD_IP as POD_IP
from api.v1.constants import RAY_CLUSTER_LABEL_KEY as RAY_CLUSTER_LABEL_KEY
from api.v1.constants import RAY_CLUSTER_NAME as RAY_CLUSTER_NAME
from api.v1.constants import RAY_CLUSTER_NAMESPACE as RAY_CLUSTER_NAMESPACE
from api.v1.constants import RAY_CONTAINER_INDEX as RAY_CONTAINER_INDEX
from api.v1.constants import RAY_ENABLE_AUTOSCALER_V2 as RAY_ENABLE_AUTOSCALER_V2
from api.v1.constants import RAY_EXTERNAL_STORAGE_NS_ANNOTATION_KEY as RAY_EXTERNAL_STORAGE_NS_ANNOTATION_KEY
from api.v1.constants import RAY_FT_ENABLED_ANNOTATION_KEY as RAY_FT_ENABLED_ANNOTATION_KEY
from api.v1.constants import RAY_GCS_STORAGE as RAY_GCS_STORAGE
from api.v1.constants import RAY_GCS_STORAGE_PATH as RAY_GCS_STORAGE_PATH
from api.v1.constants import RAY_ORIGINATED_FROM_CR_NAME_LABEL_KEY as RAY_ORIGINATED_FROM_CR_NAME_LABEL_KEY
from api.v1.constants import RAY_ORIGINATED_FROM_CRD_LABEL_KEY as RAY_ORIGINATED_FROM_CRD_LABEL_KEY
from api.v1.constants import RAY_REDIS_ADDRESS as RAY_REDIS_ADDRESS
from api.v1.constants import RAY_ROLE as RAY_ROLE
from api.v1.constants import RAY_SERVICE_INITIALIZING_TIMEOUT_ANNOTATION as RAY_SERVICE_INITIALIZING_TIMEOUT_ANNOTATION
from api.v1.constants import RAY_TLS_CA_CERT as RAY_TLS_CA_CERT
from api.v1.constants import RAY_TLS_CERT_MOUNT_PATH as RAY_TLS_CERT_MOUNT_PATH
from api.v1.constants import RAY_TLS_SERVER_CERT as RAY_TLS_SERVER_CERT
from api.v1.constants import RAY_TLS_SERVER_KEY as RAY_TLS_SERVER_KEY
from api.v1.constants import RAY_TLS_VOLUME_NAME as RAY_TLS_VOLUME_NAME
from api.v1.constants import RAY_USE_TLS as RAY_USE_TLS
from api.v1.constants import REDIS_PASSWORD as REDIS_PASSWORD
from api.v1.constants import REDIS_USERNAME as REDIS_USERNAME

# Defined once, with the API types (re-exported for the builders and controllers).
from api.v1.constants import CRDType as CRDType
from api.v1.constants import JobSubmissionMode as JobSubmissionMode
from api.v1.constants import RayNodeType as RayNodeType

# ---- API identity ----------------------------------------------------------------------------------

RAY_API_GROUP: Final = GROUP
RAY_API_VERSION: Final = API_VERSION
RAY_CLUSTER_KIND: Final = "RayCluster"

#: ``KUBERAY_VERSION``: ``"nightly"`` on upstream master, ``"v1.7.0"`` on the release tag the port
#: claims parity with. Builders take the version as a parameter and default to this value.
KUBERAY_VERSION: Final = "v1.7.0"

# ---- node types and CRD types ----------------------------------------------------------------------


# ---- label keys and values -------------------------------------------------------------------------

RAY_NODE_TYPE_LABEL_KEY: Final = "ray.io/node-type"
RAY_NODE_GROUP_LABEL_KEY: Final = "ray.io/group"
RAY_NODE_LABEL_KEY: Final = "ray.io/is-ray-node"
RAY_ID_LABEL_KEY: Final = "ray.io/identifier"
RAY_CLUSTER_SERVING_SERVICE_LABEL_KEY: Final = "ray.io/serve"
RAY_CLUSTER_HEADLESS_SERVICE_LABEL_KEY: Final = "ray.io/headless-worker-svc"
RAY_JOB_SUBMISSION_MODE_LABEL_KEY: Final = "ray.io/job-submission-mode"
RAY_WORKER_REPLICA_INDEX_KEY: Final = "ray.io/worker-group-replica-index"
RAY_WORKER_REPLICA_NAME_KEY: Final = "ray.io/worker-group-replica-name"
RAY_HOST_INDEX_KEY: Final = "ray.io/replica-host-index"
KUBERNETES_APPLICATION_NAME_LABEL_KEY: Final = "app.kubernetes.io/name"
KUBERNETES_CREATED_BY_LABEL_KEY: Final = "app.kubernetes.io/created-by"

#: ``ray.io/is-ray-node`` value.
RAY_NODE_LABEL_VALUE: Final = "yes"
#: ``ray.io/group`` value on the head pod.
RAY_NODE_HEAD_GROUP_LABEL_VALUE: Final = "headgroup"
#: ``app.kubernetes.io/name`` value.
APPLICATION_NAME: Final = "kuberay"
#: ``app.kubernetes.io/created-by`` value.
COMPONENT_NAME: Final = "kuberay-operator"
ENABLE_RAY_CLUSTER_SERVING_SERVICE_TRUE: Final = "true"
ENABLE_RAY_CLUSTER_SERVING_SERVICE_FALSE: Final = "false"

#: Labels a user template may not override on Ray pods (``labelPod``).
PROTECTED_POD_LABEL_KEYS: Final = frozenset({RAY_NODE_TYPE_LABEL_KEY, RAY_NODE_GROUP_LABEL_KEY, RAY_CLUSTER_LABEL_KEY})

# ---- annotation keys -------------------------------------------------------------------------------

RAY_OVERWRITE_CONTAINER_CMD_ANNOTATION_KEY: Final = "ray.io/overwrite-container-cmd"
UPGRADE_STRATEGY_RECREATE_HASH_KEY: Final = "ray.io/upgrade-strategy-recreate-hash"
KUBERAY_VERSION_ANNOTATION_KEY: Final = "ray.io/kuberay-version"
ENABLE_SERVE_SERVICE_KEY: Final = "ray.io/enable-serve-service"
ENABLE_SERVE_SERVICE_TRUE: Final = "true"
DISABLE_PROVISIONED_HEAD_RESTART_ANNOTATION_KEY: Final = "ray.io/disable-provisioned-head-restart"
GCS_FT_DELETION_TIMEOUT_ANNOTATION_KEY: Final = "ray.io/gcs-ft-deletion-timeout"
HASH_WITHOUT_REPLICAS_AND_WORKERS_TO_DELETE_KEY: Final = "ray.io/hash-without-replicas-and-workers-to-delete"
NUM_WORKER_GROUPS_KEY: Final = "ray.io/num-worker-groups"
INGRESS_CLASS_ANNOTATION_KEY: Final = "kubernetes.io/ingress.class"

# ---- finalizers ------------------------------------------------------------------------------------

GCS_FAULT_TOLERANCE_REDIS_CLEANUP_FINALIZER: Final = "ray.io/gcs-ft-redis-cleanup-finalizer"
RAY_JOB_STOP_JOB_FINALIZER: Final = "ray.io/rayjob-finalizer"

# ---- ports -----------------------------------------------------------------------------------------

DEFAULT_CLIENT_PORT: Final = 10001
DEFAULT_GCS_SERVER_PORT: Final = 6379
DEFAULT_DASHBOARD_PORT: Final = 8265
DEFAULT_METRICS_PORT: Final = 8080
DEFAULT_DASHBOARD_AGENT_LISTEN_PORT: Final = 52365
DEFAULT_SERVING_PORT: Final = 8000
#: Two port numbers the porting brief lists next to the defaults above. Neither the spec nor the
#: upstream builders use them and their meaning is unverified; no builder emits them.
UNVERIFIED_PORT_44217: Final = 44217
UNVERIFIED_PORT_44227: Final = 44227
#: History-server collector events port.
DEFAULT_COLLECTOR_EVENTS_PORT: Final = 8084

CLIENT_PORT_NAME: Final = "client"
GCS_SERVER_PORT_NAME: Final = "gcs-server"
DASHBOARD_PORT_NAME: Final = "dashboard"
METRICS_PORT_NAME: Final = "metrics"
SERVING_PORT_NAME: Final = "serve"
#: Suffix of the name given to an unnamed head container port in the head service (``"<port>-port"``).
UNNAMED_PORT_SUFFIX: Final = "-port"

#: ``appProtocol`` on every head service port.
DEFAULT_SERVICE_APP_PROTOCOL: Final = "tcp"

#: Head service ports used when the head container declares none (``getDefaultPorts``).
DEFAULT_HEAD_SERVICE_PORTS: Final[dict[str, int]] = {
    CLIENT_PORT_NAME: DEFAULT_CLIENT_PORT,
    GCS_SERVER_PORT_NAME: DEFAULT_GCS_SERVER_PORT,
    DASHBOARD_PORT_NAME: DEFAULT_DASHBOARD_PORT,
    METRICS_PORT_NAME: DEFAULT_METRICS_PORT,
    SERVING_PORT_NAME: DEFAULT_SERVING_PORT,
}

# ---- names and suffixes ----------------------------------------------------------------------------

DASH_SYMBOL: Final = "-"
HEAD_SERVICE_SUFFIX: Final = "svc"
SERVE_NAME: Final = "serve"
HEADLESS_SERVICE_SUFFIX: Final = "headless"
INGRESS_SUFFIX: Final = "ingress"
ROUTE_SUFFIX: Final = "route"
REDIS_CLEANUP_JOB_SUFFIX: Final = "redis-cleanup"
GCS_STORAGE_PVC_SUFFIX: Final = "gcs-pvc"
TLS_HEAD_SECRET_PREFIX: Final = "ray-head-secret-"
TLS_WORKER_SECRET_PREFIX: Final = "ray-worker-secret-"
TLS_HEAD_CERT_PREFIX: Final = "ray-head-cert-"
TLS_WORKER_CERT_PREFIX: Final = "ray-worker-cert-"

#: Max length of the prefix of a generated pod name: 63 - len("-worker-") - 5 random characters.
MAX_POD_NAME_PREFIX_LENGTH: Final = 50
#: ``CheckName`` keeps the last 50 characters.
CHECK_NAME_MAX_LENGTH: Final = 50
#: ``CheckLabel`` keeps the last 63 characters.
CHECK_LABEL_MAX_LENGTH: Final = 63
#: ``CheckRouteName``: ``51 - len(namespace)``.
ROUTE_NAME_MAX_LENGTH_BASE: Final = 51

DEFAULT_MAX_REPLICAS: Final = MAX_INT32

#: Alphabet of apimachinery ``rand.String`` (no vowels, no ambiguous characters).
RAND_STRING_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
#: Length of the random suffix of generated replica-group, cluster and job names.
RANDOM_SUFFIX_LENGTH: Final = 5

# ---- containers and volumes ------------------------------------------------------------------------

RAY_HEAD_CONTAINER: Final = "ray-head"
AUTOSCALER_CONTAINER_NAME: Final = "autoscaler"
WAIT_GCS_READY_INIT_CONTAINER_NAME: Final = "wait-gcs-ready"
WAIT_FOR_TLS_IP_SAN_INIT_CONTAINER_NAME: Final = "wait-for-tls-ip-san"
RAY_JOB_SUBMITTER_CONTAINER_NAME: Final = "ray-job-submitter"

SHARED_MEMORY_VOLUME_NAME: Final = "shared-mem"
SHARED_MEMORY_VOLUME_MOUNT_PATH: Final = "/dev/shm"
STORAGE_MEDIUM_MEMORY: Final = "Memory"
RAY_LOG_VOLUME_NAME: Final = "ray-logs"
RAY_LOG_VOLUME_MOUNT_PATH: Final = "/tmp/ray"
GCS_STORAGE_DEFAULT_SIZE: Final = DEFAULT_GCS_STORAGE_SIZE
GCS_STORAGE_DEFAULT_ACCESS_MODE: Final = "ReadWriteOnce"
GCS_STORAGE_ROCKSDB_VALUE: Final = "rocksdb"
GCS_STORAGE_DELETION_POLICY_RETAIN: Final = "Retain"
RAY_TOKEN_VOLUME_NAME: Final = "ray-token"
RAY_TOKEN_MOUNT_PATH: Final = "/var/run/secrets/ray.io/serviceaccount"
RAY_TOKEN_PROJECTION_PATH: Final = "token"

# ---- rayStartParams keys ---------------------------------------------------------------------------

PARAM_PORT: Final = "port"
PARAM_ADDRESS: Final = "address"
PARAM_BLOCK: Final = "block"
PARAM_DASHBOARD_HOST: Final = "dashboard-host"
PARAM_DASHBOARD_PORT: Final = "dashboard-port"
PARAM_DASHBOARD_AGENT_LISTEN_PORT: Final = "dashboard-agent-listen-port"
PARAM_METRICS_EXPORT_PORT: Final = "metrics-export-port"
PARAM_NO_MONITOR: Final = "no-monitor"
PARAM_NUM_CPUS: Final = "num-cpus"
PARAM_NUM_GPUS: Final = "num-gpus"
PARAM_MEMORY: Final = "memory"
PARAM_RESOURCES: Final = "resources"
PARAM_LABELS: Final = "labels"
PARAM_PLASMA_DIRECTORY: Final = "plasma-directory"
PARAM_REDIS_PASSWORD: Final = "redis-password"
PARAM_REDIS_USERNAME: Final = "redis-username"
PARAM_AUTOSCALING_CONFIG: Final = "autoscaling-config"
PARAM_OBJECT_STORE_MEMORY: Final = "object-store-memory"

DEFAULT_DASHBOARD_HOST: Final = "0.0.0.0"
#: Flags whose ``true``/``false`` value is always rendered as ``--k=v`` (``convertParamMap``).
SPECIAL_BOOLEAN_PARAMS: Final = ("log-color", "include-dashboard", "include-log-monitor")

# ---- accelerators ----------------------------------------------------------------------------------

NEURON_CORE_CONTAINER_RESOURCE_NAME: Final = "aws.amazon.com/neuroncore"
NEURON_CORE_RAY_RESOURCE_NAME: Final = "neuron_cores"
TPU_CONTAINER_RESOURCE_NAME: Final = "google.com/tpu"
TPU_RAY_RESOURCE_NAME: Final = "TPU"
#: Container resource name -> Ray custom resource name (``customAcceleratorToRayResourceMap``).
CUSTOM_ACCELERATOR_TO_RAY_RESOURCE: Final[dict[str, str]] = {
    NEURON_CORE_CONTAINER_RESOURCE_NAME: NEURON_CORE_RAY_RESOURCE_NAME,
    TPU_CONTAINER_RESOURCE_NAME: TPU_RAY_RESOURCE_NAME,
}
RESOURCE_CPU: Final = "cpu"
#: ``imagePullPolicy`` of the sidecars KubeRay adds (autoscaler, history collector) unless configured.
PULL_IF_NOT_PRESENT: Final = "IfNotPresent"
RESOURCE_MEMORY: Final = "memory"
RESOURCE_STORAGE: Final = "storage"
#: Regex (unanchored at the start, like Go's ``regexp.MatchString``) for NVIDIA MIG resource names.
NVIDIA_MIG_RESOURCE_PATTERN: Final = r"nvidia\.com/mig-\d+g\.\d+gb$"

# ---- environment variables set on Ray containers ---------------------------------------------------

RAY_HEAD_POD_NAME: Final = "RAY_HEAD_POD_NAME"
KUBERAY_CRD_VER: Final = "KUBERAY_CRD_VER"
KUBERAY_CRD_VER_VALUE: Final = "v1"
RAY_IP: Final = "RAY_IP"
RAY_PORT: Final = "RAY_PORT"
RAY_ADDRESS: Final = "RAY_ADDRESS"
RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE: Final = "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE"
RAY_EXTERNAL_STORAGE_NS: Final = "RAY_external_storage_namespace"
RAY_GCS_RPC_SERVER_RECONNECT_TIMEOUT_S: Final = "RAY_gcs_rpc_server_reconnect_timeout_s"
RAY_TIMEOUT_MS_TASK_WAIT_FOR_DEATH_INFO: Final = "RAY_timeout_ms_task_wait_for_death_info"
RAY_GCS_SERVER_REQUEST_TIMEOUT_SECONDS: Final = "RAY_gcs_server_request_timeout_seconds"
RAY_SERVE_KV_TIMEOUT_S: Final = "RAY_SERVE_KV_TIMEOUT_S"
RAY_USAGE_STATS_KUBERAY_IN_USE: Final = "RAY_USAGE_STATS_KUBERAY_IN_USE"
RAY_USAGE_STATS_EXTRA_TAGS: Final = "RAY_USAGE_STATS_EXTRA_TAGS"
KUBERAY_GEN_RAY_START_CMD: Final = "KUBERAY_GEN_RAY_START_CMD"
RAY_CLOUD_INSTANCE_ID: Final = "RAY_CLOUD_INSTANCE_ID"
RAY_NODE_TYPE_NAME: Final = "RAY_NODE_TYPE_NAME"
RAY_START_ULIMIT_OPEN_FILES: Final = "RAY_START_ULIMIT_OPEN_FILES"
RAY_AUTH_MODE_ENV_VAR: Final = "RAY_AUTH_MODE"
RAY_AUTH_TOKEN_ENV_VAR: Final = "RAY_AUTH_TOKEN"
RAY_ENABLE_K8S_TOKEN_AUTH_ENV_VAR: Final = "RAY_ENABLE_K8S_TOKEN_AUTH"
RAY_AUTH_TOKEN_SECRET_KEY: Final = "auth_token"
RAY_AUTH_MODE_TOKEN: Final = "token"
RAY_REDIS_DB_CONNECT_RETRIES: Final = "RAY_redis_db_connect_retries"
RAY_REDIS_DB_CONNECT_WAIT_MILLISECONDS: Final = "RAY_redis_db_connect_wait_milliseconds"
RAY_DASHBOARD_ADDRESS: Final = "RAY_DASHBOARD_ADDRESS"
RAY_JOB_SUBMISSION_ID: Final = "RAY_JOB_SUBMISSION_ID"
#: ``RAY=true`` was the pre-v1 way of marking the Ray container (no longer honoured).
LOCAL_HOST: Final = "127.0.0.1"
DEFAULT_WORKER_RAY_GCS_RECONNECT_TIMEOUT_S: Final = "600"

#: Field paths used by downward-API env vars.
FIELD_PATH_CLUSTER_LABEL: Final = "metadata.labels['ray.io/cluster']"
FIELD_PATH_GROUP_LABEL: Final = "metadata.labels['ray.io/group']"
FIELD_PATH_NAMESPACE: Final = "metadata.namespace"
FIELD_PATH_NAME: Final = "metadata.name"
FIELD_PATH_POD_IP: Final = "status.podIP"

# ---- generated commands ----------------------------------------------------------------------------

#: The shell every generated command runs in; ``-c`` becomes ``-cl`` with ``ENABLE_LOGIN_SHELL=true``.
BASH: Final = "/bin/bash"
BASH_END_OF_OPTIONS: Final = "--"
#: ``ulimit`` prefix of the generated Ray container command.
ULIMIT_COMMAND: Final = "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}"
AUTOSCALER_START_COMMAND: Final = (
    "ray kuberay-autoscaler --cluster-name $(RAY_CLUSTER_NAME) --cluster-namespace $(RAY_CLUSTER_NAMESPACE)"
)
#: Command of the Redis cleanup Job's container (hard-coded login shell upstream).
REDIS_CLEANUP_COMMAND: Final = ("/bin/bash", "-lc", "--")
WAIT_GCS_READY_FAQ_URL: Final = "https://docs.ray.io/en/master/cluster/kubernetes/troubleshooting.html"
GCS_FT_DOCS_URL: Final = "https://docs.ray.io/en/master/cluster/kubernetes/user-guides/kuberay-gcs-ft.html"

# ---- probes ----------------------------------------------------------------------------------------

DEFAULT_READINESS_PROBE_INITIAL_DELAY_SECONDS: Final = 10
DEFAULT_READINESS_PROBE_TIMEOUT_SECONDS: Final = 2
DEFAULT_HEAD_READINESS_PROBE_TIMEOUT_SECONDS: Final = 5
DEFAULT_READINESS_PROBE_PERIOD_SECONDS: Final = 5
DEFAULT_READINESS_PROBE_SUCCESS_THRESHOLD: Final = 1
DEFAULT_READINESS_PROBE_FAILURE_THRESHOLD: Final = 10
SERVE_READINESS_PROBE_FAILURE_THRESHOLD: Final = 1

DEFAULT_LIVENESS_PROBE_INITIAL_DELAY_SECONDS: Final = 30
DEFAULT_LIVENESS_PROBE_TIMEOUT_SECONDS: Final = 2
DEFAULT_HEAD_LIVENESS_PROBE_TIMEOUT_SECONDS: Final = 5
DEFAULT_LIVENESS_PROBE_PERIOD_SECONDS: Final = 5
DEFAULT_LIVENESS_PROBE_SUCCESS_THRESHOLD: Final = 1
DEFAULT_LIVENESS_PROBE_FAILURE_THRESHOLD: Final = 120

RAY_AGENT_RAYLET_HEALTH_PATH: Final = "api/local_raylet_healthz"
RAY_DASHBOARD_GCS_HEALTH_PATH: Final = "api/gcs_healthz"
RAY_SERVE_PROXY_HEALTH_PATH: Final = "-/healthz"
#: HTTP health endpoint served by the dashboard agent from Ray 2.53.0 on.
RAY_NODE_HEALTH_PATH: Final = "/api/healthz"
#: ``wget --tries 1 -T <timeout> -q -O- http://localhost:<port>/<path> | grep success``.
BASE_WGET_HEALTH_COMMAND: Final = "wget --tries 1 -T {timeout} -q -O- http://localhost:{port}/{path} | grep success"
#: First Ray version whose probes use ``httpGet`` instead of ``exec``.
UNIFIED_HEALTH_CHECK_MIN_RAY_VERSION: Final = "2.53.0"

# ---- fixed resources -------------------------------------------------------------------------------

AUTOSCALER_DEFAULT_CPU: Final = "500m"
AUTOSCALER_DEFAULT_MEMORY: Final = "512Mi"
WAIT_GCS_READY_CPU: Final = "200m"
WAIT_GCS_READY_MEMORY: Final = "256Mi"
REDIS_CLEANUP_CPU: Final = "200m"
REDIS_CLEANUP_MEMORY: Final = "256Mi"
REDIS_CLEANUP_ACTIVE_DEADLINE_SECONDS: Final = 300
REDIS_CLEANUP_BACKOFF_LIMIT: Final = 0

# ---- autoscaler ------------------------------------------------------------------------------------

AUTOSCALER_VERSION_V1: Final = "v1"
AUTOSCALER_VERSION_V2: Final = "v2"
GCS_FT_BACKEND_REDIS: Final = "redis"
GCS_FT_BACKEND_ROCKSDB: Final = "rocksdb"

# ---- operator environment switches (§7.3; passed to builders as a Mapping) -------------------------

CLUSTER_DOMAIN_ENV_KEY: Final = "CLUSTER_DOMAIN"
DEFAULT_DOMAIN_NAME: Final = "cluster.local"
RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV: Final = "RAYCLUSTER_DEFAULT_REQUEUE_SECONDS_ENV"
RAYCLUSTER_DEFAULT_REQUEUE_SECONDS: Final = 300
ENABLE_INIT_CONTAINER_INJECTION: Final = "ENABLE_INIT_CONTAINER_INJECTION"
ENABLE_PROBES_INJECTION: Final = "ENABLE_PROBES_INJECTION"
ENABLE_RANDOM_POD_DELETE: Final = "ENABLE_RANDOM_POD_DELETE"
ENABLE_GCS_FT_REDIS_CLEANUP: Final = "ENABLE_GCS_FT_REDIS_CLEANUP"
ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE: Final = "ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE"
USE_INGRESS_ON_OPENSHIFT: Final = "USE_INGRESS_ON_OPENSHIFT"
ENABLE_LOGIN_SHELL: Final = "ENABLE_LOGIN_SHELL"
ENABLE_DETERMINISTIC_HEAD_POD_NAME: Final = "ENABLE_DETERMINISTIC_HEAD_POD_NAME"
DELETE_RAYJOB_CR_AFTER_JOB_FINISHES: Final = "DELETE_RAYJOB_CR_AFTER_JOB_FINISHES"
RAYJOB_DEPLOYMENT_STATUS_TRANSITION_GRACE_PERIOD_SECONDS: Final = (
    "RAYJOB_DEPLOYMENT_STATUS_TRANSITION_GRACE_PERIOD_SECONDS"
)
RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS: Final = "RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS"
ENABLE_ZERO_DOWNTIME: Final = "ENABLE_ZERO_DOWNTIME"
ENABLE_WEBHOOKS: Final = "ENABLE_WEBHOOKS"

# ---- feature gates that change builder output ------------------------------------------------------

FEATURE_RAY_MULTI_HOST_INDEXING: Final = "RayMultiHostIndexing"
FEATURE_GCS_FT_EMBEDDED_STORAGE: Final = "GCSFaultToleranceEmbeddedStorage"
FEATURE_RAY_CLUSTER_MTLS: Final = "RayClusterMTLS"
FEATURE_RAY_CLUSTER_HISTORY_SERVER: Final = "RayClusterHistoryServer"
#: Defaults of the gates above (§9).
DEFAULT_BUILDER_FEATURE_GATES: Final[dict[str, bool]] = {
    FEATURE_RAY_MULTI_HOST_INDEXING: True,
    FEATURE_GCS_FT_EMBEDDED_STORAGE: False,
    FEATURE_RAY_CLUSTER_MTLS: False,
    FEATURE_RAY_CLUSTER_HISTORY_SERVER: False,
}

# ---- RBAC ------------------------------------------------------------------------------------------

RBAC_API_VERSION: Final = "rbac.authorization.k8s.io/v1"
RBAC_API_GROUP: Final = "rbac.authorization.k8s.io"
SERVICE_ACCOUNT_KIND: Final = "ServiceAccount"
ROLE_KIND: Final = "Role"

# ---- event reasons (§3.17, §4.12) ------------------------------------------------------------------


class EventReason(StrEnum):
    """Event reasons recorded by the RayCluster and RayJob controllers."""

    INVALID_RAY_CLUSTER_STATUS = "InvalidRayClusterStatus"
    INVALID_RAY_CLUSTER_SPEC = "InvalidRayClusterSpec"
    INVALID_RAY_CLUSTER_METADATA = "InvalidRayClusterMetadata"
    CREATED_HEAD_POD = "CreatedHeadPod"
    FAILED_TO_CREATE_HEAD_POD = "FailedToCreateHeadPod"
    DELETED_HEAD_POD = "DeletedHeadPod"
    FAILED_TO_DELETE_HEAD_POD = "FailedToDeleteHeadPod"
    CREATED_WORKER_POD = "CreatedWorkerPod"
    FAILED_TO_CREATE_WORKER_POD = "FailedToCreateWorkerPod"
    DELETED_WORKER_POD = "DeletedWorkerPod"
    FAILED_TO_DELETE_WORKER_POD = "FailedToDeleteWorkerPod"
    FAILED_TO_DELETE_WORKER_POD_COLLECTION = "FailedToDeleteWorkerPodCollection"
    DELETED_POD = "DeletedPod"
    FAILED_TO_DELETE_POD = "FailedToDeletePod"
    FAILED_TO_DELETE_POD_COLLECTION = "FailedToDeletePodCollection"
    CREATED_SERVICE = "CreatedService"
    UPDATED_SERVICE = "UpdatedService"
    FAILED_TO_CREATE_SERVICE = "FailedToCreateService"
    FAILED_TO_UPDATE_SERVICE = "FailedToUpdateService"
    CREATED_INGRESS = "CreatedIngress"
    FAILED_TO_CREATE_INGRESS = "FailedToCreateIngress"
    UPDATED_INGRESS = "UpdatedIngress"
    FAILED_TO_UPDATE_INGRESS = "FailedToUpdateIngress"
    CREATED_ROUTE = "CreatedRoute"
    FAILED_TO_CREATE_ROUTE = "FailedToCreateRoute"
    CREATED_SERVICE_ACCOUNT = "CreatedServiceAccount"
    FAILED_TO_CREATE_SERVICE_ACCOUNT = "FailedToCreateServiceAccount"
    AUTOSCALER_SERVICE_ACCOUNT_NOT_FOUND = "AutoscalerServiceAccountNotFound"
    CREATED_ROLE = "CreatedRole"
    FAILED_TO_CREATE_ROLE = "FailedToCreateRole"
    CREATED_ROLE_BINDING = "CreatedRoleBinding"
    FAILED_TO_CREATE_ROLE_BINDING = "FailedToCreateRoleBinding"
    CREATED_REDIS_CLEANUP_JOB = "CreatedRedisCleanupJob"
    FAILED_TO_CREATE_REDIS_CLEANUP_JOB = "FailedToCreateRedisCleanupJob"
    FORCE_DELETED_STUCK_CLUSTER = "ForceDeletedStuckCluster"
    CREATED_PVC = "CreatedPVC"
    FAILED_TO_CREATE_PVC = "FailedToCreatePVC"
    # RayJob
    INVALID_RAY_JOB_SPEC = "InvalidRayJobSpec"
    INVALID_RAY_JOB_METADATA = "InvalidRayJobMetadata"
    INVALID_RAY_JOB_STATUS = "InvalidRayJobStatus"
    CREATED_RAY_JOB_SUBMITTER = "CreatedRayJobSubmitter"
    DELETED_RAY_JOB_SUBMITTER = "DeletedRayJobSubmitter"
    FAILED_TO_CREATE_RAY_JOB_SUBMITTER = "FailedToCreateRayJobSubmitter"
    FAILED_TO_DELETE_RAY_JOB_SUBMITTER = "FailedToDeleteRayJobSubmitter"
    CREATED_RAY_CLUSTER = "CreatedRayCluster"
    UPDATED_RAY_CLUSTER = "UpdatedRayCluster"
    DELETED_RAY_CLUSTER = "DeletedRayCluster"
    FAILED_TO_CREATE_RAY_CLUSTER = "FailedToCreateRayCluster"
    FAILED_TO_DELETE_RAY_CLUSTER = "FailedToDeleteRayCluster"
    FAILED_TO_UPDATE_RAY_CLUSTER = "FailedToUpdateRayCluster"
    RAY_CLUSTER_NOT_FOUND = "RayClusterNotFound"
    BATCH_SCHEDULER_CLEANED_UP = "BatchSchedulerCleanedUp"
    FAILED_TO_CLEANUP_BATCH_SCHEDULER = "FailedToCleanupBatchScheduler"


# ---- RayJob builders (§3.4-§3.8, ``common/job.go``, ``rayjob_controller.go``) -----------------------

RAY_JOB_KIND: Final = "RayJob"
BATCH_API_VERSION: Final = "batch/v1"
BATCH_JOB_KIND: Final = "Job"


#: The clusterSelector key naming an existing RayCluster (``RayJobDefaultClusterSelectorKey``).
RAY_JOB_DEFAULT_CLUSTER_SELECTOR_KEY: Final = RAY_JOB_CLUSTER_SELECTOR_KEY
#: Resources of the default submitter container (``GetDefaultSubmitterContainer``).
SUBMITTER_DEFAULT_CPU_LIMIT: Final = "1"
SUBMITTER_DEFAULT_MEMORY_LIMIT: Final = "1Gi"
SUBMITTER_DEFAULT_CPU_REQUEST: Final = "500m"
SUBMITTER_DEFAULT_MEMORY_REQUEST: Final = "200Mi"
#: Env var set to ``1`` on every submitter container for real-time logs.
PYTHON_UNBUFFERED_ENV_VAR: Final = "PYTHONUNBUFFERED"
#: ``restartPolicy`` of the default submitter pod and of the head pod in SidecarMode.
RESTART_POLICY_NEVER: Final = "Never"
#: Container-level ``restartPolicy`` of the sidecar submitter with gate ``SidecarSubmitterRestart``.
RESTART_POLICY_ON_FAILURE: Final = "OnFailure"
#: ``ray.io/disable-provisioned-head-restart`` value set on SidecarMode clusters.
DISABLE_PROVISIONED_HEAD_RESTART_TRUE: Final = "true"
#: Scheme KubeRay prefixes to ``status.dashboardURL`` when it lacks exactly this prefix.
HTTP_SCHEME_PREFIX: Final = "http://"
#: ``--timeout`` of the GCS-health probe in the submitter's wait loop.
RAY_DASHBOARD_GCS_HEALTH_CHECK_TIMEOUT_SECONDS: Final = 10
#: Seconds the submitter's wait loop sleeps between GCS-health probes.
SUBMITTER_GCS_HEALTH_WAIT_SLEEP_SECONDS: Final = 2
#: One shell token: the GCS-health probe of the submitter's wait loop (``{url}``, ``{timeout}``).
BASE_PYTHON_HEALTH_COMMAND: Final = (
    "python -c \"import urllib.request; r=urllib.request.urlopen('{url}', timeout={timeout}); "
    "exit(0 if b'success' in r.read() else 1)\""
)
#: First Ray version whose ``ray job submit`` knows ``--metadata-json``.
MIN_RAY_VERSION_FOR_JOB_METADATA: Final = "2.6.0"
#: Feature gate: sidecar submitter ``restartPolicy: OnFailure`` plus the status-guarded submit.
FEATURE_SIDECAR_SUBMITTER_RESTART: Final = "SidecarSubmitterRestart"


# ---- RayService (spec rayservice.md §2, §3, §6) -----------------------------------------------------

RAY_SERVICE_KIND: Final = "RayService"
RAY_SERVICE_FINALIZER: Final = "ray.io/rayservice-finalizer"
#: Operator identity compared with ``spec.managedBy``.
KUBERAY_OPERATOR_MANAGER: Final = "ray.io/kuberay-operator"
#: ``ServiceDefaultRequeueDuration``.
RAY_SERVICE_DEFAULT_REQUEUE_SECONDS: Final = 2.0
#: ``RayClusterDeletionDelayDuration`` (``rayClusterDeletionDelaySeconds`` unset).
RAY_CLUSTER_DELETION_DELAY_SECONDS: Final = 60
#: Entries of the per-RayService serve-config cache (``ServeConfigLRUSize``).
SERVE_CONFIG_LRU_SIZE: Final = 1000
#: Label key of EndpointSlices naming their Service.
ENDPOINTSLICE_SERVICE_NAME_LABEL_KEY: Final = "kubernetes.io/service-name"
#: ``target_capacity`` key of a Serve config.
SERVE_TARGET_CAPACITY_KEY: Final = "target_capacity"
#: Name suffixes of the Gateway API objects of incremental upgrades.
GATEWAY_SUFFIX: Final = "-gateway"
HTTPROUTE_SUFFIX: Final = "-httproute"
#: Serve application status that counts as ready; ``""`` app names are reported as ``default``.
SERVE_APPLICATION_RUNNING: Final = "RUNNING"
SERVE_DEFAULT_APPLICATION_NAME: Final = "default"


class RayServiceEventReason(StrEnum):
    """Event reasons recorded by the RayService controller (spec rayservice.md §6.2)."""

    INVALID_RAY_SERVICE_METADATA = "InvalidRayServiceMetadata"
    INVALID_RAY_SERVICE_SPEC = "InvalidRayServiceSpec"
    CREATED_RAY_CLUSTER = "CreatedRayCluster"
    FAILED_TO_CREATE_RAY_CLUSTER = "FailedToCreateRayCluster"
    UPDATED_RAY_CLUSTER = "UpdatedRayCluster"
    FAILED_TO_UPDATE_RAY_CLUSTER = "FailedToUpdateRayCluster"
    DELETED_RAY_CLUSTER = "DeletedRayCluster"
    FAILED_TO_DELETE_RAY_CLUSTER = "FailedToDeleteRayCluster"
    CREATED_SERVICE = "CreatedService"
    FAILED_TO_CREATE_SERVICE = "FailedToCreateService"
    UPDATED_SERVICE = "UpdatedService"
    FAILED_TO_UPDATE_SERVICE = "FailedToUpdateService"
    DELETED_SERVICE = "DeletedService"
    FAILED_TO_DELETE_SERVICE = "FailedToDeleteService"
    UPDATED_HEAD_POD_SERVE_LABEL = "UpdatedHeadPodServeLabel"
    FAILED_TO_UPDATE_HEAD_POD_SERVE_LABEL = "FailedToUpdateHeadPodServeLabel"
    UPDATED_SERVE_APPLICATIONS = "UpdatedServeApplications"
    FAILED_TO_UPDATE_SERVE_APPLICATIONS = "FailedToUpdateServeApplications"
    UPDATED_SERVE_TARGET_CAPACITY = "UpdatedServeTargetCapacity"
    FAILED_TO_UPDATE_TARGET_CAPACITY = "FailedToUpdateTargetCapacity"
    CREATED_GATEWAY = "CreatedGateway"
    FAILED_TO_CREATE_GATEWAY = "FailedToCreateGateway"
    UPDATED_GATEWAY = "UpdatedGateway"
    FAILED_TO_UPDATE_GATEWAY = "FailedToUpdateGateway"
    DELETED_GATEWAY = "DeletedGateway"
    FAILED_TO_DELETE_GATEWAY = "FailedToDeleteGateway"
    CREATED_HTTPROUTE = "CreatedHTTPRoute"
    FAILED_TO_CREATE_HTTPROUTE = "FailedToCreateHTTPRoute"
    UPDATED_HTTPROUTE = "UpdatedHTTPRoute"
    FAILED_TO_UPDATE_HTTPROUTE = "FailedToUpdateHTTPRoute"
    DELETED_HTTPROUTE = "DeletedHTTPRoute"
    FAILED_TO_DELETE_HTTPROUTE = "FailedToDeleteHTTPRoute"
    ROLLBACK_IMPOSSIBLE = "RollbackImpossible"
    RAY_SERVICE_INITIALIZING_TIMEOUT = "RayServiceInitializingTimeout"


# ---- RayCronJob (raycluster-extensions.md §7) ------------------------------------------------------------

RAY_CRON_JOB_KIND: Final = "RayCronJob"
#: Label of every RayJob a RayCronJob creates (its only label): the RayCronJob's name.
RAY_CRON_JOB_NAME_LABEL_KEY: Final = "ray.io/cronjob-name"
#: Annotation of every RayJob a RayCronJob creates (its only annotation): the tick, UTC RFC 3339.
RAY_CRON_JOB_TIMESTAMP_ANNOTATION_KEY: Final = "ray.io/cronjob-scheduled-timestamp"
#: ``RayCronJobDefaultRequeueDuration``: after a failed read or status write.
RAY_CRON_JOB_DEFAULT_REQUEUE_SECONDS: Final = 3.0


class RayCronJobEventReason(StrEnum):
    """Event reasons recorded by the RayCronJob controller."""

    INVALID_RAY_CRON_JOB_SPEC = "InvalidRayCronJobSpec"
    SUSPENDED_RAY_CRON_JOB = "SuspendedRayCronJob"


# ---- NetworkPolicy (raycluster-extensions.md §5) ---------------------------------------------------------


class NetworkPolicyEventReason(StrEnum):
    """Event reasons recorded by the NetworkPolicy controller (on the RayCluster)."""

    CREATED = "CreatedNetworkPolicy"
    UPDATED = "UpdatedNetworkPolicy"
    DELETED = "DeletedNetworkPolicy"
    FAILED_TO_CREATE = "FailedToCreateNetworkPolicy"
    FAILED_TO_UPDATE = "FailedToUpdateNetworkPolicy"
    FAILED_TO_DELETE = "FailedToDeleteNetworkPolicy"
    NAME_COLLISION = "NetworkPolicyNameCollision"
