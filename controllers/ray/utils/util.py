"""Pure helpers shared by the RayCluster object builders (upstream ``utils/util.go`` and friends).

Everything here takes plain dicts decoded from JSON (a RayCluster is ``cluster["spec"][...]``) and
reads them defensively with upstream's defaults. Nothing reads ``os.environ``: operator environment
switches (spec §7.3) arrive as a ``Mapping[str, str]``, feature gates as a ``Mapping[str, bool]``,
and random suffixes come from a caller-supplied generator.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from fractions import Fraction
from typing import Any, Final

from api.v1.raycluster_types import RayClusterSpec
from controllers.ray.utils import constants as C
from controllers.ray.utils.gojson import json_hash
from controllers.ray.utils.quantity import (
    Quantity,
    QuantityError,
    QuantityFormat,
    from_fraction,
    parse_quantity,
    try_parse_quantity,
)

JSON = dict[str, Any]

__all__ = [
    "JSON",
    "Quantity",
    "QuantityError",
    "calculate_desired_replicas",
    "calculate_desired_resources",
    "calculate_max_replicas",
    "calculate_min_replicas",
    "calculate_min_resources",
    "calculate_pod_resource",
    "check_label",
    "check_name",
    "check_route_name",
    "container_cpu",
    "container_gpus",
    "container_memory",
    "env_var_exists",
    "extract_ray_ip_from_fqdn",
    "feature_enabled",
    "find_container_port",
    "generate_fqdn_service_name",
    "generate_hash_without_replicas_and_workers_to_delete",
    "generate_head_service_name",
    "generate_identifier",
    "generate_ingress_name",
    "generate_ray_cluster_name",
    "generate_ray_job_id",
    "generate_replica_group_name",
    "generate_route_name",
    "generate_serve_service_label",
    "generate_serve_service_name",
    "get_cluster_domain_name",
    "get_container_command",
    "get_crd_type",
    "get_creator_crd_type",
    "get_gcs_storage_pvc_name",
    "get_head_group_service_account_name",
    "get_head_port",
    "get_worker_group_desired_replicas",
    "go_json_dumps",
    "go_json_float",
    "head_pod_name",
    "headless_service_name",
    "is_auth_enabled",
    "is_autoscaling_enabled",
    "is_autoscaling_v1_enabled",
    "is_autoscaling_v2_enabled",
    "is_deterministic_head_pod_name_enabled",
    "is_gcs_fault_tolerance_embedded",
    "is_gcs_fault_tolerance_enabled",
    "is_gpu_resource_key",
    "is_init_container_injection_enabled",
    "is_k8s_auth_enabled",
    "is_login_shell_enabled",
    "is_overwrite_ray_container_cmd",
    "is_probes_injection_enabled",
    "is_ray_head_cluster_ip_service_enabled",
    "needs_headless_worker_service",
    "owner_reference",
    "parse_generic_version",
    "parse_quantity",
    "plain_json",
    "pod_name",
    "random_string",
    "redis_cleanup_job_name",
    "set_controller_reference",
    "sum_gpus",
    "tls_cert_name",
    "tls_secret_name",
    "to_plain",
    "try_parse_quantity",
    "version_at_least",
    "worker_pod_generate_name",
]

EMPTY_ENV: Final[Mapping[str, str]] = {}

# ---- defensive dict access -------------------------------------------------------------------------


def to_plain(value: Any) -> Any:
    """A deep copy with ``str`` subclasses (StrEnum members) turned into plain ``str``."""
    if isinstance(value, dict):
        return {to_plain(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, str) and type(value) is not str:
        return str.__str__(value)
    return value


def plain_json(obj: JSON) -> JSON:
    """``to_plain`` for an object dict (what every public builder returns)."""
    result: JSON = to_plain(obj)
    return result


def as_map(value: object) -> JSON:
    """``value`` when it is a dict, else an empty dict (nil maps and missing fields)."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: object) -> str:
    """A string field; booleans render as Go would format them, None as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return str(value)


def string_map(value: object) -> dict[str, str]:
    """A ``map[string]string`` field (nil -> {}); non-string values are formatted as strings."""
    return {str(k): as_str(v) for k, v in as_map(value).items()}


def as_int(value: object, default: int) -> int:
    """An integer field; None (nil pointer) gives ``default``."""
    if value is None or isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return default
    return default


def as_bool(value: object) -> bool:
    """A ``*bool`` field: only a real ``true`` counts."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def cluster_name(cluster: Mapping[str, Any]) -> str:
    return as_str(as_map(cluster.get("metadata")).get("name"))


