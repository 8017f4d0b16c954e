"""ray.io/v1 views: decoding, lossless round trips, typed accessors and setters, schema metadata,
and the seed manifests of /work/shared/seeds."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from api.v1 import (
    API_VERSION,
    KINDS,
    MISSING,
    Condition,
    ConditionStatus,
    DeletionStrategy,
    FieldRangeError,
    FieldSpec,
    FieldTypeError,
    HeadGroupSpec,
    JobSubmissionMode,
    RayCluster,
    RayClusterSpec,
    RayCronJob,
    RayJob,
    RayJobSpec,
    RayService,
    RayServiceSpec,
    ValidationError,
    View,
    ViewList,
    ViewMap,
    WorkerGroupSpec,
    apply_crd_defaults,
    decode,
    find_condition,
    format_time,
    is_condition_true,
    parse_time,
    set_condition,
    type_schema,
    validate_ray_cluster,
    validate_ray_job,
    validate_ray_service,
)

SEEDS = Path("/work/shared/seeds")


def read_all(view: View) -> None:
    """Read every declared field recursively (what a controller could do); must not mutate."""
    for name in type(view).__descriptors__:
        value = getattr(view, name)
        if isinstance(value, View):
            read_all(value)
        elif isinstance(value, ViewList):
            for item in value:
                read_all(item)
        elif isinstance(value, ViewMap):
            for item in value.values():
                read_all(item)


# ---- decoding and round trips ---------------------------------------------------------------------

SAMPLE_JOB = {
    "apiVersion": "ray.io/v1",
    "kind": "RayJob",
    "metadata": {"name": "rayjob-sample", "namespace": "default", "labels": {"a": "b"}},
    "spec": {
        "entrypoint": "python /home/ray/samples/sample_code.py",
        "runtimeEnvYAML": "pip:\n  - requests==2.26.0\n",
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": 10,
        "futureField": {"nested": [1, 2.5, None, "x"]},
        "rayClusterSpec": {
            "rayVersion": "2.52.0",
            "headGroupSpec": {
                "rayStartParams": {"dashboard-host": "0.0.0.0"},
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "ray-head",
                                "image": "rayproject/ray:2.52.0",
                                "env": [{"name": "A", "value": "1"}],
                                "unknownContainerField": True,
                            }
                        ]
                    }
                },
            },
            "workerGroupSpecs": [
                {
                    "groupName": "small-group",
                    "replicas": 1,
                    "minReplicas": 1,
                    "maxReplicas": 5,
                    "rayStartParams": {},
                    "template": {"spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray"}]}},
                }
            ],
        },
    },
    "status": {"jobStatus": "RUNNING", "jobDeploymentStatus": "Running", "failed": 0, "extra": 1},
}


def test_decode_wraps_without_copying_and_round_trips_byte_for_byte() -> None:
    body = orjson.dumps(SAMPLE_JOB)
    job = RayJob.from_json(body)
    read_all(job)
    assert job.to_json() == body
    raw = {"kind": "RayJob", "spec": {}}
    assert RayJob(raw).raw is raw
    assert RayJob(raw).spec.raw is raw["spec"]


def test_decode_by_kind() -> None:
    for kind, cls in KINDS.items():
        obj = decode(orjson.dumps({"apiVersion": API_VERSION, "kind": kind}))
        assert type(obj) is cls
    with pytest.raises(ValidationError, match="unknown kind"):
        decode(b'{"kind": "Pod"}')
    with pytest.raises(FieldTypeError):
        decode(b"[1, 2]")


def test_typed_accessors_follow_go_semantics() -> None:
    job = RayJob(orjson.loads(orjson.dumps(SAMPLE_JOB)))
    spec = job.spec
    assert job.name == "rayjob-sample" and job.namespace == "default"
    assert spec.entrypoint.startswith("python")
    assert spec.shutdown_after_job_finishes is True
    assert spec.suspend is False  # absent bool -> zero value
    assert spec.backoff_limit is None  # absent *int32 -> None
    assert spec.ttl_seconds_after_finished == 10
    assert spec.submission_mode == ""  # not defaulted yet
    assert spec.entrypoint_num_cpus == 0.0
    assert spec.deletion_strategy is None
    cluster = spec.ray_cluster_spec
    assert cluster is not None
    head = cluster.head_group_spec
    assert head.ray_start_params == {"dashboard-host": "0.0.0.0"}
    container = head.template.ray_container
    assert container is not None and container.name == "ray-head"
    assert [e.name for e in container.env] == ["A"]
    group = cluster.worker_group_specs[0]
    assert (group.group_name, group.replicas, group.min_replicas, group.max_replicas) == ("small-group", 1, 1, 5)
    assert group.num_of_hosts == 0  # CRD default 1 applies only through apply_crd_defaults
    assert group.scale_strategy.workers_to_delete is None
    assert job.status.job_status == "RUNNING"
    assert job.status.failed == 0 and job.status.succeeded is None
    assert job.status.ray_cluster_status.state == ""


def test_detached_view_attaches_on_first_write_only() -> None:
    job = RayJob({"kind": "RayJob"})
    status = job.status
    assert status.is_detached and status.job_status == ""
    assert job.raw == {"kind": "RayJob"}  # reading did not create "status"
    job.status.ray_cluster_status.head.pod_ip = "10.0.0.1"
    assert job.raw["status"] == {"rayClusterStatus": {"head": {"podIP": "10.0.0.1"}}}
    status.job_status = "PENDING"  # the old detached view now writes into the attached dict
    assert job.raw["status"]["jobStatus"] == "PENDING"


def test_setters_follow_omitempty() -> None:
    job = RayJob({"spec": {"suspend": True, "entrypoint": "x", "backoffLimit": 3}})
    spec = job.spec
    spec.suspend = False  # omitempty bool: the zero value is omitted
    spec.entrypoint = ""
    spec.backoff_limit = 0  # *int32: zero is a value
    assert job.raw["spec"] == {"backoffLimit": 0}
    spec.backoff_limit = None
    spec.shutdown_after_job_finishes = True
    spec.cluster_selector = {"ray.io/cluster": "c"}
    assert job.raw["spec"] == {"shutdownAfterJobFinishes": True, "clusterSelector": {"ray.io/cluster": "c"}}
    group = WorkerGroupSpec({})
    group.group_name = ""  # no omitempty in Go: written as ""
    group.ray_start_params = {}
    group.min_replicas = 0
    assert group.raw == {"groupName": "", "rayStartParams": {}, "minReplicas": 0}
    with pytest.raises(FieldRangeError):
        group.replicas = 2**31


def test_ensure_creates_and_attaches_containers() -> None:
    job = RayJob({})
    cluster = job.spec.ensure(RayJobSpec.ray_cluster_spec)
    groups = cluster.ensure(RayClusterSpec.worker_group_specs)
    groups.append({"groupName": "g"})
    groups.append(WorkerGroupSpec({"groupName": "h"}))
    params = groups[1].ensure(WorkerGroupSpec.ray_start_params)
    params["num-cpus"] = "1"
    assert job.raw == {
        "spec": {
            "rayClusterSpec": {
                "workerGroupSpecs": [{"groupName": "g"}, {"groupName": "h", "rayStartParams": {"num-cpus": "1"}}]
            }
        }
    }
    assert [g.group_name for g in cluster.worker_group_specs] == ["g", "h"]
    assert cluster.worker_group_specs[-1].group_name == "h"
    assert [g.group_name for g in cluster.worker_group_specs[0:1]] == ["g"]


def test_detached_list_append_attaches() -> None:
    cluster = RayCluster({})
    cluster.spec.worker_group_specs.append({"groupName": "g"})
    assert cluster.raw == {"spec": {"workerGroupSpecs": [{"groupName": "g"}]}}


def test_object_map_views() -> None:
    svc = RayService(
        {
            "status": {
                "activeServiceStatus": {
                    "applicationStatuses": {
                        "app": {"status": "RUNNING", "serveDeploymentStatuses": {"d": {"status": "HEALTHY"}}}
                    }
                }
            }
        }
    )
    apps = svc.status.active_service_status.applications
    assert apps["app"].status == "RUNNING"
    assert apps["app"].deployments["d"].status == "HEALTHY"
    svc.status.pending_service_status.applications["new"] = {"status": "DEPLOYING"}
    assert svc.raw["status"]["pendingServiceStatus"] == {"applicationStatuses": {"new": {"status": "DEPLOYING"}}}


@pytest.mark.parametrize(
    ("raw", "read", "message"),
    [
        ({"spec": []}, lambda j: j.spec, 'spec: Invalid value: "array": spec in body must be of type object: "array"'),
        (
            {"spec": {"backoffLimit": "3"}},
            lambda j: j.spec.backoff_limit,
            'spec.backoffLimit: Invalid value: "string": spec.backoffLimit in body must be of type integer: "string"',
        ),
        (
            {"spec": {"suspend": "true"}},
            lambda j: j.spec.suspend,
            'spec.suspend: Invalid value: "string": spec.suspend in body must be of type boolean: "string"',
        ),
        (
            {"spec": {"rayClusterSpec": {"workerGroupSpecs": [{"replicas": True}]}}},
            lambda j: j.spec.ray_cluster_spec.worker_group_specs[0].replicas,
            'spec.rayClusterSpec.workerGroupSpecs[0].replicas: Invalid value: "boolean"',
        ),
        (
            {"spec": {"rayClusterSpec": {"workerGroupSpecs": [1]}}},
            lambda j: j.spec.ray_cluster_spec.worker_group_specs[0],
            'spec.rayClusterSpec.workerGroupSpecs[0]: Invalid value: "integer"',
        ),
        (
            {"spec": {"clusterSelector": {"ray.io/cluster": 1}}},
            lambda j: j.spec.cluster_selector,
            'spec.clusterSelector[ray.io/cluster]: Invalid value: "integer"',
        ),
        (
            {"metadata": {"name": 5}},
            lambda j: j.metadata.name,
            'metadata.name: Invalid value: "integer"',
        ),
    ],
)
def test_wrong_json_types_raise_field_type_error(raw: dict[str, Any], read: Any, message: str) -> None:
    job = RayJob(raw)
    with pytest.raises(FieldTypeError) as info:
        read(job)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValidationError)


def test_int32_range_is_checked() -> None:
    with pytest.raises(FieldRangeError, match="must fit in int32"):
        _ = RayJob({"spec": {"backoffLimit": 2**31}}).spec.backoff_limit
    assert RayJob({"status": {"observedGeneration": 2**40}}).status.observed_generation == 2**40


def test_non_dict_top_level_is_rejected() -> None:
    with pytest.raises(FieldTypeError, match='<root>: Invalid value: "array"'):
        RayJob([])  # type: ignore[arg-type]
    with pytest.raises(FieldTypeError):
        RayJob.wrap("text")


def test_time_fields() -> None:
    job = RayJob({})
    moment = dt.datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=dt.UTC)
    job.status.start_time = moment
    assert job.raw["status"]["startTime"] == "2024-05-01T10:00:00Z"
    assert parse_time(job.status.start_time or "") == moment.replace(microsecond=0)
    assert format_time(dt.datetime(2024, 1, 1)) == "2024-01-01T00:00:00Z"
    assert parse_time("2024-01-01T01:00:00+01:00") == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def test_conditions_helpers() -> None:
    cluster = RayCluster({})
    conditions = cluster.status.conditions
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert set_condition(conditions, "HeadPodReady", "False", "HeadPodNotFound", "Head Pod not found", now=now)
    assert cluster.raw["status"]["conditions"][0]["lastTransitionTime"] == "2024-01-01T00:00:00Z"
    later = now + dt.timedelta(minutes=1)
    assert not set_condition(conditions, "HeadPodReady", "False", "HeadPodNotFound", "Head Pod not found", now=later)
    assert set_condition(conditions, "HeadPodReady", "True", "HeadPodRunningAndReady", "", now=later)
    cond = find_condition(cluster.status.conditions, "HeadPodReady")
    assert cond is not None and cond.last_transition_time == "2024-01-01T00:01:00Z"
    assert is_condition_true(cluster.status.conditions, "HeadPodReady")
    assert not is_condition_true(cluster.status.conditions, "RayClusterProvisioned")


def test_view_equality_copy_and_repr() -> None:
    a = RayJob({"spec": {"entrypoint": "x"}})
    b = a.copy()
    assert a == b and a.raw is not b.raw
    b.spec.entrypoint = "y"
    assert a != b
    assert "RayJob(" in repr(a)


# ---- schema metadata ------------------------------------------------------------------------------


def test_field_metadata_is_declared_once_and_complete() -> None:
    specs = {f.json_name: f for f in RayJobSpec.__fields__}
    assert list(specs) == [
        "activeDeadlineSeconds",
        "backoffLimit",
        "rayClusterSpec",
        "submitterPodTemplate",
        "metadata",
        "clusterSelector",
        "submitterConfig",
        "managedBy",
        "deletionStrategy",
        "entrypoint",
        "runtimeEnvYAML",
        "jobId",
        "submissionMode",
        "entrypointResources",
        "entrypointNumCpus",
        "entrypointNumGpus",
        "ttlSecondsAfterFinished",
        "preRunningDeadlineSeconds",
        "shutdownAfterJobFinishes",
        "suspend",
    ]
    assert specs["submissionMode"].default == JobSubmissionMode.K8S_JOB_MODE
    assert specs["submissionMode"].enum is None  # no enum marker upstream
    assert specs["backoffLimit"] == FieldSpec(
        json_name="backoffLimit",
        kind="int32",
        doc=specs["backoffLimit"].doc,
        py_name="backoff_limit",
        pointer=True,
        default=0,
        format="int32",
    )
    assert specs["preRunningDeadlineSeconds"].minimum == 1
    assert specs["rayClusterSpec"].ref is RayClusterSpec
    assert specs["submitterPodTemplate"].k8s_ref == "io.k8s.api.core.v1.PodTemplateSpec"
    assert [x.message for x in specs["managedBy"].x_validations] == [
        "the managedBy field is immutable",
        "the managedBy field value must be either 'ray.io/kuberay-operator' or 'kueue.x-k8s.io/multikueue'",
    ]
    assert specs["deletionStrategy"].feature_gate == "RayJobDeletionPolicy"
    assert specs["jobId"].default is MISSING and not specs["jobId"].has_default


def test_type_schema_required_lists_match_the_crd() -> None:
    assert type_schema(RayClusterSpec).required == ("headGroupSpec",)
    assert type_schema(HeadGroupSpec).required == ("template",)
    assert set(type_schema(WorkerGroupSpec).required) == {"groupName", "minReplicas", "maxReplicas", "template"}
    assert type_schema(RayServiceSpec).required == ("rayClusterConfig",)
    assert type_schema(RayJobSpec).required == ()
    assert type_schema(Condition).required == ("type", "status", "lastTransitionTime", "reason", "message")
    strategy = type_schema(DeletionStrategy)
    assert len(strategy.x_validations) == 2
    assert strategy.doc.startswith("Cleanup after the RayJob finishes")
    group = {f.json_name: f for f in WorkerGroupSpec.__fields__}
    assert group["maxReplicas"].default == 2147483647
    assert group["numOfHosts"].default == 1
    assert group["rayStartParams"].omitempty is False
    conditions = {f.json_name: f for f in RayCluster.__descriptors__["status"].spec.ref.__fields__}["conditions"]  # type: ignore[union-attr]
    assert conditions.list_type == "map" and conditions.list_map_keys == ("type",)
    cond = {f.json_name: f for f in Condition.__fields__}
    assert cond["status"].enum == tuple(ConditionStatus)
    assert cond["reason"].pattern is not None and cond["reason"].max_length == 1024


def test_kind_info_printer_columns() -> None:
    columns = [(c.name, c.json_path, c.priority) for c in RayCluster.__kind__.printer_columns]
    assert columns[0] == ("desired workers", ".status.desiredWorkerReplicas", 0)
    assert ("tpus", ".status.desiredTPU", 1) in columns
    assert [c.name for c in RayJob.__kind__.printer_columns] == [
        "job status",
        "deployment status",
        "ray cluster name",
        "start time",
        "end time",
        "age",
    ]
    assert RayService.__kind__.plural == "rayservices"
    assert RayCronJob.__kind__.categories == ("all",)
    new = RayJob.new("j", "ns", spec={"entrypoint": "x"})
    assert new.raw == {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": "j", "namespace": "ns"},
        "spec": {"entrypoint": "x"},
    }


# ---- seeds -----------------------------------------------------------------------------------------


def _seed_blocks() -> list[tuple[str, Any]]:
    blocks: list[tuple[str, Any]] = []
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text()
        for index, block in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.S)):
            blocks.append((f"{path.stem}#{index}", yaml.safe_load(block)))
    return blocks


SEED_BLOCKS = _seed_blocks()
SEED_MANIFESTS = [(name, doc) for name, doc in SEED_BLOCKS if isinstance(doc, dict) and doc.get("kind") in KINDS]

#: Seed manifests whose rayClusterSpec was elided by the author ("# ... 集群配置省略 ..." = "cluster
#: config omitted") or whose clusterSelector lacks the ray.io/cluster key. Upstream's ValidateRayJobSpec
#: rejects them (and the API server would already reject the missing headGroupSpec), so a drop-in
#: replacement must reject them with the same messages.
SEED_REJECTED = {
    "job-with-runtime-env": "The RayJob spec is invalid: headGroupSpec should have at least one container",
    "job-with-cleanup": "The RayJob spec is invalid: headGroupSpec should have at least one container",
    "job-on-existing-cluster": "cluster name in ClusterSelector should not be empty",
    "job-with-deletion-rules": "The RayJob spec is invalid: headGroupSpec should have at least one container",
}


def test_seeds_were_found() -> None:
    assert len(SEED_MANIFESTS) >= 8
    assert any(doc.get("kind") == "RayJob" for _, doc in SEED_MANIFESTS)


@pytest.mark.parametrize(("name", "doc"), SEED_BLOCKS, ids=[n for n, _ in SEED_BLOCKS])
def test_every_seed_yaml_block_round_trips(name: str, doc: Any) -> None:
    if not isinstance(doc, dict):
        pytest.skip(f"{name} is not a mapping")
    body = orjson.dumps(doc)
    obj: View = decode(body) if doc.get("kind") in KINDS else RayJob.from_json(body)
    if doc.get("kind") in KINDS:
        read_all(obj)
    else:
        # Doc fragments may hold placeholders such as ``rayClusterSpec: ...`` (a string): reading them
        # is a type error, but decoding and re-encoding stays lossless.
        try:
            read_all(obj)
        except FieldTypeError:
            pass
    assert obj.to_json() == body
    apply_crd_defaults(obj)
    assert obj.to_json() == body  # defaulting is pure


@pytest.mark.parametrize(("name", "doc"), SEED_MANIFESTS, ids=[n for n, _ in SEED_MANIFESTS])
def test_every_seed_manifest_validates(name: str, doc: dict[str, Any]) -> None:
    obj = apply_crd_defaults(decode(orjson.dumps(doc)))
    expected = SEED_REJECTED.get(obj.name)

    def validate() -> None:
        if isinstance(obj, RayJob):
            validate_ray_job(obj)
        elif isinstance(obj, RayCluster):
            validate_ray_cluster(obj)
        elif isinstance(obj, RayService):
            validate_ray_service(obj)

    if expected is None:
        validate()
    else:
        with pytest.raises(ValidationError) as info:
            validate()
        assert info.value.message == expected


def test_seed_fragments_validate_as_rayjob_specs_without_crashing() -> None:
    for _, doc in SEED_BLOCKS:
        if not isinstance(doc, dict) or doc.get("kind"):
            continue
        job = apply_crd_defaults(RayJob({"metadata": {"name": "fragment"}, **doc}))
        try:
            validate_ray_job(job)
        except ValidationError:
            pass
