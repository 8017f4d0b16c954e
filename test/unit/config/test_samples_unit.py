"""config/samples without a cluster: every ray.io object uses only declared ray.io/v1 fields, passes the
operator's own validation after CRD defaulting, and the samples kustomization lists every sample.
(test/integration/test_config_manifests.py creates them on a real apiserver once the CRDs exist.)"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.v1 import KINDS, apply_crd_defaults, validate_ray_cluster, validate_ray_job, validate_ray_service
from api.v1.fields import View

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "config" / "samples"
SAMPLE_FILES = sorted(p for p in SAMPLES.glob("*.yaml") if p.name != "kustomization.yaml")
GATES = {"RayJobDeletionPolicy": True, "RayClusterStatusConditions": True}

#: The samples the seeds and the issue ask for (each seed example maps to one of the files).
REQUIRED = {
    "ray-job.sample.yaml",  # minimal RayJob
    "ray-job.complete.yaml",  # every common field
    "ray-job.custom-submitter.yaml",  # submitterPodTemplate + submitterConfig
    "ray-job.backoff-limit.yaml",  # retries
    "ray-job.resources.yaml",  # entrypoint resources
    "ray-job.runtime-env-yaml.yaml",  # runtimeEnvYAML
    "ray-job.runtime-env-pip.yaml",
    "ray-job.runtime-env-working-dir.yaml",
    "ray-job.shutdown.yaml",  # shutdownAfterJobFinishes + TTL
    "ray-job.use-existing-raycluster.yaml",  # clusterSelector
    "ray-job.use-existing-raycluster.labels.yaml",
    "ray-job.gpu.yaml",
    "ray-job.deletion-rules.yaml",
    "ray-job.deletion-rules.delete-self-on-failure.yaml",
    "ray-job.deletion-rules.staged.yaml",
    "ray-job.deletion-strategy-legacy.yaml",
    "ray-job.kueue-toy-sample.yaml",  # suspend for Kueue
    "ray-job.http-mode.yaml",
    "ray-job.sidecar-mode.yaml",
    "ray-job.interactive-mode.yaml",
    "ray-cluster.sample.yaml",
    "ray-cluster.gpu.yaml",
}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _ray_objects(path: Path) -> list[dict[str, Any]]:
    return [d for d in _docs(path) if d.get("apiVersion") == "ray.io/v1"]


def unknown_fields(cls: type[View], raw: Any, path: str = "") -> list[str]:
    """Keys of ray.io types that their View declares no field for (embedded Kubernetes types are
    checked by the apiserver, not here)."""
    if cls.__k8s_ref__ is not None or not isinstance(raw, dict):
        return []
    specs = {f.json_name: f for f in cls.__fields__}
    found: list[str] = []
    for key, value in raw.items():
        spec = specs.get(key)
        if spec is None:
            found.append(f"{path}.{key}")
        elif spec.ref is not None and value is not None:
            if spec.kind == "object":
                found += unknown_fields(spec.ref, value, f"{path}.{key}")
            elif spec.kind == "object_list":
                for i, item in enumerate(value):
                    found += unknown_fields(spec.ref, item, f"{path}.{key}[{i}]")
            elif spec.kind == "object_map":
                for k, item in value.items():
                    found += unknown_fields(spec.ref, item, f"{path}.{key}[{k}]")
    return found


def test_required_samples_exist() -> None:
    assert set(REQUIRED) - {p.name for p in SAMPLE_FILES} == set()


def test_kustomization_lists_every_sample() -> None:
    kustomization = yaml.safe_load((SAMPLES / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in SAMPLE_FILES]


def test_names_are_unique_per_kind() -> None:
    seen: dict[tuple[str, str], str] = {}
    for path in SAMPLE_FILES:
        for doc in _docs(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in seen, f"{key} in {seen.get(key)} and {path.name}"
            seen[key] = path.name


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_sample_is_valid_ray_v1(path: Path) -> None:
    objects = _ray_objects(path)
    assert objects, f"{path.name} has no ray.io/v1 object"
    for doc in _docs(path):
        assert "namespace" not in doc["metadata"], "samples apply to any namespace"
    for doc in objects:
        cls = KINDS[doc["kind"]]
        assert unknown_fields(cls, doc) == [], f"{path.name}: fields ray.io/v1 does not have"
        obj = apply_crd_defaults(cls(copy.deepcopy(doc)))
        if doc["kind"] == "RayJob":
            validate_ray_job(obj, GATES)
        elif doc["kind"] == "RayCluster":
            validate_ray_cluster(obj, GATES)
        elif doc["kind"] == "RayService":
            validate_ray_service(obj, GATES)


def test_unknown_field_check_catches_seed_style_mistakes() -> None:
    bad = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": "x"},
        "spec": {"runtimeEnv": {"pip": ["numpy"]}, "rayClusterSpec": {"headGroupSpec": {"serviceTyp": "x"}}},
    }
    assert unknown_fields(KINDS["RayJob"], bad) == [".spec.runtimeEnv", ".spec.rayClusterSpec.headGroupSpec.serviceTyp"]


def test_each_submission_mode_has_a_sample() -> None:
    modes = {
        doc["spec"].get("submissionMode", "K8sJobMode")
        for path in SAMPLE_FILES
        for doc in _ray_objects(path)
        if doc["kind"] == "RayJob"
    }
    assert modes == {"K8sJobMode", "HTTPMode", "SidecarMode", "InteractiveMode"}