def cluster_namespace(cluster: Mapping[str, Any]) -> str:
    return as_str(as_map(cluster.get("metadata")).get("namespace"))


def cluster_spec(cluster: Mapping[str, Any]) -> JSON:
    return as_map(cluster.get("spec"))


def cluster_annotations(cluster: Mapping[str, Any]) -> dict[str, str]:
    return string_map(as_map(cluster.get("metadata")).get("annotations"))


def cluster_labels(cluster: Mapping[str, Any]) -> dict[str, str]:
    return string_map(as_map(cluster.get("metadata")).get("labels"))


def head_group_spec(cluster: Mapping[str, Any]) -> JSON:
    return as_map(cluster_spec(cluster).get("headGroupSpec"))


def worker_group_specs(cluster: Mapping[str, Any]) -> list[JSON]:
    return [as_map(g) for g in as_list(cluster_spec(cluster).get("workerGroupSpecs"))]


def template_containers(group: Mapping[str, Any]) -> list[JSON]:
    spec = as_map(as_map(group.get("template")).get("spec"))
    return [as_map(c) for c in as_list(spec.get("containers"))]


# ---- operator environment switches (§7.3) and feature gates ----------------------------------------


def env_is_true(env: Mapping[str, str], key: str) -> bool:
    return env.get(key, "").lower() == "true"


def env_is_not_false(env: Mapping[str, str], key: str) -> bool:
    return env.get(key, "").lower() != "false"


def get_cluster_domain_name(env: Mapping[str, str] = EMPTY_ENV) -> str:
    """``GetClusterDomainName``: ``CLUSTER_DOMAIN`` when non-empty, else ``cluster.local``."""
    domain = env.get(C.CLUSTER_DOMAIN_ENV_KEY, "")
    return domain if domain else C.DEFAULT_DOMAIN_NAME


def is_deterministic_head_pod_name_enabled(env: Mapping[str, str]) -> bool:
    return env_is_true(env, C.ENABLE_DETERMINISTIC_HEAD_POD_NAME)


def is_login_shell_enabled(env: Mapping[str, str]) -> bool:
    return env_is_true(env, C.ENABLE_LOGIN_SHELL)


def is_init_container_injection_enabled(env: Mapping[str, str]) -> bool:
    return env_is_not_false(env, C.ENABLE_INIT_CONTAINER_INJECTION)


def is_probes_injection_enabled(env: Mapping[str, str]) -> bool:
    return env_is_not_false(env, C.ENABLE_PROBES_INJECTION)


def is_ray_head_cluster_ip_service_enabled(env: Mapping[str, str]) -> bool:
    return env_is_true(env, C.ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE)


def is_gcs_ft_redis_cleanup_enabled(env: Mapping[str, str]) -> bool:
    return env_is_not_false(env, C.ENABLE_GCS_FT_REDIS_CLEANUP)


def is_random_pod_delete_enabled(env: Mapping[str, str]) -> bool:
    return env_is_true(env, C.ENABLE_RANDOM_POD_DELETE)


def feature_enabled(features: Mapping[str, bool] | None, name: str) -> bool:
    """A feature gate's value, falling back to the upstream default."""
    if features is not None and name in features:
        return bool(features[name])
    return C.DEFAULT_BUILDER_FEATURE_GATES.get(name, False)


def get_container_command(env: Mapping[str, str], additional_options: Sequence[str] = ()) -> list[str]:
    """``GetContainerCommand``: ``/bin/bash -c<opts>[l] --`` (``l`` with ``ENABLE_LOGIN_SHELL=true``)."""
    options = "c" + "".join(additional_options)
    if is_login_shell_enabled(env):
        options += "l"
    return [C.BASH, "-" + options, C.BASH_END_OF_OPTIONS]


# ---- names -----------------------------------------------------------------------------------------


def _go_is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


