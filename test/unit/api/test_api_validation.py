"""Validation rules and upstream messages, table-driven (spec §2.10, §3.16, §4.11, §5)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from api.v1 import (
    FieldTypeError,
    RayCluster,
    RayJob,
    RayService,
    ValidationError,
    apply_crd_defaults,
    validate_initializing_timeout,
    validate_ray_cluster,
    validate_ray_cluster_metadata,
    validate_ray_cluster_spec,
    validate_ray_cluster_status,
    validate_ray_cluster_upgrade_options,
    validate_ray_job,
    validate_ray_job_spec,
    validate_ray_service,
)

Raw = dict[str, Any]
Mutation = Callable[[Raw], Any]

DNS1035_ERROR = (
    "[a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')]"
)


def container(name: str, **extra: Any) -> Raw:
    return {"name": name, "image": "rayproject/ray:2.52.0", **extra}


def worker_group(name: str = "workers", **extra: Any) -> Raw:
    return {
        "groupName": name,
        "replicas": 1,
        "minReplicas": 0,
        "maxReplicas": 5,
        "rayStartParams": {},
        "template": {"spec": {"containers": [container("ray-worker")]}},
        **extra,
    }


def cluster_spec() -> Raw:
    return {
        "rayVersion": "2.52.0",
        "headGroupSpec": {
            "rayStartParams": {},
            "template": {"spec": {"containers": [container("ray-head")]}},
        },
        "workerGroupSpecs": [worker_group()],
    }


def ray_cluster(name: str = "raycluster-sample") -> Raw:
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": name}, "spec": cluster_spec()}


def ray_job(name: str = "rayjob-sample") -> Raw:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name},
        "spec": {"entrypoint": "python main.py", "rayClusterSpec": cluster_spec()},
    }


def ray_service(name: str = "rayservice-sample") -> Raw:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name},
        "spec": {"serveConfigV2": "applications: []\n", "rayClusterConfig": cluster_spec()},
    }


# -- mutation helpers (operate on a RayCluster spec dict) -------------------------------------------


def head(spec: Raw) -> Raw:
    head_group: Raw = spec["headGroupSpec"]
    return head_group


def head_container(spec: Raw) -> Raw:
    first: Raw = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    return first


def group(spec: Raw, index: int = 0) -> Raw:
    item: Raw = spec["workerGroupSpecs"][index]
    return item


def worker_container(spec: Raw) -> Raw:
    first: Raw = group(spec)["template"]["spec"]["containers"][0]
    return first


def env(target: Raw, name: str, value: str = "x") -> None:
    target.setdefault("env", []).append({"name": name, "value": value})


def autoscaling(spec: Raw, version: str | None = None) -> None:
    spec["enableInTreeAutoscaling"] = True
    if version is not None:
        spec.setdefault("autoscalerOptions", {})["version"] = version


def _do(*steps: Mutation) -> Mutation:
    def run(target: Raw) -> None:
        for step in steps:
            step(target)

    return run


ALL_GATES_ON = {
    "RayClusterNetworkPolicy": True,
    "RayClusterMTLS": True,
    "RayClusterHistoryServer": True,
    "GCSFaultToleranceEmbeddedStorage": True,
}

# ---- RayCluster spec -------------------------------------------------------------------------------

# (id, mutation of the cluster spec, cluster annotations, gates, expected message or None for valid)
CLUSTER_SPEC_CASES: list[tuple[str, Mutation, dict[str, str] | None, dict[str, bool] | None, str | None]] = [
    ("valid", lambda s: None, None, None, None),
    (
        "head-no-container",
        lambda s: head(s)["template"]["spec"].update(containers=[]),
        None,
        None,
        "headGroupSpec should have at least one container",
    ),
    (
        "head-no-template",
        lambda s: head(s).pop("template"),
        None,
        None,
        "headGroupSpec should have at least one container",
    ),
    (
        "head-resources-conflict",
        lambda s: head(s).update(rayStartParams={"num-cpus": "1"}, resources={"CPU": "1"}),
        None,
        None,
        "resource fields should not be set in both rayStartParams and Resources for Head group; please use only one",
    ),
    (
        "head-empty-num-cpus-is-no-conflict",
        lambda s: head(s).update(rayStartParams={"num-cpus": ""}, resources={"CPU": "1"}),
        None,
        None,
        None,
    ),
    (
        "head-labels-in-ray-start-params",
        lambda s: head(s).update(rayStartParams={"labels": ""}),
        None,
        None,
        "rayStartParams['labels'] is not supported for Head group; please use the top-level Labels field instead",
    ),
    (
        "head-invalid-label-key",
        lambda s: head(s).update(labels={"bad key": "v"}),
        None,
        None,
        "invalid label key for Head group: 'bad key', error: name part must consist of alphanumeric characters, "
        "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
        "or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    ),
    (
        "head-invalid-label-value",
        lambda s: head(s).update(labels={"ray.io/zone": "-bad"}),
        None,
        None,
        "invalid label value for key 'ray.io/zone' in Head group: '-bad', error: a valid label must be an empty "
        "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    ),
    (
        "label-errors-are-joined",
        lambda s: head(s).update(labels={"a/b/c": "x", "ok": "-"}),
        None,
        None,
        "invalid label key for Head group: 'a/b/c', error: a valid label key must consist of alphanumeric "
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or "
        "'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with "
        "an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName'); invalid label value for key 'ok' "
        "in Head group: '-', error: a valid label must be an empty string or consist of alphanumeric characters, "
        "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  "
        "or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    ),
    ("valid-labels", lambda s: head(s).update(labels={"ray.io/zone": "us-east1", "team": ""}), None, None, None),
    (
        "worker-no-container",
        lambda s: group(s)["template"]["spec"].update(containers=[]),
        None,
        None,
        "workerGroupSpec should have at least one container",
    ),
    (
        "worker-missing-min-replicas",
        lambda s: group(s).pop("minReplicas"),
        None,
        None,
        "worker group workers must set both minReplicas and maxReplicas when autoscaling is disabled",
    ),
    (
        "worker-missing-max-replicas-with-autoscaling",
        _do(lambda s: group(s).pop("maxReplicas"), autoscaling),
        None,
        None,
        None,
    ),
    (
        "worker-negative-min",
        lambda s: group(s).update(minReplicas=-1),
        None,
        None,
        "worker group workers has negative minReplicas -1",
    ),
    (
        "worker-negative-max",
        lambda s: group(s).update(minReplicas=0, maxReplicas=-1),
        None,
        None,
        "worker group workers has negative maxReplicas -1",
    ),
    (
        "worker-min-greater-than-max",
        lambda s: group(s).update(minReplicas=5, maxReplicas=2),
        None,
        None,
        "worker group workers has minReplicas 5 greater than maxReplicas 2",
    ),
    (
        "worker-resources-conflict",
        lambda s: group(s).update(rayStartParams={"memory": "1G"}, resources={"memory": "1G"}),
        None,
        None,
        "resource fields should not be set in both rayStartParams and Resources for workers group; please use only one",
    ),
    (
        "worker-labels-in-ray-start-params",
        lambda s: group(s).update(rayStartParams={"labels": "a=b"}),
        None,
        None,
        "rayStartParams['labels'] is not supported for workers group; please use the top-level Labels field instead",
    ),
    (
        "worker-idle-timeout-negative",
        lambda s: group(s).update(idleTimeoutSeconds=-1),
        None,
        None,
        "worker group workers: idleTimeoutSeconds must be non-negative, got -1",
    ),
    (
        "worker-idle-timeout-without-v2",
        lambda s: group(s).update(idleTimeoutSeconds=10),
        None,
        None,
        "worker group workers: idleTimeoutSeconds is set, but autoscaler v2 is not enabled. Please set "
        ".spec.autoscalerOptions.version to 'v2' (or set RAY_enable_autoscaler_v2 environment variable to 'true' "
        "in the head pod if using KubeRay < 1.4.0)",
    ),
    (
        "worker-idle-timeout-with-v2-option",
        _do(lambda s: group(s).update(idleTimeoutSeconds=10), lambda s: autoscaling(s, "v2")),
        None,
        None,
        None,
    ),
    (
        "worker-idle-timeout-with-v2-env",
        _do(
            lambda s: group(s).update(idleTimeoutSeconds=10),
            autoscaling,
            lambda s: env(head_container(s), "RAY_enable_autoscaler_v2", "true"),
        ),
        None,
        None,
        None,
    ),
    (
        "worker-priority-without-ray-version",
        _do(lambda s: group(s).update(priority=5), lambda s: s.pop("rayVersion")),
        None,
        None,
        "worker group workers: priority is set, but RayVersion was not specified. Ray version 2.56.0 or later "
        "is required",
    ),
    (
        "worker-priority-invalid-ray-version",
        _do(lambda s: group(s).update(priority=5), lambda s: s.update(rayVersion="latest")),
        None,
        None,
        'worker group workers: priority is set, but RayVersion format is invalid: latest, could not parse "latest" '
        "as version",
    ),
    (
        "worker-priority-old-ray-version",
        lambda s: group(s).update(priority=5),
        None,
        None,
        "worker group workers: priority is set, but minimum Ray version is 2.56.0, got 2.52.0",
    ),
    (
        "worker-priority-without-v2",
        _do(lambda s: group(s).update(priority=5), lambda s: s.update(rayVersion="2.56.0")),
        None,
        None,
        "worker group workers: priority is set to 5, but autoscaler v2 is not enabled. Priority is only supported "
        "with autoscaler v2 enabled",
    ),
    (
        "worker-priority-valid",
        _do(
            lambda s: group(s).update(priority=5),
            lambda s: s.update(rayVersion="2.56.1"),
            lambda s: autoscaling(s, "v2"),
        ),
        None,
        None,
        None,
    ),
    ("worker-priority-zero", lambda s: group(s).update(priority=0), None, None, None),
    (
        "ft-annotation-and-options",
        lambda s: s.update(gcsFaultToleranceOptions={"redisAddress": "redis:6379"}),
        {"ray.io/ft-enabled": "true"},
        None,
        "ray.io/ft-enabled annotation and GcsFaultToleranceOptions are both set. Please use only "
        "GcsFaultToleranceOptions to configure GCS fault tolerance",
    ),
    (
        "redis-address-without-ft",
        lambda s: env(head_container(s), "RAY_REDIS_ADDRESS", "redis:6379"),
        None,
        None,
        "RAY_REDIS_ADDRESS is set which implicitly enables GCS fault tolerance, but GcsFaultToleranceOptions is "
        "not set. Please set GcsFaultToleranceOptions to enable GCS fault tolerance",
    ),
    (
        "redis-address-with-legacy-annotation",
        lambda s: env(head_container(s), "RAY_REDIS_ADDRESS", "redis:6379"),
        {"ray.io/ft-enabled": "True"},
        None,
        None,
    ),
    (
        "ft-options-redis-password-param",
        _do(
            lambda s: s.update(gcsFaultToleranceOptions={"redisAddress": "redis:6379"}),
            lambda s: head(s).update(rayStartParams={"redis-password": "p"}),
        ),
        None,
        None,
        "cannot set `redis-password` in rayStartParams when GcsFaultToleranceOptions is enabled - use "
        "GcsFaultToleranceOptions.RedisPassword instead",
    ),
    (
        "ft-options-redis-password-env",
        _do(
            lambda s: s.update(gcsFaultToleranceOptions={"redisAddress": "redis:6379"}),
            lambda s: env(head_container(s), "REDIS_PASSWORD"),
        ),
        None,
        None,
        "cannot set `REDIS_PASSWORD` env var in head Pod when GcsFaultToleranceOptions is enabled - use "
        "GcsFaultToleranceOptions.RedisPassword instead",
    ),
    (
        "ft-options-redis-address-env",
        _do(
            lambda s: s.update(gcsFaultToleranceOptions={"redisAddress": "redis:6379"}),
            lambda s: env(head_container(s), "RAY_REDIS_ADDRESS"),
        ),
        None,
        None,
        "cannot set `RAY_REDIS_ADDRESS` env var in head Pod when GcsFaultToleranceOptions is enabled - use "
        "GcsFaultToleranceOptions.RedisAddress instead",
    ),
    (
        "ft-options-external-storage-namespace-annotation",
        lambda s: s.update(gcsFaultToleranceOptions={"redisAddress": "redis:6379"}),
        {"ray.io/external-storage-namespace": "ns"},
        None,
        "cannot set `ray.io/external-storage-namespace` annotation when GcsFaultToleranceOptions is enabled - use "
        "GcsFaultToleranceOptions.ExternalStorageNamespace instead",
    ),
    (
        "rocksdb-without-gate",
        lambda s: s.update(gcsFaultToleranceOptions={"backend": "rocksdb"}),
        None,
        None,
        "the embedded RocksDB GCS fault tolerance backend (GcsFaultToleranceOptions.Backend: 'rocksdb') requires "
        "the GCSFaultToleranceEmbeddedStorage feature gate to be enabled",
    ),
    ("rocksdb-valid", lambda s: s.update(gcsFaultToleranceOptions={"backend": "rocksdb"}), None, ALL_GATES_ON, None),
    (
        "rocksdb-redis-address",
        lambda s: s.update(gcsFaultToleranceOptions={"backend": "rocksdb", "redisAddress": "r:6379"}),
        None,
        ALL_GATES_ON,
        "cannot set GcsFaultToleranceOptions.RedisAddress when backend is 'rocksdb'",
    ),
    (
        "rocksdb-redis-username",
        lambda s: s.update(gcsFaultToleranceOptions={"backend": "rocksdb", "redisUsername": {"value": "u"}}),
        None,
        ALL_GATES_ON,
        "cannot set GcsFaultToleranceOptions.RedisUsername when backend is 'rocksdb'",
    ),
    (
        "rocksdb-redis-password",
        lambda s: s.update(gcsFaultToleranceOptions={"backend": "rocksdb", "redisPassword": {"value": "p"}}),
        None,
        ALL_GATES_ON,
        "cannot set GcsFaultToleranceOptions.RedisPassword when backend is 'rocksdb'",
    ),
    (
        "rocksdb-external-storage-namespace",
        lambda s: s.update(gcsFaultToleranceOptions={"backend": "rocksdb", "externalStorageNamespace": "ns"}),
        None,
        ALL_GATES_ON,
        "cannot set GcsFaultToleranceOptions.ExternalStorageNamespace when backend is 'rocksdb'",
    ),
    (
        "rocksdb-claim-name-and-size",
        lambda s: s.update(
            gcsFaultToleranceOptions={"backend": "rocksdb", "storage": {"claimName": "pvc", "size": "2Gi"}}
        ),
        None,
        ALL_GATES_ON,
        "GcsFaultToleranceOptions.Storage.ClaimName is mutually exclusive with size, storageClassName, and accessModes",
    ),
    (
        "rocksdb-claim-name-alone",
        lambda s: s.update(gcsFaultToleranceOptions={"backend": "rocksdb", "storage": {"claimName": "pvc"}}),
        None,
        ALL_GATES_ON,
        None,
    ),
    (
        "rocksdb-storage-env",
        _do(
            lambda s: s.update(gcsFaultToleranceOptions={"backend": "rocksdb"}),
            lambda s: env(head_container(s), "RAY_gcs_storage_path", "/x"),
        ),
        None,
        ALL_GATES_ON,
        "cannot set `RAY_gcs_storage` or `RAY_gcs_storage_path` env var in head Pod when the embedded GCS FT "
        "backend is used - these are managed by KubeRay",
    ),
    (
        "rocksdb-storage-mount",
        _do(
            lambda s: s.update(gcsFaultToleranceOptions={"backend": "rocksdb"}),
            lambda s: head_container(s).update(volumeMounts=[{"name": "data", "mountPath": "/data/gcs"}]),
        ),
        None,
        ALL_GATES_ON,
        'cannot set a volume mount named "gcs-storage" or mounted at /data/gcs in the head container when the '
        "embedded GCS FT backend is used - it is managed by KubeRay",
    ),
    (
        "rocksdb-storage-volume",
        _do(
            lambda s: s.update(gcsFaultToleranceOptions={"backend": "rocksdb"}),
            lambda s: head(s)["template"]["spec"].update(volumes=[{"name": "gcs-storage", "emptyDir": {}}]),
        ),
        None,
        ALL_GATES_ON,
        'cannot set a volume named "gcs-storage" in the head Pod when the embedded GCS FT backend is used - it is '
        "managed by KubeRay",
    ),
    (
        "redis-backend-with-storage",
        lambda s: s.update(gcsFaultToleranceOptions={"redisAddress": "r:6379", "storage": {"size": "1Gi"}}),
        None,
        None,
        "cannot set GcsFaultToleranceOptions.Storage when backend is 'redis' - it only applies to the 'rocksdb' "
        "backend",
    ),
    (
        "redis-username-param",
        lambda s: head(s).update(rayStartParams={"redis-username": "u"}),
        None,
        None,
        "cannot set redis username in rayStartParams or environment variables - use "
        "GcsFaultToleranceOptions.RedisUsername instead",
    ),
    (
        "redis-username-env",
        lambda s: env(head_container(s), "REDIS_USERNAME"),
        None,
        None,
        "cannot set redis username in rayStartParams or environment variables - use "
        "GcsFaultToleranceOptions.RedisUsername instead",
    ),
    (
        "worker-suspend-gate-off",
        lambda s: group(s).update(suspend=True),
        None,
        {"RayJobDeletionPolicy": False},
        "worker group workers can be suspended only when the RayJobDeletionPolicy feature gate is enabled",
    ),
    ("worker-suspend-gate-on", lambda s: group(s).update(suspend=True), None, None, None),
    (
        "autoscaler-v2-env-without-autoscaling",
        lambda s: env(head_container(s), "RAY_enable_autoscaler_v2", "1"),
        None,
        None,
        "environment variable RAY_enable_autoscaler_v2 cannot be set to '1' when enableInTreeAutoscaling is false. "
        "Please set enableInTreeAutoscaling: true to use autoscaler v2",
    ),
    (
        "autoscaler-v2-env-false-without-autoscaling",
        lambda s: env(head_container(s), "RAY_enable_autoscaler_v2", "0"),
        None,
        None,
        None,
    ),
    (
        "worker-suspend-with-autoscaling",
        _do(lambda s: group(s).update(suspend=True), autoscaling),
        None,
        None,
        "worker group workers cannot be suspended with Autoscaler enabled",
    ),
    (
        "autoscaler-version-and-env",
        _do(lambda s: autoscaling(s, "v1"), lambda s: env(head_container(s), "RAY_enable_autoscaler_v2", "false")),
        None,
        None,
        "both .spec.autoscalerOptions.version and head Pod env var RAY_enable_autoscaler_v2 are set, please only "
        "use the former",
    ),
    (
        "autoscaler-v2-head-restart-policy",
        _do(lambda s: autoscaling(s, "v2"), lambda s: head(s)["template"]["spec"].update(restartPolicy="Always")),
        None,
        None,
        "restartPolicy for head Pod should be Never or unset when using autoscaler V2",
    ),
    (
        "autoscaler-v2-worker-restart-policy",
        _do(lambda s: autoscaling(s, "v2"), lambda s: group(s)["template"]["spec"].update(restartPolicy="OnFailure")),
        None,
        None,
        "restartPolicy for worker group workers should be Never or unset when using autoscaler V2",
    ),
    (
        "autoscaler-v1-restart-policy-allowed",
        _do(lambda s: autoscaling(s, "v1"), lambda s: head(s)["template"]["spec"].update(restartPolicy="Always")),
        None,
        None,
        None,
    ),
    (
        "autoscaler-idle-timeout-negative",
        lambda s: s.update(autoscalerOptions={"idleTimeoutSeconds": -5}),
        None,
        None,
        "autoscalerOptions.idleTimeoutSeconds must be non-negative, got -5",
    ),
    (
        "autoscaler-env-start-cmd",
        lambda s: s.update(autoscalerOptions={"env": [{"name": "KUBERAY_GEN_AUTOSCALER_START_CMD", "value": "x"}]}),
        None,
        None,
        "autoscalerOptions.env must not contain KUBERAY_GEN_AUTOSCALER_START_CMD: it is managed by KubeRay and "
        "injected automatically into the autoscaler container",
    ),
]


def _collector(*env_pairs: tuple[str, str]) -> Raw:
    return {
        "collectorOptions": {
            "image": "quay.io/kuberay/collector:latest",
            "env": [{"name": k, "value": v} for k, v in env_pairs],
        }
    }


HISTORY_CASES: list[tuple[str, Mutation, dict[str, str] | None, dict[str, bool] | None, str | None]] = [
    (
        "history-gate-off",
        lambda s: s.update(historyServerOptions=_collector(("STORAGE_BACKEND", "S3"), ("S3_REGION", "us"))),
        None,
        None,
        "RayClusterHistoryServer feature gate is not enabled",
    ),
    (
        "history-valid",
        lambda s: s.update(historyServerOptions=_collector(("STORAGE_BACKEND", "s3"), ("S3_REGION", "us"))),
        None,
        ALL_GATES_ON,
        None,
    ),
    (
        "history-no-collector",
        lambda s: s.update(historyServerOptions={}),
        None,
        ALL_GATES_ON,
        "historyServerOptions.collectorOptions must be set",
    ),
    (
        "history-no-image",
        lambda s: s.update(historyServerOptions={"collectorOptions": {"image": ""}}),
        None,
        ALL_GATES_ON,
        "historyServerOptions.collectorOptions.image must be set",
    ),
    (
        "history-reserved-env",
        lambda s: s.update(historyServerOptions=_collector(("STORAGE_BACKEND", "S3"), ("RAY_ROLE", "x"))),
        None,
        ALL_GATES_ON,
        "historyServerOptions.collectorOptions.env must not contain RAY_ROLE: it is managed by KubeRay and injected "
        "automatically into the collector container",
    ),
    (
        "history-no-backend",
        lambda s: s.update(historyServerOptions=_collector()),
        None,
        ALL_GATES_ON,
        "STORAGE_BACKEND environment variable must be set with a literal string value in "
        "historyServerOptions.collectorOptions.env",
    ),
    (
        "history-gcs-without-bucket",
        lambda s: s.update(historyServerOptions=_collector(("STORAGE_BACKEND", "GCS"))),
        None,
        ALL_GATES_ON,
        "GCS_BUCKET environment variable must be set when STORAGE_BACKEND is GCS",
    ),
    (
        "history-s3-without-region",
        lambda s: s.update(historyServerOptions=_collector(("STORAGE_BACKEND", "S3"))),
        None,
        ALL_GATES_ON,
        "S3_REGION environment variable must be set when STORAGE_BACKEND is S3",
    ),
    (
        "history-azure-connection-string-mode",
        lambda s: s.update(
            historyServerOptions=_collector(
                ("STORAGE_BACKEND", "AzureBlob"), ("AZURE_STORAGE_AUTH_MODE", " Connection_String ")
            )
        ),
        None,
        ALL_GATES_ON,
        "AZURE_STORAGE_CONNECTION_STRING environment variable must be set when STORAGE_BACKEND is AZUREBLOB and "
        "AZURE_STORAGE_AUTH_MODE is connection_string",
    ),
    (
        "history-azure-workload-identity",
        lambda s: s.update(
            historyServerOptions=_collector(("STORAGE_BACKEND", "AZUREBLOB"), ("AZURE_STORAGE_AUTH_MODE", "default"))
        ),
        None,
        ALL_GATES_ON,
        "AZURE_STORAGE_ACCOUNT_URL environment variable must be set when STORAGE_BACKEND is AZUREBLOB and "
        "AZURE_STORAGE_AUTH_MODE is default",
    ),
    (
        "history-azure-neither",
        lambda s: s.update(historyServerOptions=_collector(("STORAGE_BACKEND", "AZUREBLOB"))),
        None,
        ALL_GATES_ON,
        "either AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_URL environment variable must be set when "
        "STORAGE_BACKEND is AZUREBLOB",
    ),
    (
        "history-aliyun-missing-endpoint",
        lambda s: s.update(historyServerOptions=_collector(("STORAGE_BACKEND", "ALIYUNOSS"), ("ALIYUN_BUCKET", "b"))),
        None,
        ALL_GATES_ON,
        "ALIYUN_ENDPOINT environment variable must be set when STORAGE_BACKEND is ALIYUNOSS",
    ),
    (
        "history-head-collector-container",
        _do(
            lambda s: s.update(historyServerOptions=_collector(("STORAGE_BACKEND", "S3"), ("S3_REGION", "us"))),
            lambda s: head(s)["template"]["spec"]["containers"].append(container("ray-history-collector")),
        ),
        None,
        ALL_GATES_ON,
        "head pod template must not define a container with name 'ray-history-collector' when history server "
        "collector options are enabled",
    ),
    (
        "history-worker-collector-container",
        _do(
            lambda s: s.update(historyServerOptions=_collector(("STORAGE_BACKEND", "S3"), ("S3_REGION", "us"))),
            lambda s: group(s)["template"]["spec"]["containers"].append(container("ray-history-collector")),
        ),
        None,
        ALL_GATES_ON,
        "worker group workers pod template must not define a container with name 'ray-history-collector' when "
        "history server collector options are enabled",
    ),
]

AUTH_NETWORK_TLS_CASES: list[tuple[str, Mutation, dict[str, str] | None, dict[str, bool] | None, str | None]] = [
    ("auth-token-valid", lambda s: s.update(authOptions={"mode": "token"}), None, None, None),
    (
        "auth-disabled-old-ray",
        lambda s: s.update(authOptions={"mode": "disabled"}, rayVersion="2.9.0"),
        None,
        None,
        None,
    ),
    (
        "auth-token-no-ray-version",
        _do(lambda s: s.update(authOptions={"mode": "token"}), lambda s: s.pop("rayVersion")),
        None,
        None,
        "authOptions.mode is 'token' but RayVersion was not specified. Ray version 2.52.0 or later is required",
    ),
    (
        "auth-token-invalid-ray-version",
        lambda s: s.update(authOptions={"mode": "token"}, rayVersion="2"),
        None,
        None,
        "authOptions.mode is 'token' but RayVersion format is invalid: 2, illegal version string \"2\"",
    ),
    (
        "auth-token-old-ray-version",
        lambda s: s.update(authOptions={"mode": "token"}, rayVersion="2.51.9"),
        None,
        None,
        "authOptions.mode is 'token' but minimum Ray version is 2.52.0, got 2.51.9",
    ),
    (
        "auth-k8s-old-ray-version",
        lambda s: s.update(authOptions={"mode": "token", "enableK8sTokenAuth": True}, rayVersion="2.54.0"),
        None,
        None,
        "authOptions.enableK8sTokenAuth is enabled but minimum Ray version is 2.55.0, got 2.54.0",
    ),
    (
        "auth-k8s-with-secret",
        lambda s: s.update(
            authOptions={"mode": "token", "enableK8sTokenAuth": True, "secretName": "s"}, rayVersion="v2.55.0-rc1"
        ),
        None,
        None,
        "authOptions.enableK8sTokenAuth is enabled and authOptions.secretName is also set",
    ),
    (
        "auth-k8s-without-token-mode",
        lambda s: s.update(authOptions={"enableK8sTokenAuth": True}),
        None,
        None,
        "authOptions.enableK8sTokenAuth is enabled but authOptions.mode not set to 'token'",
    ),
    (
        "network-policy-gate-off",
        lambda s: s.update(networkPolicy={}),
        None,
        None,
        "spec.networkPolicy requires the RayClusterNetworkPolicy feature gate to be enabled",
    ),
    (
        "network-policy-valid",
        lambda s: s.update(networkPolicy={"head": {"ingressRules": [{}]}}),
        None,
        ALL_GATES_ON,
        None,
    ),
    (
        "network-policy-head-ingress-when-egress-only",
        lambda s: s.update(networkPolicy={"mode": "DenyAllEgress", "head": {"ingressRules": [{}]}}),
        None,
        ALL_GATES_ON,
        'networkPolicy.head.ingressRules cannot be set when mode is "DenyAllEgress" (ingress is not restricted)',
    ),
    (
        "network-policy-worker-egress-when-ingress-only",
        lambda s: s.update(networkPolicy={"mode": "DenyAllIngress", "worker": {"egressRules": [{}]}}),
        None,
        ALL_GATES_ON,
        'networkPolicy.worker.egressRules cannot be set when mode is "DenyAllIngress" (egress is not restricted)',
    ),
    (
        "network-policy-group-name-not-dns1123",
        _do(lambda s: s.update(networkPolicy={}), lambda s: group(s).update(groupName="Workers")),
        None,
        ALL_GATES_ON,
        'worker group name "Workers" must be a valid DNS1123 label when networkPolicy is enabled (it is embedded in '
        "the NetworkPolicy name): [a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
        "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
        "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')]",
    ),
    (
        "network-policy-group-name-with-dots",
        _do(lambda s: s.update(networkPolicy={}), lambda s: group(s).update(groupName="a.b")),
        None,
        ALL_GATES_ON,
        'worker group name "a.b" must be a valid DNS1123 label when networkPolicy is enabled (it is embedded in '
        "the NetworkPolicy name): [must not contain dots]",
    ),
    (
        "network-policy-unknown-group",
        lambda s: s.update(networkPolicy={"workerGroups": [{"groupName": "other"}]}),
        None,
        ALL_GATES_ON,
        'networkPolicy.workerGroups["other"] does not match any group name in workerGroupSpecs',
    ),
    (
        "network-policy-group-ingress-when-egress-only",
        lambda s: s.update(
            networkPolicy={"mode": "DenyAllEgress", "workerGroups": [{"groupName": "workers", "ingressRules": [{}]}]}
        ),
        None,
        ALL_GATES_ON,
        'networkPolicy.workerGroups["workers"].ingressRules cannot be set when mode is "DenyAllEgress" (ingress is '
        "not restricted)",
    ),
    (
        "tls-gate-off",
        lambda s: s.update(tlsOptions={"enabled": True}),
        None,
        None,
        "spec.tlsOptions requires the RayClusterMTLS feature gate to be enabled",
    ),
    ("tls-valid", lambda s: s.update(tlsOptions={"enabled": True}), None, ALL_GATES_ON, None),
    (
        "tls-disabled-ignores-env",
        _do(lambda s: s.update(tlsOptions={"enabled": False}), lambda s: env(head_container(s), "RAY_USE_TLS")),
        None,
        ALL_GATES_ON,
        None,
    ),
    (
        "tls-head-env",
        _do(lambda s: s.update(tlsOptions={"enabled": True}), lambda s: env(head_container(s), "RAY_TLS_CA_CERT")),
        None,
        ALL_GATES_ON,
        "cannot set RAY_TLS_CA_CERT environment variable in head Pod when tlsOptions is set - the operator manages "
        "TLS configuration automatically",
    ),
    (
        "tls-head-mount-name",
        _do(
            lambda s: s.update(tlsOptions={"enabled": True}),
            lambda s: head_container(s).update(volumeMounts=[{"name": "ray-tls", "mountPath": "/x"}]),
        ),
        None,
        ALL_GATES_ON,
        'cannot use volume mount named "ray-tls" in head Pod when tlsOptions is set - the operator manages TLS '
        "configuration automatically",
    ),
    (
        "tls-worker-env",
        _do(lambda s: s.update(tlsOptions={"enabled": True}), lambda s: env(worker_container(s), "RAY_USE_TLS")),
        None,
        ALL_GATES_ON,
        'cannot set RAY_USE_TLS environment variable in worker group "workers" when tlsOptions is set - the '
        "operator manages TLS configuration automatically",
    ),
    (
        "tls-worker-mount-path",
        _do(
            lambda s: s.update(tlsOptions={"enabled": True}),
            lambda s: worker_container(s).update(volumeMounts=[{"name": "certs", "mountPath": "/etc/ray/tls"}]),
        ),
        None,
        ALL_GATES_ON,
        'cannot use volume mount at path "/etc/ray/tls" in worker group "workers" when tlsOptions is set - the '
        "operator manages TLS configuration automatically",
    ),
    (
        "tls-autoscaler-env",
        lambda s: s.update(
            tlsOptions={"enabled": True}, autoscalerOptions={"env": [{"name": "RAY_TLS_SERVER_KEY", "value": "k"}]}
        ),
        None,
        ALL_GATES_ON,
        "cannot set RAY_TLS_SERVER_KEY environment variable in autoscalerOptions.env when tlsOptions is set - the "
        "operator manages TLS configuration for the autoscaler automatically",
    ),
    (
        "tls-autoscaler-mount",
        lambda s: s.update(
            tlsOptions={"enabled": True}, autoscalerOptions={"volumeMounts": [{"name": "ray-tls", "mountPath": "/x"}]}
        ),
        None,
        ALL_GATES_ON,
        'cannot use volume mount named "ray-tls" in autoscalerOptions.volumeMounts when tlsOptions is set - the '
        "operator manages TLS configuration automatically",
    ),
]

ALL_CLUSTER_SPEC_CASES = CLUSTER_SPEC_CASES + HISTORY_CASES + AUTH_NETWORK_TLS_CASES


@pytest.mark.parametrize(
    ("mutate", "annotations", "gates", "expected"),
    [case[1:] for case in ALL_CLUSTER_SPEC_CASES],
    ids=[case[0] for case in ALL_CLUSTER_SPEC_CASES],
)
def test_ray_cluster_spec_rules(
    mutate: Mutation, annotations: dict[str, str] | None, gates: dict[str, bool] | None, expected: str | None
) -> None:
    spec = cluster_spec()
    mutate(spec)
    cluster = ray_cluster()
    cluster["spec"] = spec
    if annotations:
        cluster["metadata"]["annotations"] = annotations
    if expected is None:
        validate_ray_cluster_spec(spec, annotations, gates)
        validate_ray_cluster(cluster, gates)
        return
    with pytest.raises(ValidationError) as info:
        validate_ray_cluster_spec(spec, annotations, gates)
    assert info.value.message == expected
    with pytest.raises(ValidationError) as info:
        validate_ray_cluster(cluster, gates)
    assert info.value.message == expected
    # The same rule inside a RayJob and a RayService is wrapped with their prefixes.
    job = ray_job()
    job["spec"]["rayClusterSpec"] = copy.deepcopy(spec)
    job["metadata"]["annotations"] = annotations or {}
    with pytest.raises(ValidationError) as info:
        validate_ray_job(job, gates)
    if "enableK8sTokenAuth" in str(spec.get("authOptions")):
        assert (
            info.value.message
            == "The RayJob spec is invalid: K8s token auth mode is currently not supported for RayJob"
        )
    else:
        assert info.value.message == f"The RayJob spec is invalid: {expected}"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a" * 53, None),
        ("a" * 54, "RayCluster name should be no more than 53 characters"),
        ("Invalid_Name", f"RayCluster name should be a valid DNS1035 label: {DNS1035_ERROR}"),
        ("1cluster", f"RayCluster name should be a valid DNS1035 label: {DNS1035_ERROR}"),
        ("cluster-", f"RayCluster name should be a valid DNS1035 label: {DNS1035_ERROR}"),
        ("", f"RayCluster name should be a valid DNS1035 label: {DNS1035_ERROR}"),
        ("é" * 27, "RayCluster name should be no more than 53 characters"),  # Go counts bytes
    ],
)
def test_ray_cluster_metadata(name: str, expected: str | None) -> None:
    cluster = ray_cluster(name)
    if expected is None:
        validate_ray_cluster_metadata(cluster)
    else:
        with pytest.raises(ValidationError) as info:
            validate_ray_cluster_metadata(cluster)
        assert info.value.message == expected


@pytest.mark.parametrize(
    ("upgrade_type", "labels", "expected"),
    [
        ("Recreate", {}, None),
        ("None", {"ray.io/originated-from-crd": "SomethingElse"}, None),
        (
            "Rolling",
            {},
            "The RayCluster spec is invalid: Spec.UpgradeStrategy.Type value Rolling is invalid, valid options are "
            "Recreate or None",
        ),
        (
            "Recreate",
            {"ray.io/originated-from-crd": "RayJob"},
            "upgradeStrategy cannot be set when RayCluster is created by RayJob",
        ),
        (
            "None",
            {"ray.io/originated-from-crd": "RayService"},
            "upgradeStrategy cannot be set when RayCluster is created by RayService",
        ),
    ],
)
def test_ray_cluster_upgrade_options(upgrade_type: str, labels: dict[str, str], expected: str | None) -> None:
    cluster = ray_cluster()
    cluster["spec"]["upgradeStrategy"] = {"type": upgrade_type}
    cluster["metadata"]["labels"] = labels
    if expected is None:
        validate_ray_cluster_upgrade_options(cluster)
    else:
        with pytest.raises(ValidationError) as info:
            validate_ray_cluster_upgrade_options(cluster)
        assert info.value.message == expected
    cluster["spec"]["upgradeStrategy"] = {}
    validate_ray_cluster_upgrade_options(cluster)


def test_ray_cluster_status() -> None:
    cluster = ray_cluster()
    conditions = [
        {"type": "RayClusterSuspending", "status": "True", "reason": "x", "message": "", "lastTransitionTime": "t"},
        {"type": "RayClusterSuspended", "status": "False", "reason": "x", "message": "", "lastTransitionTime": "t"},
    ]
    cluster["status"] = {"conditions": conditions}
    validate_ray_cluster_status(cluster)
    conditions[1]["status"] = "True"
    with pytest.raises(ValidationError) as info:
        validate_ray_cluster(cluster)
    assert info.value.message == (
        "invalid RayCluster State: rayv1.RayClusterSuspending and rayv1.RayClusterSuspended conditions should not be "
        "both true"
    )


def test_ray_cluster_validation_order_metadata_first() -> None:
    cluster = ray_cluster("Bad")
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"] = []
    with pytest.raises(ValidationError, match="RayCluster name should be a valid DNS1035 label"):
        validate_ray_cluster(cluster)


# ---- RayJob ----------------------------------------------------------------------------------------


def jspec(job: Raw) -> Raw:
    spec: Raw = job["spec"]
    return spec


def rules(*items: tuple[str, Raw]) -> dict[str, Any]:
    return {"deletionRules": [{"policy": policy, "condition": condition} for policy, condition in items]}


JOB_CASES: list[tuple[str, Mutation, dict[str, bool] | None, str | None]] = [
    ("valid", lambda j: None, None, None),
    (
        "M1-name-too-long",
        lambda j: j["metadata"].update(name="a" * 48),
        None,
        "The RayJob metadata is invalid: RayJob name should be no more than 47 characters",
    ),
    (
        "M1-name-not-dns1035",
        lambda j: j["metadata"].update(name="job.1"),
        None,
        f"The RayJob metadata is invalid: RayJob name should be a valid DNS1035 label: {DNS1035_ERROR}",
    ),
    (
        "S1-suspend-without-shutdown",
        lambda j: jspec(j).update(suspend=True),
        None,
        "The RayJob spec is invalid: a RayJob with shutdownAfterJobFinishes set to false is not allowed to be "
        "suspended",
    ),
    ("S1-suspend-with-shutdown", lambda j: jspec(j).update(suspend=True, shutdownAfterJobFinishes=True), None, None),
    (
        "S2-negative-ttl",
        lambda j: jspec(j).update(ttlSecondsAfterFinished=-1),
        None,
        "The RayJob spec is invalid: TTLSecondsAfterFinished must be a non-negative integer",
    ),
    (
        "S3-ttl-without-shutdown",
        lambda j: jspec(j).update(ttlSecondsAfterFinished=10),
        None,
        "The RayJob spec is invalid: a RayJob with shutdownAfterJobFinishes set to false cannot have "
        "TTLSecondsAfterFinished",
    ),
    (
        "S4-deletion-strategy-gate-off",
        lambda j: jspec(j).update(deletionStrategy=rules(("DeleteCluster", {"jobStatus": "FAILED"}))),
        {"RayJobDeletionPolicy": False},
        "RayJobDeletionPolicy feature gate must be enabled to use DeletionStrategy",
    ),
    (
        "S5-rules-and-shutdown",
        lambda j: jspec(j).update(
            shutdownAfterJobFinishes=True, deletionStrategy=rules(("DeleteCluster", {"jobStatus": "FAILED"}))
        ),
        None,
        "The RayJob spec is invalid: spec.shutdownAfterJobFinishes and spec.deletionStrategy.deletionRules are "
        "mutually exclusive",
    ),
    (
        "S5-rules-and-legacy",
        lambda j: jspec(j).update(
            deletionStrategy={
                "onSuccess": {"policy": "DeleteCluster"},
                **rules(("DeleteCluster", {"jobStatus": "FAILED"})),
            }
        ),
        None,
        "The RayJob spec is invalid: Cannot use both legacy onSuccess/onFailure fields and deletionRules "
        "simultaneously",
    ),
    (
        "S6-legacy-valid",
        lambda j: jspec(j).update(
            deletionStrategy={"onSuccess": {"policy": "DeleteCluster"}, "onFailure": {"policy": "DeleteNone"}}
        ),
        None,
        None,
    ),
    (
        "S6-legacy-only-on-success",
        lambda j: jspec(j).update(deletionStrategy={"onSuccess": {"policy": "DeleteCluster"}}),
        None,
        "both DeletionStrategy.OnSuccess and DeletionStrategy.OnFailure must be set when using the legacy deletion "
        "policy fields of DeletionStrategy",
    ),
    (
        "S6-legacy-on-success-without-policy",
        lambda j: jspec(j).update(deletionStrategy={"onSuccess": {}, "onFailure": {"policy": "DeleteCluster"}}),
        None,
        "the DeletionPolicyType field of DeletionStrategy.OnSuccess cannot be unset when DeletionStrategy is enabled",
    ),
    (
        "S6-legacy-on-failure-without-policy",
        lambda j: jspec(j).update(deletionStrategy={"onSuccess": {"policy": "DeleteSelf"}, "onFailure": {}}),
        None,
        "the DeletionPolicyType field of DeletionStrategy.OnFailure cannot be unset when DeletionStrategy is enabled",
    ),
    (
        "S6-legacy-cluster-selector-on-success",
        lambda j: jspec(j).update(
            rayClusterSpec=None,
            clusterSelector={"ray.io/cluster": "c"},
            deletionStrategy={"onSuccess": {"policy": "DeleteCluster"}, "onFailure": {"policy": "DeleteSelf"}},
        ),
        None,
        "the ClusterSelector mode doesn't support DeletionStrategy=DeleteCluster on success",
    ),
    (
        "S6-legacy-cluster-selector-on-failure",
        lambda j: jspec(j).update(
            clusterSelector={"ray.io/cluster": "c"},
            deletionStrategy={"onSuccess": {"policy": "DeleteSelf"}, "onFailure": {"policy": "DeleteWorkers"}},
        ),
        None,
        "the ClusterSelector mode doesn't support DeletionStrategy=DeleteWorkers on failure",
    ),
    (
        "S6-legacy-delete-workers-with-autoscaling",
        _do(
            lambda j: jspec(j).update(
                deletionStrategy={"onSuccess": {"policy": "DeleteWorkers"}, "onFailure": {"policy": "DeleteSelf"}}
            ),
            lambda j: autoscaling(jspec(j)["rayClusterSpec"]),
        ),
        None,
        "DeletionStrategy=DeleteWorkers currently does not support RayCluster with autoscaling enabled",
    ),
    (
        "S6-legacy-shutdown-and-delete-none",
        lambda j: jspec(j).update(
            shutdownAfterJobFinishes=True,
            deletionStrategy={"onSuccess": {"policy": "DeleteNone"}, "onFailure": {"policy": "DeleteSelf"}},
        ),
        None,
        "The RayJob spec is invalid: shutdownAfterJobFinshes is set to 'true' while deletion policy is 'DeleteNone'",
    ),
    (
        "S7-rules-valid",
        lambda j: jspec(j).update(
            deletionStrategy=rules(
                ("DeleteWorkers", {"jobStatus": "SUCCEEDED"}),
                ("DeleteCluster", {"jobStatus": "SUCCEEDED", "ttlSeconds": 300}),
                ("DeleteSelf", {"jobStatus": "SUCCEEDED", "ttlSeconds": 3600}),
                ("DeleteCluster", {"jobDeploymentStatus": "Failed", "ttlSeconds": 10}),
            )
        ),
        None,
        None,
    ),
    (
        "S7-both-statuses",
        lambda j: jspec(j).update(
            deletionStrategy=rules(("DeleteCluster", {"jobStatus": "FAILED", "jobDeploymentStatus": "Failed"}))
        ),
        None,
        "deletionRules[0]: cannot set both JobStatus and JobDeploymentStatus at the same time",
    ),
    (
        "S7-no-status",
        lambda j: jspec(j).update(deletionStrategy=rules(("DeleteCluster", {"ttlSeconds": 1}))),
        None,
        "deletionRules[0]: exactly one of JobStatus and JobDeploymentStatus must be set",
    ),
    (
        "S7-negative-ttl",
        lambda j: jspec(j).update(deletionStrategy=rules(("DeleteCluster", {"jobStatus": "FAILED", "ttlSeconds": -1}))),
        None,
        "deletionRules[0]: TTLSeconds must be non-negative",
    ),
    (
        "S7-cluster-selector-delete-cluster",
        lambda j: jspec(j).update(
            clusterSelector={"ray.io/cluster": "c"}, deletionStrategy=rules(("DeleteCluster", {"jobStatus": "FAILED"}))
        ),
        None,
        "deletionRules[0]: DeletionPolicyType 'DeleteCluster' not supported when ClusterSelector is set",
    ),
    (
        "S7-autoscaling-delete-workers",
        _do(
            lambda j: jspec(j).update(deletionStrategy=rules(("DeleteWorkers", {"jobStatus": "FAILED"}))),
            lambda j: autoscaling(jspec(j)["rayClusterSpec"]),
        ),
        None,
        "deletionRules[0]: DeletionPolicyType 'DeleteWorkers' not supported with autoscaling enabled",
    ),
    (
        "S7-duplicate",
        lambda j: jspec(j).update(
            deletionStrategy=rules(
                ("DeleteCluster", {"jobStatus": "FAILED"}), ("DeleteCluster", {"jobStatus": "FAILED", "ttlSeconds": 5})
            )
        ),
        None,
        "deletionRules[1]: duplicate rule for DeletionPolicyType 'DeleteCluster' and JobStatus 'FAILED'",
    ),
    (
        "S7-duplicate-deployment-status",
        lambda j: jspec(j).update(
            deletionStrategy=rules(
                ("DeleteSelf", {"jobDeploymentStatus": "Failed"}), ("DeleteSelf", {"jobDeploymentStatus": "Failed"})
            )
        ),
        None,
        "deletionRules[1]: duplicate rule for DeletionPolicyType 'DeleteSelf' and JobDeploymentStatus 'Failed'",
    ),
    (
        "S7-ttl-order",
        lambda j: jspec(j).update(
            deletionStrategy=rules(
                ("DeleteSelf", {"jobStatus": "SUCCEEDED", "ttlSeconds": 10}),
                ("DeleteCluster", {"jobStatus": "SUCCEEDED", "ttlSeconds": 20}),
                ("DeleteWorkers", {"jobStatus": "SUCCEEDED", "ttlSeconds": 30}),
            )
        ),
        None,
        "for JobStatus 'SUCCEEDED': DeleteCluster TTL (20) must be >= DeleteWorkers TTL (30)\n"
        "for JobStatus 'SUCCEEDED': DeleteSelf TTL (10) must be >= DeleteCluster TTL (20)",
    ),
    (
        "S7-errors-are-joined",
        lambda j: jspec(j).update(
            deletionStrategy=rules(
                ("DeleteCluster", {}),
                ("DeleteSelf", {"jobDeploymentStatus": "Failed", "ttlSeconds": 1}),
                ("DeleteCluster", {"jobDeploymentStatus": "Failed", "ttlSeconds": 2}),
            )
        ),
        None,
        "deletionRules[0]: exactly one of JobStatus and JobDeploymentStatus must be set\n"
        "for JobDeploymentStatus 'Failed': DeleteSelf TTL (1) must be >= DeleteCluster TTL (2)",
    ),
    (
        "S8-empty-strategy",
        lambda j: jspec(j).update(deletionStrategy={}),
        None,
        "The RayJob spec is invalid: DeletionStrategy requires either BOTH onSuccess and onFailure, OR the "
        "deletionRules field (cannot be empty)",
    ),
    (
        "S8-empty-rules-list",
        lambda j: jspec(j).update(deletionStrategy={"deletionRules": []}),
        None,
        "The RayJob spec is invalid: DeletionStrategy requires either BOTH onSuccess and onFailure, OR the "
        "deletionRules field (cannot be empty)",
    ),
    (
        "S9-suspend-with-cluster-selector",
        lambda j: jspec(j).update(suspend=True, shutdownAfterJobFinishes=True, clusterSelector={"ray.io/cluster": "c"}),
        None,
        "The RayJob spec is invalid: the ClusterSelector mode doesn't support the suspend operation",
    ),
    (
        "S10-no-cluster-spec-no-selector",
        lambda j: jspec(j).pop("rayClusterSpec"),
        None,
        "The RayJob spec is invalid: one of RayClusterSpec or ClusterSelector must be set",
    ),
    (
        "S10-null-cluster-spec",
        lambda j: jspec(j).update(rayClusterSpec=None),
        None,
        "The RayJob spec is invalid: one of RayClusterSpec or ClusterSelector must be set",
    ),
    (
        "S11-selector-valid",
        lambda j: jspec(j).update(rayClusterSpec=None, clusterSelector={"ray.io/cluster": "c"}),
        None,
        None,
    ),
    (
        "S11-selector-without-cluster-key",
        lambda j: jspec(j).update(clusterSelector={"ray.io/cluster-name": "c"}),
        None,
        "cluster name in ClusterSelector should not be empty",
    ),
    (
        "S11-selector-sidecar",
        lambda j: jspec(j).update(clusterSelector={"ray.io/cluster": "c"}, submissionMode="SidecarMode"),
        None,
        "ClusterSelector is not supported in SidecarMode",
    ),
    (
        "S11-selector-backoff-limit",
        lambda j: jspec(j).update(clusterSelector={"ray.io/cluster": "c"}, backoffLimit=1),
        None,
        "The RayJob spec is invalid: BackoffLimit is incompatible with ClusterSelector mode",
    ),
    (
        "S12-interactive-backoff-limit",
        lambda j: jspec(j).update(submissionMode="InteractiveMode", backoffLimit=2),
        None,
        "The RayJob spec is invalid: BackoffLimit is incompatible with InteractiveMode",
    ),
    ("S12-interactive-valid", lambda j: jspec(j).update(submissionMode="InteractiveMode", backoffLimit=0), None, None),
    (
        "S13-sidecar-submitter-template",
        lambda j: jspec(j).update(submissionMode="SidecarMode", submitterPodTemplate={"spec": {}}),
        None,
        "Currently, SidecarMode doesn't support SubmitterPodTemplate",
    ),
    (
        "S13-sidecar-submitter-config",
        lambda j: jspec(j).update(submissionMode="SidecarMode", submitterConfig={"backoffLimit": 1}),
        None,
        "Currently, SidecarMode doesn't support SubmitterConfig",
    ),
    (
        "S13-sidecar-head-restart-policy",
        _do(
            lambda j: jspec(j).update(submissionMode="SidecarMode"),
            lambda j: head(jspec(j)["rayClusterSpec"])["template"]["spec"].update(restartPolicy="OnFailure"),
        ),
        None,
        "restartPolicy for head Pod should be Never or unset when using SidecarMode",
    ),
    (
        "S13-sidecar-valid",
        _do(
            lambda j: jspec(j).update(submissionMode="SidecarMode"),
            lambda j: head(jspec(j)["rayClusterSpec"])["template"]["spec"].update(restartPolicy="Never"),
        ),
        None,
        None,
    ),
    (
        "S14-k8s-token-auth",
        lambda j: jspec(j)["rayClusterSpec"].update(
            authOptions={"mode": "token", "enableK8sTokenAuth": True}, rayVersion="2.55.0"
        ),
        None,
        "The RayJob spec is invalid: K8s token auth mode is currently not supported for RayJob",
    ),
    (
        "S14-cluster-spec-error-is-wrapped",
        lambda j: jspec(j)["rayClusterSpec"]["workerGroupSpecs"][0].update(minReplicas=3, maxReplicas=1),
        None,
        "The RayJob spec is invalid: worker group workers has minReplicas 3 greater than maxReplicas 1",
    ),
    (
        "S14-job-annotations-reach-cluster-rules",
        _do(
            lambda j: j["metadata"].update(annotations={"ray.io/ft-enabled": "true"}),
            lambda j: jspec(j)["rayClusterSpec"].update(gcsFaultToleranceOptions={}),
        ),
        None,
        "The RayJob spec is invalid: ray.io/ft-enabled annotation and GcsFaultToleranceOptions are both set. Please "
        "use only GcsFaultToleranceOptions to configure GCS fault tolerance",
    ),
    (
        "S15-runtime-env-scalar",
        lambda j: jspec(j).update(runtimeEnvYAML="invalid_yaml_str"),
        None,
        "failed to unmarshal RuntimeEnvYAML: invalid_yaml_str: error unmarshaling JSON: while decoding JSON: json: "
        "cannot unmarshal string into Go value of type types.RuntimeEnvType",
    ),
    (
        "S15-runtime-env-list",
        lambda j: jspec(j).update(runtimeEnvYAML="- a\n- b\n"),
        None,
        "failed to unmarshal RuntimeEnvYAML: - a\n- b\n: error unmarshaling JSON: while decoding JSON: json: cannot "
        "unmarshal array into Go value of type types.RuntimeEnvType",
    ),
    (
        "S15-runtime-env-valid",
        lambda j: jspec(j).update(runtimeEnvYAML="pip:\n  - requests\nenv_vars: {A: b}\n"),
        None,
        None,
    ),
    ("S15-runtime-env-null", lambda j: jspec(j).update(runtimeEnvYAML="# just a comment\n"), None, None),
    (
        "S16-active-deadline-zero",
        lambda j: jspec(j).update(activeDeadlineSeconds=0),
        None,
        "The RayJob spec is invalid: activeDeadlineSeconds must be a positive integer",
    ),
    (
        "S16-pre-running-deadline-zero",
        lambda j: jspec(j).update(preRunningDeadlineSeconds=0),
        None,
        "The RayJob spec is invalid: preRunningDeadlineSeconds must be a positive integer",
    ),
    (
        "S16-negative-backoff-limit",
        lambda j: jspec(j).update(backoffLimit=-1),
        None,
        "The RayJob spec is invalid: backoffLimit must be a positive integer",
    ),
    (
        "T1-waiting-not-interactive",
        lambda j: j.update(status={"jobDeploymentStatus": "Waiting"}),
        None,
        "The RayJob status is invalid: JobDeploymentStatus cannot be `Waiting` when SubmissionMode is not "
        "InteractiveMode",
    ),
    (
        "T1-waiting-interactive",
        _do(
            lambda j: j.update(status={"jobDeploymentStatus": "Waiting"}),
            lambda j: jspec(j).update(submissionMode="InteractiveMode"),
        ),
        None,
        None,
    ),
    (
        "order-S1-before-S16",
        lambda j: jspec(j).update(suspend=True, backoffLimit=-1),
        None,
        "The RayJob spec is invalid: a RayJob with shutdownAfterJobFinishes set to false is not allowed to be "
        "suspended",
    ),
    (
        "order-metadata-before-spec",
        _do(lambda j: j["metadata"].update(name="X"), lambda j: jspec(j).update(backoffLimit=-1)),
        None,
        f"The RayJob metadata is invalid: RayJob name should be a valid DNS1035 label: {DNS1035_ERROR}",
    ),
    (
        "order-spec-before-status",
        _do(lambda j: j.update(status={"jobDeploymentStatus": "Waiting"}), lambda j: jspec(j).update(backoffLimit=-1)),
        None,
        "The RayJob spec is invalid: backoffLimit must be a positive integer",
    ),
]


@pytest.mark.parametrize(("mutate", "gates", "expected"), [c[1:] for c in JOB_CASES], ids=[c[0] for c in JOB_CASES])
def test_ray_job_rules(mutate: Mutation, gates: dict[str, bool] | None, expected: str | None) -> None:
    job = ray_job()
    mutate(job)
    if jspec(job).get("rayClusterSpec") is None:
        jspec(job).pop("rayClusterSpec", None)
    job_view = apply_crd_defaults(RayJob(job))
    if expected is None:
        validate_ray_job(job_view, gates)
        return
    with pytest.raises(ValidationError) as info:
        validate_ray_job(job_view, gates)
    assert info.value.message == expected


def test_ray_job_runtime_env_syntax_error_message_prefix() -> None:
    job = ray_job()
    jspec(job)["runtimeEnvYAML"] = "pip: [a, b"
    with pytest.raises(ValidationError) as info:
        validate_ray_job_spec(job)
    assert info.value.message.startswith("failed to unmarshal RuntimeEnvYAML: pip: [a, b: error converting YAML")
    jspec(job)["runtimeEnvYAML"] = "a: 1\na: 2\n"  # go-yaml rejects duplicate keys
    with pytest.raises(ValidationError, match="already defined"):
        validate_ray_job_spec(job)


def test_ray_job_status_uses_submission_mode_as_stored() -> None:
    """Upstream compares the stored submissionMode: before defaulting it is "" and Waiting is invalid."""
    job = ray_job()
    job["status"] = {"jobDeploymentStatus": "Waiting"}
    with pytest.raises(ValidationError):
        validate_ray_job(job)


# ---- RayService ------------------------------------------------------------------------------------

INCREMENTAL = {
    "type": "NewClusterWithIncrementalUpgrade",
    "clusterUpgradeOptions": {
        "maxSurgePercent": 50,
        "stepSizePercent": 10,
        "intervalSeconds": 30,
        "gatewayClassName": "istio",
    },
}


def sspec(svc: Raw) -> Raw:
    spec: Raw = svc["spec"]
    return spec


def incremental(svc: Raw, **options: Any) -> None:
    strategy = copy.deepcopy(INCREMENTAL)
    strategy["clusterUpgradeOptions"].update(options)
    strategy["clusterUpgradeOptions"] = {k: v for k, v in strategy["clusterUpgradeOptions"].items() if v is not None}
    sspec(svc)["upgradeStrategy"] = strategy
    autoscaling(sspec(svc)["rayClusterConfig"])


SERVICE_CASES: list[tuple[str, Mutation, dict[str, bool] | None, str | None]] = [
    ("valid", lambda s: None, None, None),
    (
        "name-too-long",
        lambda s: s["metadata"].update(name="s" * 48),
        None,
        "The RayService metadata is invalid: RayService name should be no more than 47 characters",
    ),
    (
        "name-not-dns1035",
        lambda s: s["metadata"].update(name="Service"),
        None,
        f"The RayService metadata is invalid: RayService name should be a valid DNS1035 label: {DNS1035_ERROR}",
    ),
    (
        "initializing-timeout-zero",
        lambda s: s["metadata"].update(annotations={"ray.io/initializing-timeout": "0"}),
        None,
        "The RayService metadata is invalid: RayService annotations is invalid: annotation ray.io/initializing-timeout "
        "must be a positive duration, got: 0",
    ),
    (
        "initializing-timeout-negative-duration",
        lambda s: s["metadata"].update(annotations={"ray.io/initializing-timeout": "-1m"}),
        None,
        "The RayService metadata is invalid: RayService annotations is invalid: annotation ray.io/initializing-timeout "
        "must be a positive duration, got: -1m",
    ),
    (
        "initializing-timeout-negative-seconds",
        lambda s: s["metadata"].update(annotations={"ray.io/initializing-timeout": "-30"}),
        None,
        "The RayService metadata is invalid: RayService annotations is invalid: annotation ray.io/initializing-timeout "
        "must be a positive integer (seconds), got: -30",
    ),
    (
        "initializing-timeout-garbage",
        lambda s: s["metadata"].update(annotations={"ray.io/initializing-timeout": "soon"}),
        None,
        "The RayService metadata is invalid: RayService annotations is invalid: annotation ray.io/initializing-timeout "
        "has invalid format: soon. Expected Go duration format (e.g., '5m', '1h') or positive integer seconds",
    ),
    (
        "initializing-timeout-duration",
        lambda s: s["metadata"].update(annotations={"ray.io/initializing-timeout": "1h30m"}),
        None,
        None,
    ),
    (
        "initializing-timeout-seconds",
        lambda s: s["metadata"].update(annotations={"ray.io/initializing-timeout": "300"}),
        None,
        None,
    ),
    (
        "k8s-token-auth",
        lambda s: sspec(s)["rayClusterConfig"].update(authOptions={"mode": "token", "enableK8sTokenAuth": True}),
        None,
        "The RayService spec is invalid: K8s token auth mode is currently not supported for RayService",
    ),
    (
        "cluster-spec-error-is-wrapped",
        lambda s: sspec(s)["rayClusterConfig"]["headGroupSpec"]["template"]["spec"].update(containers=[]),
        None,
        "The RayService spec is invalid: headGroupSpec should have at least one container",
    ),
    (
        "head-service-name",
        lambda s: sspec(s)["rayClusterConfig"]["headGroupSpec"].update(headService={"metadata": {"name": "svc"}}),
        None,
        "The RayService spec is invalid: spec.rayClusterConfig.headGroupSpec.headService.metadata.name should "
        "not be set",
    ),
    (
        "head-service-without-name",
        lambda s: sspec(s)["rayClusterConfig"]["headGroupSpec"].update(
            headService={"metadata": {"labels": {"a": "b"}}}
        ),
        None,
        None,
    ),
    (
        "upgrade-type-invalid",
        lambda s: sspec(s).update(upgradeStrategy={"type": "BlueGreen"}),
        None,
        "The RayService spec is invalid: Spec.UpgradeStrategy.Type value BlueGreen is invalid, valid options are "
        "NewClusterWithIncrementalUpgrade, NewCluster, or None",
    ),
    ("upgrade-type-none", lambda s: sspec(s).update(upgradeStrategy={"type": "None"}), None, None),
    (
        "deletion-delay-negative",
        lambda s: sspec(s).update(rayClusterDeletionDelaySeconds=-1),
        None,
        "The RayService spec is invalid: Spec.RayClusterDeletionDelaySeconds should be a non-negative integer, got -1",
    ),
    ("incremental-valid", incremental, None, None),
    (
        "incremental-gate-off-skips-checks",
        lambda s: sspec(s).update(upgradeStrategy={"type": "NewClusterWithIncrementalUpgrade"}),
        {"RayServiceIncrementalUpgrade": False},
        None,
    ),
    (
        "incremental-without-autoscaler",
        lambda s: sspec(s).update(upgradeStrategy=copy.deepcopy(INCREMENTAL)),
        None,
        "The RayService spec is invalid: Ray Autoscaler is required for NewClusterWithIncrementalUpgrade",
    ),
    (
        "incremental-without-options",
        _do(
            lambda s: autoscaling(sspec(s)["rayClusterConfig"]),
            lambda s: sspec(s).update(upgradeStrategy={"type": "NewClusterWithIncrementalUpgrade"}),
        ),
        None,
        "The RayService spec is invalid: ClusterUpgradeOptions are required for NewClusterWithIncrementalUpgrade",
    ),
    (
        "incremental-max-surge-out-of-range",
        lambda s: incremental(s, maxSurgePercent=150),
        None,
        "The RayService spec is invalid: maxSurgePercent must be between 0 and 100",
    ),
    (
        "incremental-step-size-missing",
        lambda s: incremental(s, stepSizePercent=None),
        None,
        "The RayService spec is invalid: stepSizePercent must be between 0 and 100",
    ),
    (
        "incremental-step-size-above-max-surge",
        lambda s: incremental(s, stepSizePercent=60),
        None,
        "The RayService spec is invalid: stepSizePercent must be less than or equal to maxSurgePercent",
    ),
    (
        "incremental-interval-zero",
        lambda s: incremental(s, intervalSeconds=0),
        None,
        "The RayService spec is invalid: intervalSeconds must be greater than 0",
    ),
    (
        "incremental-gateway-class-missing",
        lambda s: incremental(s, gatewayClassName=None),
        None,
        "The RayService spec is invalid: gatewayClassName is required for NewClusterWithIncrementalUpgrade",
    ),
    (
        "incremental-max-surge-defaults-to-100",
        lambda s: incremental(s, maxSurgePercent=None, stepSizePercent=100),
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("mutate", "gates", "expected"), [c[1:] for c in SERVICE_CASES], ids=[c[0] for c in SERVICE_CASES]
)
def test_ray_service_rules(mutate: Mutation, gates: dict[str, bool] | None, expected: str | None) -> None:
    svc = ray_service()
    mutate(svc)
    if expected is None:
        validate_ray_service(svc, gates)
        return
    with pytest.raises(ValidationError) as info:
        validate_ray_service(svc, gates)
    assert info.value.message == expected


@pytest.mark.parametrize("value", ["5m", "1.5h", "300ms", "2h45m", "+1s", ".5s", "1µs", "30", "+30"])
def test_initializing_timeout_accepts_go_durations_and_seconds(value: str) -> None:
    validate_initializing_timeout({"ray.io/initializing-timeout": value})


@pytest.mark.parametrize("value", ["5", "0s"])
def test_initializing_timeout_edge_cases(value: str) -> None:
    if value == "0s":
        with pytest.raises(ValidationError, match="must be a positive duration, got: 0s"):
            validate_initializing_timeout({"ray.io/initializing-timeout": value})
    else:
        validate_initializing_timeout({"ray.io/initializing-timeout": value})
    validate_initializing_timeout({"ray.io/initializing-timeout": ""})
    validate_initializing_timeout(None)


# ---- malformed input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("validator", "obj", "message"),
    [
        (validate_ray_job, {"metadata": {"name": "j"}, "spec": []}, 'spec: Invalid value: "array"'),
        (validate_ray_job, [], '<root>: Invalid value: "array"'),
        (validate_ray_job, None, '<root>: Invalid value: "null"'),
        (
            validate_ray_job,
            {"metadata": {"name": "j"}, "spec": {"rayClusterSpec": {"workerGroupSpecs": [{"replicas": "3"}]}}},
            'spec.rayClusterSpec.workerGroupSpecs[0].replicas: Invalid value: "string": '
            'spec.rayClusterSpec.workerGroupSpecs[0].replicas in body must be of type integer: "string"',
        ),
        (
            # Type errors are found before any rule runs, even in fields no rule reads.
            validate_ray_job,
            {"metadata": {"name": "Bad_Name"}, "status": {"rayClusterStatus": {"head": {"podIP": 1}}}},
            'status.rayClusterStatus.head.podIP: Invalid value: "integer"',
        ),
        (
            validate_ray_cluster_spec,
            {"headGroupSpec": {"template": {"spec": {"containers": [{"name": "h", "env": [{"name": 1}]}]}}}},
            'headGroupSpec.template.spec.containers[0].env[0].name: Invalid value: "integer"',
        ),
        (
            validate_ray_cluster,
            {
                "metadata": {"name": "c"},
                "spec": {
                    "headGroupSpec": {"template": {"spec": {"containers": [{"name": "h"}]}}},
                    "workerGroupSpecs": [
                        {
                            "groupName": "w",
                            "minReplicas": "1",
                            "maxReplicas": 2,
                            "template": {"spec": {"containers": [{}]}},
                        }
                    ],
                },
            },
            'spec.workerGroupSpecs[0].minReplicas: Invalid value: "string": spec.workerGroupSpecs[0].minReplicas in '
            'body must be of type integer: "string"',
        ),
        (
            validate_ray_cluster,
            {"metadata": {"name": "c"}, "spec": {"headGroupSpec": {"template": {"spec": {"containers": "x"}}}}},
            'spec.headGroupSpec.template.spec.containers: Invalid value: "string"',
        ),
        (
            validate_ray_cluster,
            {"metadata": {"name": "c", "annotations": {"ray.io/ft-enabled": True}}, "spec": {}},
            "metadata.annotations[ray.io/ft-enabled]",
        ),
        (validate_ray_service, {"metadata": {"name": 1}}, 'metadata.name: Invalid value: "integer"'),
        (
            validate_ray_service,
            {
                "metadata": {"name": "s"},
                "spec": {
                    "rayClusterConfig": {
                        "headGroupSpec": {
                            "headService": {"metadata": []},
                            "template": {"spec": {"containers": [{"name": "h"}]}},
                        }
                    }
                },
            },
            'spec.rayClusterConfig.headGroupSpec.headService.metadata: Invalid value: "array"',
        ),
    ],
)
def test_malformed_input_raises_validation_error(validator: Any, obj: Any, message: str) -> None:
    with pytest.raises(FieldTypeError) as info:
        validator(obj)
    assert info.value.message.startswith(message)


def test_field_type_error_inside_cluster_spec_is_not_wrapped() -> None:
    job = ray_job()
    jspec(job)["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplicas"] = "5"
    with pytest.raises(FieldTypeError) as info:
        validate_ray_job(job)
    assert info.value.message.startswith("spec.rayClusterSpec.workerGroupSpecs[0].maxReplicas: Invalid value")


def test_views_and_dicts_are_both_accepted() -> None:
    validate_ray_cluster(RayCluster(ray_cluster()))
    validate_ray_job(RayJob(ray_job()))
    validate_ray_service(RayService(ray_service()))
