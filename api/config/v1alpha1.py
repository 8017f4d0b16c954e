"""The operator's Configuration file (apiVersion config.ray.io/v1alpha1, kind Configuration) and the
defaults shared with the command-line flags."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import yaml

API_VERSION = "config.ray.io/v1alpha1"
KIND = "Configuration"


@dataclass
class Configuration:
    metricsAddr: str = ":8080"
    probeAddr: str = ":8082"
    enableLeaderElection: bool = True
    leaderElectionNamespace: str = ""
    reconcileConcurrency: int = 1
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


def decode(text: str) -> Configuration:
    """Decode a Configuration file; unknown fields and wrong kinds are errors (strict decoding)."""
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise ValueError("configuration file must be a YAML mapping")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        raise ValueError(f"configuration file must have apiVersion {API_VERSION} and kind {KIND}")
    known = {f.name: f for f in fields(Configuration)}
    args: dict[str, Any] = {}
    for k, v in doc.items():
        if k in ("apiVersion", "kind"):
            continue
        if k not in known:
            raise ValueError(f"unknown field {k!r} in configuration file")
        args[k] = v
    cfg = Configuration(**args)
    for name, f in known.items():
        types: dict[str, tuple[type, ...]] = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}
        want = types.get(str(f.type))
        if want and not isinstance(getattr(cfg, name), want):
            raise ValueError(f"field {name!r} must be of type {f.type}")
    return cfg