def _go_is_punct(ch: str) -> bool:
    # unicode.IsPunct: categories Pc, Pd, Ps, Pe, Pi, Pf, Po. '$', '+', '<', '=', '>', '^', '`', '|',
    # '~' are symbols, not punctuation.
    return unicodedata.category(ch).startswith("P")


def check_name(s: str) -> str:
    """``CheckName``: keep the last 50 characters; a leading digit, then a leading punctuation, becomes ``r``."""
    if len(s) > C.CHECK_NAME_MAX_LENGTH:
        s = s[len(s) - C.CHECK_NAME_MAX_LENGTH :]
    if s and _go_is_digit(s[0]):
        s = "r" + s[1:]
    if s and _go_is_punct(s[0]):
        s = "r" + s[1:]
    return s


def check_label(s: str) -> str:
    """``CheckLabel``: keep the last 63 characters; a leading punctuation becomes ``r``."""
    if len(s) > C.CHECK_LABEL_MAX_LENGTH:
        s = s[len(s) - C.CHECK_LABEL_MAX_LENGTH :]
    if s and _go_is_punct(s[0]):
        s = "r" + s[1:]
    return s


def trim_job_name(job_name: str) -> str:
    """``TrimJobName`` (= ``CheckLabel``)."""
    return check_label(job_name)


def check_route_name(s: str, namespace: str) -> str:
    """``CheckRouteName``: cut to ``51 - len(namespace)`` characters (from the right), then ``CheckName``."""
    max_length = C.ROUTE_NAME_MAX_LENGTH_BASE - len(namespace)
    if len(s) > max_length:
        s = s[: max(max_length, 0)]
    return check_name(s)


def pod_name(prefix: str, node_type: str, is_generate_name: bool) -> str:
    """``PodName``: the prefix cut to 50 characters, ``-<node type>``, lower-cased, ``-`` for generateName."""
    result = (prefix[: C.MAX_POD_NAME_PREFIX_LENGTH] + C.DASH_SYMBOL + node_type).lower()
    if is_generate_name:
        result += C.DASH_SYMBOL
    return result


def head_pod_name(name: str, env: Mapping[str, str] = EMPTY_ENV) -> tuple[str, bool]:
    """(name or generateName, is_deterministic) for the head pod of cluster ``name``."""
    deterministic = is_deterministic_head_pod_name_enabled(env)
    return pod_name(name, C.RayNodeType.HEAD, not deterministic), deterministic


def worker_pod_generate_name(name: str, group_name: str) -> str:
    """``<cluster>-<group>`` cut to 50 characters + ``-worker-``."""
    return pod_name(f"{name}{C.DASH_SYMBOL}{group_name}", C.RayNodeType.WORKER, True)


def generate_identifier(name: str, node_type: str) -> str:
    """``GenerateIdentifier``: ``<cluster>-<node type>`` (the caller applies ``CheckLabel``)."""
    return f"{name}{C.DASH_SYMBOL}{node_type}"


def get_crd_type(value: str) -> C.CRDType:
    """``GetCRDType``: unknown values mean RayCluster."""
    for crd in C.CRDType:
        if crd.value == value:
            return crd
    return C.CRDType.RAY_CLUSTER


def get_creator_crd_type(cluster: Mapping[str, Any]) -> C.CRDType:
    """The CRD that created the cluster, from its ``ray.io/originated-from-crd`` label."""
    return get_crd_type(cluster_labels(cluster).get(C.RAY_ORIGINATED_FROM_CRD_LABEL_KEY, ""))


def generate_head_service_name(crd_type: str, cluster_spec_: Mapping[str, Any], owner_name: str) -> str:
    """``GenerateHeadServiceName``: ``<owner>-head-svc``; a RayCluster's custom ``headService`` name wins."""
    default = f"{owner_name}-{C.RayNodeType.HEAD}-{C.HEAD_SERVICE_SUFFIX}"
    if crd_type == C.CRDType.RAY_CLUSTER:
        head_service = as_map(as_map(cluster_spec_.get("headGroupSpec")).get("headService"))
        custom = as_str(as_map(head_service.get("metadata")).get("name"))
        if custom:
            return custom
    return default


