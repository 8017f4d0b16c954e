"""The generated CRDs reject at admission what upstream's CRDs reject, with a message that names the
field; what upstream only catches at reconcile time is caught by the validators with upstream's text."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
import yaml

from api.v1 import validation
from api.v1.errors import ValidationError
from internal.client import Client, Invalid
from internal.client.resources import RAYCLUSTERS, RAYJOBS

CLUSTER = yaml.safe_load(
    """
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: rc}
spec:
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers: [{name: ray-head, image: rayproject/ray:2.52.0}]
  workerGroupSpecs:
  - groupName: w
    replicas: 1
    minReplicas: 0
    maxReplicas: 2
    rayStartParams: {}
    template:
      spec:
        containers: [{name: ray-worker, image: rayproject/ray:2.52.0}]
"""
)


def cluster(ns: str, **spec: Any) -> dict[str, Any]:
    c = copy.deepcopy(CLUSTER)
    c["metadata"]["namespace"] = ns
    c["spec"].update(spec)
    return c


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c["spec"].pop("headGroupSpec"), "headGroupSpec"),
        (lambda c: c["spec"]["workerGroupSpecs"][0].pop("groupName"), "groupName"),
        (lambda c: c["spec"]["workerGroupSpecs"][0].update(replicas="two"), "replicas"),
        (lambda c: c["spec"].update(upgradeStrategy={"type": "Sometimes"}), "upgradeStrategy.type"),
        (lambda c: c["spec"].update(managedBy="someone.else/controller"), "managedBy"),
        (lambda c: c["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0].update(image=7), "image"),
    ],
    ids=["no-head", "no-group-name", "replicas-not-int", "bad-upgrade-type", "bad-managed-by", "image-not-string"],
)
async def test_invalid_raycluster_is_rejected_at_admission(
    kclient: Client, namespace: str, change: Any, field: str
) -> None:
    c = cluster(namespace)
    change(c)
    with pytest.raises(Invalid) as err:
        await kclient.create(RAYCLUSTERS, c)
    assert field in err.value.message, err.value.message


async def test_managed_by_is_immutable(kclient: Client, namespace: str) -> None:
    created = await kclient.create(RAYCLUSTERS, cluster(namespace, managedBy="ray.io/kuberay-operator"))
    created["spec"]["managedBy"] = "kueue.x-k8s.io/multikueue"
    with pytest.raises(Invalid) as err:
        await kclient.update(RAYCLUSTERS, created)
    assert "immutable" in err.value.message


async def test_reconcile_time_rules_are_caught_by_the_validators_not_the_crd(kclient: Client, namespace: str) -> None:
    # Upstream's CRD accepts min > max; its controller rejects it. So do we, with upstream's message.
    bad = cluster(namespace)
    bad["spec"]["workerGroupSpecs"][0].update(minReplicas=5, maxReplicas=1)
    accepted = await kclient.create(RAYCLUSTERS, bad)
    with pytest.raises(ValidationError) as err:
        validation.validate_ray_cluster(accepted)
    assert "minReplicas" in str(err.value) and "maxReplicas" in str(err.value)

    job = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": "j", "namespace": namespace},
        "spec": {
            "entrypoint": "python x.py",
            "shutdownAfterJobFinishes": False,
            "ttlSecondsAfterFinished": 10,
            "rayClusterSpec": CLUSTER["spec"],
        },
    }
    stored = await kclient.create(RAYJOBS, job)
    with pytest.raises(ValidationError, match="TTLSecondsAfterFinished"):
        validation.validate_ray_job(stored)


async def test_embedded_pod_templates_get_only_upstreams_defaults(kclient: Client, namespace: str) -> None:
    """A default rewrites what the user applied (and every hash of it): the embedded Kubernetes schemas
    keep only the defaults upstream's CRDs have (controller-gen's +default markers)."""
    c = cluster(namespace)
    head = c["spec"]["headGroupSpec"]["template"]["spec"]
    head["tolerations"] = [{"operator": "Exists"}]
    head["containers"][0]["ports"] = [{"containerPort": 8265, "name": "dashboard"}]
    stored = await kclient.create(RAYCLUSTERS, c)
    spec = stored["spec"]["headGroupSpec"]["template"]["spec"]
    assert spec["tolerations"] == [{"operator": "Exists"}]  # no key: "" added
    assert spec["containers"][0]["ports"] == [{"containerPort": 8265, "name": "dashboard", "protocol": "TCP"}]


async def test_v1alpha1_is_served_and_stored_as_v1(kclient: Client, namespace: str) -> None:
    """As upstream's CRDs: ray.io/v1alpha1 is still served (not stored), so clusters that once stored it
    can take these CRDs; what is written through it is stored and read as ray.io/v1."""
    alpha = replace(RAYCLUSTERS, version="v1alpha1")
    c = cluster(namespace)
    c["apiVersion"] = "ray.io/v1alpha1"
    created = await kclient.create(alpha, c)
    assert created["apiVersion"] == "ray.io/v1alpha1"
    stored = await kclient.get(RAYCLUSTERS, "rc", namespace)
    assert stored["apiVersion"] == "ray.io/v1" and stored["spec"]["workerGroupSpecs"][0]["groupName"] == "w"
