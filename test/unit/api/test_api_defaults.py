"""Defaulting: the CRD defaults the API server applies, and the defaults upstream applies in code."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from api.v1 import (
    GcsEmbeddedStorage,
    GcsFaultToleranceOptions,
    IngressOptions,
    JobSubmissionMode,
    NetworkPolicyConfig,
    RayCluster,
    RayCronJob,
    RayJob,
    RayJobSpec,
    RayService,
    apply_crd_defaults,
    default_ray_cluster,
    default_ray_job,
    default_ray_service,
    effective_autoscaler_idle_timeout_seconds,
    effective_gcs_fault_tolerance_backend,
    effective_gcs_storage_access_modes,
    effective_gcs_storage_deletion_policy,
    effective_gcs_storage_size,
    effective_ingress_path,
    effective_ingress_path_type,
    effective_max_surge_percent,
    effective_network_policy_mode,
    effective_ray_cluster_deletion_delay_seconds,
    effective_submission_mode,
    effective_submitter_backoff_limit,
)
from api.v1.rayservice_types import ClusterUpgradeOptions, RayServiceSpec


def cluster_spec() -> dict[str, Any]:
    return {
        "headGroupSpec": {"template": {"spec": {"containers": [{"name": "ray-head", "image": "ray"}]}}},
        "workerGroupSpecs": [
            {"groupName": "a", "template": {"spec": {"containers": [{"name": "w", "image": "ray"}]}}},
            {
                "groupName": "b",
                "replicas": 3,
                "minReplicas": 1,
                "maxReplicas": 4,
                "numOfHosts": 2,
                "priority": 7,
                "template": {},
            },
        ],
    }


def test_ray_job_crd_defaults() -> None:
    raw = {"metadata": {"name": "j"}, "spec": {"entrypoint": "x", "rayClusterSpec": cluster_spec()}}
    before = orjson.dumps(raw)
    job = default_ray_job(RayJob(raw))
    assert orjson.dumps(raw) == before  # pure: the input is untouched
    spec = job.spec
    assert spec.submission_mode == JobSubmissionMode.K8S_JOB_MODE
    assert spec.backoff_limit == 0
    assert spec.ttl_seconds_after_finished == 0
    assert spec.shutdown_after_job_finishes is False  # zero value: read, not written
    assert spec.suspend is False
    assert "shutdownAfterJobFinishes" not in job.raw["spec"]
    cluster = spec.ray_cluster_spec
    assert cluster is not None
    a, b = cluster.worker_group_specs
    assert (a.replicas, a.min_replicas, a.max_replicas, a.num_of_hosts, a.priority) == (0, 0, 2147483647, 1, 0)
    assert (b.replicas, b.min_replicas, b.max_replicas, b.num_of_hosts, b.priority) == (3, 1, 4, 2, 7)
    assert "status" not in job.raw  # defaults apply only inside objects that exist
    # Unchanged subtrees are shared, not copied.
    assert job.raw["metadata"] is raw["metadata"]
    assert job.raw["spec"]["rayClusterSpec"]["headGroupSpec"] is raw["spec"]["rayClusterSpec"]["headGroupSpec"]
    assert (
        job.raw["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]
        is (raw["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"])
    )


def test_defaults_keep_explicit_values_and_replace_nulls() -> None:
    raw = {"spec": {"submissionMode": "HTTPMode", "backoffLimit": None, "ttlSecondsAfterFinished": 5}}
    job = apply_crd_defaults(RayJob(raw))
    assert job.raw["spec"] == {"submissionMode": "HTTPMode", "backoffLimit": 0, "ttlSecondsAfterFinished": 5}


def test_defaults_are_idempotent_and_return_the_same_view_when_nothing_changes() -> None:
    job = default_ray_job(RayJob({"spec": {"rayClusterSpec": cluster_spec()}}))
    assert default_ray_job(job) is job
    empty = RayJob({"metadata": {"name": "x"}})
    assert apply_crd_defaults(empty) is empty


def test_status_defaults_when_status_exists() -> None:
    job = default_ray_job(RayJob({"spec": {}, "status": {"jobStatus": "RUNNING"}}))
    assert job.raw["status"] == {"jobStatus": "RUNNING", "succeeded": 0, "failed": 0}


def test_deletion_rule_and_network_policy_defaults() -> None:
    raw = {
        "spec": {
            "deletionStrategy": {"deletionRules": [{"policy": "DeleteCluster", "condition": {"jobStatus": "FAILED"}}]},
            "rayClusterSpec": {**cluster_spec(), "networkPolicy": {"workerGroups": [{"groupName": "a"}]}},
        }
    }
    job = apply_crd_defaults(RayJob(raw))
    strategy = job.spec.deletion_strategy
    assert strategy is not None
    assert strategy.deletion_rules[0].raw["condition"] == {"jobStatus": "FAILED", "ttlSeconds": 0}
    cluster = job.spec.ray_cluster_spec
    assert cluster is not None and cluster.network_policy is not None
    assert cluster.network_policy.raw == {"workerGroups": [{"groupName": "a"}], "mode": "DenyAll"}


def test_ray_cluster_defaults() -> None:
    raw = {"metadata": {"name": "c"}, "spec": cluster_spec()}
    cluster = default_ray_cluster(RayCluster(copy.deepcopy(raw)))
    group = cluster.spec.worker_group_specs[0]
    assert group.raw == {
        "groupName": "a",
        "template": {"spec": {"containers": [{"name": "w", "image": "ray"}]}},
        "replicas": 0,
        "minReplicas": 0,
        "maxReplicas": 2147483647,
        "priority": 0,
        "numOfHosts": 1,
    }
    # Kubernetes core types inside are not defaulted (no CRD defaults exist there).
    assert cluster.raw["spec"]["headGroupSpec"] == raw["spec"]["headGroupSpec"]


def test_ray_service_defaults() -> None:
    raw = {
        "spec": {
            "rayClusterConfig": cluster_spec(),
            "upgradeStrategy": {
                "type": "NewClusterWithIncrementalUpgrade",
                "clusterUpgradeOptions": {"stepSizePercent": 10, "intervalSeconds": 5, "gatewayClassName": "g"},
            },
        }
    }
    svc = default_ray_service(RayService(raw))
    options = svc.spec.upgrade_strategy.cluster_upgrade_options  # type: ignore[union-attr]
    assert options is not None and options.max_surge_percent == 100
    assert svc.spec.ray_cluster_spec.worker_group_specs[0].num_of_hosts == 1
    assert "rayClusterDeletionDelaySeconds" not in svc.raw["spec"]  # 60 is a code default


def test_ray_cron_job_template_defaults() -> None:
    cron = apply_crd_defaults(RayCronJob({"spec": {"schedule": "* * * * *", "jobTemplate": {"entrypoint": "x"}}}))
    assert cron.spec.job_template.submission_mode == "K8sJobMode"
    assert cron.spec.job_template.backoff_limit == 0


def test_defaults_ignore_malformed_values() -> None:
    raw: dict[str, Any] = {"spec": {"rayClusterSpec": {"workerGroupSpecs": [1, "x", {"groupName": "g"}]}}}
    job = apply_crd_defaults(RayJob(raw))
    groups = job.raw["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert groups[:2] == [1, "x"] and groups[2]["numOfHosts"] == 1
    weird = apply_crd_defaults(RayJob({"spec": "text"}))
    assert weird.raw == {"spec": "text"}


def test_effective_code_defaults() -> None:
    spec = RayJobSpec({})
    assert effective_submission_mode(spec) == "K8sJobMode"
    assert effective_submitter_backoff_limit(spec) == 2
    assert effective_submitter_backoff_limit(RayJobSpec({"submitterConfig": {"backoffLimit": 0}})) == 0
    assert effective_ray_cluster_deletion_delay_seconds(RayServiceSpec({})) == 60
    assert effective_ray_cluster_deletion_delay_seconds(RayServiceSpec({"rayClusterDeletionDelaySeconds": 0})) == 0
    assert effective_max_surge_percent(ClusterUpgradeOptions({})) == 100
    assert effective_autoscaler_idle_timeout_seconds(None) == 60
    assert effective_ingress_path(None) == "/"
    assert effective_ingress_path_type(IngressOptions({"pathType": "Exact"})) == "Exact"
    assert effective_ingress_path_type(None) == "Prefix"
    assert effective_gcs_fault_tolerance_backend(None) == "redis"
    assert effective_gcs_fault_tolerance_backend(GcsFaultToleranceOptions({"backend": "rocksdb"})) == "rocksdb"
    assert effective_gcs_storage_size(None) == "1Gi"
    assert effective_gcs_storage_access_modes(GcsEmbeddedStorage({})) == ["ReadWriteOnce"]
    assert effective_gcs_storage_deletion_policy(None) == "DeleteWithCluster"
    assert effective_network_policy_mode(NetworkPolicyConfig({})) == "DenyAll"
