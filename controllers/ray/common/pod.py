"""Head and worker pod construction (upstream ``common/pod.go`` plus the pod parts of
``raycluster_controller.go``: ``buildHeadPod``/``buildWorkerPod``). Spec §4.3, §4.4, §4.6, §4.7, §4.9.

All functions are pure: a RayCluster dict goes in, a Pod dict comes out. Operator environment
switches (§7.3) are a ``Mapping[str, str]`` parameter, feature gates a ``Mapping[str, bool]``.

Flow (kept in upstream order, because the order decides env-var and volume order):

head:   template -> name/namespace -> group ``resources``/``labels`` into rayStartParams -> labels ->
        setMissingRayStartParams -> annotations -> autoscaler sidecar (+ v1/v2 env, restartPolicy) ->
        GCS FT -> metrics port -> token auth -> head sidecars (config) -> history collector (gate) ->
        BuildPod -> ownerRef -> recreate-hash/version annotations -> default pod labels/annotations (config)
worker: template -> generateName/namespace -> wait-gcs-ready init container -> clear name ->
        group ``resources``/``labels`` -> labels (+ multi-host labels) -> setMissingRayStartParams ->
        annotations -> GCS FT -> metrics port -> v2 restartPolicy -> token auth -> worker sidecars ->
        history collector (gate) -> BuildPod -> ownerRef -> default pod labels/annotations
BuildPod: RayService serve label -> /dev/shm -> /tmp/ray (autoscaler) -> /tmp/ray (collector, gate) ->
        command rewrite -> init-container env -> Ray container env (+ Ray event export, collector) ->
        probes

Not ported (feature-gated, default off upstream): mTLS (``RayClusterMTLS``); batch-scheduler pod
metadata (controller concern).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from controllers.ray.utils import constants as C
from controllers.ray.utils import util as U
from controllers.ray.utils.util import JSON

__all__ = [
    "PodConfig",
    "build_autoscaler_container",
    "build_collector_container",
    "build_head_pod",
    "build_pod",
    "build_worker_pod",
    "convert_cmd_to_string",
    "convert_param_map",
    "generate_ray_start_command",
    "label_pod",
    "set_missing_ray_start_params",
    "update_ray_start_params_labels",
    "update_ray_start_params_resources",
    "wait_gcs_ready_script",
]


@dataclass(frozen=True)
class PodConfig:
    """Operator ``Configuration`` fields that change pods (§7.1): sidecars, default env, metadata."""

    head_sidecar_containers: Sequence[Mapping[str, Any]] = ()
    worker_sidecar_containers: Sequence[Mapping[str, Any]] = ()
    default_container_envs: Sequence[Mapping[str, Any]] = ()
    default_pod_labels: Mapping[str, str] = field(default_factory=dict)
    default_pod_annotations: Mapping[str, str] = field(default_factory=dict)


DEFAULT_POD_CONFIG: Final = PodConfig()
_EMPTY_ENV: Final[Mapping[str, str]] = {}


# ---- rayStartParams ----------------------------------------------------------------------------------


def convert_param_map(params: Mapping[str, str]) -> str:
    """``convertParamMap``: sorted keys, `` --k=v `` each; ``true``/``false`` are switches.

    A value of ``true`` (any case) renders as `` --k ``, ``false`` is dropped, except for
    ``log-color``, ``include-dashboard`` and ``include-log-monitor`` which always render ``--k=v``.
    """
    parts: list[str] = []
    for key in sorted(params):
        value = params[key]
        lowered = value.lower()
        if lowered in ("true", "false") and key not in C.SPECIAL_BOOLEAN_PARAMS:
            if lowered == "true":
                parts.append(f" --{key} ")
        else:
            parts.append(f" --{key}={value} ")
    return "".join(parts)


def convert_cmd_to_string(items: Sequence[Any]) -> str:
    """``convertCmdToString``: every element wrapped as `` <e> ``."""
    return "".join(f" {U.as_str(item)} " for item in items)


def set_missing_ray_start_params(
    params: MutableMapping[str, str], node_type: str, head_port: str, fqdn_ray_ip: str
) -> MutableMapping[str, str]:
    """``setMissingRayStartParams`` (in place): address (worker), dashboard-host (head),
    metrics-export-port, block=true (always) and dashboard-agent-listen-port."""
    if node_type == C.RayNodeType.WORKER and C.PARAM_ADDRESS not in params:
        params[C.PARAM_ADDRESS] = f"{fqdn_ray_ip}:{head_port}"
    if node_type == C.RayNodeType.HEAD and C.PARAM_DASHBOARD_HOST not in params:
        params[C.PARAM_DASHBOARD_HOST] = C.DEFAULT_DASHBOARD_HOST
    if C.PARAM_METRICS_EXPORT_PORT not in params:
        params[C.PARAM_METRICS_EXPORT_PORT] = str(C.DEFAULT_METRICS_PORT)
    params[C.PARAM_BLOCK] = "true"
    if C.PARAM_DASHBOARD_AGENT_LISTEN_PORT not in params:
        params[C.PARAM_DASHBOARD_AGENT_LISTEN_PORT] = str(C.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT)
    return params


def update_ray_start_params_labels(params: MutableMapping[str, str], group_labels: Mapping[str, str]) -> None:
    """Group ``labels`` -> ``labels=k1=v1,k2=v2`` (sorted keys)."""
    if not group_labels:
        return
    params[C.PARAM_LABELS] = ",".join(f"{k}={group_labels[k]}" for k in sorted(group_labels))


def update_ray_start_params_resources(params: MutableMapping[str, str], group_resources: Mapping[str, str]) -> None:
    """Group ``resources``: cpu -> num-cpus, memory -> memory, GPU key -> num-gpus (all ``Value()``),
    anything else -> ``resources='{"name": float, ...}'``. Unparseable quantities are skipped."""
    if not group_resources:
        return
    custom: dict[str, float] = {}
    for name, raw in group_resources.items():
        q = U.try_parse_quantity(raw)
        if q is None:
            continue
        normalized = name.lower()
        if normalized == C.RESOURCE_CPU:
            params[C.PARAM_NUM_CPUS] = str(q.value())
        elif normalized == C.RESOURCE_MEMORY:
            params[C.PARAM_MEMORY] = str(q.value())
        elif U.is_gpu_resource_key(normalized):
            params[C.PARAM_NUM_GPUS] = str(q.value())
        else:
            custom[name] = q.as_approximate_float64()
    if custom:
        encoded = _encode_resources(custom)
        if encoded is not None:
            params[C.PARAM_RESOURCES] = f"'{encoded}'"


def _encode_resources(resources: Mapping[str, float]) -> str | None:
    """``json.Marshal(map[string]float64)``; None where Go would fail (NaN/Inf)."""
    if any(math.isnan(v) or math.isinf(v) for v in resources.values()):
        return None
    return U.go_json_dumps(dict(resources))


def _parse_resources_param(params: Mapping[str, str]) -> dict[str, float] | None:
    """``getResourcesMap``: the ``resources`` param with surrounding quotes/backticks/spaces trimmed,
    decoded as ``map[string]float64``; None when Go's ``json.Unmarshal`` would fail."""
    if C.PARAM_RESOURCES not in params:
        return {}
    text = params[C.PARAM_RESOURCES].strip("'\"` ")

    def reject_constant(_: str) -> float:
        raise ValueError("not a number")

    try:
        decoded = json.loads(text, parse_constant=reject_constant)
    except ValueError:
        return None
    if decoded is None:
        return {}
    if not isinstance(decoded, dict):
        return None
    out: dict[str, float] = {}
    for k, v in decoded.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        f = float(v)
        if math.isinf(f):
            return None
        out[k] = f
    return out


