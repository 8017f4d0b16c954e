"""ray.io/v1 RayCluster (``apis/ray/v1/raycluster_types.go``)."""

from __future__ import annotations

from .constants import (
    GROUP,
    MAX_INT32,
    VERSION,
    AuthMode,
    AutoscalerVersion,
    FeatureGate,
    GcsFaultToleranceBackend,
    GCSStorageDeletionPolicy,
    IngressPathType,
    NetworkPolicyMode,
    RayClusterUpgradeType,
    UpscalingMode,
)
from .core import K8S_CORE, K8S_NETWORKING, Condition, EnvVar, PodTemplate, VolumeMount
from .fields import (
    Embedded,
    EmbeddedList,
    Int32,
    Int64,
    KindInfo,
    Obj,
    ObjList,
    OptBool,
    OptInt32,
    OptObj,
    OptStr,
    PrinterColumn,
    Quantity,
    Str,
    StrList,
    StrMap,
    Time,
    TimeMap,
    View,
    XValidation,
)
from .object import ListMeta, TopLevel

__all__ = [
    "MANAGED_BY_VALIDATIONS",
    "AuthOptions",
    "AutoscalerOptions",
    "CollectorOptions",
    "GcsEmbeddedStorage",
    "GcsFaultToleranceOptions",
    "HeadGroupSpec",
    "HeadInfo",
    "HistoryServerOptions",
    "IngressOptions",
    "NetworkPolicyConfig",
    "NetworkPolicyRules",
    "RayCluster",
    "RayClusterList",
    "RayClusterSpec",
    "RayClusterStatus",
    "RayClusterUpgradeStrategy",
    "RedisCredential",
    "ScaleStrategy",
    "TLSOptions",
    "WorkerGroupNetworkPolicyRules",
    "WorkerGroupSpec",
]

#: The two CEL rules on every ``managedBy`` field (RayCluster, RayJob, RayService).
MANAGED_BY_VALIDATIONS = (
    XValidation("self == oldSelf", "the managedBy field is immutable"),
    XValidation(
        "self in ['ray.io/kuberay-operator', 'kueue.x-k8s.io/multikueue']",
        "the managedBy field value must be either 'ray.io/kuberay-operator' or 'kueue.x-k8s.io/multikueue'",
    ),
)


class TLSOptions(View):
    """TLS settings of a RayCluster. mTLS is on only when ``enabled`` is true (gate RayClusterMTLS)."""

    __slots__ = ()

    enabled = OptBool("enabled", doc="Whether mTLS is active for this RayCluster. Defaults to false.")


class RayClusterUpgradeStrategy(View):
    """How the RayCluster Pods are upgraded when the spec changes."""

    __slots__ = ()

    type = OptStr(
        "type",
        doc="Upgrade strategy of the RayCluster Pods: Recreate or None.",
        enum=tuple(RayClusterUpgradeType),
    )


class AuthOptions(View):
    """Authentication options of a RayCluster."""

    __slots__ = ()

    enable_k8s_token_auth = OptBool(
        "enableK8sTokenAuth",
        doc="Delegate token authentication to the Kubernetes API server (standalone RayClusters only).",
    )
    secret_name = OptStr(
        "secretName",
        doc="Name of a user Secret holding the token under the key auth_token; KubeRay then does not generate one.",
    )
    mode = Str(
        "mode",
        doc='Authentication mode: "disabled" or "token".',
        enum=tuple(AuthMode),
    )


class RedisCredential(View):
    """A Redis username or password, given inline or through a reference."""

    __slots__ = ()

    value_from = Embedded("valueFrom", k8s_ref=f"{K8S_CORE}.EnvVarSource")
    value = Str("value")


