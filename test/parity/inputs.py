"""Inputs of the parity tier: the samples under config/samples, the YAML in the seed guides
(../shared/seeds, when present), and RayCluster specs drawn by hypothesis (deterministic: derandomized,
no database, no shrinking), so every run and both operators get the same specs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "config" / "samples"
SEEDS = REPO.parent / "shared" / "seeds"
INPUT_KINDS = ("RayCluster", "RayJob", "ConfigMap", "ServiceAccount")
_YAML_BLOCK = re.compile(r"```ya?ml\n(.*?)```", re.S)


def _docs(text: str) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind") in INPUT_KINDS]
    except yaml.YAMLError:
        return []


def sample_docs() -> list[dict[str, Any]]:
    """Every RayCluster/RayJob sample with its companions (ConfigMaps, ServiceAccounts, clusters)."""
    out: list[dict[str, Any]] = []
    for path in sorted(SAMPLES.glob("ray-*.yaml")):
        out += _docs(path.read_text())
    return out


def service_docs() -> list[dict[str, Any]]:
    """The RayService samples (``ray-service*.yaml``) with their ConfigMaps."""
    out: list[dict[str, Any]] = []
    for path in sorted(SAMPLES.glob("ray-service*.yaml")):
        docs = yaml.safe_load_all(path.read_text())
        out += [d for d in docs if isinstance(d, dict) and d.get("kind") in ("RayService", "ConfigMap")]
    return out


def seed_docs(known: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The seed guides' RayCluster/RayJob YAML not already among ``known`` (by kind and name); the
    guides' complete manifests only (with a name and a spec)."""
    seen = {(d["kind"], d["metadata"]["name"]) for d in known}
    out: list[dict[str, Any]] = []
    if not SEEDS.is_dir():
        return out
    for path in sorted(SEEDS.glob("*.txt")):
        for block in _YAML_BLOCK.findall(path.read_text()):
            for d in _docs(block):
                name = (d.get("metadata") or {}).get("name")
                if not name or (d["kind"].startswith("Ray") and not d.get("spec")):
                    continue
                if (d["kind"], name) in seen:
                    continue
                seen.add((d["kind"], name))
                out.append(d)
    return out


# ---- hypothesis ----------------------------------------------------------------------------------------

_quantity = st.sampled_from(["100m", "500m", "1", "2", "1500m"])
_memory = st.sampled_from(["256Mi", "1Gi", "2Gi", "1G", "3Gi"])
_start_param_keys = ["num-cpus", "num-gpus", "dashboard-host", "object-store-memory", "metrics-export-port", "block"]


def _resources() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "requests": st.fixed_dictionaries({"cpu": _quantity, "memory": _memory}),
            "limits": st.fixed_dictionaries({"cpu": _quantity, "memory": _memory}),
        },
    )


def _start_params() -> st.SearchStrategy[dict[str, str]]:
    values = {
        "num-cpus": st.sampled_from(["0", "1", "2"]),
        "num-gpus": st.sampled_from(["0", "1"]),
        "dashboard-host": st.just("0.0.0.0"),
        "object-store-memory": st.just("100000000"),
        "metrics-export-port": st.sampled_from(["8080", "9001"]),
        "block": st.just("true"),
    }
    return st.fixed_dictionaries({}, optional=values)


def _container(name: str, head: bool) -> st.SearchStrategy[dict[str, Any]]:
    ports = st.lists(
        st.sampled_from(
            [
                {"containerPort": 6379, "name": "gcs-server"},
                {"containerPort": 8265, "name": "dashboard"},
                {"containerPort": 10001, "name": "client"},
                {"containerPort": 8080, "name": "metrics"},
                {"containerPort": 8000, "name": "serve"},
                {"containerPort": 9999, "name": "custom"},
            ]
        ),
        max_size=4,
        unique_by=lambda p: p["name"],
    )
    env = st.lists(
        st.sampled_from(
            [
                {"name": "FOO", "value": "bar"},
                {"name": "RAY_BACKEND_LOG_LEVEL", "value": "debug"},
                {"name": "RAY_gcs_rpc_server_reconnect_timeout_s", "value": "60"},
            ]
        ),
        max_size=2,
        unique_by=lambda e: e["name"],
    )
    return st.fixed_dictionaries(
        {"name": st.just(name), "image": st.sampled_from(["rayproject/ray:2.9.0", "rayproject/ray:2.46.0"])},
        optional={
            "resources": _resources(),
            "ports": ports if head else st.just([]),
            "env": env,
            "imagePullPolicy": st.sampled_from(["IfNotPresent", "Always"]),
        },
    )


