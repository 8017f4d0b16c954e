"""The operator's Configuration file (apiVersion config.ray.io/v1alpha1, kind Configuration) and the
defaults shared with the command-line flags.

Decoding follows upstream's: unknown fields are ignored (reported through ``warn`` so a typo does not
go unnoticed), empty values get ``SetDefaults_Configuration``'s defaults, and a value of the wrong
type is an error. The fields that end up in every Ray pod (sidecars, default env, labels, annotations)
are checked here, at start-up, so that a file the operator accepts cannot make every pod creation fail
later."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

API_VERSION = "config.ray.io/v1alpha1"
KIND = "Configuration"

DEFAULT_METRICS_ADDR = ":8080"
DEFAULT_PROBE_ADDR = ":8082"
DEFAULT_RECONCILE_CONCURRENCY = 1
LOG_ENCODERS = ("json", "console")
#: The names ``ValidateBatchSchedulerConfig`` accepts (exact, case-sensitive).
BATCH_SCHEDULERS = ("volcano", "yunikorn", "kai-scheduler", "scheduler-plugins")
DEPRECATED_BATCH_SCHEDULER = "volcano"  # what --enable-batch-scheduler selects


class ConfigError(ValueError):
    """A Configuration the operator cannot run with; the message is one line."""


@dataclass
class Configuration:
    metricsAddr: str = DEFAULT_METRICS_ADDR
    probeAddr: str = DEFAULT_PROBE_ADDR
    enableLeaderElection: bool = True
    leaderElectionNamespace: str = ""
    reconcileConcurrency: int = DEFAULT_RECONCILE_CONCURRENCY
    watchNamespace: str = ""
    logFile: str = ""
    logFileEncoder: str = "json"
    logStdoutEncoder: str = "json"
    enableBatchScheduler: bool = False
    batchScheduler: str = ""
    useKubernetesProxy: bool = False
    enableMetrics: bool = False
    qps: float = 100.0
    burst: int = 200
    headSidecarContainers: list[dict[str, Any]] = field(default_factory=list)
    workerSidecarContainers: list[dict[str, Any]] = field(default_factory=list)
    defaultContainerEnvs: list[dict[str, Any]] = field(default_factory=list)
    defaultPodAnnotations: dict[str, str] = field(default_factory=dict)
    defaultPodLabels: dict[str, str] = field(default_factory=dict)
    deleteRayJobAfterJobFinishes: bool = False

    def watch_namespaces(self) -> list[str] | None:
        nss = [n.strip() for n in self.watchNamespace.split(",") if n.strip()]
        return nss or None


# ---- decoding ------------------------------------------------------------------------------------------

_SCALARS: dict[str, tuple[type, ...]] = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}


def decode(text: str, warn: Callable[[str], None] | None = None) -> Configuration:
    """Decode and validate a Configuration file. Unknown fields are ignored, as upstream's decoder
    does, and passed to ``warn``. Raises ConfigError (with the YAML line for syntax errors)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        raise ConfigError(_yaml_error(e)) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError("the configuration file must be a YAML mapping")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        raise ConfigError(f"the configuration file must have apiVersion {API_VERSION} and kind {KIND}")
    known = {f.name: f for f in fields(Configuration)}
    args: dict[str, Any] = {}
    for k, v in doc.items():
        if k in ("apiVersion", "kind"):
            continue
        if k not in known:
            if warn is not None:
                warn(f"unknown field {k!r} in the configuration file is ignored")
            continue
        want = _SCALARS.get(str(known[k].type))
        # null is "unset" (Go's zero value, then the default); YAML's true is not an int.
        if v is None:
            continue
        if want and (not isinstance(v, want) or (isinstance(v, bool) and bool not in want)):
            raise ConfigError(f"field {k}: must be of type {known[k].type}, got {_show(v)}")
        args[k] = v
    cfg = Configuration(**args)
    if cfg.deleteRayJobAfterJobFinishes and warn is not None:
        # Upstream declares the field but its RayJob controller reads only the environment variable.
        warn(
            "deleteRayJobAfterJobFinishes in the configuration file has no effect (as upstream): "
            "set the environment variable DELETE_RAYJOB_CR_AFTER_JOB_FINISHES=true instead"
        )
    set_defaults(cfg)
    validate(cfg)
    return cfg


def _yaml_error(e: yaml.MarkedYAMLError) -> str:
    mark = e.problem_mark or e.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = f"{e.problem} ({e.context})" if e.context else str(e.problem)
    return f"invalid YAML{where}: {what}"


def _show(v: Any) -> str:
    return f"{type(v).__name__} {v!r}" if not isinstance(v, dict | list) else type(v).__name__