def _add_well_known_accelerator_resources(params: MutableMapping[str, str], limits: Mapping[str, Any]) -> None:
    """``addWellKnownAcceleratorResources``: num-gpus from the first sorted GPU limit, and the first
    custom accelerator (TPU, Neuron cores) added to ``resources`` unless one is already there.
    If ``resources`` does not decode, neither is done (upstream returns the decode error)."""
    if not limits:
        return
    resources = _parse_resources_param(params)
    if resources is None:
        return
    accelerator_added = any(name in resources for name in C.CUSTOM_ACCELERATOR_TO_RAY_RESOURCE.values())
    for key in sorted(limits):
        q = U.try_parse_quantity(limits[key])
        nonzero = q is not None and not q.is_zero()
        if C.PARAM_NUM_GPUS not in params and U.is_gpu_resource_key(key) and nonzero and q is not None:
            params[C.PARAM_NUM_GPUS] = str(q.value())
        if not accelerator_added and key in C.CUSTOM_ACCELERATOR_TO_RAY_RESOURCE and nonzero and q is not None:
            ray_name = C.CUSTOM_ACCELERATOR_TO_RAY_RESOURCE[key]
            if ray_name not in resources:
                resources[ray_name] = q.as_approximate_float64()
                encoded = _encode_resources(resources)
                if encoded is None:
                    return
                params[C.PARAM_RESOURCES] = f"'{encoded}'"
            accelerator_added = True


def _infer_resource_params(params: MutableMapping[str, str], container_resources: Mapping[str, Any]) -> None:
    """The resource inference of ``generateRayStartCommand`` (in place)."""
    limits = U.as_map(container_resources.get("limits"))
    requests = U.as_map(container_resources.get("requests"))
    if C.PARAM_NUM_CPUS not in params:
        for section in (limits, requests):
            cpu = U.try_parse_quantity(section.get(C.RESOURCE_CPU))
            if cpu is not None and not cpu.is_zero():
                params[C.PARAM_NUM_CPUS] = str(cpu.value())
                break
    if C.PARAM_MEMORY not in params:
        memory = U.try_parse_quantity(limits.get(C.RESOURCE_MEMORY))
        if memory is not None and not memory.is_zero():
            params[C.PARAM_MEMORY] = str(memory.value())
    _add_well_known_accelerator_resources(params, {str(k): v for k, v in limits.items()})


def generate_ray_start_command(
    node_type: str, params: MutableMapping[str, str], container_resources: Mapping[str, Any]
) -> str:
    """``generateRayStartCommand``: infer num-cpus/memory/num-gpus/accelerators into ``params``
    (in place, like upstream) and render ``ray start [--head] <flags>``."""
    _infer_resource_params(params, container_resources)
    if node_type == C.RayNodeType.HEAD:
        return f"ray start --head {convert_param_map(params)}"
    if node_type == C.RayNodeType.WORKER:
        return f"ray start {convert_param_map(params)}"
    return ""


# ---- labels ------------------------------------------------------------------------------------------


def label_pod(node_type: str, name: str, group_name: str, override_labels: Mapping[str, str]) -> dict[str, str]:
    """``labelPod``: the default Ray labels; template/group labels override all but cluster,
    node-type and group."""
    labels = {
        C.RAY_NODE_LABEL_KEY: C.RAY_NODE_LABEL_VALUE,
        C.RAY_CLUSTER_LABEL_KEY: name,
        C.RAY_NODE_TYPE_LABEL_KEY: node_type,
        C.RAY_NODE_GROUP_LABEL_KEY: group_name,
        C.RAY_ID_LABEL_KEY: U.check_label(U.generate_identifier(name, node_type)),
        C.KUBERNETES_APPLICATION_NAME_LABEL_KEY: C.APPLICATION_NAME,
        C.KUBERNETES_CREATED_BY_LABEL_KEY: C.COMPONENT_NAME,
    }
    for k, v in override_labels.items():
        if k in C.PROTECTED_POD_LABEL_KEYS:
            continue
        labels[k] = v
    return labels


# ---- small container helpers ---------------------------------------------------------------------------


def _env(name: str, value: str) -> JSON:
    """An EnvVar as Go serialises it (``value`` is omitempty)."""
    return {"name": name, "value": value} if value else {"name": name}


def _field_env(name: str, field_path: str) -> JSON:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def _container_env(container: JSON) -> list[JSON]:
    env = container.get("env")
    if not isinstance(env, list):
        env = []
        container["env"] = env
    return env


def _fixed_resources(cpu: str, memory: str) -> JSON:
    return {
        "limits": {C.RESOURCE_CPU: cpu, C.RESOURCE_MEMORY: memory},
        "requests": {C.RESOURCE_CPU: cpu, C.RESOURCE_MEMORY: memory},
    }


def _add_metrics_port(container: JSON) -> None:
    if U.find_container_port(container, C.METRICS_PORT_NAME, -1) != -1:
        return
    ports = container.get("ports")
    if not isinstance(ports, list):
        ports = []
        container["ports"] = ports
    ports.append({"name": C.METRICS_PORT_NAME, "containerPort": C.DEFAULT_METRICS_PORT})


def _add_empty_dir(container: JSON, pod_spec: JSON, volume_name: str, mount_path: str, medium: str) -> None:
    """``addEmptyDir``: skip if something is mounted at ``mount_path``; add the volume if missing
    (``sizeLimit`` = memory limit, else request, for the Memory medium) and the mount."""
    mounts = container.get("volumeMounts")
    if isinstance(mounts, list) and any(U.as_map(m).get("mountPath") == mount_path for m in mounts):
        return
    volumes = pod_spec.get("volumes")
    if not isinstance(volumes, list):
        volumes = []
        pod_spec["volumes"] = volumes
    if not any(U.as_map(v).get("name") == volume_name for v in volumes):
        empty_dir: JSON = {}
        if medium:
            empty_dir["medium"] = medium
        if medium == C.STORAGE_MEDIUM_MEMORY:
            size = _memory_request_or_limit(container)
            if size is not None:
                empty_dir["sizeLimit"] = size
        volumes.append({"name": volume_name, "emptyDir": empty_dir})
    if not isinstance(mounts, list):
        mounts = []
        container["volumeMounts"] = mounts
    mounts.append({"name": volume_name, "mountPath": mount_path})