def generate_fqdn_service_name(
    cluster: Mapping[str, Any], namespace: str | None = None, env: Mapping[str, str] = EMPTY_ENV
) -> str:
    """``GenerateFQDNServiceName``: ``<head svc>.<namespace>.svc.<CLUSTER_DOMAIN|cluster.local>``."""
    ns = cluster_namespace(cluster) if namespace is None else namespace
    svc = generate_head_service_name(C.CRDType.RAY_CLUSTER, cluster_spec(cluster), cluster_name(cluster))
    return f"{svc}.{ns}.svc.{get_cluster_domain_name(env)}"


def extract_ray_ip_from_fqdn(fqdn: str) -> str:
    """``ExtractRayIPFromFQDN``: the first DNS label (the deprecated ``RAY_IP``)."""
    return fqdn.split(".", maxsplit=1)[0]


def generate_serve_service_name(name: str) -> str:
    return f"{name}-{C.SERVE_NAME}-{C.HEAD_SERVICE_SUFFIX}"


def generate_serve_service_label(name: str) -> str:
    return f"{name}-{C.SERVE_NAME}"


def generate_ingress_name(name: str) -> str:
    """``CheckName(<cluster>-head-ingress)``."""
    return check_name(f"{name}-{C.RayNodeType.HEAD}-{C.INGRESS_SUFFIX}")


def generate_route_name(name: str) -> str:
    return f"{name}-{C.RayNodeType.HEAD}-{C.ROUTE_SUFFIX}"


def headless_service_name(name: str) -> str:
    return f"{name}{C.DASH_SYMBOL}{C.HEADLESS_SERVICE_SUFFIX}"


def redis_cleanup_job_name(name: str) -> str:
    """``TrimJobName(<cluster>-redis-cleanup)`` (keeps the last 63 characters)."""
    return trim_job_name(f"{name}-{C.REDIS_CLEANUP_JOB_SUFFIX}")


def get_gcs_storage_pvc_name(cluster: Mapping[str, Any]) -> str:
    """``GetGCSStoragePVCName``: ``storage.claimName`` or ``<cluster>-gcs-pvc``."""
    options = as_map(cluster_spec(cluster).get("gcsFaultToleranceOptions"))
    claim = as_str(as_map(options.get("storage")).get("claimName"))
    return claim if claim else f"{cluster_name(cluster)}-{C.GCS_STORAGE_PVC_SUFFIX}"


def tls_secret_name(name: str, node_type: str) -> str:
    prefix = C.TLS_HEAD_SECRET_PREFIX if node_type == C.RayNodeType.HEAD else C.TLS_WORKER_SECRET_PREFIX
    return prefix + name


def tls_cert_name(name: str, node_type: str) -> str:
    prefix = C.TLS_HEAD_CERT_PREFIX if node_type == C.RayNodeType.HEAD else C.TLS_WORKER_CERT_PREFIX
    return prefix + name


def get_head_group_service_account_name(cluster: Mapping[str, Any]) -> str:
    """The head template's ``serviceAccountName``, else the cluster name (callers apply ``CheckName``)."""
    spec = as_map(as_map(head_group_spec(cluster).get("template")).get("spec"))
    sa = as_str(spec.get("serviceAccountName"))
    return sa if sa else cluster_name(cluster)


def random_string(n: int, rng: random.Random) -> str:
    """apimachinery ``rand.String(n)`` with a caller-supplied generator."""
    return "".join(rng.choice(C.RAND_STRING_ALPHABET) for _ in range(n))


def generate_replica_group_name(group_name: str, suffix: Callable[[], str]) -> str:
    """``<group>-<5 random chars>`` for a multi-host replica; ``suffix`` supplies the random part."""
    return f"{group_name}{C.DASH_SYMBOL}{suffix()}"


def generate_ray_cluster_name(name: str, suffix: Callable[[], str]) -> str:
    return f"{name}{C.DASH_SYMBOL}{suffix()}"


def generate_ray_job_id(name: str, suffix: Callable[[], str]) -> str:
    return f"{name}{C.DASH_SYMBOL}{suffix()}"


# ---- cluster feature checks ------------------------------------------------------------------------


def is_autoscaling_enabled(cluster: Mapping[str, Any]) -> bool:
    return cluster_spec(cluster).get("enableInTreeAutoscaling") is True


