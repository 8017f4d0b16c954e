"""Table tests for controllers.ray.utils.util and .quantity (names, quantities, replica maths,
versions, Go JSON encoding, hashing). Expected values come from upstream's util_test.go tables and
apimachinery's quantity semantics."""

from __future__ import annotations

import random
from typing import Any

import pytest

from controllers.ray.utils import constants as C
from controllers.ray.utils import util as U
from controllers.ray.utils.quantity import QuantityError, QuantityFormat, go_pow10, parse_quantity

# ---- quantities ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical", "value", "fmt"),
    [
        ("0", "0", 0, QuantityFormat.DECIMAL_SI),
        ("000", "0", 0, QuantityFormat.DECIMAL_SI),
        ("Gi", "0", 0, QuantityFormat.BINARY_SI),  # Go accepts a bare suffix as zero
        ("m", "0", 0, QuantityFormat.DECIMAL_SI),
        ("500m", "500m", 1, QuantityFormat.DECIMAL_SI),  # Q16: Value() rounds up
        ("1", "1", 1, QuantityFormat.DECIMAL_SI),
        ("1000m", "1", 1, QuantityFormat.DECIMAL_SI),
        ("1.5", "1500m", 2, QuantityFormat.DECIMAL_SI),
        ("0.3", "300m", 1, QuantityFormat.DECIMAL_SI),
        (".5", "500m", 1, QuantityFormat.DECIMAL_SI),
        ("+1", "1", 1, QuantityFormat.DECIMAL_SI),
        ("1.G", "1G", 10**9, QuantityFormat.DECIMAL_SI),
        ("2G", "2G", 2 * 10**9, QuantityFormat.DECIMAL_SI),
        ("1.5G", "1500M", 1_500_000_000, QuantityFormat.DECIMAL_SI),
        ("100000", "100k", 100_000, QuantityFormat.DECIMAL_SI),
        ("1E", "1E", 10**18, QuantityFormat.DECIMAL_SI),
        ("1n", "1n", 1, QuantityFormat.DECIMAL_SI),
        ("0.1n", "1n", 1, QuantityFormat.DECIMAL_SI),  # rounded up to nano precision
        ("1u", "1u", 1, QuantityFormat.DECIMAL_SI),
        ("2Gi", "2Gi", 2 * 2**30, QuantityFormat.BINARY_SI),
        ("2048Mi", "2Gi", 2 * 2**30, QuantityFormat.BINARY_SI),
        ("1000Mi", "1000Mi", 1000 * 2**20, QuantityFormat.BINARY_SI),
        ("1.5Gi", "1536Mi", 1_610_612_736, QuantityFormat.BINARY_SI),
        ("1Ki", "1Ki", 1024, QuantityFormat.BINARY_SI),
        ("0.5Ki", "512", 512, QuantityFormat.BINARY_SI),  # |q| < 1024 prints as DecimalSI
        ("0.5Mi", "512Ki", 524_288, QuantityFormat.BINARY_SI),
        ("1e3", "1e3", 1000, QuantityFormat.DECIMAL_EXPONENT),
        ("1E3", "1e3", 1000, QuantityFormat.DECIMAL_EXPONENT),
        ("1e4", "10e3", 10_000, QuantityFormat.DECIMAL_EXPONENT),
        ("1.5e3", "1500", 1500, QuantityFormat.DECIMAL_EXPONENT),
        ("1e-3", "1e-3", 1, QuantityFormat.DECIMAL_EXPONENT),
        ("-1", "-1", -1, QuantityFormat.DECIMAL_SI),
        ("-500m", "-500m", -1, QuantityFormat.DECIMAL_SI),  # away from zero on the int64 path
        ("123456789012345678901", "123456789012345678901", 123456789012345678901, QuantityFormat.DECIMAL_SI),
    ],
)
def test_parse_quantity(raw: str, canonical: str, value: int, fmt: QuantityFormat) -> None:
    q = parse_quantity(raw)
    assert q.canonical() == canonical
    assert q.value() == value
    assert q.format == fmt


