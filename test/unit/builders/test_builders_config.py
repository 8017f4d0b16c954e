"""The operator Configuration's pod fields in the pod builders (spec §4.6 "Sidecars from config
appended. Default pod labels and annotations added", §4.6 env table "operator DefaultContainerEnvs, if
absent", §7.1 "user values win"), rule by rule; labels_and_config.golden.yaml shows them in context."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from controllers.ray.common import pod
from controllers.ray.common.pod import PodConfig
from controllers.ray.utils import constants as C

CLUSTER: dict[str, Any] = yaml.safe_load(
    """
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: rc, namespace: ns, uid: uid-1}
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
    labels: {tier: gpu}
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.52.0
"""
)

CONFIG = PodConfig(
    head_sidecar_containers=({"name": "fluentbit", "image": "fluent/fluent-bit:3.0"},),
    worker_sidecar_containers=({"name": "shipper", "image": "busybox", "env": [{"name": "A", "value": "1"}]},),
    default_container_envs=({"name": "HTTP_PROXY", "value": "http://proxy:3128"}, {"name": "TZ", "value": "UTC"}),
    default_pod_labels={"team": "platform", "tier": "cpu", "cost-center": "ml", C.RAY_NODE_TYPE_LABEL_KEY: "bogus"},
    default_pod_annotations={"note": "from-operator", "owner": "data", C.KUBERAY_VERSION_ANNOTATION_KEY: "bogus"},
)


def head(cluster: dict[str, Any] = CLUSTER, config: PodConfig = CONFIG) -> dict[str, Any]:
    return pod.build_head_pod(cluster, config=config, spec_hash="h")


def worker(cluster: dict[str, Any] = CLUSTER, config: PodConfig = CONFIG) -> dict[str, Any]:
    return pod.build_worker_pod(cluster, cluster["spec"]["workerGroupSpecs"][0], config=config)


def names(p: dict[str, Any]) -> list[str]:
    return [c["name"] for c in p["spec"]["containers"]]


def env(container: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(e["name"], e.get("value")) for e in container.get("env") or ()]


def test_sidecars_are_appended_after_the_ray_container_of_their_node_type() -> None:
    assert names(head()) == ["ray-head", "fluentbit"]
    assert names(worker()) == ["ray-worker", "shipper"]
    assert worker()["spec"]["containers"][1] == {
        "name": "shipper",
        "image": "busybox",
        "env": [{"name": "A", "value": "1"}],
    }


def test_head_sidecars_come_after_the_autoscaler() -> None:
    cluster = copy.deepcopy(CLUSTER)
    cluster["spec"]["enableInTreeAutoscaling"] = True
    assert names(head(cluster)) == ["ray-head", C.AUTOSCALER_CONTAINER_NAME, "fluentbit"]


def test_sidecars_are_copies() -> None:
    p = head()
    p["spec"]["containers"][1]["image"] = "changed"
    assert CONFIG.head_sidecar_containers[0]["image"] == "fluent/fluent-bit:3.0"


def test_default_envs_go_first_into_the_ray_container_unless_set_by_the_user() -> None:
    head_env, worker_env = env(head()["spec"]["containers"][0]), env(worker()["spec"]["containers"][0])
    assert head_env[:2] == [("TZ", "Europe/Paris"), ("HTTP_PROXY", "http://proxy:3128")]  # the user's TZ kept
    assert [n for n, _ in head_env].count("TZ") == 1
    assert worker_env[:2] == [("HTTP_PROXY", "http://proxy:3128"), ("TZ", "UTC")]
    assert worker_env[2] == ("FQ_RAY_IP", "rc-head-svc.ns.svc.cluster.local")  # KubeRay's own envs follow
    assert "HTTP_PROXY" not in dict(env(head()["spec"]["containers"][1]))  # not the sidecars


def test_default_labels_only_where_the_key_is_absent() -> None:
    h, w = head()["metadata"]["labels"], worker()["metadata"]["labels"]
    assert h["cost-center"] == w["cost-center"] == "ml"
    assert h["team"] == "research" and w["team"] == "platform"  # template labels win
    assert h["tier"] == "cpu" and w["tier"] == "gpu"  # group labels win too
    assert w[C.RAY_NODE_TYPE_LABEL_KEY] == "worker" and h[C.RAY_NODE_TYPE_LABEL_KEY] == "head"  # KubeRay's win


def test_default_annotations_only_where_the_key_is_absent() -> None:
    h, w = head()["metadata"]["annotations"], worker()["metadata"]["annotations"]
    assert h["owner"] == w["owner"] == "data"
    assert h["note"] == "from-user" and w["note"] == "from-operator"
    assert h[C.KUBERAY_VERSION_ANNOTATION_KEY] == C.KUBERAY_VERSION


def test_an_empty_configuration_changes_nothing() -> None:
    assert head(config=PodConfig()) == pod.build_head_pod(CLUSTER, spec_hash="h")
    plain = worker(config=PodConfig())
    assert names(plain) == ["ray-worker"] and "cost-center" not in plain["metadata"]["labels"]
    assert "HTTP_PROXY" not in dict(env(plain["spec"]["containers"][0]))
