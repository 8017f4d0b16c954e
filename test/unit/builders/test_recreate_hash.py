"""The spec hash on head pods (``ray.io/upgrade-strategy-recreate-hash``) is upstream's, byte for byte.

A Recreate RayCluster adopted from upstream KubeRay keeps its pods only when the hash upstream wrote on
its head pod equals the one this operator computes for the same spec.

Known answers: each ``testdata/recreate_hash/*.json`` spec was decoded into ``rayv1.RayClusterSpec``
and hashed with ``utils.GenerateHashWithoutReplicasAndWorkersToDelete`` of
``github.com/ray-project/kuberay/ray-operator@v1.6.1`` by a throwaway Go program (not committed); the
same program printed ``json.Marshal`` of ``tricky.json`` for the byte-level check.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from api.v1.raycluster_types import RayClusterSpec
from controllers.ray.common import pod as podb
from controllers.ray.utils import constants as C
from controllers.ray.utils import gojson
from controllers.ray.utils import util as U

DATA = Path(__file__).parent / "testdata" / "recreate_hash"

UPSTREAM_HASHES = {
    "minimal": "K0KU15JFV93S0E1O760UP2T72EGJP0G4",
    # head + two worker groups: resources, env (value/fieldRef/secretKeyRef), volumes, probes of every
    # handler kind, lifecycle, securityContext, affinity, tolerations and schedulingGates (ignored)
    "realistic": "JNB7B0F3O1LQS78B6KBM6LUH5I2N8GBE",
    # the same made valid for this operator (autoscaler v2, no num-gpus next to group resources)
    "autoscaler_v2": "RMFUIM6CH1LDE7CU12G9E9G8SJKVH19F",
    # explicit false/empty values, a creationTimestamp in the template, an empty workerGroupSpecs
    "nulls": "FCV12R6DILDIRKFB3831UQA75PS9JNVT",
    # Redis GCS FT options and a custom head Service
    "gcsft": "AV5T9FJPVT7NT6H9PU3EBO00HBOE5NTS",
    # quantities Go keeps verbatim or canonicalises, HTML-escaped strings, an unknown field
    "tricky": "JAORR69NR46ANDIQF9DTJV5ECMLL6GBG",
}

# json.Marshal(rayv1.RayClusterSpec) of tricky.json, as the Go program printed it.
TRICKY_GO_JSON = (
    '{"headGroupSpec":{"template":{"metadata":{"labels":{"a":"2","z":"1"}},"spec":{"containers":[{"name":'
    '"ray-head","image":"r","args":["a \\u003c b \\u0026\\u0026 c \\u003e d","é\\u2028x\\u0001\\b\\f"],'
    '"resources":{"limits":{"cpu":"1.G","memory":"1Gi"},"requests":{"cpu":"+1","ephemeral-storage":"1500m",'
    '"memory":"500m"}},"readinessProbe":{"httpGet":{"path":"/","port":8265}}}]}},"rayStartParams":{"block":'
    '"true","num-cpus":"1"}},"rayVersion":"2.9.0","workerGroupSpecs":[{"groupName":"w","minReplicas":null,'
    '"maxReplicas":null,"rayStartParams":{},"template":{"metadata":{},"spec":{"containers":[{"name":"w",'
    '"image":"r","resources":{},"livenessProbe":{"httpGet":{"port":"metrics"}}}]}},"scaleStrategy":{}}]}'
)


def _spec(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return loaded


@pytest.mark.parametrize("name", sorted(UPSTREAM_HASHES))
def test_hash_equals_upstream(name: str) -> None:
    assert U.generate_hash_without_replicas_and_workers_to_delete(_spec(name)) == UPSTREAM_HASHES[name]


def test_marshal_is_go_json_bytes() -> None:
    assert gojson.marshal(_spec("tricky"), RayClusterSpec).decode() == TRICKY_GO_JSON


def test_ignored_fields_do_not_change_the_hash() -> None:
    spec = _spec("realistic")
    changed = copy.deepcopy(spec)
    changed.pop("upgradeStrategy")
    g = changed["workerGroupSpecs"][0]
    g.update(replicas=7, minReplicas=0, maxReplicas=99, scaleStrategy={"workersToDelete": ["x"]})
    g["template"]["spec"]["tolerations"] = [{"key": "kueue", "operator": "Exists"}]
    changed["headGroupSpec"]["template"]["spec"]["schedulingGates"] = [{"name": "kueue"}]
    assert U.generate_hash_without_replicas_and_workers_to_delete(changed) == UPSTREAM_HASHES["realistic"]
    # ... and the caller's spec is left as it was
    assert spec == _spec("realistic")


def test_any_other_change_changes_the_hash() -> None:
    spec = _spec("realistic")
    spec["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["image"] = "rayproject/ray:2.53.0"
    assert U.generate_hash_without_replicas_and_workers_to_delete(spec) != UPSTREAM_HASHES["realistic"]


def test_head_pod_carries_upstreams_hash() -> None:
    cluster = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": "adopted", "namespace": "ns", "uid": "u-1"},
        "spec": _spec("realistic"),
    }
    head = podb.build_head_pod(cluster, env={}, features={})
    assert head["metadata"]["annotations"][C.UPGRADE_STRATEGY_RECREATE_HASH_KEY] == UPSTREAM_HASHES["realistic"]
