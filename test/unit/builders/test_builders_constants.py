"""The names builders put on objects must match upstream byte for byte (spec §4.4, §4.6, §4.7, §7.3)."""

from __future__ import annotations

import pytest

from controllers.ray.utils import constants as C


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (C.RAY_CLUSTER_LABEL_KEY, "ray.io/cluster"),
        (C.RAY_NODE_TYPE_LABEL_KEY, "ray.io/node-type"),
        (C.RAY_NODE_GROUP_LABEL_KEY, "ray.io/group"),
        (C.RAY_ID_LABEL_KEY, "ray.io/identifier"),
        (C.RAY_NODE_LABEL_KEY, "ray.io/is-ray-node"),
        (C.KUBERNETES_APPLICATION_NAME_LABEL_KEY, "app.kubernetes.io/name"),
        (C.APPLICATION_NAME, "kuberay"),
        (C.KUBERNETES_CREATED_BY_LABEL_KEY, "app.kubernetes.io/created-by"),
        (C.COMPONENT_NAME, "kuberay-operator"),
        (C.RAY_OVERWRITE_CONTAINER_CMD_ANNOTATION_KEY, "ray.io/overwrite-container-cmd"),
        (C.RAY_FT_ENABLED_ANNOTATION_KEY, "ray.io/ft-enabled"),
        (C.RAY_EXTERNAL_STORAGE_NS_ANNOTATION_KEY, "ray.io/external-storage-namespace"),
        (C.RAY_CLUSTER_SERVING_SERVICE_LABEL_KEY, "ray.io/serve"),
        (C.RAY_CLUSTER_HEADLESS_SERVICE_LABEL_KEY, "ray.io/headless-worker-svc"),
        (C.RAY_WORKER_REPLICA_INDEX_KEY, "ray.io/worker-group-replica-index"),
        (C.RAY_WORKER_REPLICA_NAME_KEY, "ray.io/worker-group-replica-name"),
        (C.RAY_HOST_INDEX_KEY, "ray.io/replica-host-index"),
        (C.GCS_FAULT_TOLERANCE_REDIS_CLEANUP_FINALIZER, "ray.io/gcs-ft-redis-cleanup-finalizer"),
        (C.RAY_CLUSTER_NAME, "RAY_CLUSTER_NAME"),
        (C.RAY_IP, "RAY_IP"),
        (C.FQ_RAY_IP, "FQ_RAY_IP"),
        (C.RAY_PORT, "RAY_PORT"),
        (C.RAY_ADDRESS, "RAY_ADDRESS"),
        (C.RAY_USAGE_STATS_KUBERAY_IN_USE, "RAY_USAGE_STATS_KUBERAY_IN_USE"),
        (C.RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE, "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE"),
        (C.KUBERAY_GEN_RAY_START_CMD, "KUBERAY_GEN_RAY_START_CMD"),
        (C.RAY_CLOUD_INSTANCE_ID, "RAY_CLOUD_INSTANCE_ID"),
        (C.RAY_NODE_TYPE_NAME, "RAY_NODE_TYPE_NAME"),
        (C.RAY_EXTERNAL_STORAGE_NS, "RAY_external_storage_namespace"),
        (C.RAY_GCS_RPC_SERVER_RECONNECT_TIMEOUT_S, "RAY_gcs_rpc_server_reconnect_timeout_s"),
        (C.RAY_ENABLE_AUTOSCALER_V2, "RAY_enable_autoscaler_v2"),
        (C.ULIMIT_COMMAND, "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}"),
        (C.SHARED_MEMORY_VOLUME_NAME, "shared-mem"),
        (C.RAY_LOG_VOLUME_NAME, "ray-logs"),
        (C.WAIT_GCS_READY_INIT_CONTAINER_NAME, "wait-gcs-ready"),
        (C.AUTOSCALER_CONTAINER_NAME, "autoscaler"),
    ],
)
def test_names_are_upstreams(value: str, expected: str) -> None:
    assert value == expected


def test_ports() -> None:
    assert C.DEFAULT_GCS_SERVER_PORT == 6379
    assert C.DEFAULT_DASHBOARD_PORT == 8265
    assert C.DEFAULT_CLIENT_PORT == 10001
    assert C.DEFAULT_SERVING_PORT == 8000
    assert C.DEFAULT_METRICS_PORT == 8080
    assert C.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT == 52365
    assert C.DEFAULT_HEAD_SERVICE_PORTS == {
        "client": 10001,
        "gcs-server": 6379,
        "dashboard": 8265,
        "metrics": 8080,
        "serve": 8000,
    }


def test_probe_defaults() -> None:
    assert (C.DEFAULT_LIVENESS_PROBE_INITIAL_DELAY_SECONDS, C.DEFAULT_READINESS_PROBE_INITIAL_DELAY_SECONDS) == (30, 10)
    assert (C.DEFAULT_LIVENESS_PROBE_TIMEOUT_SECONDS, C.DEFAULT_HEAD_LIVENESS_PROBE_TIMEOUT_SECONDS) == (2, 5)
    assert (C.DEFAULT_LIVENESS_PROBE_FAILURE_THRESHOLD, C.DEFAULT_READINESS_PROBE_FAILURE_THRESHOLD) == (120, 10)
    assert C.SERVE_READINESS_PROBE_FAILURE_THRESHOLD == 1
    assert C.BASE_WGET_HEALTH_COMMAND.format(timeout=2, port=52365, path=C.RAY_AGENT_RAYLET_HEALTH_PATH) == (
        "wget --tries 1 -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success"
    )