@pytest.mark.parametrize("raw", ["", "1K", "abc", "1 Gi", "1Gix", "--1", "1e", "1.5.5", "1i", "1e1.5", "1ee3"])
def test_parse_quantity_rejects(raw: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(raw)
    assert U.try_parse_quantity(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("4", 4.0),
        ("0.5", 0.5),
        ("500m", 0.5),
        ("0.3", 0.30000000000000004),  # 3 * Pow10(-1), exactly as Go's AsApproximateFloat64
        ("1Gi", 1073741824.0),
        ("1.5Gi", 1610612736.0),
        ("2.5", 2.5),
        ("1e3", 1000.0),
        (4, 4.0),
        (0.25, 0.25),
    ],
)
def test_as_approximate_float64(raw: Any, expected: float) -> None:
    assert parse_quantity(raw).as_approximate_float64() == expected


def test_quantity_from_yaml_numbers_and_non_quantities() -> None:
    assert parse_quantity(2).value() == 2
    assert parse_quantity(1.5).canonical() == "1500m"
    assert U.try_parse_quantity(True) is None
    assert U.try_parse_quantity(None) is None
    assert U.try_parse_quantity({"a": 1}) is None


def test_quantity_add_keeps_first_nonzero_format() -> None:
    total = parse_quantity("100Mi").add(parse_quantity("200Mi").mul_int(8))
    assert total.canonical() == "1700Mi"
    assert parse_quantity("0").add(parse_quantity("1Gi")).format == QuantityFormat.BINARY_SI


def test_go_pow10_table() -> None:
    assert go_pow10(0) == 1.0
    assert go_pow10(-3) == 1e-3
    assert go_pow10(9) == 1e9
    assert go_pow10(400) == float("inf")
    assert go_pow10(-400) == 0.0


# ---- Go JSON ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (4.0, "4"),
        (0.5, "0.5"),
        (0.30000000000000004, "0.30000000000000004"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1.5e-7, "1.5e-7"),
        (1e-6, "0.000001"),
        (1e-10, "1e-10"),
        (123456789.0, "123456789"),
        (-0.0, "-0"),
        (-2.5, "-2.5"),
    ],
)
def test_go_json_float(value: float, text: str) -> None:
    assert U.go_json_float(value) == text


def test_go_json_dumps_sorts_and_escapes_like_go() -> None:
    assert U.go_json_dumps({"b": 1.0, "a": 0.5}) == '{"a":0.5,"b":1}'
    assert U.go_json_dumps({"<x>&": 2.0}) == '{"\\u003cx\\u003e\\u0026":2}'
    assert U.go_json_dumps({"t\tb\b": 1.0}) == '{"t\\tb\\u0008":1}'


# ---- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "72fbcc7e-a661-4b18e-ca41-e903-fc3ae634b18e-lazer090scholar-director-s",
            "rca41-e903-fc3ae634b18e-lazer090scholar-director-s",
        ),
        (
            "--------566666--------444433-----------222222----------4444",
            "r6666--------444433-----------222222----------4444",
        ),
        ("acceptable-name-head-12345", "acceptable-name-head-12345"),
        ("1abc", "rabc"),
        ("-abc", "rabc"),
        ("+abc", "+abc"),  # '+' is a symbol, not punctuation, for unicode.IsPunct
        ("_abc", "rabc"),
        ("", ""),
    ],
)
def test_check_name(raw: str, expected: str) -> None:
    assert U.check_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a" * 70, "a" * 63),
        ("-" + "b" * 10, "r" + "b" * 10),
        ("1abc", "1abc"),  # CheckLabel does not touch digits
        ("x" * 7 + "." + "y" * 62, "r" + "y" * 62),
    ],
)
def test_check_label(raw: str, expected: str) -> None:
    assert U.check_label(raw) == expected


@pytest.mark.parametrize(
    ("name", "namespace", "expected"),
    [
        ("cv-traffic-training-202402090958", "development-namespace", "cv-traffic-training-2024020909"),
        ("2-step-cv-training-network-revisited", "development-namespace", "r-step-cv-training-network-rev"),
        ("acceptable-name-head-12345", "development-namespace", "acceptable-name-head-12345"),
    ],
)
def test_check_route_name(name: str, namespace: str, expected: str) -> None:
    assert U.check_route_name(name, namespace) == expected