def _autoscaler_version(cluster: Mapping[str, Any]) -> str | None:
    options = cluster_spec(cluster).get("autoscalerOptions")
    if not isinstance(options, dict):
        return None
    version = options.get("version")
    return version if isinstance(version, str) else None


def is_autoscaling_v2_enabled(cluster: Mapping[str, Any]) -> bool:
    """``autoscalerOptions.version == v2`` (explicitly; Ray's own default does not count)."""
    return _autoscaler_version(cluster) == C.AUTOSCALER_VERSION_V2


def is_autoscaling_v1_enabled(cluster: Mapping[str, Any]) -> bool:
    return _autoscaler_version(cluster) == C.AUTOSCALER_VERSION_V1


def is_gcs_fault_tolerance_enabled(cluster: Mapping[str, Any]) -> bool:
    """Annotation ``ray.io/ft-enabled`` is ``true`` (any case) or ``gcsFaultToleranceOptions`` is set."""
    annotation = cluster_annotations(cluster).get(C.RAY_FT_ENABLED_ANNOTATION_KEY)
    if annotation is not None and annotation.lower() == "true":
        return True
    return cluster_spec(cluster).get("gcsFaultToleranceOptions") is not None


def is_gcs_fault_tolerance_embedded(cluster: Mapping[str, Any]) -> bool:
    """The RocksDB (embedded) GCS FT backend is selected."""
    options = cluster_spec(cluster).get("gcsFaultToleranceOptions")
    return isinstance(options, dict) and options.get("backend") == C.GCS_FT_BACKEND_ROCKSDB


def is_auth_enabled(cluster: Mapping[str, Any]) -> bool:
    """Token auth: only ``authOptions.mode == token`` enables it."""
    return as_map(cluster_spec(cluster).get("authOptions")).get("mode") == C.RAY_AUTH_MODE_TOKEN


def is_k8s_auth_enabled(auth_options: Mapping[str, Any] | None) -> bool:
    return auth_options is not None and auth_options.get("enableK8sTokenAuth") is True


def is_overwrite_ray_container_cmd(cluster: Mapping[str, Any]) -> bool:
    return cluster_annotations(cluster).get(C.RAY_OVERWRITE_CONTAINER_CMD_ANNOTATION_KEY, "").lower() == "true"


def get_head_port(head_ray_start_params: Mapping[str, str]) -> str:
    """``GetHeadPort``: ``rayStartParams['port']`` or ``6379``."""
    if C.PARAM_PORT in head_ray_start_params:
        return head_ray_start_params[C.PARAM_PORT]
    return str(C.DEFAULT_GCS_SERVER_PORT)


def needs_headless_worker_service(cluster: Mapping[str, Any]) -> bool:
    """A headless worker service exists only when some group has ``numOfHosts > 1``."""
    return any(as_int(g.get("numOfHosts"), 1) > 1 for g in worker_group_specs(cluster))


# ---- containers ------------------------------------------------------------------------------------


def env_var_exists(name: str, env: Iterable[Mapping[str, Any]] | None) -> bool:
    return any(e.get("name") == name for e in env or ())


def find_container_port(container: Mapping[str, Any], port_name: str, default: int) -> int:
    """``FindContainerPort``: the first port called ``port_name``, else ``default``."""
    for port in as_list(container.get("ports")):
        port = as_map(port)
        if port.get("name") == port_name:
            return as_int(port.get("containerPort"), 0)
    return default


# ---- times ------------------------------------------------------------------------------------------