class GcsEmbeddedStorage(View):
    """The PVC backing the embedded RocksDB GCS store."""

    __slots__ = ()

    claim_name = Str(
        "claimName",
        doc="An existing user-owned PVC to use; exclusive with size, storageClassName and accessModes.",
    )
    size = Quantity("size", doc="Size of the operator-managed PVC. Defaults to 1Gi.")
    storage_class_name = OptStr("storageClassName", doc="StorageClass of the operator-managed PVC.")
    access_modes = StrList("accessModes", doc="Access modes of the operator-managed PVC. Defaults to [ReadWriteOnce].")
    sub_path = Str("subPath", doc="Mount a subdirectory of the volume instead of its root.")
    deletion_policy = OptStr(
        "deletionPolicy",
        doc="Lifecycle of the operator-managed PVC: DeleteWithCluster (default) or Retain.",
        enum=tuple(GCSStorageDeletionPolicy),
    )


class GcsFaultToleranceOptions(View):
    """GCS fault tolerance settings."""

    __slots__ = ()

    backend = Str(
        "backend",
        doc='Persistence backend: "redis" (default) or "rocksdb". Immutable.',
        enum=tuple(GcsFaultToleranceBackend),
        x_validations=(XValidation("self == oldSelf", "gcsFaultToleranceOptions.backend is immutable"),),
    )
    redis_username = OptObj("redisUsername", RedisCredential)
    redis_password = OptObj("redisPassword", RedisCredential)
    external_storage_namespace = Str("externalStorageNamespace")
    redis_address = Str("redisAddress", doc="Address of the external Redis (redis backend).")
    storage = OptObj("storage", GcsEmbeddedStorage, doc="Volume of the embedded RocksDB store (rocksdb backend).")


class CollectorOptions(View):
    """The history-server collector sidecar."""

    __slots__ = ()

    image = OptStr("image", doc="Collector container image.")
    image_pull_policy = OptStr("imagePullPolicy", doc="Pull policy of the collector image.")
    resources = Embedded("resources", k8s_ref=f"{K8S_CORE}.ResourceRequirements")
    env = ObjList("env", EnvVar, doc="Extra environment variables of the collector container.")


class HistoryServerOptions(View):
    """History server settings."""

    __slots__ = ()

    collector_options = OptObj("collectorOptions", CollectorOptions, doc="Collector sidecar configuration.")


class NetworkPolicyRules(View):
    """Extra ingress and egress rules appended to a generated NetworkPolicy."""

    __slots__ = ()

    ingress_rules = EmbeddedList(
        "ingressRules",
        doc="Ingress rules; only meaningful when ingress is denied (DenyAll or DenyAllIngress).",
        k8s_ref=f"{K8S_NETWORKING}.NetworkPolicyIngressRule",
    )
    egress_rules = EmbeddedList(
        "egressRules",
        doc="Egress rules; only meaningful when egress is denied (DenyAll or DenyAllEgress). DNS egress "
        "is not added automatically.",
        k8s_ref=f"{K8S_NETWORKING}.NetworkPolicyEgressRule",
    )


class WorkerGroupNetworkPolicyRules(View):
    """NetworkPolicy rules bound to one worker group."""

    __slots__ = ()

    group_name = Str("groupName", doc="Matches WorkerGroupSpec.groupName.", required=True, omitempty=False)
    ingress_rules = NetworkPolicyRules.ingress_rules
    egress_rules = NetworkPolicyRules.egress_rules


class NetworkPolicyConfig(View):
    """Network isolation of a RayCluster; intra-cluster traffic is always allowed."""

    __slots__ = ()

    mode = OptStr(
        "mode",
        doc="DenyAll (default), DenyAllIngress or DenyAllEgress.",
        enum=tuple(NetworkPolicyMode),
        default=NetworkPolicyMode.DENY_ALL.value,
    )
    head = OptObj("head", NetworkPolicyRules, doc="Extra rules of the head Pod policy.")
    worker = OptObj("worker", NetworkPolicyRules, doc="Extra rules of the worker Pods policy (default for groups).")
    worker_groups = ObjList(
        "workerGroups",
        WorkerGroupNetworkPolicyRules,
        doc="Per-worker-group rules; an entry replaces `worker` for that group.",
        list_type="map",
        list_map_keys=("groupName",),
    )