@pytest.mark.parametrize(
    ("prefix", "node_type", "generate", "expected"),
    [
        ("ray-cluster-group-name-01", C.RayNodeType.WORKER, True, "ray-cluster-group-name-01-worker-"),
        (
            "ray-cluster-0000000000000000000000011111111122222233333333333333-group-name",
            C.RayNodeType.WORKER,
            True,
            "ray-cluster-00000000000000000000000111111111222222-worker-",
        ),
        ("ray-cluster-01", C.RayNodeType.HEAD, False, "ray-cluster-01-head"),
        ("ray-cluster-01", C.RayNodeType.HEAD, True, "ray-cluster-01-head-"),
        (
            "ray-cluster-0000000000000000000000011111111122222233333333333333",
            C.RayNodeType.HEAD,
            False,
            "ray-cluster-00000000000000000000000111111111222222-head",
        ),
        ("My-Cluster", C.RayNodeType.HEAD, True, "my-cluster-head-"),
    ],
)
def test_pod_name(prefix: str, node_type: str, generate: bool, expected: str) -> None:
    name = U.pod_name(prefix, node_type, generate)
    assert name == expected
    assert len(name) <= 58  # 63 minus the 5 random characters of generateName


def test_head_pod_name_env_switch() -> None:
    assert U.head_pod_name("c") == ("c-head-", False)
    assert U.head_pod_name("c", {C.ENABLE_DETERMINISTIC_HEAD_POD_NAME: "TRUE"}) == ("c-head", True)
    assert U.head_pod_name("c", {C.ENABLE_DETERMINISTIC_HEAD_POD_NAME: "1"}) == ("c-head-", False)
    assert U.worker_pod_generate_name("c", "g") == "c-g-worker-"


def _cluster(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "raycluster-sample", "namespace": "ns", "uid": "u"}, "spec": spec}


def test_generate_head_service_name() -> None:
    custom = {"headGroupSpec": {"headService": {"metadata": {"name": "my-head-svc"}}}}
    assert U.generate_head_service_name(C.CRDType.RAY_CLUSTER, {}, "raycluster-sample") == "raycluster-sample-head-svc"
    assert U.generate_head_service_name(C.CRDType.RAY_CLUSTER, custom, "raycluster-sample") == "my-head-svc"
    assert (
        U.generate_head_service_name(C.CRDType.RAY_SERVICE, custom, "rayservice-sample") == "rayservice-sample-head-svc"
    )
    assert U.generate_head_service_name(C.CRDType.RAY_JOB, custom, "rayjob-sample") == "rayjob-sample-head-svc"
    empty_custom = {"headGroupSpec": {"headService": {"metadata": {"name": ""}}}}
    assert U.generate_head_service_name(C.CRDType.RAY_CLUSTER, empty_custom, "c") == "c-head-svc"


def test_fqdn_and_cluster_domain() -> None:
    cluster = _cluster()
    assert U.generate_fqdn_service_name(cluster) == "raycluster-sample-head-svc.ns.svc.cluster.local"
    assert (
        U.generate_fqdn_service_name(cluster, env={C.CLUSTER_DOMAIN_ENV_KEY: "abc.com"})
        == "raycluster-sample-head-svc.ns.svc.abc.com"
    )
    assert U.get_cluster_domain_name({C.CLUSTER_DOMAIN_ENV_KEY: ""}) == "cluster.local"
    assert U.extract_ray_ip_from_fqdn("raycluster-sample-head-svc.ns.svc.cluster.local") == "raycluster-sample-head-svc"


def test_other_names() -> None:
    assert U.generate_serve_service_name("c") == "c-serve-svc"
    assert U.generate_serve_service_label("c") == "c-serve"
    assert U.headless_service_name("c") == "c-headless"
    assert U.generate_ingress_name("c") == "c-head-ingress"
    # CheckName keeps the last 50 characters, then replaces the leading digit.
    assert U.generate_ingress_name("a" * 10 + "1" + "b" * 36) == "r" + "b" * 36 + "-head-ingress"
    assert U.generate_route_name("c") == "c-head-route"
    assert U.redis_cleanup_job_name("c") == "c-redis-cleanup"
    assert U.redis_cleanup_job_name("a" * 53) == ("a" * 53 + "-redis-cleanup")[-63:]
    assert U.generate_identifier("c", C.RayNodeType.HEAD) == "c-head"
    assert U.get_gcs_storage_pvc_name(_cluster()) == "raycluster-sample-gcs-pvc"
    assert U.get_gcs_storage_pvc_name(_cluster(gcsFaultToleranceOptions={"storage": {"claimName": "mine"}})) == "mine"
    assert U.tls_secret_name("c", C.RayNodeType.HEAD) == "ray-head-secret-c"
    assert U.tls_secret_name("c", C.RayNodeType.WORKER) == "ray-worker-secret-c"
    assert U.tls_cert_name("c", C.RayNodeType.WORKER) == "ray-worker-cert-c"


