"""Validation of RayCluster, RayJob, RayService and RayCronJob, as pure functions
(``controllers/ray/utils/validation.go``).

Every rule, its order and its message follow upstream. Each function raises a single
:class:`~api.v1.errors.ValidationError` carrying the message, and returns ``None`` when the object is
valid. Inputs may be views or plain decoded dicts; whatever their content (a ``spec`` that is a list, a
``replicas`` that is a string ...), only ``ValidationError`` is raised: a value of the wrong JSON type
raises :class:`~api.v1.errors.FieldTypeError`, its subclass, worded like the API server's schema error.

Feature gates are a parameter: a mapping of gate name to bool, where gates the mapping does not
mention take upstream's default (:data:`~api.v1.constants.DEFAULT_FEATURE_GATES`).

The objects are expected in the form the API server stores them, i.e. with the CRD defaults applied
(:func:`~api.v1.defaults.apply_crd_defaults`): upstream relies on them, e.g. a worker group without
``minReplicas``/``maxReplicas`` is rejected unless autoscaling is on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from ._cron import CronError, load_location, parse_standard
from ._goutil import (
    DurationError,
    VersionError,
    atoi,
    byte_len,
    go_list,
    go_quote,
    is_dns1035_label,
    is_dns1123_label,
    is_qualified_name,
    is_valid_label_value,
    parse_duration,
    parse_generic_version,
    unmarshal_yaml_map,
)
from .constants import (
    ALIYUN_BUCKET,
    ALIYUN_ENDPOINT,
    ALIYUN_REGION,
    AZURE_STORAGE_ACCOUNT_URL,
    AZURE_STORAGE_AUTH_MODE,
    AZURE_STORAGE_CONNECTION_STRING,
    COLLECTOR_CONTAINER_NAME,
    DEFAULT_FEATURE_GATES,
    DEFAULT_MAX_SURGE_PERCENT,
    EVENTS_PORT,
    FQ_RAY_IP,
    GCS_BUCKET,
    GCS_STORAGE_MOUNT_PATH,
    GCS_STORAGE_VOLUME_NAME,
    KUBERAY_GEN_AUTOSCALER_START_CMD,
    MAX_RAY_CLUSTER_NAME_LENGTH,
    MAX_RAY_CRON_JOB_NAME_LENGTH,
    MAX_RAY_JOB_NAME_LENGTH,
    MAX_RAY_SERVICE_NAME_LENGTH,
    OWNER_KIND,
    OWNER_NAME,
    POD_IP,
    RAY_CLUSTER_NAME,
    RAY_CLUSTER_NAMESPACE,
    RAY_ENABLE_AUTOSCALER_V2,
    RAY_EXTERNAL_STORAGE_NS_ANNOTATION_KEY,
    RAY_FT_ENABLED_ANNOTATION_KEY,
    RAY_GCS_STORAGE,
    RAY_GCS_STORAGE_PATH,
    RAY_JOB_CLUSTER_SELECTOR_KEY,
    RAY_ORIGINATED_FROM_CRD_LABEL_KEY,
    RAY_REDIS_ADDRESS,
    RAY_ROLE,
    RAY_SERVICE_INITIALIZING_TIMEOUT_ANNOTATION,
    RAY_TLS_CA_CERT,
    RAY_TLS_CERT_MOUNT_PATH,
    RAY_TLS_SERVER_CERT,
    RAY_TLS_SERVER_KEY,
    RAY_TLS_VOLUME_NAME,
    RAY_USE_TLS,
    REDIS_PASSWORD,
    REDIS_USERNAME,
    S3_REGION,
    STORAGE_BACKEND,
    AuthMode,
    AutoscalerVersion,
    CRDType,
    DeletionPolicyType,
    FeatureGate,
    GcsFaultToleranceBackend,
    JobDeploymentStatus,
    JobSubmissionMode,
    NetworkPolicyMode,
    RayClusterConditionType,
    RayClusterUpgradeType,
    RayServiceUpgradeType,
    get_crd_type,
)
from .core import Container, EnvVar, env_var, env_var_exists, is_condition_true
from .errors import FieldTypeError, ValidationError
from .fields import View, check_types
from .raycluster_types import (
    AuthOptions,
    CollectorOptions,
    GcsFaultToleranceOptions,
    RayCluster,
    RayClusterSpec,
    WorkerGroupSpec,
)
from .raycronjob_types import RayCronJob
from .rayjob_types import DeletionCondition, RayJob
from .rayservice_types import RayService, RayServiceSpec

__all__ = [
    "FeatureGates",
    "feature_enabled",
    "is_auth_enabled",
    "is_autoscaling_enabled",
    "is_autoscaling_v2_enabled",
    "is_gcs_fault_tolerance_enabled",
    "is_incremental_upgrade_enabled",
    "is_k8s_auth_enabled",
    "is_tls_enabled",
    "validate_cluster_upgrade_options",
    "validate_initializing_timeout",
    "validate_ray_cluster",
    "validate_ray_cluster_metadata",
    "validate_ray_cluster_spec",
    "validate_ray_cluster_status",
    "validate_ray_cluster_upgrade_options",
    "validate_ray_cron_job_spec",
    "validate_ray_job",
    "validate_ray_job_metadata",
    "validate_ray_job_spec",
    "validate_ray_job_status",
    "validate_ray_service",
    "validate_ray_service_metadata",
    "validate_ray_service_spec",
]

_T = TypeVar("_T", bound=View)

#: Gate name -> enabled. Gates not mentioned take upstream's default.
FeatureGates = Mapping[str, bool]


def feature_enabled(gates: FeatureGates | None, gate: str) -> bool:
    """Whether ``gate`` is on in ``gates`` (upstream's default when not mentioned)."""
    if gates is not None:
        value = gates.get(gate)
        if value is not None:
            return bool(value)
    return DEFAULT_FEATURE_GATES.get(gate, False)


# ---- predicates (controllers/ray/utils/util.go) ---------------------------------------------------


def is_autoscaling_enabled(spec: RayClusterSpec | None) -> bool:
    """``IsAutoscalingEnabled``: ``enableInTreeAutoscaling`` is true."""
    return spec is not None and spec.enable_in_tree_autoscaling is True


def is_autoscaling_v2_enabled(spec: RayClusterSpec | None) -> bool:
    """``IsAutoscalingV2Enabled``: ``autoscalerOptions.version`` is v2."""
    if spec is None:
        return False
    options = spec.autoscaler_options
    return options is not None and options.version == AutoscalerVersion.V2


def is_gcs_fault_tolerance_enabled(spec: RayClusterSpec, annotations: Mapping[str, str] | None) -> bool:
    """``IsGCSFaultToleranceEnabled``: ``ray.io/ft-enabled: "true"`` (any case) or options set."""
    value = (annotations or {}).get(RAY_FT_ENABLED_ANNOTATION_KEY)
    return (value is not None and value.lower() == "true") or spec.gcs_fault_tolerance_options is not None


def is_auth_enabled(spec: RayClusterSpec) -> bool:
    """``IsAuthEnabled``: only ``authOptions.mode: token`` enables token auth."""
    options = spec.auth_options
    return options is not None and options.mode == AuthMode.TOKEN


def is_k8s_auth_enabled(options: AuthOptions | None) -> bool:
    """``IsK8sAuthEnabled``: ``authOptions.enableK8sTokenAuth`` is true."""
    return options is not None and options.enable_k8s_token_auth is True


def is_tls_enabled(spec: RayClusterSpec) -> bool:
    """``IsTLSEnabled``: ``tlsOptions.enabled`` is true."""
    options = spec.tls_options
    return options is not None and options.enabled is True


def is_incremental_upgrade_enabled(spec: RayServiceSpec, gates: FeatureGates | None = None) -> bool:
    """``IsIncrementalUpgradeEnabled``: gate on and type NewClusterWithIncrementalUpgrade."""
    if not feature_enabled(gates, FeatureGate.RAY_SERVICE_INCREMENTAL_UPGRADE):
        return False
    strategy = spec.upgrade_strategy
    return strategy is not None and strategy.type == RayServiceUpgradeType.NEW_CLUSTER_WITH_INCREMENTAL_UPGRADE


# ---- helpers ---------------------------------------------------------------------------------------


def _fail(message: str) -> ValidationError:
    return ValidationError(message)


def _autoscaler_v2_env(head: Container) -> bool:
    env = env_var(head.env, RAY_ENABLE_AUTOSCALER_V2)
    return env is not None and env.value in ("1", "true")


def _version(value: str) -> tuple[Any, str]:
    """Parse a Ray version: (version, "") or (None, error text)."""
    try:
        return parse_generic_version(value), ""
    except VersionError as err:
        return None, str(err)


_V2_52 = parse_generic_version("2.52.0")
_V2_55 = parse_generic_version("2.55.0")
_V2_56 = parse_generic_version("2.56.0")


# ---- RayCluster -----------------------------------------------------------------------------------


def _cluster_status(cluster: RayCluster) -> None:
    conditions = cluster.status.conditions
    suspending = is_condition_true(conditions, RayClusterConditionType.RAY_CLUSTER_SUSPENDING)
    suspended = is_condition_true(conditions, RayClusterConditionType.RAY_CLUSTER_SUSPENDED)
    if suspending and suspended:
        raise _fail(
            "invalid RayCluster State: rayv1.RayClusterSuspending and rayv1.RayClusterSuspended "
            "conditions should not be both true"
        )


def _validate_name(kind: str, name: str, limit: int, prefix: str) -> None:
    if byte_len(name) > limit:
        raise _fail(f"{prefix}{kind} name should be no more than {limit} characters")
    errs = is_dns1035_label(name)
    if errs:
        raise _fail(f"{prefix}{kind} name should be a valid DNS1035 label: {go_list(errs)}")


def _cluster_metadata(cluster: RayCluster) -> None:
    _validate_name("RayCluster", cluster.metadata.name, MAX_RAY_CLUSTER_NAME_LENGTH, "")


def _cluster_upgrade_options(cluster: RayCluster) -> None:
    strategy = cluster.spec.upgrade_strategy
    if strategy is None or strategy.type is None:
        return
    upgrade_type = strategy.type
    if upgrade_type not in (RayClusterUpgradeType.RECREATE, RayClusterUpgradeType.NONE):
        raise _fail(
            f"The RayCluster spec is invalid: Spec.UpgradeStrategy.Type value {upgrade_type} is invalid, "
            f"valid options are {RayClusterUpgradeType.RECREATE} or {RayClusterUpgradeType.NONE}"
        )
    labels = cluster.metadata.labels or {}
    creator = get_crd_type(labels.get(RAY_ORIGINATED_FROM_CRD_LABEL_KEY, ""))
    if creator in (CRDType.RAY_JOB, CRDType.RAY_SERVICE):
        raise _fail(f"upgradeStrategy cannot be set when RayCluster is created by {creator}")


def _validate_group_resources(group: str, params: Mapping[str, str], resources: Mapping[str, str]) -> None:
    has_ray_start_resources = any(params.get(key, "") != "" for key in ("num-cpus", "num-gpus", "memory", "resources"))
    if has_ray_start_resources and len(resources) > 0:
        raise _fail(
            f"resource fields should not be set in both rayStartParams and Resources for {group} group; "
            "please use only one"
        )


def _validate_group_labels(group: str, params: Mapping[str, str], labels: Mapping[str, str]) -> None:
    if "labels" in params:
        raise _fail(
            f"rayStartParams['labels'] is not supported for {group} group; please use the top-level Labels "
            "field instead"
        )
    errors: list[str] = []
    for key, value in labels.items():
        for err in is_qualified_name(key):
            errors.append(f"invalid label key for {group} group: '{key}', error: {err}")
        for err in is_valid_label_value(value):
            errors.append(f"invalid label value for key '{key}' in {group} group: '{value}', error: {err}")
    if errors:
        raise _fail("; ".join(errors))


def _validate_worker_group_idle_timeout(group: WorkerGroupSpec, spec: RayClusterSpec, head: Container) -> None:
    idle = group.idle_timeout_seconds
    if idle is None:
        return
    if idle < 0:
        raise _fail(f"worker group {group.group_name}: idleTimeoutSeconds must be non-negative, got {idle}")
    if is_autoscaling_v2_enabled(spec) or _autoscaler_v2_env(head):
        return
    raise _fail(
        f"worker group {group.group_name}: idleTimeoutSeconds is set, but autoscaler v2 is not enabled. "
        "Please set .spec.autoscalerOptions.version to 'v2' (or set "
        f"{RAY_ENABLE_AUTOSCALER_V2} environment variable to 'true' in the head pod if using KubeRay < 1.4.0)"
    )


def _validate_worker_group_priority(group: WorkerGroupSpec, spec: RayClusterSpec, head: Container) -> None:
    priority = group.priority
    if priority is None or priority == 0:
        return
    name = group.group_name
    if spec.ray_version == "":
        raise _fail(
            f"worker group {name}: priority is set, but RayVersion was not specified. Ray version 2.56.0 or "
            "later is required"
        )
    version, err = _version(spec.ray_version)
    if version is None:
        raise _fail(
            f"worker group {name}: priority is set, but RayVersion format is invalid: {spec.ray_version}, {err}"
        )
    if version.less_than(_V2_56):
        raise _fail(f"worker group {name}: priority is set, but minimum Ray version is 2.56.0, got {spec.ray_version}")
    if is_autoscaling_v2_enabled(spec) or _autoscaler_v2_env(head):
        return
    raise _fail(
        f"worker group {name}: priority is set to {priority}, but autoscaler v2 is not enabled. Priority is only "
        "supported with autoscaler v2 enabled"
    )


def _validate_gcs_ft_backend(
    options: GcsFaultToleranceOptions, head: Container, head_volumes: Iterable[Any], gates: FeatureGates | None
) -> None:
    if options.backend == GcsFaultToleranceBackend.ROCKSDB:
        if not feature_enabled(gates, FeatureGate.GCS_FAULT_TOLERANCE_EMBEDDED_STORAGE):
            raise _fail(
                "the embedded RocksDB GCS fault tolerance backend (GcsFaultToleranceOptions.Backend: 'rocksdb') "
                f"requires the {FeatureGate.GCS_FAULT_TOLERANCE_EMBEDDED_STORAGE} feature gate to be enabled"
            )
        if options.redis_address != "":
            raise _fail("cannot set GcsFaultToleranceOptions.RedisAddress when backend is 'rocksdb'")
        if options.redis_username is not None:
            raise _fail("cannot set GcsFaultToleranceOptions.RedisUsername when backend is 'rocksdb'")
        if options.redis_password is not None:
            raise _fail("cannot set GcsFaultToleranceOptions.RedisPassword when backend is 'rocksdb'")
        if options.external_storage_namespace != "":
            raise _fail("cannot set GcsFaultToleranceOptions.ExternalStorageNamespace when backend is 'rocksdb'")
        storage = options.storage
        if (
            storage is not None
            and storage.claim_name != ""
            and (
                storage.size is not None
                or storage.storage_class_name is not None
                or len(storage.access_modes or ()) > 0
            )
        ):
            raise _fail(
                "GcsFaultToleranceOptions.Storage.ClaimName is mutually exclusive with size, storageClassName, "
                "and accessModes"
            )
        if env_var_exists(head.env, RAY_GCS_STORAGE) or env_var_exists(head.env, RAY_GCS_STORAGE_PATH):
            raise _fail(
                f"cannot set `{RAY_GCS_STORAGE}` or `{RAY_GCS_STORAGE_PATH}` env var in head Pod when the embedded "
                "GCS FT backend is used - these are managed by KubeRay"
            )
        for mount in head.volume_mounts:
            if mount.mount_path == GCS_STORAGE_MOUNT_PATH or mount.name == GCS_STORAGE_VOLUME_NAME:
                raise _fail(
                    f"cannot set a volume mount named {go_quote(GCS_STORAGE_VOLUME_NAME)} or mounted at "
                    f"{GCS_STORAGE_MOUNT_PATH} in the head container when the embedded GCS FT backend is used - "
                    "it is managed by KubeRay"
                )
        for volume in head_volumes:
            if volume.name == GCS_STORAGE_VOLUME_NAME:
                raise _fail(
                    f"cannot set a volume named {go_quote(GCS_STORAGE_VOLUME_NAME)} in the head Pod when the "
                    "embedded GCS FT backend is used - it is managed by KubeRay"
                )
    elif options.storage is not None:
        raise _fail(
            "cannot set GcsFaultToleranceOptions.Storage when backend is 'redis' - it only applies to the "
            "'rocksdb' backend"
        )


_COLLECTOR_FORBIDDEN_ENV = (
    POD_IP,
    FQ_RAY_IP,
    RAY_CLUSTER_NAME,
    RAY_CLUSTER_NAMESPACE,
    RAY_ROLE,
    OWNER_KIND,
    OWNER_NAME,
    EVENTS_PORT,
)


def _validate_collector_options(options: CollectorOptions) -> None:
    if options.image is None or options.image == "":
        raise _fail("historyServerOptions.collectorOptions.image must be set")
    env: dict[str, EnvVar] = {}
    for item in options.env:
        env[item.name] = item

    def has_value(name: str) -> bool:
        item = env.get(name)
        return item is not None and (item.value != "" or item.value_from is not None)

    for name in _COLLECTOR_FORBIDDEN_ENV:
        if name in env:
            raise _fail(
                f"historyServerOptions.collectorOptions.env must not contain {name}: it is managed by KubeRay "
                "and injected automatically into the collector container"
            )
    backend = env.get(STORAGE_BACKEND)
    if backend is None or backend.value == "":
        raise _fail(
            f"{STORAGE_BACKEND} environment variable must be set with a literal string value in "
            "historyServerOptions.collectorOptions.env"
        )
    kind = backend.value.upper()
    if kind == "GCS":
        if not has_value(GCS_BUCKET):
            raise _fail(f"{GCS_BUCKET} environment variable must be set when {STORAGE_BACKEND} is GCS")
    elif kind == "S3":
        if not has_value(S3_REGION):
            raise _fail(f"{S3_REGION} environment variable must be set when {STORAGE_BACKEND} is S3")
    elif kind == "AZUREBLOB":
        auth_mode = ""
        mode_env = env.get(AZURE_STORAGE_AUTH_MODE)
        if mode_env is not None and mode_env.value != "":
            auth_mode = mode_env.value.strip().lower()
        if auth_mode == "connection_string":
            if not has_value(AZURE_STORAGE_CONNECTION_STRING):
                raise _fail(
                    f"{AZURE_STORAGE_CONNECTION_STRING} environment variable must be set when {STORAGE_BACKEND} "
                    f"is AZUREBLOB and {AZURE_STORAGE_AUTH_MODE} is connection_string"
                )
        elif auth_mode in ("workload_identity", "default"):
            if not has_value(AZURE_STORAGE_ACCOUNT_URL):
                raise _fail(
                    f"{AZURE_STORAGE_ACCOUNT_URL} environment variable must be set when {STORAGE_BACKEND} is "
                    f"AZUREBLOB and {AZURE_STORAGE_AUTH_MODE} is {auth_mode}"
                )
        elif not has_value(AZURE_STORAGE_CONNECTION_STRING) and not has_value(AZURE_STORAGE_ACCOUNT_URL):
            raise _fail(
                f"either {AZURE_STORAGE_CONNECTION_STRING} or {AZURE_STORAGE_ACCOUNT_URL} environment variable "
                f"must be set when {STORAGE_BACKEND} is AZUREBLOB"
            )
    elif kind == "ALIYUNOSS":
        for name in (ALIYUN_BUCKET, ALIYUN_ENDPOINT, ALIYUN_REGION):
            if not has_value(name):
                raise _fail(f"{name} environment variable must be set when {STORAGE_BACKEND} is ALIYUNOSS")


def _validate_network_policy(spec: RayClusterSpec) -> None:
    config = spec.network_policy
    if config is None:
        return
    mode = config.mode if config.mode is not None else NetworkPolicyMode.DENY_ALL.value
    egress_only = mode == NetworkPolicyMode.DENY_ALL_EGRESS
    ingress_only = mode == NetworkPolicyMode.DENY_ALL_INGRESS
    for where, rules in (("head", config.head), ("worker", config.worker)):
        if rules is None:
            continue
        if egress_only and rules.ingress_rules:
            raise _fail(
                f"networkPolicy.{where}.ingressRules cannot be set when mode is {go_quote(mode)} "
                "(ingress is not restricted)"
            )
        if ingress_only and rules.egress_rules:
            raise _fail(
                f"networkPolicy.{where}.egressRules cannot be set when mode is {go_quote(mode)} "
                "(egress is not restricted)"
            )
    group_names: set[str] = set()
    for group in spec.worker_group_specs:
        name = group.group_name
        errs = is_dns1123_label(name)
        if errs:
            raise _fail(
                f"worker group name {go_quote(name)} must be a valid DNS1123 label when networkPolicy is enabled "
                f"(it is embedded in the NetworkPolicy name): {go_list(errs)}"
            )
        group_names.add(name)
    for entry in config.worker_groups:
        name = entry.group_name
        if egress_only and entry.ingress_rules:
            raise _fail(
                f"networkPolicy.workerGroups[{go_quote(name)}].ingressRules cannot be set when mode is "
                f"{go_quote(mode)} (ingress is not restricted)"
            )
        if ingress_only and entry.egress_rules:
            raise _fail(
                f"networkPolicy.workerGroups[{go_quote(name)}].egressRules cannot be set when mode is "
                f"{go_quote(mode)} (egress is not restricted)"
            )
        if name not in group_names:
            raise _fail(
                f"networkPolicy.workerGroups[{go_quote(name)}] does not match any group name in workerGroupSpecs"
            )


_TLS_ENV = (RAY_USE_TLS, RAY_TLS_SERVER_CERT, RAY_TLS_SERVER_KEY, RAY_TLS_CA_CERT)


def _validate_no_tls_volume_mount(container: Container, location: str) -> None:
    for mount in container.volume_mounts:
        if mount.name == RAY_TLS_VOLUME_NAME:
            raise _fail(
                f"cannot use volume mount named {go_quote(RAY_TLS_VOLUME_NAME)} in {location} when tlsOptions is "
                "set - the operator manages TLS configuration automatically"
            )
        if mount.mount_path == RAY_TLS_CERT_MOUNT_PATH:
            raise _fail(
                f"cannot use volume mount at path {go_quote(RAY_TLS_CERT_MOUNT_PATH)} in {location} when "
                "tlsOptions is set - the operator manages TLS configuration automatically"
            )


def _validate_tls_options(spec: RayClusterSpec) -> None:
    if not is_tls_enabled(spec):
        return
    head_containers = spec.head_group_spec.template.spec.containers
    if len(head_containers) > 0:
        head = head_containers[0]
        for name in _TLS_ENV:
            if env_var_exists(head.env, name):
                raise _fail(
                    f"cannot set {name} environment variable in head Pod when tlsOptions is set - the operator "
                    "manages TLS configuration automatically"
                )
        _validate_no_tls_volume_mount(head, "head Pod")
    for group in spec.worker_group_specs:
        containers = group.template.spec.containers
        if len(containers) == 0:
            continue
        worker = containers[0]
        for name in _TLS_ENV:
            if env_var_exists(worker.env, name):
                raise _fail(
                    f"cannot set {name} environment variable in worker group {go_quote(group.group_name)} when "
                    "tlsOptions is set - the operator manages TLS configuration automatically"
                )
        _validate_no_tls_volume_mount(worker, f"worker group {go_quote(group.group_name)}")
    options = spec.autoscaler_options
    if options is not None:
        for name in _TLS_ENV:
            if env_var_exists(options.env, name):
                raise _fail(
                    f"cannot set {name} environment variable in autoscalerOptions.env when tlsOptions is set - "
                    "the operator manages TLS configuration for the autoscaler automatically"
                )
        for mount in options.volume_mounts:
            if mount.name == RAY_TLS_VOLUME_NAME:
                raise _fail(
                    f"cannot use volume mount named {go_quote(RAY_TLS_VOLUME_NAME)} in autoscalerOptions.volumeMounts "
                    "when tlsOptions is set - the operator manages TLS configuration automatically"
                )
            if mount.mount_path == RAY_TLS_CERT_MOUNT_PATH:
                raise _fail(
                    f"cannot use volume mount at path {go_quote(RAY_TLS_CERT_MOUNT_PATH)} in "
                    "autoscalerOptions.volumeMounts when tlsOptions is set - the operator manages TLS "
                    "configuration automatically"
                )


def _cluster_spec(spec: RayClusterSpec, annotations: Mapping[str, str], gates: FeatureGates | None) -> None:
    head_group = spec.head_group_spec
    head_containers = head_group.template.spec.containers
    if len(head_containers) == 0:
        raise _fail("headGroupSpec should have at least one container")

    _validate_group_resources("Head", head_group.ray_start_params or {}, head_group.resources or {})
    _validate_group_labels("Head", head_group.ray_start_params or {}, head_group.labels or {})

    autoscaling = is_autoscaling_enabled(spec)
    head = head_containers[0]
    groups = spec.worker_group_specs
    for group in groups:
        if len(group.template.spec.containers) == 0:
            raise _fail("workerGroupSpec should have at least one container")
        min_replicas = group.min_replicas
        max_replicas = group.max_replicas
        name = group.group_name
        if not autoscaling and (min_replicas is None or max_replicas is None):
            raise _fail(f"worker group {name} must set both minReplicas and maxReplicas when autoscaling is disabled")
        if min_replicas is not None and min_replicas < 0:
            raise _fail(f"worker group {name} has negative minReplicas {min_replicas}")
        if max_replicas is not None and max_replicas < 0:
            raise _fail(f"worker group {name} has negative maxReplicas {max_replicas}")
        if min_replicas is not None and max_replicas is not None and min_replicas > max_replicas:
            raise _fail(f"worker group {name} has minReplicas {min_replicas} greater than maxReplicas {max_replicas}")
        _validate_group_resources(name, group.ray_start_params or {}, group.resources or {})
        _validate_group_labels(name, group.ray_start_params or {}, group.labels or {})
        _validate_worker_group_idle_timeout(group, spec, head)
        _validate_worker_group_priority(group, spec, head)

    ft_options = spec.gcs_fault_tolerance_options
    if annotations.get(RAY_FT_ENABLED_ANNOTATION_KEY, "") != "" and ft_options is not None:
        raise _fail(
            f"{RAY_FT_ENABLED_ANNOTATION_KEY} annotation and GcsFaultToleranceOptions are both set. "
            "Please use only GcsFaultToleranceOptions to configure GCS fault tolerance"
        )
    if not is_gcs_fault_tolerance_enabled(spec, annotations) and env_var_exists(head.env, RAY_REDIS_ADDRESS):
        raise _fail(
            f"{RAY_REDIS_ADDRESS} is set which implicitly enables GCS fault tolerance, but "
            "GcsFaultToleranceOptions is not set. Please set GcsFaultToleranceOptions to enable GCS fault tolerance"
        )
    head_params = head_group.ray_start_params or {}
    if ft_options is not None:
        if head_params.get("redis-password", "") != "":
            raise _fail(
                "cannot set `redis-password` in rayStartParams when GcsFaultToleranceOptions is enabled - use "
                "GcsFaultToleranceOptions.RedisPassword instead"
            )
        if env_var_exists(head.env, REDIS_PASSWORD):
            raise _fail(
                "cannot set `REDIS_PASSWORD` env var in head Pod when GcsFaultToleranceOptions is enabled - use "
                "GcsFaultToleranceOptions.RedisPassword instead"
            )
        if env_var_exists(head.env, RAY_REDIS_ADDRESS):
            raise _fail(
                "cannot set `RAY_REDIS_ADDRESS` env var in head Pod when GcsFaultToleranceOptions is enabled - use "
                "GcsFaultToleranceOptions.RedisAddress instead"
            )
        if annotations.get(RAY_EXTERNAL_STORAGE_NS_ANNOTATION_KEY, "") != "":
            raise _fail(
                "cannot set `ray.io/external-storage-namespace` annotation when GcsFaultToleranceOptions is "
                "enabled - use GcsFaultToleranceOptions.ExternalStorageNamespace instead"
            )
        _validate_gcs_ft_backend(ft_options, head, head_group.template.spec.volumes, gates)
    if head_params.get("redis-username", "") != "" or env_var_exists(head.env, REDIS_USERNAME):
        raise _fail(
            "cannot set redis username in rayStartParams or environment variables - use "
            "GcsFaultToleranceOptions.RedisUsername instead"
        )

    if not feature_enabled(gates, FeatureGate.RAY_JOB_DELETION_POLICY):
        for group in groups:
            if group.suspend is True:
                raise _fail(
                    f"worker group {group.group_name} can be suspended only when the RayJobDeletionPolicy "
                    "feature gate is enabled"
                )

    if not autoscaling:
        v2_env = env_var(head.env, RAY_ENABLE_AUTOSCALER_V2)
        if v2_env is not None and v2_env.value in ("1", "true"):
            raise _fail(
                f"environment variable {RAY_ENABLE_AUTOSCALER_V2} cannot be set to '{v2_env.value}' when "
                "enableInTreeAutoscaling is false. Please set enableInTreeAutoscaling: true to use autoscaler v2"
            )
    else:
        for group in groups:
            if group.suspend is True:
                raise _fail(f"worker group {group.group_name} cannot be suspended with Autoscaler enabled")
        options = spec.autoscaler_options
        if options is not None and options.version is not None and env_var_exists(head.env, RAY_ENABLE_AUTOSCALER_V2):
            raise _fail(
                f"both .spec.autoscalerOptions.version and head Pod env var {RAY_ENABLE_AUTOSCALER_V2} are set, "
                "please only use the former"
            )
        if is_autoscaling_v2_enabled(spec):
            if head_group.template.spec.restart_policy not in ("", "Never"):
                raise _fail("restartPolicy for head Pod should be Never or unset when using autoscaler V2")
            for group in groups:
                if group.template.spec.restart_policy not in ("", "Never"):
                    raise _fail(
                        f"restartPolicy for worker group {group.group_name} should be Never or unset when using "
                        "autoscaler V2"
                    )

    autoscaler_options = spec.autoscaler_options
    if autoscaler_options is not None:
        idle = autoscaler_options.idle_timeout_seconds
        if idle is not None and idle < 0:
            raise _fail(f"autoscalerOptions.idleTimeoutSeconds must be non-negative, got {idle}")
        if env_var_exists(autoscaler_options.env, KUBERAY_GEN_AUTOSCALER_START_CMD):
            raise _fail(
                f"autoscalerOptions.env must not contain {KUBERAY_GEN_AUTOSCALER_START_CMD}: it is managed by "
                "KubeRay and injected automatically into the autoscaler container"
            )

    history = spec.history_server_options
    if history is not None:
        if not feature_enabled(gates, FeatureGate.RAY_CLUSTER_HISTORY_SERVER):
            raise _fail("RayClusterHistoryServer feature gate is not enabled")
        collector = history.collector_options
        if collector is None:
            raise _fail("historyServerOptions.collectorOptions must be set")
        _validate_collector_options(collector)
        for container in head_containers:
            if container.name == COLLECTOR_CONTAINER_NAME:
                raise _fail(
                    f"head pod template must not define a container with name '{COLLECTOR_CONTAINER_NAME}' when "
                    "history server collector options are enabled"
                )
        for group in groups:
            for container in group.template.spec.containers:
                if container.name == COLLECTOR_CONTAINER_NAME:
                    raise _fail(
                        f"worker group {group.group_name} pod template must not define a container with name "
                        f"'{COLLECTOR_CONTAINER_NAME}' when history server collector options are enabled"
                    )

    if is_auth_enabled(spec):
        ray_version = spec.ray_version
        if ray_version == "":
            raise _fail(
                "authOptions.mode is 'token' but RayVersion was not specified. Ray version 2.52.0 or later is required"
            )
        version, err = _version(ray_version)
        if version is None:
            raise _fail(f"authOptions.mode is 'token' but RayVersion format is invalid: {ray_version}, {err}")
        if version.less_than(_V2_52):
            raise _fail(f"authOptions.mode is 'token' but minimum Ray version is 2.52.0, got {ray_version}")
        auth = spec.auth_options
        if is_k8s_auth_enabled(auth):
            if version.less_than(_V2_55):
                raise _fail(
                    f"authOptions.enableK8sTokenAuth is enabled but minimum Ray version is 2.55.0, got {ray_version}"
                )
            assert auth is not None
            if auth.secret_name is not None and auth.secret_name != "":
                raise _fail("authOptions.enableK8sTokenAuth is enabled and authOptions.secretName is also set")
    elif is_k8s_auth_enabled(spec.auth_options):
        raise _fail("authOptions.enableK8sTokenAuth is enabled but authOptions.mode not set to 'token'")

    if spec.network_policy is not None and not feature_enabled(gates, FeatureGate.RAY_CLUSTER_NETWORK_POLICY):
        raise _fail("spec.networkPolicy requires the RayClusterNetworkPolicy feature gate to be enabled")
    _validate_network_policy(spec)

    if spec.tls_options is not None and not feature_enabled(gates, FeatureGate.RAY_CLUSTER_MTLS):
        raise _fail("spec.tlsOptions requires the RayClusterMTLS feature gate to be enabled")
    _validate_tls_options(spec)


# ---- RayJob ----------------------------------------------------------------------------------------


def _job_status(job: RayJob) -> None:
    if (
        job.status.job_deployment_status == JobDeploymentStatus.WAITING
        and job.spec.submission_mode != JobSubmissionMode.INTERACTIVE_MODE
    ):
        raise _fail(
            "The RayJob status is invalid: JobDeploymentStatus cannot be `Waiting` when SubmissionMode is not "
            "InteractiveMode"
        )


def _job_metadata(job: RayJob) -> None:
    _validate_name("RayJob", job.metadata.name, MAX_RAY_JOB_NAME_LENGTH, "The RayJob metadata is invalid: ")


def _validate_deletion_condition(condition: DeletionCondition) -> str | None:
    has_job_status = condition.job_status is not None
    has_deployment_status = condition.job_deployment_status is not None
    if has_job_status and has_deployment_status:
        return "cannot set both JobStatus and JobDeploymentStatus at the same time"
    if not has_job_status and not has_deployment_status:
        return "exactly one of JobStatus and JobDeploymentStatus must be set"
    if condition.ttl_seconds < 0:
        return "TTLSeconds must be non-negative"
    return None


_TTL_ORDER = (DeletionPolicyType.DELETE_WORKERS, DeletionPolicyType.DELETE_CLUSTER, DeletionPolicyType.DELETE_SELF)


def _ttl_consistency(policy_ttls: Mapping[str, int], condition_type: str, condition_value: str) -> list[str]:
    errors: list[str] = []
    previous: tuple[str, int] | None = None
    for policy in _TTL_ORDER:
        if policy not in policy_ttls:
            continue
        ttl = policy_ttls[policy]
        if previous is not None and ttl < previous[1]:
            errors.append(
                f"for {condition_type} '{condition_value}': {policy} TTL ({ttl}) must be >= {previous[0]} TTL "
                f"({previous[1]})"
            )
        previous = (policy, ttl)
    return errors


def _validate_deletion_rules(job: RayJob) -> None:
    spec = job.spec
    strategy = spec.deletion_strategy
    assert strategy is not None
    cluster_selector_mode = len(spec.cluster_selector or {}) != 0
    autoscaling = is_autoscaling_enabled(spec.ray_cluster_spec)
    by_job_status: dict[str, dict[str, int]] = {}
    by_deployment_status: dict[str, dict[str, int]] = {}
    errors: list[str] = []
    for index, rule in enumerate(strategy.deletion_rules):
        condition = rule.condition
        problem = _validate_deletion_condition(condition)
        if problem is not None:
            errors.append(f"deletionRules[{index}]: {problem}")
            continue
        policy = rule.policy
        if cluster_selector_mode and policy in (DeletionPolicyType.DELETE_CLUSTER, DeletionPolicyType.DELETE_WORKERS):
            errors.append(
                f"deletionRules[{index}]: DeletionPolicyType '{policy}' not supported when ClusterSelector is set"
            )
            continue
        if autoscaling and policy == DeletionPolicyType.DELETE_WORKERS:
            errors.append(
                f"deletionRules[{index}]: DeletionPolicyType 'DeleteWorkers' not supported with autoscaling enabled"
            )
            continue
        job_status = condition.job_status
        if job_status is not None:
            group = by_job_status.setdefault(job_status, {})
            if policy in group:
                errors.append(
                    f"deletionRules[{index}]: duplicate rule for DeletionPolicyType '{policy}' and JobStatus "
                    f"'{job_status}'"
                )
                continue
            group[policy] = condition.ttl_seconds
        else:
            deployment_status = condition.job_deployment_status or ""
            group = by_deployment_status.setdefault(deployment_status, {})
            if policy in group:
                errors.append(
                    f"deletionRules[{index}]: duplicate rule for DeletionPolicyType '{policy}' and "
                    f"JobDeploymentStatus '{deployment_status}'"
                )
                continue
            group[policy] = condition.ttl_seconds
    for status, ttls in by_job_status.items():
        errors.extend(_ttl_consistency(ttls, "JobStatus", status))
    for status, ttls in by_deployment_status.items():
        errors.extend(_ttl_consistency(ttls, "JobDeploymentStatus", status))
    if errors:
        raise _fail("\n".join(errors))


def _validate_legacy_deletion_policies(job: RayJob) -> None:
    spec = job.spec
    strategy = spec.deletion_strategy
    assert strategy is not None
    cluster_selector_mode = len(spec.cluster_selector or {}) != 0
    on_success = strategy.on_success
    on_failure = strategy.on_failure
    if on_success is None or on_failure is None:
        raise _fail(
            "both DeletionStrategy.OnSuccess and DeletionStrategy.OnFailure must be set when using the legacy "
            "deletion policy fields of DeletionStrategy"
        )
    success_policy = on_success.policy
    failure_policy = on_failure.policy
    if success_policy is None:
        raise _fail(
            "the DeletionPolicyType field of DeletionStrategy.OnSuccess cannot be unset when DeletionStrategy is "
            "enabled"
        )
    if failure_policy is None:
        raise _fail(
            "the DeletionPolicyType field of DeletionStrategy.OnFailure cannot be unset when DeletionStrategy is "
            "enabled"
        )
    destructive = (DeletionPolicyType.DELETE_CLUSTER, DeletionPolicyType.DELETE_WORKERS)
    if cluster_selector_mode:
        if success_policy in destructive:
            raise _fail(f"the ClusterSelector mode doesn't support DeletionStrategy={success_policy} on success")
        if failure_policy in destructive:
            raise _fail(f"the ClusterSelector mode doesn't support DeletionStrategy={failure_policy} on failure")
    if DeletionPolicyType.DELETE_WORKERS in (success_policy, failure_policy) and is_autoscaling_enabled(
        spec.ray_cluster_spec
    ):
        raise _fail("DeletionStrategy=DeleteWorkers currently does not support RayCluster with autoscaling enabled")
    if spec.shutdown_after_job_finishes and DeletionPolicyType.DELETE_NONE in (success_policy, failure_policy):
        raise _fail(
            "The RayJob spec is invalid: shutdownAfterJobFinshes is set to 'true' while deletion policy is 'DeleteNone'"
        )


def _validate_deletion_configuration(job: RayJob, gates: FeatureGates | None) -> None:
    spec = job.spec
    if not spec.shutdown_after_job_finishes and spec.ttl_seconds_after_finished > 0:
        raise _fail(
            "The RayJob spec is invalid: a RayJob with shutdownAfterJobFinishes set to false cannot have "
            "TTLSecondsAfterFinished"
        )
    strategy = spec.deletion_strategy
    if strategy is None:
        return
    if not feature_enabled(gates, FeatureGate.RAY_JOB_DELETION_POLICY):
        raise _fail("RayJobDeletionPolicy feature gate must be enabled to use DeletionStrategy")
    legacy = strategy.on_success is not None or strategy.on_failure is not None
    rules = len(strategy.deletion_rules) > 0
    if rules and spec.shutdown_after_job_finishes:
        raise _fail(
            "The RayJob spec is invalid: spec.shutdownAfterJobFinishes and spec.deletionStrategy.deletionRules are "
            "mutually exclusive"
        )
    if rules and legacy:
        raise _fail(
            "The RayJob spec is invalid: Cannot use both legacy onSuccess/onFailure fields and deletionRules "
            "simultaneously"
        )
    if legacy:
        _validate_legacy_deletion_policies(job)
    elif rules:
        _validate_deletion_rules(job)
    else:
        raise _fail(
            "The RayJob spec is invalid: DeletionStrategy requires either BOTH onSuccess and onFailure, OR the "
            "deletionRules field (cannot be empty)"
        )


def _job_spec(job: RayJob, gates: FeatureGates | None) -> None:
    spec = job.spec
    if spec.suspend and not spec.shutdown_after_job_finishes:
        raise _fail(
            "The RayJob spec is invalid: a RayJob with shutdownAfterJobFinishes set to false is not allowed to "
            "be suspended"
        )
    if spec.ttl_seconds_after_finished < 0:
        raise _fail("The RayJob spec is invalid: TTLSecondsAfterFinished must be a non-negative integer")
    _validate_deletion_configuration(job, gates)

    cluster_selector = spec.cluster_selector or {}
    cluster_selector_mode = len(cluster_selector) != 0
    cluster_spec = spec.ray_cluster_spec
    if spec.suspend and cluster_selector_mode:
        raise _fail("The RayJob spec is invalid: the ClusterSelector mode doesn't support the suspend operation")
    if cluster_spec is None and not cluster_selector_mode:
        raise _fail("The RayJob spec is invalid: one of RayClusterSpec or ClusterSelector must be set")
    mode = spec.submission_mode
    backoff_limit = spec.backoff_limit
    if cluster_selector_mode:
        if cluster_selector.get(RAY_JOB_CLUSTER_SELECTOR_KEY, "") == "":
            raise _fail("cluster name in ClusterSelector should not be empty")
        if mode == JobSubmissionMode.SIDECAR_MODE:
            raise _fail("ClusterSelector is not supported in SidecarMode")
        if backoff_limit is not None and backoff_limit > 0:
            raise _fail("The RayJob spec is invalid: BackoffLimit is incompatible with ClusterSelector mode")
    if mode == JobSubmissionMode.INTERACTIVE_MODE and backoff_limit is not None and backoff_limit > 0:
        raise _fail("The RayJob spec is invalid: BackoffLimit is incompatible with InteractiveMode")
    if mode == JobSubmissionMode.SIDECAR_MODE:
        if spec.submitter_pod_template is not None:
            raise _fail("Currently, SidecarMode doesn't support SubmitterPodTemplate")
        if spec.submitter_config is not None:
            raise _fail("Currently, SidecarMode doesn't support SubmitterConfig")
        assert cluster_spec is not None  # SidecarMode excludes clusterSelector, so rayClusterSpec is set
        if cluster_spec.head_group_spec.template.spec.restart_policy not in ("", "Never"):
            raise _fail("restartPolicy for head Pod should be Never or unset when using SidecarMode")
    if cluster_spec is not None:
        if is_k8s_auth_enabled(cluster_spec.auth_options):
            raise _fail("The RayJob spec is invalid: K8s token auth mode is currently not supported for RayJob")
        try:
            _cluster_spec(cluster_spec, job.metadata.annotations or {}, gates)
        except FieldTypeError:
            raise
        except ValidationError as err:
            raise _fail(f"The RayJob spec is invalid: {err.message}") from None
    runtime_env = spec.runtime_env_yaml
    if runtime_env:
        try:
            unmarshal_yaml_map(runtime_env)
        except ValueError as err:
            raise _fail(f"failed to unmarshal RuntimeEnvYAML: {runtime_env}: {err}") from None
    deadline = spec.active_deadline_seconds
    if deadline is not None and deadline <= 0:
        raise _fail("The RayJob spec is invalid: activeDeadlineSeconds must be a positive integer")
    pre_running = spec.pre_running_deadline_seconds
    if pre_running is not None and pre_running <= 0:
        raise _fail("The RayJob spec is invalid: preRunningDeadlineSeconds must be a positive integer")
    if backoff_limit is not None and backoff_limit < 0:
        raise _fail("The RayJob spec is invalid: backoffLimit must be a positive integer")


# ---- RayService ------------------------------------------------------------------------------------


def validate_initializing_timeout(annotations: Mapping[str, str] | None) -> None:
    """The ``ray.io/initializing-timeout`` annotation: a positive Go duration or positive integer seconds."""
    if not annotations:
        return
    value = annotations.get(RAY_SERVICE_INITIALIZING_TIMEOUT_ANNOTATION, "")
    if value == "":
        return
    key = RAY_SERVICE_INITIALIZING_TIMEOUT_ANNOTATION
    try:
        duration = parse_duration(value)
    except DurationError:
        pass
    else:
        if duration <= 0:
            raise _fail(f"annotation {key} must be a positive duration, got: {value}")
        return
    try:
        seconds = atoi(value)
    except ValueError:
        pass
    else:
        if seconds <= 0:
            raise _fail(f"annotation {key} must be a positive integer (seconds), got: {value}")
        return
    raise _fail(
        f"annotation {key} has invalid format: {value}. Expected Go duration format (e.g., '5m', '1h') or positive "
        "integer seconds"
    )


def _service_metadata(service: RayService) -> None:
    metadata = service.metadata
    _validate_name("RayService", metadata.name, MAX_RAY_SERVICE_NAME_LENGTH, "The RayService metadata is invalid: ")
    try:
        validate_initializing_timeout(metadata.annotations)
    except FieldTypeError:
        raise
    except ValidationError as err:
        raise _fail(f"The RayService metadata is invalid: RayService annotations is invalid: {err.message}") from None


def _cluster_upgrade_options_for_service(service: RayService) -> None:
    spec = service.spec
    if not is_autoscaling_enabled(spec.ray_cluster_spec):
        raise _fail("Ray Autoscaler is required for NewClusterWithIncrementalUpgrade")
    strategy = spec.upgrade_strategy
    options = strategy.cluster_upgrade_options if strategy is not None else None
    if options is None:
        raise _fail("ClusterUpgradeOptions are required for NewClusterWithIncrementalUpgrade")
    # The CRD defaults maxSurgePercent to 100; upstream dereferences it unconditionally.
    max_surge = options.max_surge_percent
    if max_surge is None:
        max_surge = DEFAULT_MAX_SURGE_PERCENT
    if max_surge < 0 or max_surge > 100:
        raise _fail("maxSurgePercent must be between 0 and 100")
    step = options.step_size_percent
    if step is None or step < 0 or step > 100:
        raise _fail("stepSizePercent must be between 0 and 100")
    if step > max_surge:
        raise _fail("stepSizePercent must be less than or equal to maxSurgePercent")
    interval = options.interval_seconds
    if interval is None or interval <= 0:
        raise _fail("intervalSeconds must be greater than 0")
    if options.gateway_class_name == "":
        raise _fail("gatewayClassName is required for NewClusterWithIncrementalUpgrade")


def _head_service_name(spec: RayClusterSpec) -> str:
    service = spec.head_group_spec.head_service
    if service is None:
        return ""
    path = spec.head_group_spec._child_path("headService")
    metadata = service.get("metadata")
    if metadata is None:
        return ""
    if not isinstance(metadata, dict):
        raise FieldTypeError(f"{path}.metadata", "object", metadata)
    name = metadata.get("name")
    if name is None:
        return ""
    if not isinstance(name, str):
        raise FieldTypeError(f"{path}.metadata.name", "string", name)
    return name


def _service_spec(service: RayService, gates: FeatureGates | None) -> None:
    spec = service.spec
    cluster_spec = spec.ray_cluster_spec
    if is_k8s_auth_enabled(cluster_spec.auth_options):
        raise _fail("The RayService spec is invalid: K8s token auth mode is currently not supported for RayService")
    try:
        _cluster_spec(cluster_spec, service.metadata.annotations or {}, gates)
    except FieldTypeError:
        raise
    except ValidationError as err:
        raise _fail(f"The RayService spec is invalid: {err.message}") from None
    if _head_service_name(cluster_spec) != "":
        raise _fail(
            "The RayService spec is invalid: spec.rayClusterConfig.headGroupSpec.headService.metadata.name should "
            "not be set"
        )
    strategy = spec.upgrade_strategy
    if strategy is not None and strategy.type is not None and strategy.type not in tuple(RayServiceUpgradeType):
        raise _fail(
            f"The RayService spec is invalid: Spec.UpgradeStrategy.Type value {strategy.type} is invalid, valid "
            f"options are {RayServiceUpgradeType.NEW_CLUSTER_WITH_INCREMENTAL_UPGRADE}, "
            f"{RayServiceUpgradeType.NEW_CLUSTER}, or {RayServiceUpgradeType.NONE}"
        )
    delay = spec.ray_cluster_deletion_delay_seconds
    if delay is not None and delay < 0:
        raise _fail(
            f"The RayService spec is invalid: Spec.RayClusterDeletionDelaySeconds should be a non-negative "
            f"integer, got {delay}"
        )
    if is_incremental_upgrade_enabled(spec, gates):
        try:
            _cluster_upgrade_options_for_service(service)
        except FieldTypeError:
            raise
        except ValidationError as err:
            raise _fail(f"The RayService spec is invalid: {err.message}") from None


# ---- input coercion --------------------------------------------------------------------------------


def _string_map(value: Any, path: str) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise FieldTypeError(path, "object", value)
    for key, item in value.items():
        if not isinstance(item, str):
            raise FieldTypeError(f"{path}[{key}]", "string", item)
    return value


# ---- public entry points ---------------------------------------------------------------------------
#
# Each entry point first reads every declared field of its input (``check_types``): a value of the
# wrong JSON type is reported as a FieldTypeError, as decoding into the Go structs would have failed,
# before any rule runs.


def _checked(cls: type[_T], obj: Any) -> _T:
    view = cls.wrap(obj)
    check_types(view)
    return view


def validate_ray_cluster_metadata(cluster: RayCluster | Mapping[str, Any]) -> None:
    """``ValidateRayClusterMetadata``: name at most 53 characters and a DNS-1035 label."""
    _cluster_metadata(_checked(RayCluster, cluster))


def validate_ray_cluster_spec(
    spec: RayClusterSpec | Mapping[str, Any],
    annotations: Mapping[str, str] | None = None,
    gates: FeatureGates | None = None,
) -> None:
    """``ValidateRayClusterSpec(spec, annotations)``: every RayCluster spec rule, in upstream's order.

    ``annotations`` are the owning object's annotations (RayCluster, RayJob or RayService).
    """
    view = _checked(RayClusterSpec, spec)
    _cluster_spec(view, _string_map(annotations, "metadata.annotations"), gates)


def validate_ray_cluster_upgrade_options(cluster: RayCluster | Mapping[str, Any]) -> None:
    """``ValidateRayClusterUpgradeOptions``: type Recreate or None, and only on user-created clusters."""
    _cluster_upgrade_options(_checked(RayCluster, cluster))


def validate_ray_cluster_status(cluster: RayCluster | Mapping[str, Any]) -> None:
    """``ValidateRayClusterStatus``: RayClusterSuspending and RayClusterSuspended are not both True."""
    _cluster_status(_checked(RayCluster, cluster))


def validate_ray_cluster(cluster: RayCluster | Mapping[str, Any], gates: FeatureGates | None = None) -> None:
    """Metadata, spec (with the cluster's annotations), upgrade options and status, in that order."""
    view = _checked(RayCluster, cluster)
    _cluster_metadata(view)
    _cluster_spec(view.spec, view.metadata.annotations or {}, gates)
    _cluster_upgrade_options(view)
    _cluster_status(view)


def validate_ray_job_metadata(job: RayJob | Mapping[str, Any]) -> None:
    """``ValidateRayJobMetadata``: name at most 47 characters and a DNS-1035 label."""
    _job_metadata(_checked(RayJob, job))


def validate_ray_job_spec(job: RayJob | Mapping[str, Any], gates: FeatureGates | None = None) -> None:
    """``ValidateRayJobSpec``: every RayJob spec rule, in upstream's order (§3.16 S1-S16)."""
    _job_spec(_checked(RayJob, job), gates)


def validate_ray_job_status(job: RayJob | Mapping[str, Any]) -> None:
    """``ValidateRayJobStatus``: Waiting is only valid in InteractiveMode."""
    _job_status(_checked(RayJob, job))


def validate_ray_job(job: RayJob | Mapping[str, Any], gates: FeatureGates | None = None) -> None:
    """``ValidateRayJobMetadata``, ``ValidateRayJobSpec`` and ``ValidateRayJobStatus``, in that order."""
    view = _checked(RayJob, job)
    _job_metadata(view)
    _job_spec(view, gates)
    _job_status(view)


def validate_ray_service_metadata(service: RayService | Mapping[str, Any]) -> None:
    """``ValidateRayServiceMetadata``: name at most 47 characters, DNS-1035, valid initializing timeout."""
    _service_metadata(_checked(RayService, service))


def validate_ray_service_spec(service: RayService | Mapping[str, Any], gates: FeatureGates | None = None) -> None:
    """``ValidateRayServiceSpec``."""
    _service_spec(_checked(RayService, service), gates)


def validate_cluster_upgrade_options(service: RayService | Mapping[str, Any]) -> None:
    """``ValidateClusterUpgradeOptions`` (the NewClusterWithIncrementalUpgrade options)."""
    _cluster_upgrade_options_for_service(_checked(RayService, service))


def validate_ray_service(service: RayService | Mapping[str, Any], gates: FeatureGates | None = None) -> None:
    """``ValidateRayServiceMetadata`` then ``ValidateRayServiceSpec``."""
    view = _checked(RayService, service)
    _service_metadata(view)
    _service_spec(view, gates)


def validate_ray_cron_job_spec(cron: RayCronJob | Mapping[str, Any], gates: FeatureGates | None = None) -> None:
    """``ValidateRayCronJobSpec`` (v1.7.0): the name, the schedule, the time zone, then the RayJob template
    as ``ValidateRayJobSpec`` sees a RayJob made of it."""
    view = _checked(RayCronJob, cron)
    if byte_len(view.metadata.name or "") > MAX_RAY_CRON_JOB_NAME_LENGTH:
        raise _fail(f"RayCronJob name should be no more than {MAX_RAY_CRON_JOB_NAME_LENGTH} characters")
    schedule = view.spec.schedule or ""
    if "TZ" in schedule:
        raise _fail("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    try:
        parse_standard(schedule)
    except CronError as e:
        raise _fail(f"invalid cron schedule: {e}") from None
    zone = view.spec.time_zone
    if zone is not None:
        if zone == "":
            raise _fail(
                "timeZone must not be empty string, omit the field to use the local time zone of the KubeRay operator"
            )
        try:
            load_location(zone)
        except ValueError as e:
            raise _fail(f"invalid time zone: {e}") from None
    template = _checked(RayJob, {"spec": view.spec.raw.get("jobTemplate") or {}})
    try:
        _job_spec(template, gates)
    except ValidationError as e:
        raise _fail(f"invalid RayJob template: {e}") from None