class IngressOptions(View):
    """Host, path and TLS of the Ingress generated for the head group."""

    __slots__ = ()

    host = OptStr("host", doc="Host routed to the dashboard; any host when unset.")
    path = OptStr("path", doc='HTTP path routed to the dashboard; "/" when unset.')
    path_type = OptStr(
        "pathType",
        doc='Path matching mode; "Prefix" when unset.',
        enum=tuple(IngressPathType),
    )
    tls = EmbeddedList("tls", doc="TLS termination of the Ingress.", k8s_ref=f"{K8S_NETWORKING}.IngressTLS")


class HeadGroupSpec(View):
    """The head Pod of a RayCluster."""

    __slots__ = ()

    template = Obj(
        "template",
        PodTemplate,
        doc="Pod template of the head; containers[0] is the Ray container.",
        required=True,
        omitempty=False,
    )
    head_service = Embedded(
        "headService",
        doc="Custom head Service; its name overrides <cluster>-head-svc.",
        k8s_ref=f"{K8S_CORE}.Service",
    )
    enable_ingress = OptBool("enableIngress", doc="Create an Ingress (a Route on OpenShift) for the head.")
    ingress_options = OptObj("ingressOptions", IngressOptions, doc="Ingress configuration of the head.")
    resources = StrMap(
        "resources",
        doc="Ray resources of the group; overrides the resource flags of rayStartParams.",
    )
    labels = StrMap("labels", doc="Ray node labels of the group; also added to the Pods.")
    ray_start_params = StrMap(
        "rayStartParams",
        doc="Parameters of `ray start`: node-manager-port, object-store-memory, ...",
        omitempty=False,
    )
    service_type = Str("serviceType", doc="Type of the head Service.")


class ScaleStrategy(View):
    """Which worker Pods to remove."""

    __slots__ = ()

    workers_to_delete = StrList("workersToDelete", doc="Pod names to delete.")


class WorkerGroupSpec(View):
    """A group of worker Pods."""

    __slots__ = ()

    suspend = OptBool(
        "suspend",
        doc="Delete all Pods of the group. Not user-facing: set by the RayJob DeleteWorkers policy.",
        feature_gate=FeatureGate.RAY_JOB_DELETION_POLICY,
    )
    group_name = Str("groupName", doc="Name of the group, unique in the cluster.", required=True, omitempty=False)
    replicas = OptInt32("replicas", doc="Desired number of replicas, clamped to [minReplicas, maxReplicas].", default=0)
    min_replicas = OptInt32("minReplicas", doc="Minimum number of replicas.", required=True, omitempty=False, default=0)
    max_replicas = OptInt32(
        "maxReplicas",
        doc="Maximum number of replicas; maxInt32 by default.",
        required=True,
        omitempty=False,
        default=MAX_INT32,
    )
    idle_timeout_seconds = OptInt32(
        "idleTimeoutSeconds",
        doc="Seconds before autoscaler v2 removes an idle worker of this group.",
    )
    priority = OptInt32(
        "priority",
        doc="Autoscaler preference among groups (higher first); needs autoscaler v2 and Ray >= 2.56.",
        default=0,
    )
    resources = HeadGroupSpec.resources
    labels = HeadGroupSpec.labels
    ray_start_params = StrMap(
        "rayStartParams",
        doc="Parameters of `ray start`: address, object-store-memory, ...",
        omitempty=False,
    )
    template = Obj("template", PodTemplate, doc="Pod template of the workers.", required=True, omitempty=False)
    scale_strategy = Obj("scaleStrategy", ScaleStrategy, doc="Which Pods to remove.")
    num_of_hosts = Int32("numOfHosts", doc="Number of hosts (Pods) per replica.", default=1)