def test_head_group_service_account_name() -> None:
    assert U.get_head_group_service_account_name(_cluster()) == "raycluster-sample"
    named = _cluster(headGroupSpec={"template": {"spec": {"serviceAccountName": "my-service-account"}}})
    assert U.get_head_group_service_account_name(named) == "my-service-account"


def test_random_suffixes_come_from_the_caller() -> None:
    rng = random.Random(42)
    suffix = U.random_string(5, rng)
    assert len(suffix) == 5
    assert set(suffix) <= set(C.RAND_STRING_ALPHABET)
    assert U.random_string(5, random.Random(42)) == suffix
    assert U.generate_replica_group_name("tpu", lambda: "abcde") == "tpu-abcde"
    assert U.generate_ray_cluster_name("job", lambda: "x2k9q") == "job-x2k9q"
    assert U.generate_ray_job_id("job", lambda: "x2k9q") == "job-x2k9q"


# ---- replica maths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ({"numOfHosts": 1, "minReplicas": 1, "maxReplicas": 5}, 1),  # nil replicas -> min
        ({"numOfHosts": 1, "minReplicas": 1, "maxReplicas": 5, "replicas": 3}, 3),
        ({"numOfHosts": 1, "minReplicas": 1, "maxReplicas": 5, "replicas": 6}, 5),
        ({"numOfHosts": 1, "minReplicas": 1, "maxReplicas": 5, "replicas": 0}, 1),
        ({"numOfHosts": 1, "minReplicas": 5, "maxReplicas": 1}, 1),  # min > max -> max
        ({"numOfHosts": 1, "minReplicas": 5, "maxReplicas": 1, "suspend": True}, 0),
        ({"numOfHosts": 4, "minReplicas": 1, "maxReplicas": 5, "replicas": 5, "suspend": False}, 20),
        ({"replicas": 3}, 3),  # CRD defaults: min 0, max MaxInt32, numOfHosts 1
        ({}, 0),
        ({"numOfHosts": 4, "minReplicas": 3, "maxReplicas": C.MAX_INT32, "replicas": C.MAX_INT32}, C.MAX_INT32),
    ],
)
def test_worker_group_desired_replicas(group: dict[str, Any], expected: int) -> None:
    assert U.get_worker_group_desired_replicas(group) == expected


@pytest.mark.parametrize(
    ("groups", "desired"),
    [
        (
            [
                {"numOfHosts": 1, "minReplicas": 1, "maxReplicas": 5},
                {"numOfHosts": 1, "minReplicas": 2, "maxReplicas": 5},
            ],
            3,
        ),
        (
            [
                {"replicas": 0, "numOfHosts": 1, "minReplicas": 2, "maxReplicas": 5},
                {"replicas": 6, "numOfHosts": 1, "minReplicas": 2, "maxReplicas": 5},
            ],
            7,
        ),
        (
            [
                {"replicas": 6, "numOfHosts": 1, "minReplicas": 2, "maxReplicas": 5},
                {"replicas": 3, "numOfHosts": 1, "minReplicas": 2, "maxReplicas": 5},
            ],
            8,
        ),
        (
            [
                {"replicas": 3, "numOfHosts": 4, "minReplicas": 1, "maxReplicas": 6},
                {"replicas": 3, "numOfHosts": 1, "minReplicas": 2, "maxReplicas": 5},
            ],
            15,
        ),
    ],
)
def test_calculate_desired_replicas(groups: list[dict[str, Any]], desired: int) -> None:
    assert U.calculate_desired_replicas(_cluster(workerGroupSpecs=groups)) == desired


