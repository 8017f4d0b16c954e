"""NetworkPolicies of a RayCluster (upstream v1.7.0, gate ``RayClusterNetworkPolicy``; spec
``raycluster-extensions.md`` §5.3): one for the head Pod and one per worker group, each allowing all
traffic within the cluster, plus the submitter's dashboard traffic to the head for a K8sJobMode RayJob's
cluster, plus the user's rules. DNS egress is never added: under ``DenyAll``/``DenyAllEgress`` the user
adds it, as upstream documents.

Pure functions of the RayCluster; the controller (``controllers/ray/networkpolicy_controller.py``)
creates, updates and deletes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from api.v1._goutil import atoi
from api.v1.constants import NetworkPolicyMode
from controllers.ray.utils import constants as C
from controllers.ray.utils import util as U
from controllers.ray.utils.util import JSON

__all__ = [
    "build_head_network_policy",
    "build_network_policies",
    "build_worker_network_policy",
    "head_policy_name",
    "normalize_spec",
    "worker_policy_name",
]

NETWORK_POLICY_API_VERSION: Final = "networking.k8s.io/v1"


def head_policy_name(cluster_name: str) -> str:
    return f"{cluster_name}-head"


def worker_policy_name(cluster_name: str, group: str) -> str:
    return f"{cluster_name}-workers-{group}"  # not truncated: validation keeps group names DNS-1123 labels


def _mode(config: Mapping[str, Any]) -> str:
    return U.as_str(config.get("mode")) or NetworkPolicyMode.DENY_ALL.value


def _policy_types(mode: str) -> tuple[bool, bool]:
    """(ingress restricted, egress restricted)."""
    return (
        mode in (NetworkPolicyMode.DENY_ALL, NetworkPolicyMode.DENY_ALL_INGRESS),
        mode in (NetworkPolicyMode.DENY_ALL, NetworkPolicyMode.DENY_ALL_EGRESS),
    )


def _same_cluster(cluster_name: str) -> JSON:
    return {"podSelector": {"matchLabels": {C.RAY_CLUSTER_LABEL_KEY: cluster_name}}}


def _submitter_rule(cluster: Mapping[str, Any]) -> JSON | None:
    """The K8sJobMode submitter's traffic to the head's dashboard port (the ``dashboard-port`` start
    parameter, else 8265), for a cluster a RayJob controls."""
    meta = U.as_map(cluster.get("metadata"))
    if U.as_map(meta.get("labels")).get(C.RAY_JOB_SUBMISSION_MODE_LABEL_KEY) != C.JobSubmissionMode.K8S_JOB_MODE:
        return None
    owner = next(
        (
            U.as_map(r)
            for r in U.as_list(meta.get("ownerReferences"))
            if U.as_map(r).get("kind") == C.RAY_JOB_KIND
            and U.as_map(r).get("controller") is True
            and U.as_str(U.as_map(r).get("apiVersion")).startswith(f"{C.RAY_API_GROUP}/")
        ),
        None,
    )
    if owner is None:
        return None
    params = U.as_map(U.as_map(U.as_map(cluster.get("spec")).get("headGroupSpec")).get("rayStartParams"))
    try:
        port = atoi(U.as_str(params.get(C.PARAM_DASHBOARD_PORT)))
    except ValueError:
        port = C.DEFAULT_DASHBOARD_PORT
    selector = {
        C.RAY_ORIGINATED_FROM_CR_NAME_LABEL_KEY: U.as_str(owner.get("name")),
        C.RAY_ORIGINATED_FROM_CRD_LABEL_KEY: C.CRDType.RAY_JOB,
    }
    return {"from": [{"podSelector": {"matchLabels": selector}}], "ports": [{"protocol": "TCP", "port": port}]}


def _policy(
    cluster: Mapping[str, Any],
    name: str,
    group: str,
    selector: JSON,
    ingress: list[JSON],
    egress: list[JSON],
) -> JSON:
    meta = U.as_map(cluster.get("metadata"))
    cluster_name = U.as_str(meta.get("name"))
    ingress_on, egress_on = _policy_types(_mode(U.as_map(U.as_map(cluster.get("spec")).get("networkPolicy"))))
    spec: JSON = {"podSelector": {"matchLabels": selector}}
    if ingress_on:
        spec["ingress"] = [{"from": [_same_cluster(cluster_name)]}, *copy.deepcopy(ingress)]
    if egress_on:
        spec["egress"] = [{"to": [_same_cluster(cluster_name)]}, *copy.deepcopy(egress)]
    spec["policyTypes"] = [t for t, on in (("Ingress", ingress_on), ("Egress", egress_on)) if on]
    policy_meta: JSON = {
        "name": name,
        "namespace": U.as_str(meta.get("namespace")),
        "labels": {
            C.RAY_CLUSTER_LABEL_KEY: cluster_name,
            C.RAY_NODE_GROUP_LABEL_KEY: group,
            C.KUBERNETES_APPLICATION_NAME_LABEL_KEY: C.APPLICATION_NAME,
            C.KUBERNETES_CREATED_BY_LABEL_KEY: C.COMPONENT_NAME,
        },
    }
    U.set_controller_reference(policy_meta, cluster)
    return {"apiVersion": NETWORK_POLICY_API_VERSION, "kind": "NetworkPolicy", "metadata": policy_meta, "spec": spec}


def build_head_network_policy(cluster: Mapping[str, Any]) -> JSON:
    cluster_name = U.as_str(U.as_map(cluster.get("metadata")).get("name"))
    head = U.as_map(U.as_map(U.as_map(cluster.get("spec")).get("networkPolicy")).get("head"))
    submitter = _submitter_rule(cluster)
    ingress = [*([submitter] if submitter else []), *map(U.as_map, U.as_list(head.get("ingressRules")))]
    return _policy(
        cluster,
        head_policy_name(cluster_name),
        C.RAY_NODE_HEAD_GROUP_LABEL_VALUE,
        {C.RAY_CLUSTER_LABEL_KEY: cluster_name, C.RAY_NODE_TYPE_LABEL_KEY: C.RayNodeType.HEAD},
        ingress,
        [U.as_map(r) for r in U.as_list(head.get("egressRules"))],
    )


def build_worker_network_policy(cluster: Mapping[str, Any], group: str) -> JSON:
    """A ``networkPolicy.workerGroups`` entry for the group replaces ``networkPolicy.worker``."""
    cluster_name = U.as_str(U.as_map(cluster.get("metadata")).get("name"))
    config = U.as_map(U.as_map(cluster.get("spec")).get("networkPolicy"))
    rules = next(
        (U.as_map(g) for g in U.as_list(config.get("workerGroups")) if U.as_map(g).get("groupName") == group),
        U.as_map(config.get("worker")),
    )
    return _policy(
        cluster,
        worker_policy_name(cluster_name, group),
        group,
        {
            C.RAY_CLUSTER_LABEL_KEY: cluster_name,
            C.RAY_NODE_TYPE_LABEL_KEY: C.RayNodeType.WORKER,
            C.RAY_NODE_GROUP_LABEL_KEY: group,
        },
        [U.as_map(r) for r in U.as_list(rules.get("ingressRules"))],
        [U.as_map(r) for r in U.as_list(rules.get("egressRules"))],
    )


def build_network_policies(cluster: Mapping[str, Any]) -> list[JSON]:
    """The head's policy, then one per worker group in spec order."""
    groups = [
        U.as_str(U.as_map(g).get("groupName")) for g in U.as_list(U.as_map(cluster.get("spec")).get("workerGroupSpecs"))
    ]
    return [build_head_network_policy(cluster), *(build_worker_network_policy(cluster, g) for g in groups)]


def _without_empty(value: Any) -> Any:
    if isinstance(value, Mapping):
        out = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


def normalize_spec(spec: Mapping[str, Any]) -> JSON:
    """The spec as the API server stores it, for comparing desired with live: a port without a protocol
    is TCP (the server's default), and empty lists and maps are absent (Go's omitempty)."""
    out: JSON = _without_empty(copy.deepcopy(dict(spec)))
    for direction in ("ingress", "egress"):
        for rule in U.as_list(out.get(direction)):
            for port in U.as_list(U.as_map(rule).get("ports")):
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
    return out
