"""Property test: the builders never raise on arbitrary valid-shaped RayClusters, never mutate their
input, and always keep the invariants the controllers rely on (§4.4 labels, Q14 Ray container at
index 0, Q15 ``--block``, owner references, JSON-serialisable output)."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controllers.ray.common import gcs_ft, pod, rbac, service
from controllers.ray.utils import constants as C
from controllers.ray.utils import util as U

DNS = st.from_regex(r"[a-z]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
TEXT = st.text(max_size=12)
QUANTITY = st.one_of(
    st.sampled_from(["0", "1", "500m", "1.5", "2Gi", "1536Mi", "40G", "0.3", "1e3", "1.G", "100000", "4"]),
    st.integers(min_value=0, max_value=10**6).map(str),
    TEXT,  # invalid quantities must be tolerated (skipped), not crash
)
RESOURCE_NAME = st.sampled_from(
    [
        "cpu",
        "memory",
        "nvidia.com/gpu",
        "amd.com/gpu",
        "google.com/tpu",
        "aws.amazon.com/neuroncore",
        "nvidia.com/mig-1g.5gb",
        "custom",
    ]
)
PARAM_KEY = st.one_of(
    st.sampled_from(
        [
            "num-cpus",
            "num-gpus",
            "memory",
            "resources",
            "port",
            "address",
            "block",
            "dashboard-host",
            "dashboard-port",
            "dashboard-agent-listen-port",
            "metrics-export-port",
            "plasma-directory",
            "log-color",
            "include-dashboard",
            "redis-password",
            "object-store-memory",
        ]
    ),
    DNS,
)
PARAM_VALUE = st.one_of(
    st.sampled_from(
        ["true", "false", "True", "FALSE", "0", "6380", "52366", "'{\"TPU\": 1}'", '"{\\"A\\": 1}"', "null"]
    ),
    TEXT,
)
ENV_VAR = st.fixed_dictionaries(
    {"name": st.sampled_from(["RAY_PORT", "RAY_ADDRESS", "FQ_RAY_IP", "REDIS_PASSWORD", "X", "RAY_AUTH_MODE"])},
    optional={"value": TEXT},
)
PORT = st.fixed_dictionaries(
    {"containerPort": st.integers(min_value=1, max_value=65535)},
    optional={"name": st.sampled_from(["serve", "serve-grpc", "dashboard", "gcs-server", "metrics", "client", "x"])},
)


@st.composite
def containers(draw: st.DrawFn, name: str) -> list[dict[str, Any]]:
    container: dict[str, Any] = {"name": name, "image": draw(st.sampled_from(["rayproject/ray:2.46.0", ""]))}
    if draw(st.booleans()):
        container["resources"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "limits": st.dictionaries(RESOURCE_NAME, QUANTITY, max_size=4),
                    "requests": st.dictionaries(RESOURCE_NAME, QUANTITY, max_size=3),
                },
            )
        )
    if draw(st.booleans()):
        container["ports"] = draw(st.lists(PORT, max_size=4))
    if draw(st.booleans()):
        container["env"] = draw(st.lists(ENV_VAR, max_size=3))
    if draw(st.booleans()):
        container["command"] = draw(
            st.lists(st.sampled_from(["bash", "-c", "ray start --head", "echo", "x"]), max_size=3)
        )
    if draw(st.booleans()):
        container["args"] = draw(st.lists(TEXT, max_size=2))
    if draw(st.booleans()):
        container["volumeMounts"] = [
            {"name": "v", "mountPath": draw(st.sampled_from(["/dev/shm", "/tmp/ray", "/data"]))}
        ]
    extra = [{"name": "sidecar", "image": "busybox"}] if draw(st.booleans()) else []
    return [container, *extra]


@st.composite
def templates(draw: st.DrawFn, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": draw(containers(name))}
    if draw(st.booleans()):
        spec["initContainers"] = [{"name": "user-init", "image": "busybox"}]
    if draw(st.booleans()):
        spec["volumes"] = [{"name": "v", "emptyDir": {}}]
    if draw(st.booleans()):
        spec["serviceAccountName"] = draw(DNS)
    template: dict[str, Any] = {"spec": spec}
    if draw(st.booleans()):
        template["metadata"] = {
            "labels": draw(
                st.dictionaries(
                    st.sampled_from(
                        [
                            C.RAY_CLUSTER_LABEL_KEY,
                            C.RAY_NODE_TYPE_LABEL_KEY,
                            "app",
                            C.KUBERNETES_APPLICATION_NAME_LABEL_KEY,
                        ]
                    ),
                    DNS,
                    max_size=3,
                )
            ),
            "annotations": draw(
                st.dictionaries(
                    st.sampled_from([C.RAY_OVERWRITE_CONTAINER_CMD_ANNOTATION_KEY, "a"]),
                    st.sampled_from(["true", "x"]),
                    max_size=2,
                )
            ),
        }
    return template


@st.composite
def groups(draw: st.DrawFn) -> dict[str, Any]:
    group: dict[str, Any] = {
        "groupName": draw(DNS),
        "rayStartParams": draw(st.dictionaries(PARAM_KEY, PARAM_VALUE, max_size=4)),
        "template": draw(templates("ray-worker")),
    }
    for key in ("replicas", "minReplicas", "maxReplicas"):
        if draw(st.booleans()):
            group[key] = draw(st.integers(min_value=0, max_value=C.MAX_INT32))
    if draw(st.booleans()):
        group["numOfHosts"] = draw(st.integers(min_value=1, max_value=4))
    if draw(st.booleans()):
        group["suspend"] = draw(st.booleans())
    if draw(st.booleans()):
        group["resources"] = draw(st.dictionaries(st.one_of(RESOURCE_NAME, DNS), QUANTITY, max_size=3))
    if draw(st.booleans()):
        group["labels"] = draw(st.dictionaries(DNS, DNS, max_size=2))
    return group


@st.composite
def clusters(draw: st.DrawFn) -> dict[str, Any]:
    head: dict[str, Any] = {
        "rayStartParams": draw(st.dictionaries(PARAM_KEY, PARAM_VALUE, max_size=5)),
        "template": draw(templates("ray-head")),
    }
    if draw(st.booleans()):
        head["serviceType"] = draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", ""]))
    if draw(st.booleans()):
        head["headService"] = {"metadata": {"name": draw(st.sampled_from(["", "custom-head"]))}, "spec": {}}
    if draw(st.booleans()):
        head["resources"] = draw(st.dictionaries(st.one_of(RESOURCE_NAME, DNS), QUANTITY, max_size=3))
    if draw(st.booleans()):
        head["labels"] = draw(st.dictionaries(DNS, DNS, max_size=2))
    spec: dict[str, Any] = {"headGroupSpec": head, "workerGroupSpecs": draw(st.lists(groups(), max_size=3))}
    if draw(st.booleans()):
        spec["rayVersion"] = draw(st.one_of(st.sampled_from(["2.9.0", "2.53.0", "2.60.0rc1", "latest"]), TEXT))
    if draw(st.booleans()):
        spec["enableInTreeAutoscaling"] = draw(st.booleans())
        spec["autoscalerOptions"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "version": st.sampled_from(["v1", "v2"]),
                    "image": DNS,
                    "env": st.lists(ENV_VAR, max_size=2),
                    "command": st.lists(DNS, max_size=2),
                },
            )
        )
    if draw(st.booleans()):
        spec["authOptions"] = draw(
            st.fixed_dictionaries(
                {"mode": st.sampled_from(["token", "disabled"])},
                optional={"enableK8sTokenAuth": st.booleans(), "secretName": DNS},
            )
        )
    if draw(st.booleans()):
        spec["gcsFaultToleranceOptions"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "backend": st.sampled_from(["redis", "rocksdb", ""]),
                    "redisAddress": DNS,
                    "externalStorageNamespace": DNS,
                    "redisPassword": st.fixed_dictionaries({}, optional={"value": DNS}),
                    "redisUsername": st.fixed_dictionaries({}, optional={"value": DNS}),
                    "storage": st.fixed_dictionaries(
                        {},
                        optional={
                            "size": QUANTITY,
                            "subPath": DNS,
                            "deletionPolicy": st.sampled_from(["Retain", "DeleteWithCluster"]),
                        },
                    ),
                },
            )
        )
    if draw(st.booleans()):
        spec["headServiceAnnotations"] = draw(st.dictionaries(DNS, DNS, max_size=2))
    annotations = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    C.RAY_FT_ENABLED_ANNOTATION_KEY,
                    C.RAY_OVERWRITE_CONTAINER_CMD_ANNOTATION_KEY,
                    C.ENABLE_SERVE_SERVICE_KEY,
                    C.RAY_EXTERNAL_STORAGE_NS_ANNOTATION_KEY,
                ]
            ),
            st.sampled_from(["true", "false", "TRUE", "ns"]),
            max_size=3,
        )
    )
    labels = draw(
        st.dictionaries(
            st.just(C.RAY_ORIGINATED_FROM_CRD_LABEL_KEY),
            st.sampled_from(["RayJob", "RayService", "RayCluster", "x"]),
            max_size=1,
        )
    )
    metadata: dict[str, Any] = {"name": draw(DNS), "annotations": annotations, "labels": labels}
    if draw(st.booleans()):
        metadata["namespace"] = draw(DNS)
    if draw(st.booleans()):
        metadata["uid"] = draw(st.uuids()).hex
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": metadata, "spec": spec}


ENVS = st.dictionaries(
    st.sampled_from(
        [
            C.ENABLE_INIT_CONTAINER_INJECTION,
            C.ENABLE_PROBES_INJECTION,
            C.ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE,
            C.ENABLE_LOGIN_SHELL,
            C.ENABLE_DETERMINISTIC_HEAD_POD_NAME,
            C.CLUSTER_DOMAIN_ENV_KEY,
            C.ENABLE_GCS_FT_REDIS_CLEANUP,
        ]
    ),
    st.sampled_from(["true", "false", "", "example.org"]),
    max_size=4,
)


def _check_pod(p: dict[str, Any], cluster: dict[str, Any], node_type: str) -> None:
    labels = p["metadata"]["labels"]
    assert labels[C.RAY_CLUSTER_LABEL_KEY] == cluster["metadata"]["name"]
    assert labels[C.RAY_NODE_TYPE_LABEL_KEY] == node_type
    refs = p["metadata"]["ownerReferences"]
    assert [r["controller"] for r in refs].count(True) == 1
    ray = p["spec"]["containers"][0]
    expected_name = "ray-head" if node_type == "head" else "ray-worker"
    assert ray["name"] == expected_name  # Q14: the Ray container stays at index 0
    env = ray["env"]
    cmd = next(e["value"] for e in env if e["name"] == C.KUBERAY_GEN_RAY_START_CMD)
    assert " --block " in cmd  # Q15: block is always forced
    assert cmd.startswith("ray start --head " if node_type == "head" else "ray start ")
    if node_type == "worker":
        assert any(e["name"] == C.FQ_RAY_IP for e in env)
    orjson.dumps(p)
    yaml.safe_dump(p)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters(), env=ENVS)
def test_builders_never_raise(cluster: dict[str, Any], env: dict[str, str]) -> None:
    before = json.dumps(cluster, sort_keys=True)
    head = pod.build_head_pod(cluster, env=env)
    _check_pod(head, cluster, "head")
    for group in U.worker_group_specs(cluster):
        _check_pod(pod.build_worker_pod(cluster, group, env=env, replica_name="g-abcde"), cluster, "worker")
    svc = service.build_head_service(cluster, env=env)
    assert svc["spec"]["ports"]
    assert svc["spec"]["selector"][C.RAY_CLUSTER_LABEL_KEY] == cluster["metadata"]["name"]
    try:
        service.build_serve_service(cluster)
    except service.ServiceBuildError:
        pass
    service.build_headless_service(cluster)
    for build in (rbac.build_service_account, rbac.build_role, rbac.build_role_binding, gcs_ft.build_gcs_storage_pvc):
        orjson.dumps(build(cluster))
    if gcs_ft.needs_redis_cleanup_finalizer(cluster, env):
        job = gcs_ft.build_redis_cleanup_job(cluster, env=env)
        assert len(job["metadata"]["name"]) <= 63
        assert len(job["spec"]["template"]["spec"]["containers"]) == 1
    U.calculate_desired_replicas(cluster)
    U.calculate_desired_resources(cluster)
    U.calculate_min_resources(cluster)
    U.generate_hash_without_replicas_and_workers_to_delete(cluster["spec"])
    assert json.dumps(cluster, sort_keys=True) == before  # builders never mutate their input


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=25))
def test_quantity_parser_total(text: str) -> None:
    """parse_quantity either returns a quantity whose canonical form re-parses to the same value,
    or raises QuantityError; it never raises anything else."""
    q = U.try_parse_quantity(text)
    if q is not None:
        again = U.parse_quantity(q.canonical())
        assert again.exact == q.exact


@settings(max_examples=200, deadline=None)
@given(params=st.dictionaries(PARAM_KEY, PARAM_VALUE, max_size=6))
def test_param_map_rendering_is_sorted_and_complete(params: dict[str, str]) -> None:
    rendered = pod.convert_param_map(copy.deepcopy(params))
    positions = []
    for key, value in params.items():
        if value.lower() == "false" and key not in C.SPECIAL_BOOLEAN_PARAMS:
            assert f" --{key} " not in rendered and f" --{key}=" not in rendered
            continue
        token = (
            f" --{key} " if value.lower() == "true" and key not in C.SPECIAL_BOOLEAN_PARAMS else f" --{key}={value} "
        )
        assert token in rendered
        positions.append((rendered.index(token), key))
    assert [k for _, k in sorted(positions)] == sorted(k for _, k in positions)