@pytest.mark.parametrize(
    ("groups", "minimum", "maximum"),
    [
        ([{"numOfHosts": 1, "minReplicas": 2, "maxReplicas": 3}], 2, 3),
        ([{"numOfHosts": 4, "minReplicas": 2, "maxReplicas": 3}], 8, 12),
        (
            [
                {"numOfHosts": 1, "minReplicas": 4, "maxReplicas": 4},
                {"numOfHosts": 2, "minReplicas": 3, "maxReplicas": 3},
            ],
            10,
            10,
        ),
        (
            [
                {"numOfHosts": 1, "minReplicas": 3, "maxReplicas": 3, "suspend": True},
                {"numOfHosts": 1, "minReplicas": 1, "maxReplicas": 1, "suspend": True},
            ],
            0,
            0,
        ),
        ([{"replicas": 1, "minReplicas": 3, "maxReplicas": C.MAX_INT32, "numOfHosts": 4}], 12, C.MAX_INT32),
        ([{"numOfHosts": 1000, "minReplicas": 1, "maxReplicas": C.MAX_INT32}], 1000, C.MAX_INT32),
        (
            [
                {"numOfHosts": 2, "minReplicas": 1, "maxReplicas": 1_500_000_000},
                {"numOfHosts": 1, "minReplicas": 1, "maxReplicas": 1_000_000_000},
            ],
            3,
            C.MAX_INT32,
        ),
        ([{"numOfHosts": 4, "minReplicas": 2, "maxReplicas": 100}], 8, 400),
        ([{}], 0, C.MAX_INT32),
    ],
)
def test_calculate_min_and_max_replicas(groups: list[dict[str, Any]], minimum: int, maximum: int) -> None:
    cluster = _cluster(workerGroupSpecs=groups)
    assert U.calculate_min_replicas(cluster) == minimum
    assert U.calculate_max_replicas(cluster) == maximum