class AutoscalerOptions(View):
    """Configuration of the Ray autoscaler sidecar."""

    __slots__ = ()

    resources = Embedded(
        "resources",
        doc="Resources of the autoscaler container; 500m CPU and 512Mi memory by default.",
        k8s_ref=f"{K8S_CORE}.ResourceRequirements",
    )
    image = OptStr("image", doc="Autoscaler image override.")
    image_pull_policy = OptStr("imagePullPolicy", doc="Autoscaler image pull policy override.")
    security_context = Embedded("securityContext", k8s_ref=f"{K8S_CORE}.SecurityContext")
    idle_timeout_seconds = OptInt32(
        "idleTimeoutSeconds",
        doc="Seconds before an idle worker is removed; 60 by default. Read by the autoscaler.",
    )
    upscaling_mode = OptStr(
        "upscalingMode",
        doc="Conservative, Default or Aggressive. Read by the autoscaler.",
        enum=tuple(UpscalingMode),
    )
    version = OptStr(
        "version",
        doc="Autoscaler version v1 or v2; when unset the Ray version decides (v2 from Ray 2.47.0).",
        enum=tuple(AutoscalerVersion),
    )
    env = ObjList("env", EnvVar, doc="Environment variables of the autoscaler container.")
    env_from = EmbeddedList("envFrom", k8s_ref=f"{K8S_CORE}.EnvFromSource")
    volume_mounts = ObjList("volumeMounts", VolumeMount, doc="Volume mounts of the autoscaler container.")
    command = StrList("command", doc="Overrides the autoscaler container command.")
    args = StrList("args", doc="Overrides the autoscaler container args.")


class RayClusterSpec(View):
    """Desired state of a RayCluster."""

    __slots__ = ()

    upgrade_strategy = OptObj(
        "upgradeStrategy", RayClusterUpgradeStrategy, doc="Upgrade strategy of the RayCluster Pods."
    )
    auth_options = OptObj("authOptions", AuthOptions, doc="Authentication options.")
    suspend = OptBool("suspend", doc="Delete all Pods of the RayCluster while true.")
    managed_by = OptStr(
        "managedBy",
        doc="Controller that manages the object: ray.io/kuberay-operator (default) or "
        "kueue.x-k8s.io/multikueue. Immutable.",
        x_validations=MANAGED_BY_VALIDATIONS,
    )
    autoscaler_options = OptObj("autoscalerOptions", AutoscalerOptions, doc="Ray autoscaler configuration.")
    head_service_annotations = StrMap("headServiceAnnotations", doc="Annotations of the head Service.")
    enable_in_tree_autoscaling = OptBool(
        "enableInTreeAutoscaling", doc="Run the Ray autoscaler as a sidecar of the head Pod."
    )
    gcs_fault_tolerance_options = OptObj(
        "gcsFaultToleranceOptions", GcsFaultToleranceOptions, doc="GCS fault tolerance settings."
    )
    history_server_options = OptObj(
        "historyServerOptions",
        HistoryServerOptions,
        doc="History server settings.",
        feature_gate=FeatureGate.RAY_CLUSTER_HISTORY_SERVER,
    )
    network_policy = OptObj(
        "networkPolicy",
        NetworkPolicyConfig,
        doc="Network isolation; separate NetworkPolicies are created for the head and the workers.",
        feature_gate=FeatureGate.RAY_CLUSTER_NETWORK_POLICY,
    )
    tls_options = OptObj(
        "tlsOptions",
        TLSOptions,
        doc="mTLS through cert-manager.",
        feature_gate=FeatureGate.RAY_CLUSTER_MTLS,
    )
    head_group_spec = Obj("headGroupSpec", HeadGroupSpec, doc="The head Pod.", required=True, omitempty=False)
    ray_version = Str("rayVersion", doc="Ray version of the images; used for version-dependent behaviour.")
    worker_group_specs = ObjList("workerGroupSpecs", WorkerGroupSpec, doc="The worker groups.")


