"""The NetworkPolicy controller (gate RayClusterNetworkPolicy) on the simulated cluster, under the
shipped RBAC, together with the RayCluster controller: the policies a user would `kubectl get
networkpolicy`, as the API server stores them, and the events on the RayCluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from support.operator import running_operator
from support.wait import events_for, eventually, gone, stays, wait_events

from controllers.ray import networkpolicy_controller, raycluster_controller
from controllers.ray.raycluster_controller import RayClusterOptions
from internal.app import Runtime
from internal.client import Client
from internal.client.resources import NETWORKPOLICIES, RAYCLUSTERS, RAYJOBS

pytestmark = pytest.mark.t2

CLUSTER = yaml.safe_load(
    """
apiVersion: ray.io/v1
kind: RayCluster
spec:
  networkPolicy:
    mode: DenyAll
    head:
      ingressRules:
      - from: [{namespaceSelector: {matchLabels: {team: ml}}}]
        ports: [{port: 8265}]
      egressRules:
      - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]
        ports: [{port: 53, protocol: UDP}]
    worker:
      egressRules:
      - to: [{ipBlock: {cidr: 10.0.0.0/8}}]
    workerGroups:
    - groupName: gpu
      ingressRules:
      - from: [{podSelector: {matchLabels: {app: feeder}}}]
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.52.0
  workerGroupSpecs:
  - groupName: cpu
    replicas: 1
    minReplicas: 0
    maxReplicas: 2
    rayStartParams: {}
    template:
      spec:
        containers: [{name: ray-worker, image: rayproject/ray:2.52.0}]
  - groupName: gpu
    replicas: 0
    minReplicas: 0
    maxReplicas: 2
    rayStartParams: {}
    template:
      spec:
        containers: [{name: ray-worker, image: rayproject/ray:2.52.0}]