def _worker_group(i: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda replicas, lo, hi, hosts, params, ctr, suspend: {
            "groupName": f"group-{i}",
            "replicas": replicas,
            "minReplicas": min(lo, replicas),
            "maxReplicas": max(hi, replicas),
            "numOfHosts": hosts,
            "rayStartParams": params,
            "template": {"spec": {"containers": [ctr]}},
            **({"suspend": True} if suspend else {}),
        },
        st.integers(0, 3),
        st.integers(0, 2),
        st.integers(1, 5),
        st.sampled_from([1, 1, 1, 2]),
        _start_params(),
        _container("ray-worker", False),
        st.sampled_from([False, False, False, False, True]),
    )


@st.composite
def raycluster(draw: st.DrawFn) -> dict[str, Any]:
    head = {
        "rayStartParams": draw(_start_params()),
        "template": {"spec": {"containers": [draw(_container("ray-head", True))]}},
    }
    if draw(st.booleans()):
        head["serviceType"] = draw(st.sampled_from(["ClusterIP", "NodePort"]))
    if draw(st.integers(0, 4)) == 0:
        head["headService"] = {
            "metadata": {"annotations": {"parity": "custom"}},
            "spec": {"ports": [{"name": "extra", "port": 7777}]},
        }
    groups = [draw(_worker_group(i)) for i in range(draw(st.integers(0, 2)))]
    spec: dict[str, Any] = {"headGroupSpec": head, "workerGroupSpecs": groups}
    if draw(st.booleans()):
        spec["rayVersion"] = draw(st.sampled_from(["2.9.0", "2.46.0"]))
    if draw(st.integers(0, 3)) == 0:
        spec["enableInTreeAutoscaling"] = True
    if draw(st.integers(0, 4)) == 0:
        spec["upgradeStrategy"] = {"type": draw(st.sampled_from(["Recreate", "None"]))}
    if draw(st.integers(0, 6)) == 0:
        spec["suspend"] = True
    if draw(st.integers(0, 6)) == 0:
        head["enableIngress"] = True
    if draw(st.integers(0, 6)) == 0:  # token auth: a Secret, env and volumes; needs Ray >= 2.52
        spec["authOptions"] = {"mode": "token"}
        spec["rayVersion"] = "2.52.0"
    if draw(st.integers(0, 7)) == 0:  # GCS fault tolerance with an external Redis: env, finalizer
        spec["gcsFaultToleranceOptions"] = {"redisAddress": "redis.example:6379"}
    meta: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0:
        meta["labels"] = {"team": draw(st.sampled_from(["a", "b"]))}
    if draw(st.integers(0, 5)) == 0:
        meta["annotations"] = {"ray.io/overwrite-container-cmd": "true"}
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": meta, "spec": spec}


def generated_clusters(count: int) -> list[dict[str, Any]]:
    """``count`` distinct RayCluster manifests named ``gen-<i>``, the same on every run."""
    drawn: list[dict[str, Any]] = []
    seen: set[str] = set()

    @settings(
        max_examples=count * 3,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(raycluster())
    def collect(rc: dict[str, Any]) -> None:
        key = yaml.safe_dump(rc, sort_keys=True)
        if key not in seen and len(drawn) < count:
            seen.add(key)
            drawn.append(rc)

    collect()
    for i, rc in enumerate(drawn):
        rc["metadata"]["name"] = f"gen-{i:03d}"
    return drawn
