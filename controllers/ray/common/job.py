"""Objects and commands the RayJob controller builds (upstream ``common/job.go`` and the builder parts of
``rayjob_controller.go``: ``constructRayClusterForRayJob``, ``getSubmitterTemplate``,
``getSubmitterContainer``, ``configureSubmitterContainer``, ``createNewK8sJob``). Spec §3.5, §3.7, §3.8,
§3.14, §13 Q11/Q12/Q18, §15.2, §15.6.

Every function is pure: dicts in, new dicts out, inputs never mutated. Operator env switches (§7.3) are
a ``Mapping[str, str]``, feature gates a ``Mapping[str, bool]`` (unset gates take upstream's default).

* :func:`construct_ray_cluster_for_rayjob` - the RayCluster of a RayJob (SidecarMode: the submitter
  sidecar, head ``restartPolicy: Never`` and ``ray.io/disable-provisioned-head-restart``).
* :func:`build_submitter_job` - the K8sJobMode submitter ``batch/v1`` Job.
* :func:`build_job_submit_command` / :func:`get_k8s_job_command` - the ``ray job submit`` shell script as
  upstream's token list; :func:`build_submitter_command` - the container ``command``/``args`` pair.
* :func:`ray_job_request` - the HTTPMode ``POST /api/jobs/`` body.
* :func:`runtime_env_yaml_to_json` - ``runtimeEnvYAML`` converted like ``sigs.k8s.io/yaml.YAMLToJSON``.

Not here (controller concerns): the batch-scheduler metadata (``AddMetadataToChildResource``), events,
and the Get-before-Create logic.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import math
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson
import yaml

from controllers.ray.common.pod import _set_container_token_auth_env_vars
from controllers.ray.utils import constants as C
from controllers.ray.utils import util as U
from controllers.ray.utils.dashboard import RayJobRequest
from controllers.ray.utils.util import JSON

__all__ = [
    "RuntimeEnvYAMLError",
    "SubmitterBuildError",
    "build_job_submit_command",
    "build_sidecar_submitter_container",
    "build_submitter_command",
    "build_submitter_job",
    "configure_sidecar_mode",
    "construct_ray_cluster_for_rayjob",
    "get_default_submitter_container",
    "get_k8s_job_command",
    "get_metadata_json_for_submit_command",
    "go_quote",
    "join_command",
    "parse_runtime_env_yaml",
    "ray_job_request",
    "runtime_env_yaml_to_json",
    "submission_mode",
    "submitter_backoff_limit",
]

_EMPTY_ENV: Final[Mapping[str, str]] = {}


class SubmitterBuildError(ValueError):
    """Upstream returns an error instead of an object (bad runtimeEnvYAML, metadata with an old Ray, a
    submission mode without a submit command, a template without containers)."""


class RuntimeEnvYAMLError(SubmitterBuildError):
    """``spec.runtimeEnvYAML`` cannot be converted to JSON."""


# ---- small accessors -----------------------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> JSON:
    return U.as_map(obj.get("metadata"))


def _spec(obj: Mapping[str, Any]) -> JSON:
    return U.as_map(obj.get("spec"))


def _status(obj: Mapping[str, Any]) -> JSON:
    return U.as_map(obj.get("status"))


def submission_mode(rayjob: Mapping[str, Any]) -> str:
    """``spec.submissionMode``, or ``K8sJobMode`` (the CRD default) when unset or empty."""
    mode = U.as_str(_spec(rayjob).get("submissionMode"))
    return mode if mode else C.JobSubmissionMode.K8S_JOB_MODE.value


def submitter_backoff_limit(rayjob: Mapping[str, Any]) -> int:
    """``spec.submitterConfig.backoffLimit`` (0 counts), else 2."""
    config = U.as_map(_spec(rayjob).get("submitterConfig"))
    return U.as_int(config.get("backoffLimit"), C.DEFAULT_SUBMITTER_BACKOFF_LIMIT)


def _env(name: str, value: str) -> JSON:
    """An EnvVar as Go serialises it (``value`` is omitempty)."""
    return {"name": name, "value": value} if value else {"name": name}


def _head_containers(cluster_spec: Mapping[str, Any]) -> list[JSON]:
    return U.template_containers(U.as_map(cluster_spec.get("headGroupSpec")))


def _head_ray_container(cluster_spec: Mapping[str, Any], what: str) -> JSON:
    containers = _head_containers(cluster_spec)
    if not containers:
        raise SubmitterBuildError(f"{what}: the head group template has no containers")
    return containers[C.RAY_CONTAINER_INDEX]


# ---- Go formatting helpers -----------------------------------------------------------------------------

_GO_CONTROL_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def go_quote(s: str) -> str:
    """Go ``strconv.Quote``: double quotes; ``"`` and ``\\`` escaped; printable runes (Unicode L/M/N/P/S
    and the ASCII space) kept; others as ``\\a``-style, ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")  # a lone surrogate cannot come from valid UTF-8
        elif ch == " " or ch.isprintable():
            out.append(ch)
        elif ch in _GO_CONTROL_ESCAPES:
            out.append(_GO_CONTROL_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _float32(value: float) -> float:
    """The value rounded to the nearest float32 (the CRD fields are ``float32``)."""
    try:
        rounded: float = struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)
    return rounded


