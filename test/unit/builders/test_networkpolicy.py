"""controllers/ray/common/networkpolicy.py: upstream's policies as pure functions of the RayCluster."""

from __future__ import annotations

from typing import Any

import pytest

from controllers.ray.common import networkpolicy as npb


def cluster(policy: dict[str, Any] | None = None, labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": "c", "namespace": "ns", "uid": "u1", "labels": labels or {}, **meta},
        "spec": {
            "networkPolicy": {} if policy is None else policy,
            "headGroupSpec": {"rayStartParams": {}},
            "workerGroupSpecs": [{"groupName": "a"}, {"groupName": "b"}],
        },
    }


JOB_OWNER = {"apiVersion": "ray.io/v1", "kind": "RayJob", "name": "j", "uid": "u2", "controller": True}


@pytest.mark.parametrize(
    ("mode", "types"),
    [
        (None, ["Ingress", "Egress"]),
        ("DenyAll", ["Ingress", "Egress"]),
        ("DenyAllIngress", ["Ingress"]),
        ("DenyAllEgress", ["Egress"]),
    ],
)
def test_mode_decides_the_policy_types_and_which_rules_exist(mode: str | None, types: list[str]) -> None:
    head, a, b = npb.build_network_policies(cluster({} if mode is None else {"mode": mode}))
    assert [p["metadata"]["name"] for p in (head, a, b)] == ["c-head", "c-workers-a", "c-workers-b"]
    for p in (head, a, b):
        assert p["spec"]["policyTypes"] == types
        assert ("ingress" in p["spec"]) == ("Ingress" in types)
        assert ("egress" in p["spec"]) == ("Egress" in types)


@pytest.mark.parametrize(
    ("labels", "owners", "params", "port"),
    [
        ({"ray.io/job-submission-mode": "K8sJobMode"}, [JOB_OWNER], {}, 8265),
        ({"ray.io/job-submission-mode": "K8sJobMode"}, [JOB_OWNER], {"dashboard-port": "9000"}, 9000),
        ({"ray.io/job-submission-mode": "K8sJobMode"}, [JOB_OWNER], {"dashboard-port": "x"}, 8265),
        ({"ray.io/job-submission-mode": "HTTPMode"}, [JOB_OWNER], {}, None),
        ({}, [JOB_OWNER], {}, None),
        ({"ray.io/job-submission-mode": "K8sJobMode"}, [{**JOB_OWNER, "controller": False}], {}, None),
        ({"ray.io/job-submission-mode": "K8sJobMode"}, [{**JOB_OWNER, "apiVersion": "other.io/v1"}], {}, None),
        ({"ray.io/job-submission-mode": "K8sJobMode"}, [], {}, None),
    ],
)
def test_the_submitter_rule_only_for_a_k8s_job_mode_cluster_a_rayjob_controls(
    labels: dict[str, str], owners: list[dict[str, Any]], params: dict[str, str], port: int | None
) -> None:
    c = cluster(labels=labels, ownerReferences=owners)
    c["spec"]["headGroupSpec"]["rayStartParams"] = params
    ingress = npb.build_head_network_policy(c)["spec"]["ingress"]
    if port is None:
        assert len(ingress) == 1
        return
    assert ingress[1] == {
        "from": [
            {
                "podSelector": {
                    "matchLabels": {"ray.io/originated-from-cr-name": "j", "ray.io/originated-from-crd": "RayJob"}
                }
            }
        ],
        "ports": [{"protocol": "TCP", "port": port}],
    }


def test_a_group_entry_replaces_the_worker_rules() -> None:
    rule = {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}
    c = cluster({"worker": {"ingressRules": [rule]}, "workerGroups": [{"groupName": "b"}]})
    _, a, b = npb.build_network_policies(c)
    assert a["spec"]["ingress"][1:] == [rule]
    assert b["spec"]["ingress"][1:] == []  # not merged with worker's


def test_normalized_specs_compare_as_the_api_server_stores_them() -> None:
    desired = {"ingress": [{"from": [], "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}], "egress": []}
    stored = {"ingress": [{"ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}]}
    assert npb.normalize_spec(desired) == npb.normalize_spec(stored)
    assert desired["ingress"][0]["ports"][0] == {"port": 80}  # the input is not changed