def _memory_request_or_limit(container: Mapping[str, Any]) -> str | None:
    """``findMemoryReqOrLimit``: the memory limit if present (even zero), else the request; canonical."""
    resources = U.as_map(container.get("resources"))
    for section in ("limits", "requests"):
        values = U.as_map(resources.get(section))
        if C.RESOURCE_MEMORY in values:
            raw = values[C.RESOURCE_MEMORY]
            q = U.try_parse_quantity(raw)
            return q.canonical() if q is not None else U.as_str(raw)
    return None


# ---- history-server collector (gate RayClusterHistoryServer; raycluster-extensions.md §4) ---------------

#: Ray event types the aggregator agent exports to the collector.
_COLLECTOR_EVENT_TYPES: Final = ",".join(
    (
        "TASK_DEFINITION_EVENT",
        "TASK_LIFECYCLE_EVENT",
        "ACTOR_TASK_DEFINITION_EVENT",
        "TASK_PROFILE_EVENT",
        "DRIVER_JOB_DEFINITION_EVENT",
        "DRIVER_JOB_LIFECYCLE_EVENT",
        "ACTOR_DEFINITION_EVENT",
        "ACTOR_LIFECYCLE_EVENT",
        "NODE_DEFINITION_EVENT",
        "NODE_LIFECYCLE_EVENT",
    )
)
#: Env the Ray container gets when its pod has a collector (each only if the user did not set it).
_RAY_EVENT_EXPORT_ENV: Final = (
    ("RAY_enable_ray_event", "true"),
    ("RAY_enable_core_worker_ray_event_to_aggregator", "true"),
    (
        "RAY_DASHBOARD_AGGREGATOR_AGENT_EVENTS_EXPORT_ADDR",
        f"http://localhost:{C.DEFAULT_COLLECTOR_EVENTS_PORT}/v1/events",
    ),
    ("RAY_DASHBOARD_AGGREGATOR_AGENT_EXPOSABLE_EVENT_TYPES", _COLLECTOR_EVENT_TYPES),
    ("RAY_DASHBOARD_AGGREGATOR_AGENT_PUBLISHER_HTTP_ENDPOINT_EXPOSABLE_EVENT_TYPES", _COLLECTOR_EVENT_TYPES),
)
_RAY_DASHBOARD_ADDRESS: Final = "RAY_DASHBOARD_ADDRESS"


def build_collector_container(cluster: Mapping[str, Any], node_type: str, fqdn_ray_ip: str) -> JSON | None:
    """The ``ray-history-collector`` sidecar of ``historyServerOptions.collectorOptions``; None without
    them. Its env: the pod's address, the cluster, the role, the events port, the head's address, the
    owning custom resource, then the user's, then token auth's."""
    spec = U.cluster_spec(cluster)
    options = U.as_map(spec.get("historyServerOptions")).get("collectorOptions")
    if not isinstance(options, Mapping):
        return None
    meta = U.as_map(cluster.get("metadata"))
    labels = U.string_map(meta.get("labels"))
    user_env = [copy.deepcopy(U.as_map(e)) for e in U.as_list(options.get("env"))]
    env: list[JSON] = [
        _field_env(C.POD_IP, "status.podIP"),
        _env(C.RAY_CLUSTER_NAME, U.as_str(meta.get("name"))),
        _env(C.RAY_CLUSTER_NAMESPACE, U.as_str(meta.get("namespace"))),
        _env(C.RAY_ROLE, "Head" if node_type == C.RayNodeType.HEAD else "Worker"),
        _env(C.EVENTS_PORT, str(C.DEFAULT_COLLECTOR_EVENTS_PORT)),
        _env(C.FQ_RAY_IP, fqdn_ray_ip),
    ]
    for name, label in (
        (C.OWNER_KIND, C.RAY_ORIGINATED_FROM_CRD_LABEL_KEY),
        (C.OWNER_NAME, C.RAY_ORIGINATED_FROM_CR_NAME_LABEL_KEY),
    ):
        if labels.get(label):
            env.append(_env(name, labels[label]))
    if node_type == C.RayNodeType.HEAD and not U.env_var_exists(_RAY_DASHBOARD_ADDRESS, user_env):
        # upstream hard-codes the port, even when the cluster's dashboard port differs
        env.append(_env(_RAY_DASHBOARD_ADDRESS, f"http://localhost:{C.DEFAULT_DASHBOARD_PORT}"))
    env.extend(user_env)
    container: JSON = {
        "name": C.COLLECTOR_CONTAINER_NAME,
        "image": U.as_str(options.get("image")),
        "imagePullPolicy": U.as_str(options.get("imagePullPolicy")) or C.PULL_IF_NOT_PRESENT,
        "env": env,
        "resources": (
            copy.deepcopy(dict(options["resources"]))
            if isinstance(options.get("resources"), Mapping)
            else {
                "limits": {C.RESOURCE_CPU: "200m", C.RESOURCE_MEMORY: "256Mi"},
                "requests": {C.RESOURCE_CPU: "50m", C.RESOURCE_MEMORY: "64Mi"},
            }
        ),
    }
    if U.is_auth_enabled(cluster):
        _set_container_token_auth_env_vars(U.as_str(meta.get("name")), container, U.as_map(spec.get("authOptions")))
    return container


def _share_ray_logs_with_collector(pod_spec: JSON, ray: JSON, collector: JSON) -> None:
    """The ``ray-logs`` emptyDir at /tmp/ray in the Ray container and the collector; a container that
    already mounts something there keeps it (the collector then sees its own, empty, directory)."""
    volumes = pod_spec.get("volumes")
    if not isinstance(volumes, list):
        volumes = pod_spec["volumes"] = []
    if not any(U.as_map(v).get("name") == C.RAY_LOG_VOLUME_NAME for v in volumes):
        volumes.append({"name": C.RAY_LOG_VOLUME_NAME, "emptyDir": {}})
    for container in (ray, collector):
        mounts = container.get("volumeMounts")
        if not isinstance(mounts, list):
            mounts = container["volumeMounts"] = []
        if not any(U.as_map(m).get("mountPath") == C.RAY_LOG_VOLUME_MOUNT_PATH for m in mounts):
            mounts.append({"name": C.RAY_LOG_VOLUME_NAME, "mountPath": C.RAY_LOG_VOLUME_MOUNT_PATH})


# ---- autoscaler ----------------------------------------------------------------------------------------


def build_autoscaler_container(image: str, env: Mapping[str, str] = _EMPTY_ENV) -> JSON:
    """``BuildAutoscalerContainer``: the ``autoscaler`` sidecar with upstream's defaults."""
    container: JSON = {
        "name": C.AUTOSCALER_CONTAINER_NAME,
        "imagePullPolicy": C.PULL_IF_NOT_PRESENT,
        "env": [
            _field_env(C.RAY_CLUSTER_NAME, C.FIELD_PATH_CLUSTER_LABEL),
            _field_env(C.RAY_CLUSTER_NAMESPACE, C.FIELD_PATH_NAMESPACE),
            _field_env(C.RAY_HEAD_POD_NAME, C.FIELD_PATH_NAME),
            _env(C.KUBERAY_CRD_VER, C.KUBERAY_CRD_VER_VALUE),
            _env(C.KUBERAY_GEN_AUTOSCALER_START_CMD, C.AUTOSCALER_START_COMMAND),
        ],
        "command": U.get_container_command(env),
        "args": [C.AUTOSCALER_START_COMMAND],
        "resources": _fixed_resources(C.AUTOSCALER_DEFAULT_CPU, C.AUTOSCALER_DEFAULT_MEMORY),
    }
    if image:
        container["image"] = image
    return container


