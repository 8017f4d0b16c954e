"""A Configuration file's pod fields reach the pods the operator creates, on a real API server: the
head and worker sidecars are appended after the Ray container, the default env vars go into the Ray
container unless the user set them, and the default labels and annotations are added where the user
has not set the key."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from support.operator import running_operator
from support.wait import eventually

from api.config.v1alpha1 import decode
from internal.client import Client
from internal.client.resources import PODS, RAYCLUSTERS

pytestmark = pytest.mark.t2

CONFIG = """
apiVersion: config.ray.io/v1alpha1
kind: Configuration
headSidecarContainers:
- name: fluentbit
  image: fluent/fluent-bit:3.0
workerSidecarContainers:
- name: log-shipper
  image: busybox:1.36
  command: [sleep, infinity]
defaultContainerEnvs:
- {name: HTTP_PROXY, value: "http://proxy.example:3128"}
- {name: TZ, value: UTC}
defaultPodLabels: {cost-center: ml, team: platform}
defaultPodAnnotations: {example.com/owner: data-team, note: from-operator}
"""
POD_FIELDS = (
    "headSidecarContainers",
    "workerSidecarContainers",
    "defaultContainerEnvs",
    "defaultPodLabels",
    "defaultPodAnnotations",
)

CLUSTER = yaml.safe_load(
    """
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: cfg}
spec:
  rayVersion: '2.52.0'
  headGroupSpec:
    rayStartParams: {}
    template:
      metadata:
        labels: {team: research}
        annotations: {note: from-user}
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.52.0
          env: [{name: TZ, value: Europe/Paris}]
  workerGroupSpecs:
  - groupName: small
    replicas: 1
    minReplicas: 0
    maxReplicas: 2
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.52.0
"""
)


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container.get("env") or ()}


async def test_configuration_sidecars_envs_labels_and_annotations_reach_the_pods(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    warnings: list[str] = []
    cfg = decode(CONFIG, warnings.append)
    assert warnings == []
    async with running_operator(sim_cluster, config={f: getattr(cfg, f) for f in POD_FIELDS}):
        await kclient.create(RAYCLUSTERS, {**CLUSTER, "metadata": {"name": "cfg", "namespace": namespace}})

        async def both() -> dict[str, dict[str, Any]] | None:
            items = (await kclient.list(PODS, namespace, label_selector="ray.io/cluster=cfg"))["items"]
            by_type = {p["metadata"]["labels"]["ray.io/node-type"]: p for p in items}
            return by_type if {"head", "worker"} <= by_type.keys() else None

        pods = await eventually(both, 60, "the head and worker pods of RayCluster cfg")

    head, worker = pods["head"], pods["worker"]
    assert [c["name"] for c in head["spec"]["containers"]] == ["ray-head", "fluentbit"]
    assert [c["name"] for c in worker["spec"]["containers"]] == ["ray-worker", "log-shipper"]
    assert worker["spec"]["containers"][1]["command"] == ["sleep", "infinity"]

    head_env, worker_env = env_of(head["spec"]["containers"][0]), env_of(worker["spec"]["containers"][0])
    assert head_env["HTTP_PROXY"] == worker_env["HTTP_PROXY"] == "http://proxy.example:3128"
    assert head_env["TZ"] == "Europe/Paris"  # the user's value wins
    assert worker_env["TZ"] == "UTC"
    assert "HTTP_PROXY" not in env_of(head["spec"]["containers"][1])  # only the Ray container

    assert head["metadata"]["labels"]["cost-center"] == worker["metadata"]["labels"]["cost-center"] == "ml"
    assert head["metadata"]["labels"]["team"] == "research"
    assert worker["metadata"]["labels"]["team"] == "platform"
    assert head["metadata"]["labels"]["ray.io/cluster"] == worker["metadata"]["labels"]["ray.io/cluster"] == "cfg"
    assert head["metadata"]["annotations"]["example.com/owner"] == "data-team"
    assert worker["metadata"]["annotations"]["example.com/owner"] == "data-team"
    assert head["metadata"]["annotations"]["note"] == "from-user"
    assert worker["metadata"]["annotations"]["note"] == "from-operator"