"""
)

SAME_CLUSTER = {"podSelector": {"matchLabels": {"ray.io/cluster": "iso"}}}


def cluster(name: str, ns: str) -> dict[str, Any]:
    c = copy.deepcopy(CLUSTER)
    c["metadata"] = {"name": name, "namespace": ns}
    return c


def operator(plane: Any) -> Any:
    def raycluster(rt: Runtime) -> list[Any]:
        return raycluster_controller.setup(rt, RayClusterOptions.from_configuration(rt.config, rt.gates))

    return running_operator(plane, [raycluster, networkpolicy_controller.setup], gates="RayClusterNetworkPolicy=true")


async def policies(c: Client, ns: str) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in (await c.list(NETWORKPOLICIES, ns))["items"]}


async def unchanged(c: Client, ns: str, window: float) -> bool:
    """True when no NetworkPolicy in ``ns`` changes (resourceVersions) at any sample over ``window`` s."""

    async def versions() -> dict[str, str]:
        return {n: p["metadata"]["resourceVersion"] for n, p in (await policies(c, ns)).items()}

    return await stays(versions, window)


async def test_policies_for_the_head_and_each_group_then_follow_the_spec(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator(sim_cluster):
        created = await kclient.create(RAYCLUSTERS, cluster("iso", namespace))
        names = {"iso-head", "iso-workers-cpu", "iso-workers-gpu"}

        async def all_three() -> dict[str, dict[str, Any]] | None:
            p = await policies(kclient, namespace)
            return p if set(p) == names else None

        pols = await eventually(all_three, 30, "the head's and both groups' policies")
        owner = {
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "name": "iso",
            "uid": created["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        common = {
            "ray.io/cluster": "iso",
            "app.kubernetes.io/name": "kuberay",
            "app.kubernetes.io/created-by": "kuberay-operator",
        }
        head = pols["iso-head"]
        assert head["metadata"]["labels"] == {**common, "ray.io/group": "headgroup"}
        assert head["metadata"]["ownerReferences"] == [owner]
        assert head["spec"] == {
            "podSelector": {"matchLabels": {"ray.io/cluster": "iso", "ray.io/node-type": "head"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"from": [SAME_CLUSTER]},
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"team": "ml"}}}],
                    "ports": [{"port": 8265, "protocol": "TCP"}],
                },
            ],
            "egress": [
                {"to": [SAME_CLUSTER]},
                {
                    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                    "ports": [{"port": 53, "protocol": "UDP"}],
                },
            ],
        }
        cpu = pols["iso-workers-cpu"]  # networkPolicy.worker
        assert cpu["metadata"]["labels"] == {**common, "ray.io/group": "cpu"}
        assert cpu["spec"]["podSelector"] == {
            "matchLabels": {"ray.io/cluster": "iso", "ray.io/node-type": "worker", "ray.io/group": "cpu"}
        }
        assert cpu["spec"]["ingress"] == [{"from": [SAME_CLUSTER]}]
        assert cpu["spec"]["egress"] == [{"to": [SAME_CLUSTER]}, {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]
        gpu = pols["iso-workers-gpu"]  # its workerGroups entry replaces networkPolicy.worker entirely
        assert gpu["spec"]["ingress"] == [
            {"from": [SAME_CLUSTER]},
            {"from": [{"podSelector": {"matchLabels": {"app": "feeder"}}}]},
        ]
        assert gpu["spec"]["egress"] == [{"to": [SAME_CLUSTER]}]

        # Three creations; events.k8s.io folds repeats of a reason on one object into a series.
        async def created_three() -> bool:
            evs = [e for e in await events_for(kclient, namespace, "iso") if e["reason"] == "CreatedNetworkPolicy"]
            return sum(1 + (e.get("series") or {}).get("count", 0) for e in evs) == 3

        await eventually(created_three, 30, "three CreatedNetworkPolicy events")
        [ev] = [e for e in await events_for(kclient, namespace, "iso") if e["reason"] == "CreatedNetworkPolicy"]
        assert (ev["type"], ev["action"], ev["note"]) == (
            "Normal",
            "Create",
            f"Created NetworkPolicy {namespace}/iso-head",
        )
        assert ev["reportingController"] == "networkpolicy-controller"
        # The RayCluster controller's own writes (status, pods) do not make the policies change.
        assert await unchanged(kclient, namespace, 3)

        # A hand edit is put back.
        hand = await kclient.get(NETWORKPOLICIES, "iso-workers-cpu", namespace)
        hand["spec"]["egress"] = [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]
        await kclient.update(NETWORKPOLICIES, hand)

        async def restored() -> bool:
            p = await kclient.get(NETWORKPOLICIES, "iso-workers-cpu", namespace)
            return bool(p["spec"]["egress"] == cpu["spec"]["egress"])

        await eventually(restored, 30, "the edited policy restored")
        await wait_events(kclient, namespace, "iso", "UpdatedNetworkPolicy")

        # Ingress only, and the gpu group gone: one policy updated, one deleted.
        live = await kclient.get(RAYCLUSTERS, "iso", namespace)
        live["spec"]["workerGroupSpecs"] = live["spec"]["workerGroupSpecs"][:1]
        live["spec"]["networkPolicy"] = {
            "mode": "DenyAllIngress",
            "head": {"ingressRules": CLUSTER["spec"]["networkPolicy"]["head"]["ingressRules"]},
        }
        await kclient.update(RAYCLUSTERS, live)

        async def ingress_only() -> bool:
            p = await policies(kclient, namespace)
            return set(p) == {"iso-head", "iso-workers-cpu"} and all(
                x["spec"]["policyTypes"] == ["Ingress"] and "egress" not in x["spec"] for x in p.values()
            )

        await eventually(ingress_only, 30, "ingress-only policies, the gpu group's deleted")
        [deleted] = await wait_events(kclient, namespace, "iso", "DeletedNetworkPolicy")
        assert (deleted["type"], deleted["action"], deleted["note"]) == (
            "Normal",
            "Delete",
            f"Deleted NetworkPolicy {namespace}/iso-workers-gpu",
        )

        # No networkPolicy: no policies.
        live = await kclient.get(RAYCLUSTERS, "iso", namespace)
        del live["spec"]["networkPolicy"]
        await kclient.update(RAYCLUSTERS, live)
        await eventually(async_eq(lambda: policies(kclient, namespace), {}), 30, "every policy deleted")


def async_eq(get: Any, want: Any) -> Any:
    async def check() -> bool:
        return bool(await get() == want)

    return check


async def test_a_k8s_job_mode_cluster_lets_its_submitter_reach_the_dashboard_port(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """A cluster controlled by a RayJob and labelled K8sJobMode: the head policy also admits the
    RayJob's submitter pods on the ``dashboard-port`` start parameter."""
    job = await kclient.create(
        RAYJOBS,
        {
            "apiVersion": "ray.io/v1",
            "kind": "RayJob",
            "metadata": {"name": "sub", "namespace": namespace},
            "spec": {"entrypoint": "python x.py", "clusterSelector": {"ray.io/cluster": "nobody"}},
        },
    )
    body = cluster("iso", namespace)
    body["spec"]["headGroupSpec"]["rayStartParams"] = {"dashboard-port": "8300"}
    body["spec"]["networkPolicy"] = {"mode": "DenyAllIngress"}
    body["metadata"]["labels"] = {"ray.io/job-submission-mode": "K8sJobMode"}
    body["metadata"]["ownerReferences"] = [
        {"apiVersion": "ray.io/v1", "kind": "RayJob", "name": "sub", "uid": job["metadata"]["uid"], "controller": True}
    ]
    async with operator(sim_cluster):
        await kclient.create(RAYCLUSTERS, body)

        async def head() -> dict[str, Any] | None:
            return (await policies(kclient, namespace)).get("iso-head")

        policy = await eventually(head, 30, "the head policy")
        assert policy["spec"]["policyTypes"] == ["Ingress"] and "egress" not in policy["spec"]
        assert policy["spec"]["ingress"] == [
            {"from": [SAME_CLUSTER]},
            {
                "from": [
                    {
                        "podSelector": {
                            "matchLabels": {
                                "ray.io/originated-from-cr-name": "sub",
                                "ray.io/originated-from-crd": "RayJob",
                            }
                        }
                    }
                ],
                "ports": [{"protocol": "TCP", "port": 8300}],
            },
        ]