def _pod(cpu: str, memory: str) -> dict[str, Any]:
    return {"spec": {"containers": [{"resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}


@pytest.mark.parametrize(
    ("groups", "desired", "minimum"),
    [
        ([], ("1", "100Mi"), ("1", "100Mi")),
        (
            [{"numOfHosts": 2, "replicas": 4, "minReplicas": 3, "template": _pod("1", "200Mi")}],
            ("9", "1700Mi"),
            ("7", "1300Mi"),
        ),
        (
            [
                {"numOfHosts": 2, "replicas": 2, "minReplicas": 1, "template": _pod("2", "100Mi")},
                {"numOfHosts": 1, "replicas": 3, "minReplicas": 0, "template": _pod("1", "200Mi")},
            ],
            ("12", "1100Mi"),
            ("5", "300Mi"),
        ),
        (
            [{"numOfHosts": 2, "replicas": 3, "minReplicas": 0, "suspend": True, "template": _pod("2", "200Mi")}],
            ("1", "100Mi"),
            ("1", "100Mi"),
        ),
    ],
)
def test_calculate_resources(groups: list[dict[str, Any]], desired: tuple[str, str], minimum: tuple[str, str]) -> None:
    cluster = _cluster(headGroupSpec={"template": _pod("1", "100Mi")}, workerGroupSpecs=groups)
    got = U.calculate_desired_resources(cluster)
    assert (got["cpu"].canonical(), got["memory"].canonical()) == desired
    got = U.calculate_min_resources(cluster)
    assert (got["cpu"].canonical(), got["memory"].canonical()) == minimum


def test_pod_resource_requests_win_over_limits_and_gpus_sum() -> None:
    spec = {
        "containers": [
            {"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"}}},
            {"resources": {"limits": {"nvidia.com/gpu": "2", "amd.com/gpu": "1", "google.com/tpu": "4"}}},
        ]
    }
    total = U.calculate_pod_resource(spec)
    assert total["cpu"].canonical() == "1"
    assert total["memory"].canonical() == "1Gi"
    assert U.sum_gpus(total).canonical() == "4"
    assert total["google.com/tpu"].value() == 4


@pytest.mark.parametrize(
    ("key", "is_gpu"),
    [
        ("nvidia.com/gpu", True),
        ("amd.com/gpu", True),
        ("gpu", True),
        ("nvidia.com/mig-1g.5gb", True),
        ("nvidia.com/mig-2g.32gb", True),
        ("example.com/nvidia.com/mig-3g.20gb", True),  # unanchored like Go's regexp.MatchString
        ("nvidia.com/mig-1g.5gb-extra", False),
        ("google.com/tpu", False),
        ("cpu", False),
        ("nvidia.com/GPU", False),
    ],
)
def test_is_gpu_resource_key(key: str, is_gpu: bool) -> None:
    assert U.is_gpu_resource_key(key) is is_gpu


def test_container_resource_helpers() -> None:
    container = {"resources": {"limits": {"cpu": "0", "memory": "0", "nvidia.com/gpu": "0"}, "requests": {"cpu": "3"}}}
    cpu = U.container_cpu(container)
    assert cpu is not None
    assert cpu.value() == 3  # a zero limit counts as unset
    assert U.container_memory(container) is None
    assert U.container_gpus(container) is None
    assert U.container_gpus({"resources": {"limits": {"b/gpu": "1", "a/gpu": "2"}}}) == (
        "a/gpu",
        parse_quantity("2"),
    )


# ---- cluster checks --------------------------------------------------------------------------------


def test_feature_checks() -> None:
    assert not U.is_autoscaling_enabled(_cluster())
    assert U.is_autoscaling_enabled(_cluster(enableInTreeAutoscaling=True))
    assert not U.is_autoscaling_enabled(_cluster(enableInTreeAutoscaling=False))
    assert not U.is_autoscaling_v2_enabled(_cluster(autoscalerOptions={}))
    assert U.is_autoscaling_v2_enabled(_cluster(autoscalerOptions={"version": "v2"}))
    assert U.is_autoscaling_v1_enabled(_cluster(autoscalerOptions={"version": "v1"}))
    assert not U.is_autoscaling_v1_enabled(_cluster(autoscalerOptions={"version": "v2"}))
    assert U.is_auth_enabled(_cluster(authOptions={"mode": "token"}))
    assert not U.is_auth_enabled(_cluster(authOptions={"mode": "disabled"}))
    assert not U.is_auth_enabled(_cluster(authOptions={}))  # the doc's "defaults to token" is not honoured
    assert U.is_k8s_auth_enabled({"enableK8sTokenAuth": True})
    assert not U.is_k8s_auth_enabled(None)
    assert U.get_head_port({}) == "6379"
    assert U.get_head_port({"port": "6380"}) == "6380"
    assert U.needs_headless_worker_service(_cluster(workerGroupSpecs=[{"numOfHosts": 2}]))
    assert not U.needs_headless_worker_service(_cluster(workerGroupSpecs=[{"numOfHosts": 1}, {}]))


@pytest.mark.parametrize(
    ("annotations", "spec", "enabled"),
    [
        ({C.RAY_FT_ENABLED_ANNOTATION_KEY: "true"}, {}, True),
        ({C.RAY_FT_ENABLED_ANNOTATION_KEY: "TRUE"}, {}, True),
        ({C.RAY_FT_ENABLED_ANNOTATION_KEY: "false"}, {}, False),
        ({}, {"gcsFaultToleranceOptions": {}}, True),
        ({}, {}, False),
    ],
)
def test_is_gcs_fault_tolerance_enabled(annotations: dict[str, str], spec: dict[str, Any], enabled: bool) -> None:
    cluster = {"metadata": {"name": "c", "annotations": annotations}, "spec": spec}
    assert U.is_gcs_fault_tolerance_enabled(cluster) is enabled


@pytest.mark.parametrize(
    ("value", "crd"),
    [
        ("RayJob", C.CRDType.RAY_JOB),
        ("RayService", C.CRDType.RAY_SERVICE),
        ("", C.CRDType.RAY_CLUSTER),
        ("x", C.CRDType.RAY_CLUSTER),
    ],
)
def test_get_crd_type(value: str, crd: C.CRDType) -> None:
    assert U.get_crd_type(value) is crd


# ---- env switches, shell, versions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "init", "probes", "cluster_ip"),
    [
        ({}, True, True, False),
        ({C.ENABLE_INIT_CONTAINER_INJECTION: "false"}, False, True, False),
        ({C.ENABLE_INIT_CONTAINER_INJECTION: "FALSE", C.ENABLE_PROBES_INJECTION: "False"}, False, False, False),
        ({C.ENABLE_INIT_CONTAINER_INJECTION: "0", C.ENABLE_PROBES_INJECTION: "no"}, True, True, False),
        ({C.ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE: "True"}, True, True, True),
        ({C.ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE: "1"}, True, True, False),
    ],
)
def test_env_switches(env: dict[str, str], init: bool, probes: bool, cluster_ip: bool) -> None:
    assert U.is_init_container_injection_enabled(env) is init
    assert U.is_probes_injection_enabled(env) is probes
    assert U.is_ray_head_cluster_ip_service_enabled(env) is cluster_ip


@pytest.mark.parametrize(
    ("login", "options", "expected"),
    [
        (False, (), ["/bin/bash", "-c", "--"]),
        (True, (), ["/bin/bash", "-cl", "--"]),
        (False, ("e",), ["/bin/bash", "-ce", "--"]),
        (True, ("e",), ["/bin/bash", "-cel", "--"]),
    ],
)
def test_get_container_command(login: bool, options: tuple[str, ...], expected: list[str]) -> None:
    env = {C.ENABLE_LOGIN_SHELL: "true"} if login else {}
    assert U.get_container_command(env, options) == expected


@pytest.mark.parametrize(
    ("version", "at_least_2_53"),
    [
        ("2.53.0", True),
        ("2.53", True),
        ("2.53.1", True),
        ("3.0.0", True),
        ("v2.60.0rc1", True),
        (" 2.53.0", True),
        ("2.53.0-nightly", True),
        ("2.52.9", False),
        ("2.9.0", False),
        ("", False),
        ("latest", False),
        ("nightly", False),
        ("2", False),  # a generic version needs two components
        ("02.60.0", False),  # leading zero in the first component
    ],
)
def test_version_at_least(version: str, at_least_2_53: bool) -> None:
    assert U.version_at_least(version, "2.53.0") is at_least_2_53


def test_parse_generic_version() -> None:
    assert U.parse_generic_version("2.53.0rc1") == (2, 53, 0)
    assert U.parse_generic_version("v1.2") == (1, 2)
    assert U.parse_generic_version("x1.2") is None


# ---- owner references and hashing ------------------------------------------------------------------


def test_set_controller_reference() -> None:
    cluster = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "c", "uid": "u1"}}
    meta: dict[str, Any] = {}
    U.set_controller_reference(meta, cluster)
    expected = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "name": "c",
        "uid": "u1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert meta["ownerReferences"] == [expected]
    U.set_controller_reference(meta, {**cluster, "metadata": {"name": "c", "uid": "u2"}})
    assert meta["ownerReferences"] == [{**expected, "uid": "u2"}]  # same owner: replaced
    other = {"apiVersion": "v1", "kind": "Other", "name": "o", "uid": "x", "controller": True}
    meta = {"ownerReferences": [other]}
    U.set_controller_reference(meta, cluster)
    assert meta["ownerReferences"] == [other]  # owned by another controller: left alone
    meta = {"ownerReferences": [{**other, "controller": False}]}
    U.set_controller_reference(meta, cluster)
    assert meta["ownerReferences"] == [{**other, "controller": False}, expected]