def _merge_autoscaler_overrides(container: JSON, options: Mapping[str, Any]) -> None:
    """``mergeAutoscalerOverrides``: resources/image/pullPolicy/securityContext/command/args replace,
    env/envFrom/volumeMounts append."""
    if not options:
        return
    if options.get("resources") is not None:
        container["resources"] = copy.deepcopy(options["resources"])
    if options.get("image") is not None:
        container["image"] = options["image"]
    if options.get("imagePullPolicy") is not None:
        container["imagePullPolicy"] = options["imagePullPolicy"]
    for key in ("env", "envFrom", "volumeMounts"):
        extra = U.as_list(options.get(key))
        if extra:
            current = container.get(key)
            container[key] = [*(current if isinstance(current, list) else []), *copy.deepcopy(extra)]
    if options.get("securityContext") is not None:
        container["securityContext"] = copy.deepcopy(options["securityContext"])
    if U.as_list(options.get("command")):
        container["command"] = copy.deepcopy(options["command"])
    if U.as_list(options.get("args")):
        container["args"] = copy.deepcopy(options["args"])


# ---- token auth ----------------------------------------------------------------------------------------


def _set_container_token_auth_env_vars(cluster_name: str, container: JSON, auth_options: Mapping[str, Any]) -> None:
    """``SetContainerTokenAuthEnvVars``."""
    env = _container_env(container)
    if not U.env_var_exists(C.RAY_AUTH_MODE_ENV_VAR, env):
        env.append(_env(C.RAY_AUTH_MODE_ENV_VAR, C.RAY_AUTH_MODE_TOKEN))
    if U.is_k8s_auth_enabled(auth_options):
        if not U.env_var_exists(C.RAY_ENABLE_K8S_TOKEN_AUTH_ENV_VAR, env):
            env.append(_env(C.RAY_ENABLE_K8S_TOKEN_AUTH_ENV_VAR, "true"))
        mounts = container.get("volumeMounts")
        if not isinstance(mounts, list):
            mounts = []
            container["volumeMounts"] = mounts
        if not any(U.as_map(m).get("name") == C.RAY_TOKEN_VOLUME_NAME for m in mounts):
            mounts.append({"name": C.RAY_TOKEN_VOLUME_NAME, "mountPath": C.RAY_TOKEN_MOUNT_PATH, "readOnly": True})
    else:
        secret = U.as_str(auth_options.get("secretName")) or U.check_name(cluster_name)
        if not U.env_var_exists(C.RAY_AUTH_TOKEN_ENV_VAR, env):
            env.append(
                {
                    "name": C.RAY_AUTH_TOKEN_ENV_VAR,
                    "valueFrom": {"secretKeyRef": {"name": secret, "key": C.RAY_AUTH_TOKEN_SECRET_KEY}},
                }
            )


def _configure_token_auth(cluster_name: str, pod_spec: JSON, auth_options: Mapping[str, Any]) -> None:
    """``configureTokenAuth``: the Ray container, the ray-token volume (K8s auth) and ``wait-gcs-ready``."""
    containers = pod_spec["containers"]
    _set_container_token_auth_env_vars(cluster_name, containers[C.RAY_CONTAINER_INDEX], auth_options)
    if U.is_k8s_auth_enabled(auth_options):
        volumes = pod_spec.get("volumes")
        if not isinstance(volumes, list):
            volumes = []
            pod_spec["volumes"] = volumes
        if not any(U.as_map(v).get("name") == C.RAY_TOKEN_VOLUME_NAME for v in volumes):
            volumes.append(
                {
                    "name": C.RAY_TOKEN_VOLUME_NAME,
                    "projected": {"sources": [{"serviceAccountToken": {"path": C.RAY_TOKEN_PROJECTION_PATH}}]},
                }
            )
    for init in U.as_list(pod_spec.get("initContainers")):
        if isinstance(init, dict) and init.get("name") == C.WAIT_GCS_READY_INIT_CONTAINER_NAME:
            _set_container_token_auth_env_vars(cluster_name, init, auth_options)


# ---- GCS fault tolerance (§4.9) ------------------------------------------------------------------------


def _configure_gcs_fault_tolerance(
    annotations: dict[str, str],
    pod_spec: JSON,
    cluster: Mapping[str, Any],
    node_type: str,
    head_params: MutableMapping[str, str],
) -> None:
    """``configureGCSFaultTolerance``: ft-enabled annotation (head), worker reconnect timeout, and the
    Redis or RocksDB wiring of the head. May set ``redis-username``/``redis-password`` in the head's
    rayStartParams (``head_params``)."""
    ft_enabled = U.is_gcs_fault_tolerance_enabled(cluster)
    if node_type == C.RayNodeType.HEAD:
        annotations[C.RAY_FT_ENABLED_ANNOTATION_KEY] = "true" if ft_enabled else "false"
    if not ft_enabled:
        return
    container = pod_spec["containers"][C.RAY_CONTAINER_INDEX]
    env = _container_env(container)
    if node_type == C.RayNodeType.WORKER and not U.env_var_exists(C.RAY_GCS_RPC_SERVER_RECONNECT_TIMEOUT_S, env):
        env.append(_env(C.RAY_GCS_RPC_SERVER_RECONNECT_TIMEOUT_S, C.DEFAULT_WORKER_RAY_GCS_RECONNECT_TIMEOUT_S))
    if node_type != C.RayNodeType.HEAD:
        return
    if U.is_gcs_fault_tolerance_embedded(cluster):
        _configure_embedded_ft(pod_spec, cluster, container, env)
    else:
        _configure_redis_ft(annotations, cluster, env, head_params)


def _configure_redis_ft(
    annotations: dict[str, str], cluster: Mapping[str, Any], env: list[JSON], head_params: MutableMapping[str, str]
) -> None:
    raw_options = U.cluster_spec(cluster).get("gcsFaultToleranceOptions")
    options = raw_options if isinstance(raw_options, dict) else None
    storage_ns = U.as_str(U.as_map(cluster.get("metadata")).get("uid"))
    cluster_annotations = U.cluster_annotations(cluster)
    if C.RAY_EXTERNAL_STORAGE_NS_ANNOTATION_KEY in cluster_annotations:
        storage_ns = cluster_annotations[C.RAY_EXTERNAL_STORAGE_NS_ANNOTATION_KEY]
    if options is not None and U.as_str(options.get("externalStorageNamespace")):
        storage_ns = U.as_str(options.get("externalStorageNamespace"))
    annotations[C.RAY_EXTERNAL_STORAGE_NS_ANNOTATION_KEY] = storage_ns
    if not U.env_var_exists(C.RAY_EXTERNAL_STORAGE_NS, env):
        env.append(_env(C.RAY_EXTERNAL_STORAGE_NS, storage_ns))
    if options is not None:
        env.append(_env(C.RAY_REDIS_ADDRESS, U.as_str(options.get("redisAddress"))))
        for field_name, env_name, param in (
            ("redisUsername", C.REDIS_USERNAME, C.PARAM_REDIS_USERNAME),
            ("redisPassword", C.REDIS_PASSWORD, C.PARAM_REDIS_PASSWORD),
        ):
            credential = options.get(field_name)
            if credential is None:
                continue
            credential = U.as_map(credential)
            head_params[param] = f"${env_name}"
            var = _env(env_name, U.as_str(credential.get("value")))
            if credential.get("valueFrom") is not None:
                var["valueFrom"] = copy.deepcopy(credential["valueFrom"])
            env.append(var)
    elif not U.env_var_exists(C.REDIS_PASSWORD, env) and C.PARAM_REDIS_PASSWORD in head_params:
        # Legacy annotation mode: REDIS_PASSWORD comes from rayStartParams so the cleanup Job can use it.
        env.append(_env(C.REDIS_PASSWORD, head_params[C.PARAM_REDIS_PASSWORD]))