async def test_a_policy_of_the_same_name_not_owned_is_left_alone_with_a_warning(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    theirs = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "iso-head", "namespace": namespace, "labels": {"ray.io/cluster": "iso"}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    before = await kclient.create(NETWORKPOLICIES, theirs)
    async with operator(sim_cluster):
        await kclient.create(RAYCLUSTERS, cluster("iso", namespace))
        # Retried with backoff while it lasts: one event per version of the cluster it was about.
        ev = (await wait_events(kclient, namespace, "iso", "NetworkPolicyNameCollision"))[0]
        assert (ev["type"], ev["action"]) == ("Warning", "Validate")
        assert ev["note"] == (
            f"NetworkPolicy {namespace}/iso-head already exists and is not owned by this RayCluster, network "
            "isolation will not be applied. Rename the existing NetworkPolicy or use a different RayCluster name "
            "to avoid the collision"
        )
        # The remaining policies are skipped while the collision lasts, and theirs is untouched.
        assert await unchanged(kclient, namespace, 2)
        assert set(await policies(kclient, namespace)) == {"iso-head"}
        after = await kclient.get(NETWORKPOLICIES, "iso-head", namespace)
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

        # Once theirs is gone, the cluster's own policies are made (the deletion brings no event to
        # the cluster, so a spec change does).
        await kclient.delete(NETWORKPOLICIES, "iso-head", namespace)
        await eventually(lambda: gone(kclient, NETWORKPOLICIES, "iso-head", namespace), 30, "theirs gone")
        live = await kclient.get(RAYCLUSTERS, "iso", namespace)
        live["spec"]["networkPolicy"]["mode"] = "DenyAllEgress"
        del live["spec"]["networkPolicy"]["head"]["ingressRules"]
        del live["spec"]["networkPolicy"]["workerGroups"]
        await kclient.update(RAYCLUSTERS, live)

        async def made() -> bool:
            p = await policies(kclient, namespace)
            return set(p) == {"iso-head", "iso-workers-cpu", "iso-workers-gpu"} and all(
                x["spec"]["policyTypes"] == ["Egress"] for x in p.values()
            )

        await eventually(made, 30, "the cluster's own policies")


async def test_without_the_gate_no_policies(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with running_operator(sim_cluster) as rt:
        assert "networkpolicy" not in {c.name for c in rt.manager.controllers}
        await kclient.create(RAYCLUSTERS, cluster("iso", namespace))
        msg = "spec.networkPolicy requires the RayClusterNetworkPolicy feature gate to be enabled"
        events = await wait_events(kclient, namespace, "iso", "InvalidRayClusterSpec")
        assert any(msg in e["note"] for e in events)
        assert await policies(kclient, namespace) == {}