def _go_percent_f(value: float) -> str:
    """``fmt.Sprintf("%f", float32(v))``: six decimals of the exact float32 value."""
    return f"{_float32(value):.6f}"


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


# Go ``strings.TrimSpace`` trims ``unicode.IsSpace`` runes; Python's ``str.strip`` also trims U+001C-U+001F.
_GO_SPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def _go_trim_space(s: str) -> str:
    return s.strip(_GO_SPACE)


# ---- runtimeEnvYAML -> JSON (sigs.k8s.io/yaml YAMLToJSON over go-yaml v2) -------------------------------
#
# PyYAML resolves plain scalars with YAML 1.1 rules that differ from go-yaml v2 in ways users hit:
# timestamps (go-yaml keeps ``2024-01-01`` a string), sexagesimal ``1:30`` (a string in Go, 90 in PyYAML),
# ``y``/``n`` (booleans in Go), ``2e-5`` and leading-zero octals (numbers in Go). The loader below
# resolves plain scalars the way go-yaml v2 does; quoted scalars stay strings, as everywhere.

_STR_TAG: Final = "tag:yaml.org,2002:str"
_NULL_TAG: Final = "tag:yaml.org,2002:null"
_BOOL_TAG: Final = "tag:yaml.org,2002:bool"
_INT_TAG: Final = "tag:yaml.org,2002:int"
_FLOAT_TAG: Final = "tag:yaml.org,2002:float"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"