def format_time(t: float) -> str:
    """A ``metav1.Time`` as the API stores it: RFC 3339 in UTC, whole seconds."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: Any) -> float | None:
    """A ``metav1.Time`` string as Unix seconds; None when empty or absent."""
    if not s:
        return None
    return dt.datetime.fromisoformat(str(s).replace("Z", "+00:00")).timestamp()


# ---- owner references ------------------------------------------------------------------------------


def owner_reference(owner: Mapping[str, Any], *, kind: str = C.RAY_CLUSTER_KIND) -> JSON:
    """The controller reference ``controllerutil.SetControllerReference`` adds."""
    meta = as_map(owner.get("metadata"))
    return {
        "apiVersion": as_str(owner.get("apiVersion")) or C.RAY_API_VERSION,
        "kind": as_str(owner.get("kind")) or kind,
        "name": as_str(meta.get("name")),
        "uid": as_str(meta.get("uid")),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _same_owner(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    def group(api_version: object) -> str:
        text = as_str(api_version)
        return text.split("/")[0] if "/" in text else ""

    return (
        group(a.get("apiVersion")) == group(b.get("apiVersion"))
        and a.get("kind") == b.get("kind")
        and a.get("name") == b.get("name")
    )


def is_controlled_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    """``metav1.IsControlledBy``: ``obj`` has a controller reference with ``owner``'s uid."""
    uid = as_map(owner.get("metadata")).get("uid")
    refs = as_list(as_map(obj.get("metadata")).get("ownerReferences"))
    return any(as_map(r).get("controller") is True and as_map(r).get("uid") == uid for r in refs)


def set_controller_reference(metadata: MutableMapping[str, Any], owner: Mapping[str, Any], **kw: str) -> None:
    """Upsert the controller reference; another controller already set leaves the refs unchanged."""
    ref = owner_reference(owner, **kw)
    refs = [as_map(r) for r in as_list(metadata.get("ownerReferences"))]
    for existing in refs:
        if existing.get("controller") is True and not _same_owner(existing, ref):
            return  # AlreadyOwnedError upstream: logged, object left as is
    for i, existing in enumerate(refs):
        if _same_owner(existing, ref):
            refs[i] = ref
            break
    else:
        refs.append(ref)
    metadata["ownerReferences"] = refs


# ---- versions --------------------------------------------------------------------------------------

_GENERIC_VERSION_RE: Final = re.compile(r"^\s*v?([0-9]+(?:\.[0-9]+)*)(.*)$", re.DOTALL)


def parse_generic_version(text: str) -> tuple[int, ...] | None:
    """apimachinery ``version.ParseGeneric``: at least two numeric components, trailing text ignored."""
    match = _GENERIC_VERSION_RE.match(text)
    if match is None:
        return None
    parts = match.group(1).split(".")
    if len(parts) < 2:
        return None
    if parts[0].startswith("0") and parts[0] != "0":
        return None
    return tuple(int(p) for p in parts)


def version_at_least(text: str, minimum: str) -> bool:
    """``v.AtLeast(min)`` for generic versions; an unparseable version is never at least anything."""
    v = parse_generic_version(text)
    m = parse_generic_version(minimum)
    if v is None or m is None:
        return False
    width = max(len(v), len(m))
    return v + (0,) * (width - len(v)) >= m + (0,) * (width - len(m))


# ---- Go JSON encoding ------------------------------------------------------------------------------


