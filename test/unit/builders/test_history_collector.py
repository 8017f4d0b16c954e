"""The history-server collector sidecar (gate RayClusterHistoryServer, raycluster-extensions.md §4):
what ``build_head_pod``/``build_worker_pod`` add with ``historyServerOptions.collectorOptions``."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controllers.ray.common.pod import build_head_pod, build_worker_pod

GATE = {"RayClusterHistoryServer": True}
EVENT_TYPES = (
    "TASK_DEFINITION_EVENT,TASK_LIFECYCLE_EVENT,ACTOR_TASK_DEFINITION_EVENT,TASK_PROFILE_EVENT,"
    "DRIVER_JOB_DEFINITION_EVENT,DRIVER_JOB_LIFECYCLE_EVENT,ACTOR_DEFINITION_EVENT,ACTOR_LIFECYCLE_EVENT,"
    "NODE_DEFINITION_EVENT,NODE_LIFECYCLE_EVENT"
)
FQDN = "hist-head-svc.ns.svc.cluster.local"


def cluster(options: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": "hist", "namespace": "ns", "uid": "u"},
        "spec": {
            "headGroupSpec": {
                "rayStartParams": {},
                "template": {"spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.52.0"}]}},
            },
            "workerGroupSpecs": [
                {
                    "groupName": "w",
                    "rayStartParams": {},
                    "template": {"spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.52.0"}]}},
                }
            ],
            **spec,
        },
    }
    if options is not None:
        c["spec"]["historyServerOptions"] = {"collectorOptions": options}
    return c


OPTIONS = {
    "image": "collector:1",
    "env": [{"name": "STORAGE_BACKEND", "value": "S3"}, {"name": "S3_REGION", "value": "eu"}],
}


def head(c: dict[str, Any], features: dict[str, bool] | None = GATE) -> dict[str, Any]:
    return build_head_pod(c, features=features)


def worker(c: dict[str, Any], features: dict[str, bool] | None = GATE) -> dict[str, Any]:
    return build_worker_pod(c, c["spec"]["workerGroupSpecs"][0], features=features)


def named(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def env_names(container: dict[str, Any]) -> list[str]:
    return [e["name"] for e in container.get("env", [])]


def test_head_collector_env_resources_and_shared_logs() -> None:
    c = cluster(copy.deepcopy(OPTIONS))
    c["metadata"]["labels"] = {"ray.io/originated-from-crd": "RayJob", "ray.io/originated-from-cr-name": "job1"}
    pod = head(c)
    assert [x["name"] for x in pod["spec"]["containers"]] == ["ray-head", "ray-history-collector"]
    collector = named(pod, "ray-history-collector")
    assert collector["image"] == "collector:1" and collector["imagePullPolicy"] == "IfNotPresent"
    assert collector["env"] == [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "RAY_CLUSTER_NAME", "value": "hist"},
        {"name": "RAY_CLUSTER_NAMESPACE", "value": "ns"},
        {"name": "RAY_ROLE", "value": "Head"},
        {"name": "EVENTS_PORT", "value": "8084"},
        {"name": "FQ_RAY_IP", "value": FQDN},
        {"name": "OWNER_KIND", "value": "RayJob"},
        {"name": "OWNER_NAME", "value": "job1"},
        {"name": "RAY_DASHBOARD_ADDRESS", "value": "http://localhost:8265"},
        *OPTIONS["env"],
    ]
    assert collector["resources"] == {
        "limits": {"cpu": "200m", "memory": "256Mi"},
        "requests": {"cpu": "50m", "memory": "64Mi"},
    }
    assert collector["volumeMounts"] == [{"name": "ray-logs", "mountPath": "/tmp/ray"}]
    ray = named(pod, "ray-head")
    assert {"name": "ray-logs", "mountPath": "/tmp/ray"} in ray["volumeMounts"]
    assert [v for v in pod["spec"]["volumes"] if v["name"] == "ray-logs"] == [{"name": "ray-logs", "emptyDir": {}}]
    assert ray["env"][-5:] == [
        {"name": "RAY_enable_ray_event", "value": "true"},
        {"name": "RAY_enable_core_worker_ray_event_to_aggregator", "value": "true"},
        {"name": "RAY_DASHBOARD_AGGREGATOR_AGENT_EVENTS_EXPORT_ADDR", "value": "http://localhost:8084/v1/events"},
        {"name": "RAY_DASHBOARD_AGGREGATOR_AGENT_EXPOSABLE_EVENT_TYPES", "value": EVENT_TYPES},
        {"name": "RAY_DASHBOARD_AGGREGATOR_AGENT_PUBLISHER_HTTP_ENDPOINT_EXPOSABLE_EVENT_TYPES", "value": EVENT_TYPES},
    ]


def test_worker_collector_has_no_dashboard_address_and_role_worker() -> None:
    pod = worker(cluster(copy.deepcopy(OPTIONS)))
    assert [x["name"] for x in pod["spec"]["containers"]] == ["ray-worker", "ray-history-collector"]
    env = named(pod, "ray-history-collector")["env"]
    assert {"name": "RAY_ROLE", "value": "Worker"} in env
    assert "RAY_DASHBOARD_ADDRESS" not in env_names(named(pod, "ray-history-collector"))
    assert "OWNER_KIND" not in env_names(named(pod, "ray-history-collector"))
    assert "RAY_enable_ray_event" in env_names(named(pod, "ray-worker"))


@pytest.mark.parametrize("features", [None, {"RayClusterHistoryServer": False}])
def test_without_the_gate_nothing_is_added(features: dict[str, bool] | None) -> None:
    c = cluster(copy.deepcopy(OPTIONS))
    for pod in (head(c, features), worker(c, features)):
        assert len(pod["spec"]["containers"]) == 1
        assert not any(v["name"] == "ray-logs" for v in pod["spec"].get("volumes", []))
        assert "RAY_enable_ray_event" not in env_names(pod["spec"]["containers"][0])


def test_the_gate_without_options_adds_nothing() -> None:
    pod = head(cluster())
    assert len(pod["spec"]["containers"]) == 1
    assert "RAY_enable_ray_event" not in env_names(pod["spec"]["containers"][0])


def test_user_values_win_resources_replace_and_pull_policy() -> None:
    options = copy.deepcopy(OPTIONS)
    options["imagePullPolicy"] = "Always"
    options["resources"] = {"limits": {"memory": "1Gi"}}
    options["env"].append({"name": "RAY_DASHBOARD_ADDRESS", "value": "http://localhost:9000"})
    c = cluster(options)
    c["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "RAY_enable_ray_event", "value": "false"}
    ]
    pod = head(c)
    collector = named(pod, "ray-history-collector")
    assert collector["imagePullPolicy"] == "Always"
    assert collector["resources"] == {"limits": {"memory": "1Gi"}}  # replaced wholesale, no defaults merged
    assert [e for e in collector["env"] if e["name"] == "RAY_DASHBOARD_ADDRESS"] == [
        {"name": "RAY_DASHBOARD_ADDRESS", "value": "http://localhost:9000"}
    ]
    ray_env = named(pod, "ray-head")["env"]
    assert [e for e in ray_env if e["name"] == "RAY_enable_ray_event"] == [
        {"name": "RAY_enable_ray_event", "value": "false"}
    ]


def test_the_autoscalers_ray_logs_volume_is_shared_not_duplicated() -> None:
    pod = head(cluster(copy.deepcopy(OPTIONS), enableInTreeAutoscaling=True))
    assert [x["name"] for x in pod["spec"]["containers"]] == ["ray-head", "autoscaler", "ray-history-collector"]
    assert [v["name"] for v in pod["spec"]["volumes"]].count("ray-logs") == 1
    for name in ("ray-head", "autoscaler", "ray-history-collector"):
        assert {"name": "ray-logs", "mountPath": "/tmp/ray"} in named(pod, name)["volumeMounts"]


def test_a_user_mount_at_tmp_ray_stays_and_the_collector_gets_its_own() -> None:
    c = cluster(copy.deepcopy(OPTIONS))
    head_spec = c["spec"]["headGroupSpec"]["template"]["spec"]
    head_spec["containers"][0]["volumeMounts"] = [{"name": "mine", "mountPath": "/tmp/ray"}]
    head_spec["volumes"] = [{"name": "mine", "emptyDir": {}}]
    pod = head(c)
    assert named(pod, "ray-head")["volumeMounts"] == [
        {"name": "mine", "mountPath": "/tmp/ray"},
        *named(pod, "ray-head")["volumeMounts"][1:],
    ]
    assert not any(m["name"] == "ray-logs" for m in named(pod, "ray-head")["volumeMounts"])
    assert named(pod, "ray-history-collector")["volumeMounts"] == [{"name": "ray-logs", "mountPath": "/tmp/ray"}]
    assert {v["name"] for v in pod["spec"]["volumes"]} >= {"mine", "ray-logs"}


def test_token_auth_env_follows_the_users() -> None:
    pod = head(cluster(copy.deepcopy(OPTIONS), authOptions={"mode": "token"}))
    assert env_names(named(pod, "ray-history-collector"))[-4:] == [
        "STORAGE_BACKEND",
        "S3_REGION",
        "RAY_AUTH_MODE",
        "RAY_AUTH_TOKEN",
    ]