def _configure_embedded_ft(pod_spec: JSON, cluster: Mapping[str, Any], container: JSON, env: list[JSON]) -> None:
    if not U.env_var_exists(C.RAY_GCS_STORAGE, env):
        env.append(_env(C.RAY_GCS_STORAGE, C.GCS_STORAGE_ROCKSDB_VALUE))
    if not U.env_var_exists(C.RAY_GCS_STORAGE_PATH, env):
        env.append(_env(C.RAY_GCS_STORAGE_PATH, C.GCS_STORAGE_MOUNT_PATH))
    options = U.as_map(U.cluster_spec(cluster).get("gcsFaultToleranceOptions"))
    sub_path = U.as_str(U.as_map(options.get("storage")).get("subPath"))
    mount: JSON = {"name": C.GCS_STORAGE_VOLUME_NAME, "mountPath": C.GCS_STORAGE_MOUNT_PATH}
    if sub_path:
        mount["subPath"] = sub_path
    mounts = container.get("volumeMounts")
    container["volumeMounts"] = [*(mounts if isinstance(mounts, list) else []), mount]
    volumes = pod_spec.get("volumes")
    pod_spec["volumes"] = [
        *(volumes if isinstance(volumes, list) else []),
        {
            "name": C.GCS_STORAGE_VOLUME_NAME,
            "persistentVolumeClaim": {"claimName": U.get_gcs_storage_pvc_name(cluster)},
        },
    ]


# ---- wait-gcs-ready init container ---------------------------------------------------------------------

#: (tabs, text) lines of the init container script; the first line is empty and the script ends
#: with four tabs, exactly like upstream's raw string literal.
_WAIT_GCS_READY_LINES: Final = (
    (5, "SECONDS=0"),
    (5, "while true; do"),
    (6, "if (( SECONDS <= 120 )); then"),
    (7, "if ray health-check --address {address} > /dev/null 2>&1; then"),
    (8, 'echo "GCS is ready."'),
    (8, "break"),
    (7, "fi"),
    (7, 'echo "$SECONDS seconds elapsed: Waiting for GCS to be ready."'),
    (6, "else"),
    (7, "if ray health-check --address {address}; then"),
    (8, 'echo "GCS is ready. Any error messages above can be safely ignored."'),
    (8, "break"),
    (7, "fi"),
    (
        7,
        'echo "$SECONDS seconds elapsed: Still waiting for GCS to be ready. '
        'For troubleshooting, refer to the FAQ at {faq}."',
    ),
    (6, "fi"),
    (6, "sleep 5"),
    (5, "done"),
)


def wait_gcs_ready_script(fqdn_ray_ip: str, head_port: str) -> str:
    """The bash loop of ``wait-gcs-ready`` (quiet for 120 s, then verbose with the FAQ link)."""
    address = f"{fqdn_ray_ip}:{head_port}"
    body = "".join(
        "\t" * tabs + text.format(address=address, faq=C.WAIT_GCS_READY_FAQ_URL) + "\n"
        for tabs, text in _WAIT_GCS_READY_LINES
    )
    return "\n" + body + "\t" * 4


def _build_wait_gcs_ready_container(
    ray: Mapping[str, Any], fqdn_ray_ip: str, head_port: str, env: Mapping[str, str]
) -> JSON:
    snapshot = copy.deepcopy(dict(ray))
    init: JSON = {"name": C.WAIT_GCS_READY_INIT_CONTAINER_NAME}
    if U.as_str(ray.get("image")):
        init["image"] = ray["image"]
    if U.as_str(ray.get("imagePullPolicy")):
        init["imagePullPolicy"] = ray["imagePullPolicy"]
    init["command"] = U.get_container_command(env)
    init["args"] = [wait_gcs_ready_script(fqdn_ray_ip, head_port)]
    if snapshot.get("securityContext") is not None:
        init["securityContext"] = snapshot["securityContext"]
    if U.as_list(snapshot.get("env")):
        init["env"] = snapshot["env"]
    if U.as_list(snapshot.get("volumeMounts")):
        init["volumeMounts"] = snapshot["volumeMounts"]
    init["resources"] = _fixed_resources(C.WAIT_GCS_READY_CPU, C.WAIT_GCS_READY_MEMORY)
    return init


# ---- probes (§4.7) -------------------------------------------------------------------------------------


def _param_port(params: Mapping[str, str], key: str, default: int) -> int:
    """A port from rayStartParams if it parses as an int32, else ``default``."""
    raw = params.get(key)
    if raw is not None and raw.isascii():
        digits = raw[1:] if raw[:1] in ("+", "-") else raw
        if digits.isdigit():
            value = int(raw, 10)
            if -(2**31) <= value < 2**31:
                return value
    return default


def _wget(timeout: int, port: int, path: str) -> str:
    return C.BASE_WGET_HEALTH_COMMAND.format(timeout=timeout, port=port, path=path)


