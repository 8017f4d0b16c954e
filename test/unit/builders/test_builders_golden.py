"""Golden-file tests for the RayCluster object builders (the parity claim, spec §4.3-§4.9, §13, §14).

Every ``testdata/<case>.input.yaml`` holds a RayCluster plus the operator environment, feature gates
and operator configuration to build it with; ``testdata/<case>.golden.yaml`` holds every object the
operator would create for it. ``UPDATE_GOLDEN=1`` rewrites the golden files; each rewritten file must
be reviewed by hand against the spec before it is accepted.

Input keys (all optional except ``cluster``):
  description, covers        free text / list of spec rules the case covers (documentation only)
  cluster                    the RayCluster (plain dict, as decoded from JSON)
  env                        operator env switches (§7.3), e.g. {ENABLE_PROBES_INJECTION: "false"}
  features                   feature gates, e.g. {RayMultiHostIndexing: false}
  config                     head_sidecar_containers, worker_sidecar_containers, default_container_envs,
                             default_pod_labels, default_pod_annotations
  spec_hash                  value of ray.io/upgrade-strategy-recreate-hash (default "golden-spec-hash";
                             null computes it with util.generate_hash_without_replicas_and_workers_to_delete)
  kuberay_version            default "v1.7.0"
  ray_job                    a RayJob owning the cluster: also build its head service (§3.6)
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from controllers.ray.common import gcs_ft, ingress, pod, rbac, service
from controllers.ray.utils import constants as C
from controllers.ray.utils import util as U

TESTDATA = Path(__file__).parent / "testdata"
CASES = sorted(p.name.removesuffix(".input.yaml") for p in TESTDATA.glob("*.input.yaml"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
DEFAULT_SPEC_HASH = "golden-spec-hash"


def build_all(case: dict[str, Any]) -> dict[str, Any]:
    """Every object the operator creates for the case's cluster, keyed by role."""
    cluster = case["cluster"]
    env = case.get("env") or {}
    features = case.get("features")
    raw_config = case.get("config") or {}
    config = pod.PodConfig(**raw_config)
    spec_hash = case.get("spec_hash", DEFAULT_SPEC_HASH)
    kuberay_version = case.get("kuberay_version", C.KUBERAY_VERSION)
    out: dict[str, Any] = {}

    out["head_pod"] = pod.build_head_pod(
        cluster, env=env, features=features, config=config, spec_hash=spec_hash, kuberay_version=kuberay_version
    )
    workers: dict[str, list[Any]] = {}
    rng = random.Random(0)
    for group in U.worker_group_specs(cluster):
        name = U.as_str(group.get("groupName"))
        hosts = U.as_int(group.get("numOfHosts"), 1)
        replica_name = U.generate_replica_group_name(name, lambda: U.random_string(5, rng)) if hosts > 1 else ""
        workers[name] = [
            pod.build_worker_pod(
                cluster,
                group,
                env=env,
                features=features,
                config=config,
                replica_index=0,
                replica_name=replica_name,
                host_index=host,
                kuberay_version=kuberay_version,
            )
            for host in range(max(hosts, 1))
        ]
    if workers:
        out["worker_pods"] = workers

    out["head_service"] = service.build_head_service(cluster, env=env)
    if service.is_serve_service_enabled(cluster):
        try:
            out["serve_service"] = service.build_serve_service(cluster)
        except service.ServiceBuildError as err:
            out["serve_service_error"] = str(err)
    if U.needs_headless_worker_service(cluster):
        out["headless_service"] = service.build_headless_service(cluster)
    if U.is_autoscaling_enabled(cluster):
        if not U.as_str(
            U.as_map(U.as_map(U.head_group_spec(cluster).get("template")).get("spec")).get("serviceAccountName")
        ):
            out["autoscaler_service_account"] = rbac.build_service_account(cluster)
        out["autoscaler_role"] = rbac.build_role(cluster)
        out["autoscaler_role_binding"] = rbac.build_role_binding(cluster)
    if gcs_ft.needs_redis_cleanup_finalizer(cluster, env):
        out["redis_cleanup_job"] = gcs_ft.build_redis_cleanup_job(
            cluster, env=env, features=features, config=config, spec_hash=spec_hash, kuberay_version=kuberay_version
        )
    pvc = gcs_ft.build_gcs_storage_pvc(cluster)
    if pvc is not None:
        out["gcs_storage_pvc"] = pvc
    if ingress.is_ingress_enabled(cluster):
        out["ingress"] = ingress.build_ingress_for_head_service(cluster)
    if case.get("ray_job"):
        out["ray_job_head_service"] = service.build_head_service_for_ray_job(case["ray_job"], cluster, env=env)
    return out


def dump(name: str, objects: dict[str, Any]) -> str:
    header = (
        f"# Golden output for testdata/{name}.input.yaml (written with UPDATE_GOLDEN=1).\n"
        "# This file IS the parity claim: review every change by hand against kuberay-behaviour.md.\n"
    )
    body = yaml.safe_dump(objects, sort_keys=False, width=1_000_000, allow_unicode=True)
    return header + body


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    case = yaml.safe_load((TESTDATA / f"{name}.input.yaml").read_text())
    objects = build_all(case)
    golden_path = TESTDATA / f"{name}.golden.yaml"
    rendered = dump(name, objects)
    if UPDATE:
        golden_path.write_text(rendered)
        return
    assert golden_path.exists(), f"missing {golden_path.name}; run with UPDATE_GOLDEN=1 and review it"
    expected = yaml.safe_load(golden_path.read_text())
    # Round-trip through YAML so both sides have identical scalar types.
    actual = yaml.safe_load(rendered)
    assert actual == expected, f"{name}: builder output differs from {golden_path.name}"


def test_every_input_has_a_golden_file() -> None:
    assert CASES, "no golden inputs found"
    if UPDATE:
        return
    missing = [n for n in CASES if not (TESTDATA / f"{n}.golden.yaml").exists()]
    assert not missing
    orphans = sorted(
        p.name.removesuffix(".golden.yaml")
        for p in TESTDATA.glob("*.golden.yaml")
        if p.name.removesuffix(".golden.yaml") not in CASES
    )
    assert not orphans, f"golden files without input: {orphans}"


def test_builders_do_not_mutate_their_input() -> None:
    for name in CASES:
        case = yaml.safe_load((TESTDATA / f"{name}.input.yaml").read_text())
        before = yaml.safe_dump(case)
        build_all(case)
        assert yaml.safe_dump(case) == before, name