def set_defaults(cfg: Configuration) -> None:
    """``SetDefaults_Configuration``: an empty value means the default."""
    cfg.metricsAddr = cfg.metricsAddr or DEFAULT_METRICS_ADDR
    cfg.probeAddr = cfg.probeAddr or DEFAULT_PROBE_ADDR
    cfg.reconcileConcurrency = cfg.reconcileConcurrency or DEFAULT_RECONCILE_CONCURRENCY
    cfg.logFileEncoder = cfg.logFileEncoder or "json"
    cfg.logStdoutEncoder = cfg.logStdoutEncoder or "json"


# ---- validation ----------------------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def validate(cfg: Configuration) -> None:
    """Reject what would fail later: bad encoders, and pod fields the API server would refuse."""
    if cfg.reconcileConcurrency < 1:
        raise ConfigError(f"field reconcileConcurrency: must be at least 1, got {cfg.reconcileConcurrency}")
    for name in ("logFileEncoder", "logStdoutEncoder"):
        if getattr(cfg, name) not in LOG_ENCODERS:
            raise ConfigError(f"field {name}: invalid encoder {getattr(cfg, name)!r} (must be 'json' or 'console')")
    for name in ("headSidecarContainers", "workerSidecarContainers"):
        _check_containers(name, getattr(cfg, name))
    _check_envs("defaultContainerEnvs", cfg.defaultContainerEnvs)
    _check_metadata("defaultPodLabels", cfg.defaultPodLabels, labels=True)
    _check_metadata("defaultPodAnnotations", cfg.defaultPodAnnotations, labels=False)


def _list_of_mappings(where: str, value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        raise ConfigError(f"field {where}: must be a list, got {_show(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ConfigError(f"field {where}[{i}]: must be a mapping, got {_show(item)}")
    return value


def _check_containers(where: str, value: Any) -> None:
    for i, c in enumerate(_list_of_mappings(where, value)):
        name, image = c.get("name"), c.get("image")
        if not isinstance(name, str) or not _DNS_LABEL.match(name) or len(name) > 63:
            raise ConfigError(f"field {where}[{i}].name: must be a DNS-1123 label (a container name), got {name!r}")
        if not isinstance(image, str) or not image.strip():
            raise ConfigError(f"field {where}[{i}].image: required (container {name!r})")
        if "env" in c:
            _check_envs(f"{where}[{i}].env", c["env"])


def _check_envs(where: str, value: Any) -> None:
    for i, env in enumerate(_list_of_mappings(where, value)):
        name = env.get("name")
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise ConfigError(f"field {where}[{i}].name: must be a valid environment variable name, got {name!r}")
        if "value" in env and not isinstance(env["value"], str):
            raise ConfigError(f"field {where}[{i}].value: must be a string, got {_show(env['value'])}")
        if "valueFrom" in env and not isinstance(env["valueFrom"], dict):
            raise ConfigError(f"field {where}[{i}].valueFrom: must be a mapping, got {_show(env['valueFrom'])}")


def _qualified_name_error(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "its prefix must be a DNS subdomain"
    if not name or len(name) > 63 or not _NAME.match(name):
        return "its name must be at most 63 alphanumeric characters, '-', '_' or '.', starting and ending alphanumeric"
    return None


def _check_metadata(where: str, value: Any, *, labels: bool) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"field {where}: must be a mapping, got {_show(value)}")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ConfigError(f"field {where}: {k!r}: keys and values must be strings (quote them), got {_show(v)}")
        problem = _qualified_name_error(k)
        if problem:
            raise ConfigError(f"field {where}: key {k!r} is invalid: {problem}")
        if labels and v and (len(v) > 63 or not _NAME.match(v)):
            raise ConfigError(f"field {where}: value {v!r} of {k!r} is not a valid label value")


# ---- batch schedulers (``ValidateBatchSchedulerConfig``) --------------------------------------------------


def batch_scheduler(cfg: Configuration, kubernetes_was: bool = False) -> str:
    """The batch scheduler the configuration selects ("" for none, "kubernetes-was" for the gate), or
    ConfigError with upstream's message."""
    if kubernetes_was:
        if cfg.enableBatchScheduler or cfg.batchScheduler:
            raise ConfigError(
                "the KubernetesWAS feature gate cannot be combined with --batch-scheduler or --enable-batch-scheduler"
            )
        return "kubernetes-was"
    if cfg.enableBatchScheduler and cfg.batchScheduler:
        raise ConfigError(
            "both feature flags enable-batch-scheduler (deprecated) and batch-scheduler are set. "
            "Please use batch-scheduler only"
        )
    if cfg.enableBatchScheduler:
        return DEPRECATED_BATCH_SCHEDULER
    if cfg.batchScheduler and cfg.batchScheduler not in BATCH_SCHEDULERS:
        raise ConfigError(f"scheduler is not supported, name={cfg.batchScheduler}")
    return cfg.batchScheduler