_GO_NULLS: Final = frozenset({"", "~", "null", "Null", "NULL"})
_GO_TRUE: Final = frozenset({"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
_GO_FALSE: Final = frozenset({"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"})
_GO_SPECIAL_FLOATS: Final[dict[str, float]] = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_GO_INT_RE: Final = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_GO_UINT_RE: Final = re.compile(r"(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_YAML_STYLE_FLOAT_RE: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT_RE: Final = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_UINT64_MAX: Final = 2**64 - 1


def _go_int_literal(digits: str) -> int:
    """Go base-0 integer syntax without sign (``0x``, ``0o``, ``0b``, leading-0 octal, decimal)."""
    lower = digits.lower()
    if lower.startswith(("0x", "0o", "0b")):
        return int(digits, 0)
    if len(digits) > 1 and digits.startswith("0"):
        return int(digits, 8)
    return int(digits, 10)


def _go_resolve_number(text: str) -> int | float | None:
    """go-yaml v2 ``resolve`` for a plain scalar starting with a digit, a sign or a dot."""
    if text.startswith("."):
        return float(text) if _DOT_FLOAT_RE.fullmatch(text) else None
    plain = text.replace("_", "")
    m = _GO_INT_RE.fullmatch(plain)
    if m is not None:
        value = _go_int_literal(m.group(2))
        if m.group(1) == "-":
            value = -value
        if _INT64_MIN <= value <= _INT64_MAX:
            return value
    if _GO_UINT_RE.fullmatch(plain) is not None:  # ParseUint: no sign at all
        value = _go_int_literal(plain)
        if value <= _UINT64_MAX:
            return value
    if _YAML_STYLE_FLOAT_RE.fullmatch(plain) is not None:
        return float(plain)
    return None


def _go_resolve_plain(text: str) -> tuple[str, Any]:
    if text in _GO_NULLS:
        return _NULL_TAG, None
    if text in _GO_TRUE:
        return _BOOL_TAG, True
    if text in _GO_FALSE:
        return _BOOL_TAG, False
    if text in _GO_SPECIAL_FLOATS:
        return _FLOAT_TAG, _GO_SPECIAL_FLOATS[text]
    if text == "<<":
        return _MERGE_TAG, None
    if text[:1] in set("+-.0123456789"):
        number = _go_resolve_number(text)
        if isinstance(number, float):
            return _FLOAT_TAG, number
        if isinstance(number, int):
            return _INT_TAG, number
    return _STR_TAG, text


class _GoYAMLLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose plain-scalar resolution follows go-yaml v2 (see above)."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0]:
            return _go_resolve_plain(value)[0]
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Keys become their JSON strings right away: Python would merge ``1`` and ``true`` (equal hashes),
        go-yaml keeps them apart until sigs.k8s.io/yaml names them ``"1"`` and ``"true"``."""
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark
            )
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict | set):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
                )
            mapping[_json_key(key)] = self.construct_object(value_node, deep=deep)
        return mapping


def _construct_go_scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    text = loader.construct_scalar(node)  # type: ignore[arg-type]
    tag, value = _go_resolve_plain(str(text))
    if node.tag == _FLOAT_TAG and tag == _INT_TAG:  # go-yaml: an explicit !!float accepts an integer
        return float(value)
    if tag != node.tag:
        raise yaml.constructor.ConstructorError(
            None, None, f"cannot decode {text!r} as {node.tag.rsplit(':', 1)[-1]}", node.start_mark
        )
    return value


for _tag in (_BOOL_TAG, _INT_TAG, _FLOAT_TAG):
    _GoYAMLLoader.add_constructor(_tag, _construct_go_scalar)


def _go_format_float_key(value: float) -> str:
    """``strconv.FormatFloat(f, 'g', -1, 32)`` with go-yaml's spellings of the infinities and NaN."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    f32 = _float32(value)
    if f32 == 0:
        return "-0" if math.copysign(1.0, f32) < 0 else "0"
    for digits in range(1, 10):  # shortest decimal that reads back as the same float32
        text = f"{f32:.{digits - 1}e}"
        if _float32(float(text)) == f32:
            break
    mantissa, exp_text = text.split("e")
    exp = int(exp_text)
    sign = "-" if mantissa.startswith("-") else ""
    mantissa = mantissa.lstrip("-")
    significant = mantissa.replace(".", "").rstrip("0") or "0"
    if exp < -4 or exp >= 6:  # Go: %e when exp < -4 || exp >= eprec, and eprec is 6 for shortest
        frac = significant[1:]
        body = significant[0] + ("." + frac if frac else "")
        return f"{sign}{body}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{significant}"
    whole = significant[: exp + 1].ljust(exp + 1, "0")
    frac = significant[exp + 1 :]
    return sign + whole + ("." + frac if frac else "")


def _json_key(key: object) -> str:
    """``convertToJSONableObject``: YAML map keys become JSON strings the way sigs.k8s.io/yaml does."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return _go_format_float_key(key)
    raise RuntimeEnvYAMLError(f"unsupported map key of type: {type(key).__name__}, key: {key!r}")


def _jsonable(value: object) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise RuntimeEnvYAMLError(f"json: unsupported value: {value!r}")
        return value
    if isinstance(value, dict):
        return {_json_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):  # !!binary: go-yaml decodes it into a (possibly invalid UTF-8) string
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dt.datetime | dt.date):  # only with an explicit !!timestamp tag
        return value.isoformat()
    raise RuntimeEnvYAMLError(f"unsupported YAML value of type {type(value).__name__}: {value!r}")


def _load_runtime_env(runtime_env_yaml: str) -> Any:
    try:
        documents = yaml.load_all(runtime_env_yaml, Loader=_GoYAMLLoader)
        first = next(documents, None)  # go-yaml's Unmarshal reads the first document only
    except yaml.YAMLError as e:
        raise RuntimeEnvYAMLError(f"failed to convert runtimeEnvYAML to JSON: {_one_line(str(e))}") from e
    return _jsonable(first)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def runtime_env_yaml_to_json(runtime_env_yaml: str) -> str:
    """``yaml.YAMLToJSON(runtimeEnvYAML)``: compact JSON, map keys sorted, HTML characters escaped.

    Whitespace-only YAML gives ``null`` and a scalar gives a JSON scalar, as upstream (the submit command
    then carries them; ``ray job submit`` rejects them). Raises :class:`RuntimeEnvYAMLError`."""
    return U.go_json_dumps(_load_runtime_env(runtime_env_yaml))


def parse_runtime_env_yaml(runtime_env_yaml: str) -> dict[str, Any] | None:
    """``UnmarshalRuntimeEnvYAML`` for the HTTPMode request: the runtime env as a mapping, ``None`` for an
    empty string or YAML ``null``. A non-mapping document raises :class:`RuntimeEnvYAMLError`."""
    if not runtime_env_yaml:
        return None
    converted = orjson.loads(runtime_env_yaml_to_json(runtime_env_yaml))
    if converted is None:
        return None
    if not isinstance(converted, dict):
        raise RuntimeEnvYAMLError(
            f"failed to unmarshal RuntimeEnvYAML: {runtime_env_yaml!r}: "
            f"json: cannot unmarshal {_json_kind(converted)} into Go value of type map[string]interface {{}}"
        )
    return converted


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array"


# ---- metadata ------------------------------------------------------------------------------------------

_SEMVER_RE: Final = re.compile(
    r"v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?"
    r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
    r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
)


def _semver_at_least(text: str, minimum: tuple[int, int, int]) -> bool:
    """Masterminds ``NewVersion(text)`` checked against ``>= minimum``; prereleases never satisfy it.
    Raises SubmitterBuildError when ``text`` does not parse."""
    m = _SEMVER_RE.fullmatch(text)
    if m is None:
        raise SubmitterBuildError(f"failed to parse Ray version: {text}: Invalid Semantic Version")
    parts = (int(m.group(1)), int((m.group(2) or ".0")[1:]), int((m.group(3) or ".0")[1:]))
    if m.group(5):
        return False
    return parts >= minimum


def get_metadata_json_for_submit_command(rayjob: Mapping[str, Any]) -> str:
    """``--metadata-json`` value: ``json.Marshal(spec.metadata)``. Rejected only when
    ``rayClusterSpec.rayVersion`` is set and below 2.6.0 (or does not parse)."""
    spec = _spec(rayjob)
    cluster_spec = spec.get("rayClusterSpec")
    if isinstance(cluster_spec, dict):
        ray_version = U.as_str(cluster_spec.get("rayVersion"))
        if ray_version:
            minimum = tuple(int(p) for p in C.MIN_RAY_VERSION_FOR_JOB_METADATA.split("."))
            if not _semver_at_least(ray_version, (minimum[0], minimum[1], minimum[2])):
                raise SubmitterBuildError(
                    f"the Ray version must be at least {C.MIN_RAY_VERSION_FOR_JOB_METADATA} to use the metadata field"
                )
    return U.go_json_dumps(U.string_map(spec.get("metadata")))


# ---- the submit command (BuildJobSubmitCommand) --------------------------------------------------------


def _needs_status_check(mode: str, features: Mapping[str, bool] | None) -> bool:
    """K8sJobMode (the Job may retry its pod), or SidecarMode with gate SidecarSubmitterRestart."""
    if mode == C.JobSubmissionMode.K8S_JOB_MODE:
        return True
    return mode == C.JobSubmissionMode.SIDECAR_MODE and U.feature_enabled(features, C.FEATURE_SIDECAR_SUBMITTER_RESTART)


def build_job_submit_command(
    rayjob: Mapping[str, Any],
    mode: str,
    *,
    dashboard_address: str = "",
    features: Mapping[str, bool] | None = None,
) -> list[str]:
    """``BuildJobSubmitCommand``: the submitter shell script as a token list (join with :func:`join_command`).

    K8sJobMode talks to ``http://<dashboard_address or status.dashboardURL>`` (``http://`` added unless the
    address already starts with it); SidecarMode to ``http://127.0.0.1:<head dashboard port>``. Other modes
    raise :class:`SubmitterBuildError`, as do an unconvertible ``runtimeEnvYAML`` and metadata with an old Ray.
    """
    spec = _spec(rayjob)
    status = _status(rayjob)
    port = C.DEFAULT_DASHBOARD_PORT
    if mode == C.JobSubmissionMode.SIDECAR_MODE:
        head = _head_ray_container(U.as_map(spec.get("rayClusterSpec")), "SidecarMode")
        port = U.find_container_port(head, C.DASHBOARD_PORT_NAME, C.DEFAULT_DASHBOARD_PORT)
        address = f"{C.HTTP_SCHEME_PREFIX}{C.LOCAL_HOST}:{port}"
        health_url = f"http://localhost:{port}/{C.RAY_DASHBOARD_GCS_HEALTH_PATH}"
    elif mode == C.JobSubmissionMode.K8S_JOB_MODE:
        address = dashboard_address or U.as_str(status.get("dashboardURL"))
        if not address.startswith(C.HTTP_SCHEME_PREFIX):
            address = C.HTTP_SCHEME_PREFIX + address
        health_url = f"{address}/{C.RAY_DASHBOARD_GCS_HEALTH_PATH}"
    else:
        raise SubmitterBuildError(f"unsupported submission mode for job submit command: {mode}")

    job_id = U.as_str(status.get("jobId"))
    guarded = _needs_status_check(mode, features)

    health = C.BASE_PYTHON_HEALTH_COMMAND.format(
        url=health_url, timeout=C.RAY_DASHBOARD_GCS_HEALTH_CHECK_TIMEOUT_SECONDS
    )
    waiting = go_quote(f"Waiting for Ray Dashboard GCS to become healthy at {address} ...")
    sleep = str(C.SUBMITTER_GCS_HEALTH_WAIT_SLEEP_SECONDS)
    cmd = ["until", health, ">/dev/null", "2>&1", ";", "do", "echo", waiting, ";", "sleep", sleep, ";", "done", ";"]

    if guarded:
        cmd += ["if", "!", "ray", "job", "status", "--address", address, job_id, ">/dev/null", "2>&1", ";", "then"]
    cmd += ["ray", "job", "submit", "--address", address]
    if guarded:
        cmd.append("--no-wait")

    runtime_env_yaml = U.as_str(spec.get("runtimeEnvYAML"))
    if runtime_env_yaml:
        cmd += ["--runtime-env-json", go_quote(runtime_env_yaml_to_json(runtime_env_yaml))]
    if U.as_map(spec.get("metadata")):
        cmd += ["--metadata-json", go_quote(get_metadata_json_for_submit_command(rayjob))]
    if job_id:
        cmd += ["--submission-id", job_id]
    num_cpus = _number(spec.get("entrypointNumCpus"))
    if num_cpus > 0:
        cmd += ["--entrypoint-num-cpus", _go_percent_f(num_cpus)]
    num_gpus = _number(spec.get("entrypointNumGpus"))
    if num_gpus > 0:
        cmd += ["--entrypoint-num-gpus", _go_percent_f(num_gpus)]
    resources = U.as_str(spec.get("entrypointResources"))
    if resources:
        cmd += ["--entrypoint-resources", go_quote(resources)]

    cmd += ["--", _go_trim_space(U.as_str(spec.get("entrypoint"))), ";"]
    if guarded:
        cmd += ["fi", ";", "ray", "job", "logs", "--address", address, "--follow", job_id]
    return cmd


def get_k8s_job_command(rayjob: Mapping[str, Any], dashboard_address: str) -> list[str]:
    """The K8sJobMode submit script as tokens (status-guarded, ``--no-wait``, then ``ray job logs --follow``)."""
    return build_job_submit_command(rayjob, C.JobSubmissionMode.K8S_JOB_MODE, dashboard_address=dashboard_address)


def join_command(tokens: Sequence[str]) -> str:
    """The single ``args`` string upstream passes to bash: the tokens joined with one space."""
    return " ".join(tokens)


def build_submitter_command(
    rayjob: Mapping[str, Any],
    mode: str = C.JobSubmissionMode.K8S_JOB_MODE,
    *,
    dashboard_address: str = "",
    env: Mapping[str, str] = _EMPTY_ENV,
    features: Mapping[str, bool] | None = None,
) -> tuple[list[str], list[str]]:
    """The submitter container's ``(command, args)``: ``["/bin/bash", "-ce", "--"]`` (``-cel`` with
    ``ENABLE_LOGIN_SHELL=true``) and the submit script joined into one argument."""
    tokens = build_job_submit_command(rayjob, mode, dashboard_address=dashboard_address, features=features)
    return U.get_container_command(env, ["e"]), [join_command(tokens)]


# ---- the submitter container ---------------------------------------------------------------------------


def get_default_submitter_container(cluster_spec: Mapping[str, Any]) -> JSON:
    """``GetDefaultSubmitterContainer``: ``ray-job-submitter`` with the head Ray container's image (only
    the image, as upstream: not its imagePullPolicy), requests 500m/200Mi, limits 1 CPU/1Gi."""
    head = _head_ray_container(cluster_spec, "submitter container")
    container: JSON = {"name": C.RAY_JOB_SUBMITTER_CONTAINER_NAME, "image": U.as_str(head.get("image"))}
    container["resources"] = {
        "limits": {C.RESOURCE_CPU: C.SUBMITTER_DEFAULT_CPU_LIMIT, C.RESOURCE_MEMORY: C.SUBMITTER_DEFAULT_MEMORY_LIMIT},
        "requests": {
            C.RESOURCE_CPU: C.SUBMITTER_DEFAULT_CPU_REQUEST,
            C.RESOURCE_MEMORY: C.SUBMITTER_DEFAULT_MEMORY_REQUEST,
        },
    }
    return container


def _configure_submitter_container(
    container: JSON,
    rayjob: Mapping[str, Any],
    cluster: Mapping[str, Any] | None,
    mode: str,
    *,
    dashboard_address: str,
    env: Mapping[str, str],
    features: Mapping[str, bool] | None,
) -> None:
    """``configureSubmitterContainer`` (in place on a copy): the generated command unless the container has
    one, then ``PYTHONUNBUFFERED``, ``RAY_DASHBOARD_ADDRESS``, ``RAY_JOB_SUBMISSION_ID`` (always appended)
    and the token-auth env of the cluster."""
    if not U.as_list(container.get("command")):
        command, args = build_submitter_command(
            rayjob, mode, dashboard_address=dashboard_address, env=env, features=features
        )
        container["command"] = command
        container["args"] = args
    env_list = container.get("env")
    if not isinstance(env_list, list):
        env_list = []
        container["env"] = env_list
    env_list.append(_env(C.PYTHON_UNBUFFERED_ENV_VAR, "1"))
    env_list.append(_env(C.RAY_DASHBOARD_ADDRESS, dashboard_address))
    env_list.append(_env(C.RAY_JOB_SUBMISSION_ID, U.as_str(_status(rayjob).get("jobId"))))
    if cluster is not None and U.is_auth_enabled(cluster):
        auth_options = U.as_map(U.cluster_spec(cluster).get("authOptions"))
        _set_container_token_auth_env_vars(U.cluster_name(cluster), container, auth_options)


def build_sidecar_submitter_container(
    rayjob: Mapping[str, Any],
    cluster: Mapping[str, Any],
    *,
    env: Mapping[str, str] = _EMPTY_ENV,
    features: Mapping[str, bool] | None = None,
) -> JSON:
    """``getSubmitterContainer`` for SidecarMode (§3.8): the default submitter container built from
    ``cluster``'s head, submitting to ``http://127.0.0.1:<dashboard port>`` (no status guard unless gate
    ``SidecarSubmitterRestart`` is on, which also sets the container ``restartPolicy: OnFailure``).
    ``RAY_DASHBOARD_ADDRESS`` is ``status.dashboardURL``, usually still empty when the cluster is built."""
    container = get_default_submitter_container(U.cluster_spec(cluster))
    _configure_submitter_container(
        container,
        rayjob,
        cluster,
        C.JobSubmissionMode.SIDECAR_MODE,
        dashboard_address=U.as_str(_status(rayjob).get("dashboardURL")),
        env=env,
        features=features,
    )
    if U.feature_enabled(features, C.FEATURE_SIDECAR_SUBMITTER_RESTART):
        container["restartPolicy"] = C.RESTART_POLICY_ON_FAILURE
    return U.plain_json(container)


def configure_sidecar_mode(
    cluster_spec: Mapping[str, Any], submitter_container: Mapping[str, Any] | None = None
) -> JSON:
    """A copy of ``cluster_spec`` with ``submitter_container`` appended to the head template's containers
    and the head pod ``restartPolicy: Never`` (the submitter must not rerun with the head)."""
    spec: JSON = copy.deepcopy(dict(cluster_spec))
    head = spec.get("headGroupSpec")
    if not isinstance(head, dict):
        head = {}
        spec["headGroupSpec"] = head
    template = head.get("template")
    if not isinstance(template, dict):
        template = {}
        head["template"] = template
    pod_spec = template.get("spec")
    if not isinstance(pod_spec, dict):
        pod_spec = {}
        template["spec"] = pod_spec
    if submitter_container is not None:
        containers = pod_spec.get("containers")
        if not isinstance(containers, list):
            containers = []
            pod_spec["containers"] = containers
        containers.append(copy.deepcopy(dict(submitter_container)))
    pod_spec["restartPolicy"] = C.RESTART_POLICY_NEVER
    return spec


# ---- the RayCluster (constructRayClusterForRayJob) -----------------------------------------------------


def construct_ray_cluster_for_rayjob(
    rayjob: Mapping[str, Any],
    cluster_name: str,
    *,
    env: Mapping[str, str] = _EMPTY_ENV,
    features: Mapping[str, bool] | None = None,
) -> JSON:
    """``constructRayClusterForRayJob`` (§3.5, §3.14): RayCluster ``cluster_name`` in the RayJob's namespace.

    Labels: the RayJob's labels plus ``ray.io/originated-from-cr-name``, ``ray.io/originated-from-crd=RayJob``
    and ``ray.io/job-submission-mode``. Annotations: the RayJob's. Spec: a deep copy of ``rayClusterSpec``
    (later edits of it are never applied). Controller owner: the RayJob. SidecarMode adds the annotation
    ``ray.io/disable-provisioned-head-restart: "true"``, the submitter sidecar and head ``restartPolicy: Never``
    (pass ``env``/``features`` for ``ENABLE_LOGIN_SHELL`` and ``SidecarSubmitterRestart``).
    Raises :class:`SubmitterBuildError` without a ``rayClusterSpec`` (clusterSelector mode builds nothing).
    """
    meta = _meta(rayjob)
    name = U.as_str(meta.get("name"))
    mode = submission_mode(rayjob)
    cluster_spec = _spec(rayjob).get("rayClusterSpec")
    if not isinstance(cluster_spec, dict):
        raise SubmitterBuildError(f"RayJob {name} has no rayClusterSpec to build RayCluster {cluster_name} from")

    labels = U.string_map(meta.get("labels"))
    labels[C.RAY_ORIGINATED_FROM_CR_NAME_LABEL_KEY] = name
    labels[C.RAY_ORIGINATED_FROM_CRD_LABEL_KEY] = C.CRDType.RAY_JOB.value
    labels[C.RAY_JOB_SUBMISSION_MODE_LABEL_KEY] = mode
    annotations = U.string_map(meta.get("annotations"))

    metadata: JSON = {"name": cluster_name}
    namespace = U.as_str(meta.get("namespace"))
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = labels
    cluster: JSON = {
        "apiVersion": C.RAY_API_VERSION,
        "kind": C.RAY_CLUSTER_KIND,
        "metadata": metadata,
        "spec": copy.deepcopy(cluster_spec),
    }
    if mode == C.JobSubmissionMode.SIDECAR_MODE:
        annotations[C.DISABLE_PROVISIONED_HEAD_RESTART_ANNOTATION_KEY] = C.DISABLE_PROVISIONED_HEAD_RESTART_TRUE
        sidecar = build_sidecar_submitter_container(rayjob, cluster, env=env, features=features)
        cluster["spec"] = configure_sidecar_mode(cluster["spec"], sidecar)
    if annotations:
        metadata["annotations"] = annotations
    metadata["ownerReferences"] = [U.owner_reference(rayjob, kind=C.RAY_JOB_KIND)]
    return U.plain_json(cluster)


# ---- the submitter Job (K8sJobMode) --------------------------------------------------------------------


def _submitter_labels(rayjob_name: str) -> dict[str, str]:
    return {
        C.RAY_ORIGINATED_FROM_CR_NAME_LABEL_KEY: rayjob_name,
        C.RAY_ORIGINATED_FROM_CRD_LABEL_KEY: C.CRDType.RAY_JOB.value,
        C.KUBERNETES_CREATED_BY_LABEL_KEY: C.COMPONENT_NAME,
    }


def _submitter_template(rayjob: Mapping[str, Any], cluster: Mapping[str, Any]) -> JSON:
    """``GetSubmitterTemplate``: a deep copy of ``submitterPodTemplate``, else one default container and
    ``restartPolicy: Never`` (nothing else of the head's pod spec, e.g. no imagePullSecrets, as upstream)."""
    user = _spec(rayjob).get("submitterPodTemplate")
    if isinstance(user, dict):
        return copy.deepcopy(user)
    pod_spec: JSON = {
        "containers": [get_default_submitter_container(U.cluster_spec(cluster))],
        "restartPolicy": C.RESTART_POLICY_NEVER,
    }
    return {"spec": pod_spec}


def build_submitter_job(
    rayjob: Mapping[str, Any],
    cluster: Mapping[str, Any],
    dashboard_address: str,
    *,
    env: Mapping[str, str] = _EMPTY_ENV,
) -> JSON:
    """The K8sJobMode submitter ``batch/v1`` Job (§3.7, Q12).

    ``metadata.name`` = the RayJob's name, same namespace, labels ``ray.io/originated-from-cr-name``,
    ``ray.io/originated-from-crd=RayJob`` and ``app.kubernetes.io/created-by=kuberay-operator`` (also on the
    pod template, where they override the user's), controller owner = the RayJob, ``backoffLimit`` =
    ``submitterConfig.backoffLimit`` or 2. Container[0] of the template (the user's ``submitterPodTemplate``
    or the default ``ray-job-submitter`` with ``cluster``'s head image) gets the generated command unless
    it has one, and env ``PYTHONUNBUFFERED=1``, ``RAY_DASHBOARD_ADDRESS=<dashboard_address>`` (host:port,
    ``status.dashboardURL`` when empty) and ``RAY_JOB_SUBMISSION_ID=<status.jobId>``; token auth on
    ``cluster`` adds ``RAY_AUTH_MODE``/``RAY_AUTH_TOKEN`` (K8s token auth: ``RAY_ENABLE_K8S_TOKEN_AUTH``, the
    ``ray-token`` mount and the projected volume). ``cluster`` is the RayCluster the job runs on (the
    clusterSelector target in that mode). Raises :class:`SubmitterBuildError`.
    """
    meta = _meta(rayjob)
    name = U.as_str(meta.get("name"))
    address = dashboard_address or U.as_str(_status(rayjob).get("dashboardURL"))

    template = _submitter_template(rayjob, cluster)
    pod_spec = template.get("spec")
    if not isinstance(pod_spec, dict):
        pod_spec = {}
        template["spec"] = pod_spec
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise SubmitterBuildError(f"RayJob {name}: the submitter pod template has no containers")
    _configure_submitter_container(
        containers[C.RAY_CONTAINER_INDEX],
        rayjob,
        cluster,
        C.JobSubmissionMode.K8S_JOB_MODE,
        dashboard_address=address,
        env=env,
        features=None,
    )

    labels = _submitter_labels(name)
    template_meta = template.get("metadata")
    if not isinstance(template_meta, dict):
        template_meta = {}
        template["metadata"] = template_meta
    template_meta["labels"] = {**U.string_map(template_meta.get("labels")), **labels}
    template = {"metadata": template_meta, **{k: v for k, v in template.items() if k != "metadata"}}

    auth_options = U.as_map(U.cluster_spec(cluster).get("authOptions"))
    if U.is_auth_enabled(cluster) and U.is_k8s_auth_enabled(auth_options):
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

    metadata: JSON = {"name": name}
    namespace = U.as_str(meta.get("namespace"))
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = labels
    metadata["ownerReferences"] = [U.owner_reference(rayjob, kind=C.RAY_JOB_KIND)]
    job: JSON = {
        "apiVersion": C.BATCH_API_VERSION,
        "kind": C.BATCH_JOB_KIND,
        "metadata": metadata,
        "spec": {"backoffLimit": submitter_backoff_limit(rayjob), "template": template},
    }
    return U.plain_json(job)


# ---- HTTPMode (ConvertRayJobToReq) ---------------------------------------------------------------------


def ray_job_request(rayjob: Mapping[str, Any]) -> RayJobRequest:
    """The ``POST /api/jobs/`` body for HTTPMode (§15.2): :meth:`RayJobRequest.from_rayjob` (entrypoint as
    written, ``status.jobId``, metadata, entrypoint CPUs/GPUs/resources), with ``runtime_env`` converted
    like upstream (:func:`parse_runtime_env_yaml`, go-yaml scalar rules). ``.to_json()`` gives the body.
    Raises :class:`RuntimeEnvYAMLError` or ValueError (bad ``entrypointResources``)."""
    spec = _spec(rayjob)
    runtime_env = parse_runtime_env_yaml(U.as_str(spec.get("runtimeEnvYAML")))
    without_yaml = dict(rayjob)
    without_yaml["spec"] = {k: v for k, v in spec.items() if k != "runtimeEnvYAML"}
    request = RayJobRequest.from_rayjob(without_yaml)
    return dataclasses.replace(request, runtime_env=runtime_env)