def _init_liveness_and_readiness_probe(
    ray: JSON, node_type: str, crd_type: str, params: Mapping[str, str], ray_version: str
) -> None:
    """``initLivenessAndReadinessProbe``: only probes the container lacks are added."""
    agent_port = _param_port(params, C.PARAM_DASHBOARD_AGENT_LISTEN_PORT, C.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT)
    http_check = U.version_at_least(ray_version, C.UNIFIED_HEALTH_CHECK_MIN_RAY_VERSION)
    http_action: JSON = {"path": C.RAY_NODE_HEALTH_PATH, "port": agent_port}
    commands = [_wget(C.DEFAULT_READINESS_PROBE_TIMEOUT_SECONDS, agent_port, C.RAY_AGENT_RAYLET_HEALTH_PATH)]
    if node_type == C.RayNodeType.HEAD:
        dashboard_port = _param_port(params, C.PARAM_DASHBOARD_PORT, C.DEFAULT_DASHBOARD_PORT)
        # Quirk kept from upstream: the GCS check's wget timeout is the readiness failure threshold (10).
        commands.append(
            _wget(C.DEFAULT_READINESS_PROBE_FAILURE_THRESHOLD, dashboard_port, C.RAY_DASHBOARD_GCS_HEALTH_PATH)
        )
    is_head = node_type == C.RayNodeType.HEAD

    def exec_action(cmds: Sequence[str]) -> JSON:
        return {"command": ["bash", "-c", " && ".join(cmds)]}

    if ray.get("livenessProbe") is None:
        probe: JSON = {
            "initialDelaySeconds": C.DEFAULT_LIVENESS_PROBE_INITIAL_DELAY_SECONDS,
            "timeoutSeconds": (
                C.DEFAULT_HEAD_LIVENESS_PROBE_TIMEOUT_SECONDS if is_head else C.DEFAULT_LIVENESS_PROBE_TIMEOUT_SECONDS
            ),
            "periodSeconds": C.DEFAULT_LIVENESS_PROBE_PERIOD_SECONDS,
            "successThreshold": C.DEFAULT_LIVENESS_PROBE_SUCCESS_THRESHOLD,
            "failureThreshold": C.DEFAULT_LIVENESS_PROBE_FAILURE_THRESHOLD,
        }
        if http_check:
            probe["httpGet"] = dict(http_action)
        else:
            probe["exec"] = exec_action(commands)
        ray["livenessProbe"] = probe

    if ray.get("readinessProbe") is None:
        probe = {
            "initialDelaySeconds": C.DEFAULT_READINESS_PROBE_INITIAL_DELAY_SECONDS,
            "timeoutSeconds": (
                C.DEFAULT_HEAD_READINESS_PROBE_TIMEOUT_SECONDS if is_head else C.DEFAULT_READINESS_PROBE_TIMEOUT_SECONDS
            ),
            "periodSeconds": C.DEFAULT_READINESS_PROBE_PERIOD_SECONDS,
            "successThreshold": C.DEFAULT_READINESS_PROBE_SUCCESS_THRESHOLD,
            "failureThreshold": C.DEFAULT_READINESS_PROBE_FAILURE_THRESHOLD,
        }
        if http_check:
            probe["httpGet"] = dict(http_action)
        else:
            probe["exec"] = exec_action(commands)
        if crd_type == C.CRDType.RAY_SERVICE and node_type == C.RayNodeType.WORKER:
            # Serving workers: always exec, plus the Serve proxy check, and fail after one miss.
            probe["failureThreshold"] = C.SERVE_READINESS_PROBE_FAILURE_THRESHOLD
            serve_port = U.find_container_port(ray, C.SERVING_PORT_NAME, C.DEFAULT_SERVING_PORT)
            serve_check = _wget(
                C.DEFAULT_READINESS_PROBE_INITIAL_DELAY_SECONDS, serve_port, C.RAY_SERVE_PROXY_HEALTH_PATH
            )
            probe.pop("httpGet", None)
            probe["exec"] = exec_action([*commands, serve_check])
        ray["readinessProbe"] = probe


# ---- env vars ------------------------------------------------------------------------------------------


def _set_init_container_env_vars(container: JSON, fqdn_ray_ip: str) -> None:
    """Every init container gets ``FQ_RAY_IP`` and ``RAY_IP`` appended (no existence check)."""
    env = _container_env(container)
    env.append(_env(C.FQ_RAY_IP, fqdn_ray_ip))
    env.append(_env(C.RAY_IP, U.extract_ray_ip_from_fqdn(fqdn_ray_ip)))


def _set_container_env_vars(
    ray: JSON,
    node_type: str,
    *,
    fqdn_ray_ip: str,
    head_port: str,
    ray_start_cmd: str,
    crd_type: str,
    default_container_envs: Sequence[Mapping[str, Any]],
    kuberay_version: str,
) -> None:
    """``setContainerEnvVars`` (order matters: it is the order of the resulting list)."""
    env = _container_env(ray)
    for default in default_container_envs:
        if not U.env_var_exists(U.as_str(default.get("name")), env):
            env.append(copy.deepcopy(dict(default)))
    ip = C.LOCAL_HOST
    if node_type == C.RayNodeType.WORKER:
        ip = fqdn_ray_ip
        env.append(_env(C.FQ_RAY_IP, ip))
        env.append(_env(C.RAY_IP, U.extract_ray_ip_from_fqdn(ip)))
    env.append(_field_env(C.RAY_CLUSTER_NAME, C.FIELD_PATH_CLUSTER_LABEL))
    env.append(_field_env(C.RAY_CLUSTER_NAMESPACE, C.FIELD_PATH_NAMESPACE))
    env.append(_field_env(C.RAY_CLOUD_INSTANCE_ID, C.FIELD_PATH_NAME))
    env.append(_field_env(C.RAY_NODE_TYPE_NAME, C.FIELD_PATH_GROUP_LABEL))
    env.append(_env(C.KUBERAY_GEN_RAY_START_CMD, ray_start_cmd))
    if not U.env_var_exists(C.RAY_PORT, env):
        env.append(_env(C.RAY_PORT, head_port))
    if crd_type == C.CRDType.RAY_SERVICE:
        for name, value in (
            (C.RAY_TIMEOUT_MS_TASK_WAIT_FOR_DEATH_INFO, "0"),
            (C.RAY_GCS_SERVER_REQUEST_TIMEOUT_SECONDS, "5"),
            (C.RAY_SERVE_KV_TIMEOUT_S, "5"),
        ):
            if not U.env_var_exists(name, env):
                env.append(_env(name, value))
    if not U.env_var_exists(C.RAY_ADDRESS, env):
        env.append(_env(C.RAY_ADDRESS, f"{ip}:{head_port}"))
    if not U.env_var_exists(C.RAY_USAGE_STATS_KUBERAY_IN_USE, env):
        env.append(_env(C.RAY_USAGE_STATS_KUBERAY_IN_USE, "1"))
    if node_type == C.RayNodeType.HEAD:
        env.append(_env(C.RAY_USAGE_STATS_EXTRA_TAGS, f"kuberay_version={kuberay_version};kuberay_crd={crd_type}"))
    if not U.env_var_exists(C.RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE, env):
        env.append(_env(C.RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE, "1"))


# ---- BuildPod ------------------------------------------------------------------------------------------


