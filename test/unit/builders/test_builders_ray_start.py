"""Rule-by-rule tests of the ``ray start`` command builder and of pod details (spec §4.6, §4.7, Q15,
Q16). The golden files show the same rules in context; these pin each rule in isolation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controllers.ray.common import gcs_ft, pod, rbac, service
from controllers.ray.utils import constants as C
from controllers.ray.utils import util as U

# ---- convertParamMap (Q15) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "rendered"),
    [
        ({}, ""),
        ({"block": "true"}, " --block "),
        ({"block": "True"}, " --block "),
        ({"block": "TRUE"}, " --block "),
        ({"disable-usage-stats": "false"}, ""),
        ({"disable-usage-stats": "False"}, ""),
        ({"log-color": "false"}, " --log-color=false "),
        ({"log-color": "true"}, " --log-color=true "),
        ({"log-color": "auto"}, " --log-color=auto "),
        ({"include-dashboard": "false"}, " --include-dashboard=false "),
        ({"include-log-monitor": "False"}, " --include-log-monitor=False "),
        ({"num-cpus": "1", "address": "h:6379"}, " --address=h:6379  --num-cpus=1 "),
        ({"b": "yes", "B": "no", "a": ""}, " --B=no  --a=  --b=yes "),  # byte order, empty values kept
        ({"resources": "'{\"TPU\":4}'"}, " --resources='{\"TPU\":4}' "),
    ],
)
def test_convert_param_map(params: dict[str, str], rendered: str) -> None:
    assert pod.convert_param_map(params) == rendered


def test_convert_cmd_to_string() -> None:
    assert pod.convert_cmd_to_string(["echo", "a b"]) == " echo  a b "
    assert pod.convert_cmd_to_string([]) == ""


# ---- setMissingRayStartParams ----------------------------------------------------------------------


def test_set_missing_ray_start_params_head() -> None:
    params: dict[str, str] = {"block": "false"}
    pod.set_missing_ray_start_params(params, C.RayNodeType.HEAD, "6379", "")
    assert params == {
        "block": "true",
        "dashboard-host": "0.0.0.0",
        "metrics-export-port": "8080",
        "dashboard-agent-listen-port": "52365",
    }


def test_set_missing_ray_start_params_worker_keeps_user_values() -> None:
    params = {"address": "a:1", "metrics-export-port": "1", "dashboard-agent-listen-port": "2"}
    pod.set_missing_ray_start_params(params, C.RayNodeType.WORKER, "6380", "fqdn")
    assert params == {**params, "block": "true"}
    params = {}
    pod.set_missing_ray_start_params(params, C.RayNodeType.WORKER, "6380", "svc.ns.svc.cluster.local")
    assert params["address"] == "svc.ns.svc.cluster.local:6380"
    assert "dashboard-host" not in params


# ---- resource inference (Q16) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"limits": {"cpu": "500m"}}, {"num-cpus": "1"}),
        ({"limits": {"cpu": "1001m"}}, {"num-cpus": "2"}),
        ({"requests": {"cpu": "2"}}, {"num-cpus": "2"}),
        ({"limits": {"cpu": "0"}, "requests": {"cpu": "3"}}, {"num-cpus": "3"}),
        ({"limits": {"cpu": "4"}, "requests": {"cpu": "3"}}, {"num-cpus": "4"}),
        ({"requests": {"memory": "1Gi"}}, {}),  # memory from limits only
        ({"limits": {"memory": "1Gi"}}, {"memory": "1073741824"}),
        ({"limits": {"memory": "500M"}}, {"memory": "500000000"}),
        ({"limits": {"memory": "0"}}, {}),
        ({"limits": {"nvidia.com/gpu": "1", "amd.com/gpu": "2"}}, {"num-gpus": "2"}),  # first sorted key
        ({"limits": {"nvidia.com/gpu": "0"}}, {}),
        ({"limits": {"google.com/tpu": "4"}}, {"resources": "'{\"TPU\":4}'"}),
        ({"limits": {"google.com/tpu": "0"}}, {}),
        (
            {"limits": {"google.com/tpu": "4", "aws.amazon.com/neuroncore": "2"}},
            {"resources": "'{\"neuron_cores\":2}'"},  # first *sorted* accelerator only
        ),
        ({"limits": {"cpu": "not-a-quantity"}}, {}),
    ],
)
def test_resource_inference(resources: dict[str, Any], expected: dict[str, str]) -> None:
    params: dict[str, str] = {}
    pod.generate_ray_start_command(C.RayNodeType.WORKER, params, resources)
    assert params == expected


def test_explicit_params_win_over_inference() -> None:
    params = {"num-cpus": "7", "memory": "1", "num-gpus": "0"}
    cmd = pod.generate_ray_start_command(
        C.RayNodeType.HEAD, params, {"limits": {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "4"}}
    )
    assert cmd == "ray start --head  --memory=1  --num-cpus=7  --num-gpus=0 "


@pytest.mark.parametrize(
    ("resources_param", "expected_resources", "num_gpus"),
    [
        ("'{\"A\": 1}'", '\'{"A":1,"TPU":4}\'', "1"),
        ('"{\\"A\\": 1}"', '"{\\"A\\": 1}"', None),  # upstream sample format: undecodable -> no inference
        ('`{"A": 2.5}`', '\'{"A":2.5,"TPU":4}\'', "1"),
        ('  {"TPU": 1} ', '  {"TPU": 1} ', "1"),  # an accelerator already present
        ("null", "'{\"TPU\":4}'", "1"),
        ("[1]", "[1]", None),
        ('{"A": "1"}', '{"A": "1"}', None),  # map[string]float64 rejects strings
        ('{"A": true}', '{"A": true}', None),
        ('{"A": NaN}', '{"A": NaN}', None),
        ('{"A": 1e400}', '{"A": 1e400}', None),
    ],
)
def test_accelerator_merge_with_existing_resources(
    resources_param: str, expected_resources: str, num_gpus: str | None
) -> None:
    params = {"resources": resources_param}
    pod.generate_ray_start_command(
        C.RayNodeType.WORKER, params, {"limits": {"google.com/tpu": "4", "nvidia.com/gpu": "1"}}
    )
    assert params["resources"] == expected_resources
    assert params.get("num-gpus") == num_gpus


def test_group_resources_and_labels() -> None:
    params: dict[str, str] = {"num-cpus": "99"}
    pod.update_ray_start_params_resources(
        params, {"CPU": "1.5", "Memory": "1Gi", "nvidia.com/mig-1g.5gb": "2", "TPU": "4", "x": "500m", "bad": "?"}
    )
    assert params == {
        "num-cpus": "2",
        "memory": "1073741824",
        "num-gpus": "2",
        "resources": '\'{"TPU":4,"x":0.5}\'',
    }
    pod.update_ray_start_params_labels(params, {"z": "1", "a": "2"})
    assert params["labels"] == "a=2,z=1"
    empty: dict[str, str] = {}
    pod.update_ray_start_params_resources(empty, {})
    pod.update_ray_start_params_labels(empty, {})
    assert empty == {}


# ---- labels ----------------------------------------------------------------------------------------


def test_label_pod_protected_keys() -> None:
    labels = pod.label_pod(
        C.RayNodeType.WORKER,
        "c",
        "g",
        {
            "ray.io/cluster": "x",
            "ray.io/node-type": "head",
            "ray.io/group": "x",
            "ray.io/identifier": "id",
            "app.kubernetes.io/name": "n",
            "extra": "e",
        },
    )
    assert labels == {
        "ray.io/is-ray-node": "yes",
        "ray.io/cluster": "c",
        "ray.io/node-type": "worker",
        "ray.io/group": "g",
        "ray.io/identifier": "id",
        "app.kubernetes.io/name": "n",
        "app.kubernetes.io/created-by": "kuberay-operator",
        "extra": "e",
    }


# ---- whole pods --------------------------------------------------------------------------------------


def _cluster(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "headGroupSpec": {
            "rayStartParams": {},
            "template": {"spec": {"containers": [{"name": "ray-head", "image": "i"}]}},
        },
        "workerGroupSpecs": [
            {
                "groupName": "g",
                "replicas": 1,
                "rayStartParams": {},
                "template": {"spec": {"containers": [{"name": "ray-worker", "image": "i"}]}},
            }
        ],
    }
    base.update(spec)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": "c", "namespace": "n", "uid": "u"},
        "spec": base,
    }


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_wait_gcs_ready_script_layout() -> None:
    script = pod.wait_gcs_ready_script("h.ns.svc.cluster.local", "6379")
    assert script.startswith("\n\t\t\t\t\tSECONDS=0\n")
    assert script.endswith("\n\t\t\t\t\tdone\n\t\t\t\t")
    assert script.count("ray health-check --address h.ns.svc.cluster.local:6379") == 2
    assert "(( SECONDS <= 120 ))" in script
    assert "sleep 5" in script
    assert C.WAIT_GCS_READY_FAQ_URL in script


def test_prerelease_ray_version_uses_http_probes() -> None:
    head = pod.build_head_pod(_cluster(rayVersion="v2.60.0rc1"))
    probe = head["spec"]["containers"][0]["livenessProbe"]
    assert probe["httpGet"] == {"path": "/api/healthz", "port": 52365}
    assert "exec" not in probe


def test_auth_mode_disabled_injects_nothing() -> None:
    cluster = _cluster(authOptions={"mode": "disabled"})
    for p in (pod.build_head_pod(cluster), pod.build_worker_pod(cluster, cluster["spec"]["workerGroupSpecs"][0])):
        for c in [*p["spec"]["containers"], *p["spec"].get("initContainers", [])]:
            assert not any("AUTH" in name for name in _env(c))


def test_auth_secret_name_override() -> None:
    cluster = _cluster(authOptions={"mode": "token", "secretName": "my-secret"})
    head = pod.build_head_pod(cluster)
    ref = _env(head["spec"]["containers"][0])["RAY_AUTH_TOKEN"]
    assert ref == {"secretKeyRef": {"name": "my-secret", "key": "auth_token"}}


def test_builders_require_a_ray_container() -> None:
    cluster = _cluster()
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"] = []
    with pytest.raises(ValueError, match="containers"):
        pod.build_head_pod(cluster)


def test_default_spec_hash_and_version_annotations() -> None:
    cluster = _cluster()
    head = pod.build_head_pod(cluster, kuberay_version="nightly")
    annotations = head["metadata"]["annotations"]
    assert annotations[C.KUBERAY_VERSION_ANNOTATION_KEY] == "nightly"
    assert annotations[C.UPGRADE_STRATEGY_RECREATE_HASH_KEY] == U.generate_hash_without_replicas_and_workers_to_delete(
        cluster["spec"]
    )
    env = _env(head["spec"]["containers"][0])
    assert env["RAY_USAGE_STATS_EXTRA_TAGS"] == "kuberay_version=nightly;kuberay_crd=RayCluster"


def test_head_pod_without_namespace_omits_it() -> None:
    cluster = _cluster()
    del cluster["metadata"]["namespace"]
    head = pod.build_head_pod(cluster)
    assert "namespace" not in head["metadata"]
    assert _env(head["spec"]["containers"][0])["RAY_ADDRESS"] == "127.0.0.1:6379"
    worker = pod.build_worker_pod(cluster, cluster["spec"]["workerGroupSpecs"][0])
    assert _env(worker["spec"]["containers"][0])["FQ_RAY_IP"] == "c-head-svc..svc.cluster.local"


def test_worker_pod_multi_host_labels_need_num_of_hosts() -> None:
    cluster = _cluster()
    group = copy.deepcopy(cluster["spec"]["workerGroupSpecs"][0])
    single = pod.build_worker_pod(cluster, group, replica_index=3, replica_name="g-abcde", host_index=1)
    assert single["metadata"]["labels"][C.RAY_WORKER_REPLICA_INDEX_KEY] == "3"
    assert C.RAY_WORKER_REPLICA_NAME_KEY not in single["metadata"]["labels"]
    group["numOfHosts"] = 2
    multi = pod.build_worker_pod(cluster, group, replica_index=3, replica_name="g-abcde", host_index=1)
    assert multi["metadata"]["labels"][C.RAY_WORKER_REPLICA_NAME_KEY] == "g-abcde"
    assert multi["metadata"]["labels"][C.RAY_HOST_INDEX_KEY] == "1"


def test_rayservice_head_readiness_is_not_serve_checked() -> None:
    cluster = _cluster()
    cluster["metadata"]["labels"] = {C.RAY_ORIGINATED_FROM_CRD_LABEL_KEY: "RayService"}
    head = pod.build_head_pod(cluster)
    readiness = head["spec"]["containers"][0]["readinessProbe"]
    assert readiness["failureThreshold"] == 10
    assert "-/healthz" not in readiness["exec"]["command"][2]


def test_autoscaler_container_defaults() -> None:
    container = pod.build_autoscaler_container("img")
    assert container["command"] == ["/bin/bash", "-c", "--"]
    assert container["args"] == [C.AUTOSCALER_START_COMMAND]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["resources"] == {
        "limits": {"cpu": "500m", "memory": "512Mi"},
        "requests": {"cpu": "500m", "memory": "512Mi"},
    }
    assert pod.build_autoscaler_container("img", {C.ENABLE_LOGIN_SHELL: "true"})["command"][1] == "-cl"


def test_service_and_rbac_helpers() -> None:
    cluster = _cluster(enableInTreeAutoscaling=True)
    assert rbac.autoscaler_service_account_name(cluster) == "c"
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["serviceAccountName"] = "s" * 11 + "1" + "s" * 49
    assert rbac.autoscaler_service_account_name(cluster) == "r" + "s" * 49
    assert rbac.build_role_binding(cluster)["subjects"][0]["name"] == "r" + "s" * 49
    head = pod.build_head_pod(cluster)
    assert head["spec"]["serviceAccountName"] == "r" + "s" * 49
    assert not service.is_serve_service_enabled(cluster)
    assert service.get_service_ports(_cluster()) == C.DEFAULT_HEAD_SERVICE_PORTS


@pytest.mark.parametrize(
    ("env", "annotations", "spec", "needed"),
    [
        ({}, {C.RAY_FT_ENABLED_ANNOTATION_KEY: "true"}, {}, True),
        ({C.ENABLE_GCS_FT_REDIS_CLEANUP: "false"}, {C.RAY_FT_ENABLED_ANNOTATION_KEY: "true"}, {}, False),
        ({}, {}, {"gcsFaultToleranceOptions": {"backend": "rocksdb"}}, False),
        ({}, {}, {"gcsFaultToleranceOptions": {"redisAddress": "r:6379"}}, True),
        ({}, {}, {}, False),
    ],
)
def test_needs_redis_cleanup_finalizer(
    env: dict[str, str], annotations: dict[str, str], spec: dict[str, Any], needed: bool
) -> None:
    cluster = _cluster(**spec)
    cluster["metadata"]["annotations"] = annotations
    assert gcs_ft.needs_redis_cleanup_finalizer(cluster, env) is needed


def test_gcs_ft_deletion_timeout() -> None:
    cluster = _cluster()
    assert gcs_ft.gcs_ft_deletion_timeout_seconds(cluster) == 300
    cluster["metadata"]["annotations"] = {C.GCS_FT_DELETION_TIMEOUT_ANNOTATION_KEY: "30"}
    assert gcs_ft.gcs_ft_deletion_timeout_seconds(cluster) == 30
    cluster["metadata"]["annotations"] = {C.GCS_FT_DELETION_TIMEOUT_ANNOTATION_KEY: "soon"}
    assert gcs_ft.gcs_ft_deletion_timeout_seconds(cluster) == 300


def test_gcs_pvc_not_built_for_claim_name_or_redis() -> None:
    assert gcs_ft.build_gcs_storage_pvc(_cluster(gcsFaultToleranceOptions={"redisAddress": "r"})) is None
    claim = _cluster(gcsFaultToleranceOptions={"backend": "rocksdb", "storage": {"claimName": "mine"}})
    assert gcs_ft.build_gcs_storage_pvc(claim) is None
    head = pod.build_head_pod(claim)
    volumes = {v["name"]: v for v in head["spec"]["volumes"]}
    assert volumes["gcs-storage"] == {"name": "gcs-storage", "persistentVolumeClaim": {"claimName": "mine"}}