def go_json_float(f: float) -> str:
    """``encoding/json`` formatting of a float64 (shortest round-trip, ``e`` outside [1e-6, 1e21))."""
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"unsupported value: {f!r}")
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        text = repr(f)  # Python's shortest repr uses the same "d.ddde±XX" layout as Go's 'e', -1
        if "e" not in text:
            text = f"{f:e}"
        mantissa, exp = text.split("e")
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        sign = exp[0]
        digits = exp[1:].lstrip("0") or "0"
        if len(digits) < 2 and sign == "+":
            digits = digits.rjust(2, "0")
        # Go writes at least two exponent digits, then rewrites e-0X as e-X.
        return f"{mantissa}e{sign}{digits}" if sign == "-" else f"{mantissa}e+{digits}"
    from decimal import Decimal

    text = format(Decimal(repr(f)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def go_json_string(s: str) -> str:
    """``encoding/json`` string encoding (HTML-safe escaping of ``<``, ``>``, ``&``, U+2028/2029)."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or ch in "<>&" or code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json_dumps(value: object) -> str:
    """Compact ``json.Marshal`` of maps (sorted keys), lists, strings, bools, ints and floats."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_json_float(value)
    if isinstance(value, str):
        return go_json_string(value)
    if isinstance(value, Mapping):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(f"{go_json_string(k)}:{go_json_dumps(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json_dumps(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__}")


# ---- hashing ---------------------------------------------------------------------------------------


def generate_hash_without_replicas_and_workers_to_delete(spec: Mapping[str, Any]) -> str:
    """Upstream's ``GenerateHashWithoutReplicasAndWorkersToDelete``, byte for byte (§4.8 step 1):
    base32hex(sha1(json.Marshal(spec))) of the typed ``RayClusterSpec`` after clearing every group's
    ``replicas``/``minReplicas``/``maxReplicas``/``scaleStrategy.workersToDelete``, the pod
    ``tolerations`` and ``schedulingGates`` of head and workers, and ``upgradeStrategy``.

    Identical bytes matter: a Recreate cluster adopted from upstream keeps its pods only if the hash
    on its head pod equals ours for the same spec."""
    s = dict(spec)
    s.pop("upgradeStrategy", None)

    def without_scheduling(template: object) -> object:
        t = as_map(template)
        pod_spec = {k: v for k, v in as_map(t.get("spec")).items() if k not in ("tolerations", "schedulingGates")}
        return {**t, "spec": pod_spec}

    head = as_map(s.get("headGroupSpec"))
    s["headGroupSpec"] = {**head, "template": without_scheduling(head.get("template"))}
    groups = []
    for group in as_list(s.get("workerGroupSpecs")):
        g = {k: v for k, v in as_map(group).items() if k not in ("replicas", "minReplicas", "maxReplicas")}
        g["scaleStrategy"] = {k: v for k, v in as_map(g.get("scaleStrategy")).items() if k != "workersToDelete"}
        g["template"] = without_scheduling(g.get("template"))
        groups.append(g)
    if "workerGroupSpecs" in s:
        s["workerGroupSpecs"] = groups if isinstance(s["workerGroupSpecs"], list) else None
    return json_hash(s, RayClusterSpec)


# ---- replicas --------------------------------------------------------------------------------------


def _cap_int32(n: int) -> int:
    return min(n, C.MAX_INT32)


def get_worker_group_desired_replicas(group: Mapping[str, Any]) -> int:
    """0 when suspended, else clamp(replicas, min, max) x numOfHosts (nil replicas -> min; min > max -> max).

    ``minReplicas`` defaults to 0, ``maxReplicas`` to 2147483647, ``numOfHosts`` to 1 (CRD defaults).
    The product is capped at MaxInt32 instead of wrapping around like Go's int32 arithmetic.
    """
    if group.get("suspend") is True:
        return 0
    minimum = as_int(group.get("minReplicas"), 0)
    maximum = as_int(group.get("maxReplicas"), C.DEFAULT_MAX_REPLICAS)
    replicas_raw = group.get("replicas")
    if minimum > maximum:
        replicas = maximum
    elif replicas_raw is None or as_int(replicas_raw, minimum) < minimum:
        replicas = minimum
    elif as_int(replicas_raw, minimum) > maximum:
        replicas = maximum
    else:
        replicas = as_int(replicas_raw, minimum)
    return _cap_int32(replicas * as_int(group.get("numOfHosts"), 1))


def calculate_desired_replicas(cluster: Mapping[str, Any]) -> int:
    return _cap_int32(sum(get_worker_group_desired_replicas(g) for g in worker_group_specs(cluster)))


def calculate_min_replicas(cluster: Mapping[str, Any]) -> int:
    """Sum of minReplicas x numOfHosts over non-suspended groups, capped at MaxInt32."""
    total = 0
    for g in worker_group_specs(cluster):
        if g.get("suspend") is True:
            continue
        total += as_int(g.get("minReplicas"), 0) * as_int(g.get("numOfHosts"), 1)
    return _cap_int32(total)


def calculate_max_replicas(cluster: Mapping[str, Any]) -> int:
    """Sum of maxReplicas x numOfHosts over non-suspended groups, capped at MaxInt32."""
    total = 0
    for g in worker_group_specs(cluster):
        if g.get("suspend") is True:
            continue
        total += as_int(g.get("maxReplicas"), C.DEFAULT_MAX_REPLICAS) * as_int(g.get("numOfHosts"), 1)
    return _cap_int32(total)


# ---- resources -------------------------------------------------------------------------------------

_MIG_RE: Final = re.compile(C.NVIDIA_MIG_RESOURCE_PATTERN)


def is_gpu_resource_key(key: str) -> bool:
    """Ends with ``gpu`` (``nvidia.com/gpu``) or names an NVIDIA MIG slice (``nvidia.com/mig-2g.32gb``)."""
    return key.endswith("gpu") or _MIG_RE.search(key) is not None


def _resource_list(value: object) -> dict[str, Quantity]:
    out: dict[str, Quantity] = {}
    for k, v in as_map(value).items():
        q = try_parse_quantity(v)
        if q is not None:
            out[str(k)] = q
    return out


def container_cpu(container: Mapping[str, Any]) -> Quantity | None:
    """The CPU limit, else the CPU request (``num-cpus`` inference; zero counts as unset)."""
    resources = as_map(container.get("resources"))
    for section in ("limits", "requests"):
        q = _resource_list(resources.get(section)).get(C.RESOURCE_CPU)
        if q is not None and not q.is_zero():
            return q
    return None


def container_memory(container: Mapping[str, Any]) -> Quantity | None:
    """The memory *limit* only (``memory`` inference)."""
    q = _resource_list(as_map(container.get("resources")).get("limits")).get(C.RESOURCE_MEMORY)
    return q if q is not None and not q.is_zero() else None


def container_gpus(container: Mapping[str, Any]) -> tuple[str, Quantity] | None:
    """The first (sorted) GPU limit with a non-zero value."""
    limits = _resource_list(as_map(container.get("resources")).get("limits"))
    for key in sorted(limits):
        if is_gpu_resource_key(key) and not limits[key].is_zero():
            return key, limits[key]
    return None


def calculate_pod_resource(pod_spec: Mapping[str, Any]) -> dict[str, Quantity]:
    """``CalculatePodResource``: per container, requests win over limits; summed over containers."""
    total: dict[str, Quantity] = {}
    for container in as_list(pod_spec.get("containers")):
        resources = as_map(as_map(container).get("resources"))
        merged = _resource_list(resources.get("requests"))
        for name, q in _resource_list(resources.get("limits")).items():
            merged.setdefault(name, q)
        for name, q in merged.items():
            total[name] = total[name].add(q) if name in total else q
    return total


def _sum_resources(lists: Iterable[Mapping[str, Quantity]]) -> dict[str, Quantity]:
    total: dict[str, Quantity] = {}
    for resources in lists:
        for name, q in resources.items():
            total[name] = total[name].add(q) if name in total else q
    return total


def _pod_spec_of(group: Mapping[str, Any]) -> JSON:
    return as_map(as_map(group.get("template")).get("spec"))


def calculate_desired_resources(cluster: Mapping[str, Any]) -> dict[str, Quantity]:
    """Head pod + (replicas x numOfHosts) pods of every non-suspended worker group."""
    parts: list[Mapping[str, Quantity]] = [calculate_pod_resource(_pod_spec_of(head_group_spec(cluster)))]
    for g in worker_group_specs(cluster):
        if g.get("suspend") is True:
            continue
        count = as_int(g.get("replicas"), 0) * as_int(g.get("numOfHosts"), 1)
        pod = calculate_pod_resource(_pod_spec_of(g))
        parts.append({k: v.mul_int(count) for k, v in pod.items()})
    return _sum_resources(parts)


def calculate_min_resources(cluster: Mapping[str, Any]) -> dict[str, Quantity]:
    """Head pod + (minReplicas x numOfHosts) pods of every worker group."""
    parts: list[Mapping[str, Quantity]] = [calculate_pod_resource(_pod_spec_of(head_group_spec(cluster)))]
    for g in worker_group_specs(cluster):
        count = as_int(g.get("minReplicas"), 0) * as_int(g.get("numOfHosts"), 1)
        pod = calculate_pod_resource(_pod_spec_of(g))
        parts.append({k: v.mul_int(count) for k, v in pod.items()})
    return _sum_resources(parts)


def sum_gpus(resources: Mapping[str, Quantity]) -> Quantity:
    """Sum of every GPU resource (``desiredGPU``)."""
    total = from_fraction(Fraction(0), QuantityFormat.DECIMAL_SI)
    for name in sorted(resources):
        if is_gpu_resource_key(name):
            total = total.add(resources[name])
    return total