def test_spec_hash_ignores_scaling_fields() -> None:
    base = {
        "rayVersion": "2.46.0",
        "headGroupSpec": {"template": {"spec": {"containers": [{"name": "h", "image": "a"}]}}},
        "workerGroupSpecs": [
            {"groupName": "g", "replicas": 1, "minReplicas": 0, "maxReplicas": 3, "template": {"spec": {}}}
        ],
    }
    h = U.generate_hash_without_replicas_and_workers_to_delete(base)
    assert len(h) == 32
    assert set(h) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUV")
    scaled = {
        **base,
        "upgradeStrategy": {"type": "Recreate"},
        "workerGroupSpecs": [
            {
                "groupName": "g",
                "replicas": 5,
                "minReplicas": 2,
                "maxReplicas": 9,
                "scaleStrategy": {"workersToDelete": ["p1"]},
                "template": {"spec": {"tolerations": [{"key": "k"}], "schedulingGates": [{"name": "x"}]}},
            }
        ],
    }
    assert U.generate_hash_without_replicas_and_workers_to_delete(scaled) == h
    changed = {**base, "rayVersion": "2.47.0"}
    assert U.generate_hash_without_replicas_and_workers_to_delete(changed) != h
    assert base["workerGroupSpecs"][0]["replicas"] == 1  # input not mutated


def test_to_plain_strips_str_subclasses() -> None:
    out = U.plain_json({"a": C.RayNodeType.HEAD, "b": [C.CRDType.RAY_JOB]})
    assert type(out["a"]) is str
    assert type(out["b"][0]) is str
    assert out == {"a": "head", "b": ["RayJob"]}