def build_pod(
    metadata: JSON,
    pod_spec: JSON,
    node_type: str,
    params: MutableMapping[str, str],
    *,
    head_port: str,
    enable_autoscaler: bool,
    crd_type: str,
    fqdn_ray_ip: str,
    env: Mapping[str, str] = _EMPTY_ENV,
    default_container_envs: Sequence[Mapping[str, Any]] = (),
    ray_version: str = "",
    kuberay_version: str = C.KUBERAY_VERSION,
    history_server: bool = False,
) -> JSON:
    """``BuildPod``: the node-type-independent part of pod construction (mutates its arguments).
    ``history_server``: gate RayClusterHistoryServer (a container named ``ray-history-collector``, the
    operator's or the user's, then shares the Ray logs and receives Ray's events)."""
    labels = metadata.setdefault("labels", {})
    if crd_type == C.CRDType.RAY_SERVICE:
        labels[C.RAY_CLUSTER_SERVING_SERVICE_LABEL_KEY] = (
            C.ENABLE_RAY_CLUSTER_SERVING_SERVICE_FALSE
            if node_type == C.RayNodeType.HEAD
            else C.ENABLE_RAY_CLUSTER_SERVING_SERVICE_TRUE
        )
    containers: list[JSON] = pod_spec["containers"]
    ray = containers[C.RAY_CONTAINER_INDEX]

    if C.PARAM_PLASMA_DIRECTORY not in params:
        _add_empty_dir(
            ray, pod_spec, C.SHARED_MEMORY_VOLUME_NAME, C.SHARED_MEMORY_VOLUME_MOUNT_PATH, C.STORAGE_MEDIUM_MEMORY
        )
    if node_type == C.RayNodeType.HEAD and enable_autoscaler:
        autoscaler = next((c for c in containers if c.get("name") == C.AUTOSCALER_CONTAINER_NAME), None)
        if autoscaler is not None:
            _add_empty_dir(ray, pod_spec, C.RAY_LOG_VOLUME_NAME, C.RAY_LOG_VOLUME_MOUNT_PATH, "")
            _add_empty_dir(autoscaler, pod_spec, C.RAY_LOG_VOLUME_NAME, C.RAY_LOG_VOLUME_MOUNT_PATH, "")
    collector = None
    if history_server:
        collector = next((c for c in containers if c.get("name") == C.COLLECTOR_CONTAINER_NAME), None)
        if collector is not None:
            _share_ray_logs_with_collector(pod_spec, ray, collector)

    cmd = ""
    if U.as_list(ray.get("command")):
        cmd = convert_cmd_to_string(ray["command"])
    if U.as_list(ray.get("args")):
        cmd += convert_cmd_to_string(ray["args"])
    ray_start_cmd = generate_ray_start_command(node_type, params, U.as_map(ray.get("resources")))
    annotations = U.string_map(metadata.get("annotations"))
    overwrite = annotations.get(C.RAY_OVERWRITE_CONTAINER_CMD_ANNOTATION_KEY, "").lower() == "true"
    if not overwrite and "ray start" not in cmd:
        generated = f"{C.ULIMIT_COMMAND}; {ray_start_cmd}"
        ray["command"] = U.get_container_command(env)
        ray["args"] = [f"{cmd} && {generated}" if cmd else generated]

    for init in U.as_list(pod_spec.get("initContainers")):
        if isinstance(init, dict):
            _set_init_container_env_vars(init, fqdn_ray_ip)
    _set_container_env_vars(
        ray,
        node_type,
        fqdn_ray_ip=fqdn_ray_ip,
        head_port=head_port,
        ray_start_cmd=ray_start_cmd,
        crd_type=crd_type,
        default_container_envs=default_container_envs,
        kuberay_version=kuberay_version,
    )
    if collector is not None:
        ray_env = _container_env(ray)
        for name, value in _RAY_EVENT_EXPORT_ENV:
            if not U.env_var_exists(name, ray_env):
                ray_env.append(_env(name, value))
    if U.is_probes_injection_enabled(env):
        _init_liveness_and_readiness_probe(ray, node_type, crd_type, params, ray_version)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


# ---- head and worker pods ------------------------------------------------------------------------------


def _template_parts(group: Mapping[str, Any], what: str) -> tuple[JSON, JSON]:
    template = copy.deepcopy(U.as_map(group.get("template")))
    metadata = U.as_map(template.get("metadata"))
    pod_spec = U.as_map(template.get("spec"))
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise ValueError(f"{what}: template.spec.containers must hold the Ray container at index 0")
    pod_spec["containers"] = [c if isinstance(c, dict) else {} for c in containers]
    return metadata, pod_spec


def _set_namespace(metadata: JSON, namespace: str) -> None:
    """Pods live in the cluster's namespace (an empty namespace is omitted, as Go's omitempty does)."""
    if namespace:
        metadata["namespace"] = namespace
    else:
        metadata.pop("namespace", None)


def _finish_metadata(metadata: JSON, annotations: dict[str, str], config: PodConfig) -> None:
    labels: dict[str, str] = metadata["labels"]
    for k, v in config.default_pod_labels.items():
        labels.setdefault(k, v)
    for k, v in config.default_pod_annotations.items():
        annotations.setdefault(k, v)
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)


def _initial_annotations(metadata: Mapping[str, Any], cluster: Mapping[str, Any]) -> dict[str, str]:
    """``initTemplateAnnotations``: template annotations + the overwrite-container-cmd propagation."""
    annotations = U.string_map(metadata.get("annotations"))
    if U.is_overwrite_ray_container_cmd(cluster):
        annotations[C.RAY_OVERWRITE_CONTAINER_CMD_ANNOTATION_KEY] = "true"
    return annotations


def build_head_pod(
    cluster: Mapping[str, Any],
    *,
    env: Mapping[str, str] = _EMPTY_ENV,
    features: Mapping[str, bool] | None = None,
    config: PodConfig = DEFAULT_POD_CONFIG,
    spec_hash: str | None = None,
    kuberay_version: str = C.KUBERAY_VERSION,
) -> JSON:
    """The head Pod for ``cluster`` (``buildHeadPod``), including the controller ownerRef and the
    ``ray.io/upgrade-strategy-recreate-hash``/``ray.io/kuberay-version`` annotations (``spec_hash``
    defaults to ``generate_hash_without_replicas_and_workers_to_delete(spec)``)."""
    cluster = copy.deepcopy(dict(cluster))
    name = U.cluster_name(cluster)
    namespace = U.cluster_namespace(cluster)
    spec = U.cluster_spec(cluster)
    head = U.head_group_spec(cluster)
    params = U.string_map(head.get("rayStartParams"))
    head_port = U.get_head_port(params)
    fqdn = U.generate_fqdn_service_name(cluster, namespace, env)
    metadata, pod_spec = _template_parts(head, "headGroupSpec")
    containers: list[JSON] = pod_spec["containers"]
    ray = containers[C.RAY_CONTAINER_INDEX]

    pod_prefix, deterministic = U.head_pod_name(name, env)
    if deterministic:
        metadata["name"] = pod_prefix
    else:
        metadata["generateName"] = pod_prefix
    _set_namespace(metadata, namespace)

    update_ray_start_params_resources(params, U.string_map(head.get("resources")))
    group_labels = U.string_map(head.get("labels"))
    update_ray_start_params_labels(params, group_labels)
    merged = {**U.string_map(metadata.get("labels")), **group_labels}
    metadata["labels"] = label_pod(C.RayNodeType.HEAD, name, C.RAY_NODE_HEAD_GROUP_LABEL_VALUE, merged)
    set_missing_ray_start_params(params, C.RayNodeType.HEAD, head_port, "")
    annotations = _initial_annotations(metadata, cluster)

    autoscaling = U.is_autoscaling_enabled(cluster)
    if autoscaling:
        params[C.PARAM_NO_MONITOR] = "true"
        pod_spec["serviceAccountName"] = U.check_name(U.get_head_group_service_account_name(cluster))
        autoscaler = build_autoscaler_container(U.as_str(ray.get("image")), env)
        if U.is_auth_enabled(cluster):
            _set_container_token_auth_env_vars(name, autoscaler, U.as_map(spec.get("authOptions")))
        _merge_autoscaler_overrides(autoscaler, U.as_map(spec.get("autoscalerOptions")))
        containers.append(autoscaler)
        if U.is_autoscaling_v2_enabled(cluster):
            _container_env(ray).append(_env(C.RAY_ENABLE_AUTOSCALER_V2, "true"))
            pod_spec["restartPolicy"] = "Never"
        elif U.is_autoscaling_v1_enabled(cluster):
            _container_env(ray).append(_env(C.RAY_ENABLE_AUTOSCALER_V2, "false"))

    _configure_gcs_fault_tolerance(annotations, pod_spec, cluster, C.RayNodeType.HEAD, params)
    _add_metrics_port(ray)
    if U.is_auth_enabled(cluster):
        _configure_token_auth(name, pod_spec, U.as_map(spec.get("authOptions")))
    containers.extend(copy.deepcopy(dict(c)) for c in config.head_sidecar_containers)
    history_server = U.feature_enabled(features, C.FEATURE_RAY_CLUSTER_HISTORY_SERVER)
    if history_server and (collector := build_collector_container(cluster, C.RayNodeType.HEAD, fqdn)) is not None:
        containers.append(collector)

    metadata["annotations"] = annotations
    pod = build_pod(
        metadata,
        pod_spec,
        C.RayNodeType.HEAD,
        params,
        head_port=head_port,
        enable_autoscaler=autoscaling,
        crd_type=U.get_creator_crd_type(cluster),
        fqdn_ray_ip=fqdn,
        env=env,
        default_container_envs=config.default_container_envs,
        ray_version=U.as_str(spec.get("rayVersion")),
        kuberay_version=kuberay_version,
        history_server=history_server,
    )
    _drop_empty_env(pod_spec)
    U.set_controller_reference(metadata, cluster)
    annotations[C.UPGRADE_STRATEGY_RECREATE_HASH_KEY] = (
        spec_hash if spec_hash is not None else U.generate_hash_without_replicas_and_workers_to_delete(spec)
    )
    annotations[C.KUBERAY_VERSION_ANNOTATION_KEY] = kuberay_version
    _finish_metadata(metadata, annotations, config)
    return U.plain_json(pod)