class HeadInfo(View):
    """Addresses of the head Pod and Service."""

    __slots__ = ()

    pod_ip = Str("podIP")
    service_ip = Str("serviceIP")
    pod_name = Str("podName")
    service_name = Str("serviceName")


class RayClusterStatus(View):
    """Observed state of a RayCluster."""

    __slots__ = ()

    state = Str("state", doc="Deprecated: replaced by conditions. ready or suspended.")
    desired_cpu = Quantity("desiredCPU", doc="Total CPUs requested by the head and the desired workers.")
    desired_memory = Quantity("desiredMemory", doc="Total memory requested by the head and the desired workers.")
    desired_gpu = Quantity("desiredGPU", doc="Total GPUs requested by the head and the desired workers.")
    desired_tpu = Quantity("desiredTPU", doc="Total TPUs requested by the head and the desired workers.")
    last_update_time = Time("lastUpdateTime", doc="Last time the status was computed.", nullable=True)
    state_transition_times = TimeMap("stateTransitionTimes", doc="Last transition time of each state.")
    endpoints = StrMap("endpoints", doc="Head Service ports by name.")
    head = Obj("head", HeadInfo, doc="Head Pod and Service addresses.")
    reason = Str("reason", doc="More information about the current state.")
    conditions = ObjList(
        "conditions",
        Condition,
        doc="Latest observations of the RayCluster state.",
        list_type="map",
        list_map_keys=("type",),
    )
    ready_worker_replicas = Int32("readyWorkerReplicas", doc="Worker Pods that are Running and Ready.")
    available_worker_replicas = Int32("availableWorkerReplicas", doc="Worker Pods that are Running.")
    desired_worker_replicas = Int32("desiredWorkerReplicas", doc="Sum of the desired replicas x numOfHosts.")
    min_worker_replicas = Int32("minWorkerReplicas", doc="Sum of minReplicas x numOfHosts.")
    max_worker_replicas = Int32("maxWorkerReplicas", doc="Sum of maxReplicas x numOfHosts.")
    observed_generation = Int64("observedGeneration", doc="Most recent metadata.generation observed.")


class RayCluster(TopLevel):
    """RayCluster is the Schema for the RayClusters API."""

    __slots__ = ()
    __kind__ = KindInfo(
        kind="RayCluster",
        list_kind="RayClusterList",
        plural="rayclusters",
        singular="raycluster",
        group=GROUP,
        version=VERSION,
        scope="Namespaced",
        categories=("all",),
        short_names=(),
        printer_columns=(
            PrinterColumn("desired workers", "integer", ".status.desiredWorkerReplicas"),
            PrinterColumn("available workers", "integer", ".status.availableWorkerReplicas"),
            PrinterColumn("cpus", "string", ".status.desiredCPU"),
            PrinterColumn("memory", "string", ".status.desiredMemory"),
            PrinterColumn("gpus", "string", ".status.desiredGPU"),
            PrinterColumn("tpus", "string", ".status.desiredTPU", priority=1),
            PrinterColumn("status", "string", ".status.state"),
            PrinterColumn("age", "date", ".metadata.creationTimestamp"),
            PrinterColumn("head pod IP", "string", ".status.head.podIP", priority=1),
            PrinterColumn("head service IP", "string", ".status.head.serviceIP", priority=1),
        ),
        status_subresource=True,
        storage=True,
        served=True,
        doc="RayCluster is the Schema for the RayClusters API",
    )

    spec = Obj("spec", RayClusterSpec, doc="Specification of the desired behavior of the RayCluster.")
    status = Obj("status", RayClusterStatus)


class RayClusterList(View):
    """A list of RayClusters."""

    __slots__ = ()

    api_version = Str("apiVersion")
    kind = Str("kind")
    metadata = Obj("metadata", ListMeta)
    items = ObjList("items", RayCluster, omitempty=False)