def build_worker_pod(
    cluster: Mapping[str, Any],
    group_spec: Mapping[str, Any],
    *,
    env: Mapping[str, str] = _EMPTY_ENV,
    features: Mapping[str, bool] | None = None,
    config: PodConfig = DEFAULT_POD_CONFIG,
    replica_index: int = 0,
    replica_name: str = "",
    host_index: int = 0,
    kuberay_version: str = C.KUBERAY_VERSION,
) -> JSON:
    """A worker Pod of ``group_spec`` (``buildWorkerPod``).

    With the ``RayMultiHostIndexing`` gate (on by default) the pod carries
    ``ray.io/worker-group-replica-index=<replica_index>``, and for ``numOfHosts > 1`` also
    ``ray.io/worker-group-replica-name=<replica_name>`` (``<group>-<5 random chars>``, see
    ``util.generate_replica_group_name``) and ``ray.io/replica-host-index=<host_index>``.
    """
    cluster = copy.deepcopy(dict(cluster))
    group = copy.deepcopy(dict(group_spec))
    name = U.cluster_name(cluster)
    namespace = U.cluster_namespace(cluster)
    spec = U.cluster_spec(cluster)
    group_name = U.as_str(group.get("groupName"))
    head_params = U.string_map(U.head_group_spec(cluster).get("rayStartParams"))
    head_port = U.get_head_port(head_params)
    params = U.string_map(group.get("rayStartParams"))
    fqdn = U.generate_fqdn_service_name(cluster, namespace, env)
    metadata, pod_spec = _template_parts(group, f"workerGroupSpecs[{group_name}]")
    containers: list[JSON] = pod_spec["containers"]
    ray = containers[C.RAY_CONTAINER_INDEX]

    metadata["generateName"] = U.worker_pod_generate_name(name, group_name)
    _set_namespace(metadata, namespace)
    if U.is_init_container_injection_enabled(env):
        init = _build_wait_gcs_ready_container(ray, fqdn, head_port, env)
        pod_spec["initContainers"] = [*U.as_list(pod_spec.get("initContainers")), init]
    metadata.pop("name", None)

    update_ray_start_params_resources(params, U.string_map(group.get("resources")))
    group_labels = U.string_map(group.get("labels"))
    update_ray_start_params_labels(params, group_labels)
    merged = {**U.string_map(metadata.get("labels")), **group_labels}
    labels = label_pod(C.RayNodeType.WORKER, name, group_name, merged)
    if U.feature_enabled(features, C.FEATURE_RAY_MULTI_HOST_INDEXING):
        labels[C.RAY_WORKER_REPLICA_INDEX_KEY] = str(replica_index)
        if U.as_int(group.get("numOfHosts"), 1) > 1:
            labels[C.RAY_WORKER_REPLICA_NAME_KEY] = replica_name
            labels[C.RAY_HOST_INDEX_KEY] = str(host_index)
    metadata["labels"] = labels
    set_missing_ray_start_params(params, C.RayNodeType.WORKER, head_port, fqdn)
    annotations = _initial_annotations(metadata, cluster)
    _configure_gcs_fault_tolerance(annotations, pod_spec, cluster, C.RayNodeType.WORKER, head_params)
    _add_metrics_port(ray)
    autoscaling = U.is_autoscaling_enabled(cluster)
    if autoscaling and U.is_autoscaling_v2_enabled(cluster):
        pod_spec["restartPolicy"] = "Never"
    if U.is_auth_enabled(cluster):
        _configure_token_auth(name, pod_spec, U.as_map(spec.get("authOptions")))
    containers.extend(copy.deepcopy(dict(c)) for c in config.worker_sidecar_containers)
    history_server = U.feature_enabled(features, C.FEATURE_RAY_CLUSTER_HISTORY_SERVER)
    if history_server and (collector := build_collector_container(cluster, C.RayNodeType.WORKER, fqdn)) is not None:
        containers.append(collector)

    metadata["annotations"] = annotations
    pod = build_pod(
        metadata,
        pod_spec,
        C.RayNodeType.WORKER,
        params,
        head_port=head_port,
        enable_autoscaler=autoscaling,
        crd_type=U.get_creator_crd_type(cluster),
        fqdn_ray_ip=fqdn,
        env=env,
        default_container_envs=config.default_container_envs,
        ray_version=U.as_str(spec.get("rayVersion")),
        kuberay_version=kuberay_version,
        history_server=history_server,
    )
    _drop_empty_env(pod_spec)
    U.set_controller_reference(metadata, cluster)
    _finish_metadata(metadata, annotations, config)
    return U.plain_json(pod)


def _drop_empty_env(pod_spec: JSON) -> None:
    """Go omits empty ``env`` slices; drop the ones our helpers created but never filled."""
    for key in ("containers", "initContainers"):
        for container in U.as_list(pod_spec.get(key)):
            if isinstance(container, dict) and container.get("env") == []:
                del container["env"]
