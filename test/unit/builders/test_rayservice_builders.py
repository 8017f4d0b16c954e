"""RayService pure logic (spec rayservice.md §5, §6, §10): the hash rules that decide when a new cluster is
needed, the zero-downtime table, the Services a user's traffic goes through, endpoint counting, the
status-diff rule, the serve-config cache, Go duration strings in timeout messages, and the fake Serve
model's validation (Ray 2.60's 400s)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from support.fake_serve import ServeModel, ServeValidationError

from controllers.ray import rayservice_controller as rs
from controllers.ray.utils import dashboard as dash
from internal.features import FeatureGates

SVC: dict[str, Any] = yaml.safe_load(
    """
apiVersion: ray.io/v1
kind: RayService
metadata: {name: svc, namespace: ns, uid: u-1, labels: {team: a}, annotations: {note: b}}
spec:
  serveConfigV2: "applications: []"
  rayClusterConfig:
    rayVersion: '2.52.0'
    headGroupSpec:
      serviceType: ClusterIP
      rayStartParams: {}
      template:
        spec:
          containers:
          - name: ray-head
            image: rayproject/ray:2.52.0
            ports: [{name: serve, containerPort: 8000}, {name: dashboard, containerPort: 8265},
                    {name: serve-grpc, containerPort: 9000}]
    workerGroupSpecs:
    - groupName: w
      replicas: 1
      minReplicas: 0
      maxReplicas: 3
      rayStartParams: {}
      template: {spec: {containers: [{name: ray-worker, image: rayproject/ray:2.52.0}]}}
"""
)


def svc(**spec: Any) -> dict[str, Any]:
    s = copy.deepcopy(SVC)
    s["spec"].update(spec)
    return s


def cluster_for(s: dict[str, Any], name: str = "svc-abcde") -> dict[str, Any]:
    return rs.build_ray_cluster(s, name)


def test_cluster_carries_service_labels_then_kuberay_keys_and_an_owner() -> None:
    c = cluster_for(svc())
    meta = c["metadata"]
    assert meta["labels"] == {
        "team": "a",
        "ray.io/originated-from-cr-name": "svc",
        "ray.io/originated-from-crd": "RayService",
    }
    assert meta["annotations"]["note"] == "b" and meta["annotations"]["ray.io/num-worker-groups"] == "1"
    assert meta["annotations"]["ray.io/kuberay-version"] == "v1.7.0"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "ray.io/v1",
            "kind": "RayService",
            "name": "svc",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert c["spec"] == SVC["spec"]["rayClusterConfig"]


def test_autoscaler_and_suspend_edits_never_count_as_a_new_spec() -> None:
    s = svc()
    c = cluster_for(s)
    edited = copy.deepcopy(s)
    g = edited["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    g.update(replicas=3, minReplicas=1, maxReplicas=10, scaleStrategy={"workersToDelete": ["p"]})
    edited["spec"]["rayClusterConfig"]["suspend"] = True
    edited["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["tolerations"] = [{"key": "k"}]
    assert rs.is_cluster_spec_hash_equal(edited, c, partial=False)


def test_appended_worker_group_is_a_partial_match_other_changes_are_not() -> None:
    s = svc()
    c = cluster_for(s)
    appended = copy.deepcopy(s)
    new_group = copy.deepcopy(appended["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]) | {"groupName": "w2"}
    appended["spec"]["rayClusterConfig"]["workerGroupSpecs"].append(new_group)
    assert not rs.is_cluster_spec_hash_equal(appended, c, partial=False)
    assert rs.is_cluster_spec_hash_equal(appended, c, partial=True)

    image = copy.deepcopy(s)
    image["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = "x"
    assert not rs.is_cluster_spec_hash_equal(image, c, partial=True)
    removed = copy.deepcopy(s)
    removed["spec"]["rayClusterConfig"]["workerGroupSpecs"] = []
    assert not rs.is_cluster_spec_hash_equal(removed, c, partial=True)  # fewer groups: not equal


@pytest.mark.parametrize(
    ("strategy", "env", "gate", "want"),
    [
        (None, "", True, True),
        (None, "true", True, True),
        (None, "false", True, False),
        (None, "FALSE", True, False),
        ("NewCluster", "false", True, True),
        ("None", "true", True, False),
        ("NewClusterWithIncrementalUpgrade", "", True, True),
        ("NewClusterWithIncrementalUpgrade", "", False, False),
        ("NewCluster", "", False, True),
    ],
)
def test_zero_downtime_decision(strategy: str | None, env: str, gate: bool, want: bool) -> None:
    s = svc(upgradeStrategy={"type": strategy}) if strategy else svc()
    gates = FeatureGates.parse(f"RayServiceIncrementalUpgrade={str(gate).lower()}")
    assert rs.is_zero_downtime_upgrade_enabled(s, gates, {"ENABLE_ZERO_DOWNTIME": env} if env else {}) is want


def test_head_service_follows_the_target_cluster_with_service_labels() -> None:
    s = svc()
    out = rs.build_head_service(s, cluster_for(s, "svc-new12"), {})
    assert out["metadata"]["name"] == "svc-head-svc" and out["metadata"]["namespace"] == "ns"
    assert out["metadata"]["labels"] == {
        "ray.io/originated-from-cr-name": "svc",
        "ray.io/originated-from-crd": "RayService",
        "ray.io/node-type": "head",
        "ray.io/identifier": "svc-head",
    }
    assert out["spec"]["selector"]["ray.io/cluster"] == "svc-new12"
    assert out["spec"]["clusterIP"] == "None"
    assert [p["name"] for p in out["spec"]["ports"]] == sorted(p["name"] for p in out["spec"]["ports"])
    assert out["metadata"]["ownerReferences"][0]["kind"] == "RayService"


def test_serve_service_selects_healthy_serve_pods_of_the_target_cluster() -> None:
    s = svc()
    out = rs.build_serve_service(s, cluster_for(s))
    assert out["metadata"]["name"] == "svc-serve-svc"
    assert out["metadata"]["labels"]["ray.io/serve"] == "svc-serve"
    assert out["spec"]["selector"] == {"ray.io/cluster": "svc-abcde", "ray.io/serve": "true"}
    assert {p["name"]: p["port"] for p in out["spec"]["ports"]} == {"serve": 8000, "serve-grpc": 9000}
    assert out["spec"]["type"] == "ClusterIP"


def test_serve_service_template_keeps_user_name_and_ports() -> None:
    template = {
        "metadata": {"name": "custom", "labels": {"ray.io/serve": "mine", "x": "y"}, "annotations": {"a": "b"}},
        "spec": {"type": "NodePort", "ports": [{"name": "serve", "port": 80, "targetPort": 8000}]},
    }
    s = svc(serveService=template)
    out = rs.build_serve_service(s, cluster_for(s))
    assert out["metadata"]["name"] == "custom" and out["metadata"]["namespace"] == "ns"
    assert out["metadata"]["labels"] == {
        "x": "y",
        "ray.io/serve": "svc-serve",  # ours win
        "ray.io/originated-from-cr-name": "svc",
        "ray.io/originated-from-crd": "RayService",
    }
    assert out["spec"]["type"] == "NodePort" and out["metadata"]["annotations"] == {"a": "b"}
    ports = {p["name"]: p for p in out["spec"]["ports"]}
    assert ports["serve"] == {"name": "serve", "port": 80, "targetPort": 8000}  # the user's same-named port
    assert ports["serve-grpc"] == {"name": "serve-grpc", "port": 9000}


def test_no_serve_port_is_an_error_with_upstream_text() -> None:
    s = svc()
    s["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"name": "dashboard", "containerPort": 8265}
    ]
    with pytest.raises(rs.ServeServiceError, match="Please specify a port named 'serve'"):
        rs.build_serve_service(s, cluster_for(s))


def test_ready_endpoints_are_distinct_pods() -> None:
    slices = [
        {
            "endpoints": [
                {"conditions": {"ready": True}, "targetRef": {"uid": "a"}},
                {"conditions": {"ready": False}, "targetRef": {"uid": "b"}},
                {"conditions": {}, "targetRef": {"uid": "c"}},
                {"conditions": {"ready": True}},
            ]
        },
        {"endpoints": [{"conditions": {"ready": True}, "targetRef": {"uid": "a"}}]},  # the IPv6 twin
    ]
    assert rs.count_ready_endpoints(slices) == 1


def test_status_diff_ignores_generation_cluster_status_and_update_time() -> None:
    old = {
        "observedGeneration": 1,
        "lastUpdateTime": "t1",
        "activeServiceStatus": {
            "rayClusterName": "c",
            "rayClusterStatus": {"state": "ready"},
            "applicationStatuses": {"a": {"status": "RUNNING"}},
        },
    }
    new = copy.deepcopy(old)
    new.update(observedGeneration=2, lastUpdateTime="t2")
    new["activeServiceStatus"]["rayClusterStatus"] = {"state": "suspended"}
    assert not rs.inconsistent_statuses(old, new)
    new["activeServiceStatus"]["applicationStatuses"]["a"]["serveDeploymentStatuses"] = {"D": {"status": "HEALTHY"}}
    assert rs.inconsistent_statuses(old, new)


def test_app_statuses_name_the_default_app_and_omit_empty_fields() -> None:
    details = dash.ServeDetails(
        applications={
            "": dash.ServeApplicationDetails(
                name="", status="RUNNING", deployments={"D": dash.ServeDeploymentDetails(name="D", status="HEALTHY")}
            )
        }
    )
    assert rs.app_statuses(details) == {
        "default": {"status": "RUNNING", "serveDeploymentStatuses": {"D": {"status": "HEALTHY"}}}
    }


def test_serve_config_cache_is_pruned_to_active_and_pending() -> None:
    cache = rs.ServeConfigCache(size=2)
    cache.set("ns/a", "a-1", "x")
    cache.set("ns/a", "a-2", "y")
    cache.keep_only("ns/a", ["a-2"])
    assert cache.clusters("ns/a") == {"a-2": "y"}
    cache.set("ns/b", "b-1", "z")
    cache.set("ns/c", "c-1", "w")  # evicts the least recently used entry
    assert cache.get("ns/a", "a-2") == "" and cache.get("ns/c", "c-1") == "w"


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (10 * 10**9, "10s"),
        (60 * 10**9, "1m0s"),
        (5400 * 10**9, "1h30m0s"),
        (12_345_678_901, "12.345678901s"),
        (500 * 10**6, "500ms"),
        (1500, "1.5µs"),
    ],
)
def test_go_duration_strings(ns: int, text: str) -> None:
    assert rs.go_duration(ns) == text


@pytest.mark.parametrize(("value", "seconds"), [("90s", 90), ("1h", 3600), ("30", 30), ("0", None), ("x", None)])
def test_initializing_timeout_annotation(value: str, seconds: int | None) -> None:
    got = rs.parse_initializing_timeout({"ray.io/initializing-timeout": value})
    assert got == (None if seconds is None else seconds * 10**9)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "applications\n  Field required"),
        ({"applications": [{"name": "a"}]}, "import_path\n  Field required"),
        ({"applications": [{"import_path": "nodots"}]}, 'Got invalid import path "nodots"'),
        ({"applications": [{"name": "", "import_path": "m:a"}]}, "Application names must be nonempty."),
        (
            {"applications": [{"name": "a", "import_path": "m:a"}, {"name": "a", "import_path": "m:a"}]},
            'Found multiple configs for application "a". Please remove all duplicates.',
        ),
        ({"applications": [], "target_capacity": 150}, "Input should be less than or equal to 100"),
        (
            {"applications": [{"import_path": "m:a", "port": 8001}]},
            "Port 8001 is set in the config for application `default`. Please remove it",
        ),
        (
            {"applications": [{"import_path": "m:a", "runtime_env": {"working_dir": "/tmp/app"}}]},
            "runtime_envs in the Serve config support only remote URIs",
        ),
    ],
)
def test_fake_serve_rejects_what_ray_rejects(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ServeValidationError) as exc:
        ServeModel().put(config)
    assert message in str(exc.value)


def test_fake_serve_derives_app_status_from_deployments() -> None:
    serve = ServeModel()
    assert serve.details() == {"controller_info": {}, "proxies": {}, "applications": {}, "target_capacity": None}
    assert serve.healthz() is None  # no proxy before Serve starts
    serve.put({"applications": [{"name": "a", "import_path": "m:app", "deployments": [{"name": "D"}]}]})
    assert serve.app_status("a") == "RUNNING" and serve.healthz() == (200, "success")
    serve.set_deployment_status("a", "D", "UNHEALTHY", "replica died")
    app = serve.details()["applications"]["a"]
    assert (app["status"], app["message"]) == ("UNHEALTHY", "The deployments ['D'] are UNHEALTHY.")
    assert app["deployments"]["D"]["message"] == "replica died"
    serve.set_deployment_status("a", "D", "DEPLOY_FAILED")
    assert serve.app_status("a") == "DEPLOY_FAILED"
    serve.put({"applications": []})  # declarative: a is deleted
    assert serve.details()["applications"] == {}


# ---- conditions (calculateConditions) ----------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _reconciler(clock: _Clock) -> tuple[rs.RayServiceReconciler, Any]:
    from internal.events import FakeRecorder

    recorder = FakeRecorder()
    r = rs.RayServiceReconciler(None, None, recorder, None, clock=clock)  # type: ignore[arg-type]
    return r, recorder


def _conds(s: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in s["status"]["conditions"]}


def test_conditions_initialise_then_follow_endpoints_and_names() -> None:
    clock = _Clock()
    r, _ = _reconciler(clock)
    s = svc()
    s["status"] = {"observedGeneration": 2, "pendingServiceStatus": {"rayClusterName": "svc-p"}}
    r._calculate_conditions(s, 0)
    assert _conds(s) == {"Ready": ("False", "Initializing"), "UpgradeInProgress": ("False", "Initializing")}
    assert all(c["observedGeneration"] == 2 for c in s["status"]["conditions"])
    s["status"]["activeServiceStatus"] = {"rayClusterName": "svc-a"}
    r._calculate_conditions(s, 2)
    assert _conds(s) == {
        "Ready": ("True", "NonZeroServeEndpoints"),
        "UpgradeInProgress": ("True", "BothActivePendingClustersExist"),
    }
    s["status"]["pendingServiceStatus"] = {}
    r._calculate_conditions(s, 0)
    assert _conds(s) == {"Ready": ("False", "ZeroServeEndpoints"), "UpgradeInProgress": ("False", "NoPendingCluster")}


def test_a_false_ready_reason_is_sticky_and_no_active_cluster_is_unknown() -> None:
    clock = _Clock()
    r, _ = _reconciler(clock)
    s = svc()
    s["status"] = {"conditions": []}
    rs.set_condition(s["status"], "Ready", "False", "ValidationFailed", "bad spec", clock)
    r._calculate_conditions(s, 0)
    assert _conds(s) == {"Ready": ("False", "ValidationFailed"), "UpgradeInProgress": ("Unknown", "NoActiveCluster")}


def test_initializing_timeout_clears_both_clusters_with_go_durations() -> None:
    clock = _Clock()
    r, recorder = _reconciler(clock)
    s = svc()
    s["metadata"]["annotations"] = {"ray.io/initializing-timeout": "1m"}
    s["status"] = {"pendingServiceStatus": {"rayClusterName": "svc-p"}}
    r._calculate_conditions(s, 0)
    clock.now += 59
    r._calculate_conditions(s, 0)
    assert _conds(s)["Ready"] == ("False", "Initializing")
    clock.now += 1.5
    r._calculate_conditions(s, 0)
    ready = next(c for c in s["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InitializingTimeout")
    assert ready["message"] == (
        "RayService failed to become ready within the configured timeout of 1m0s. Time spent initializing: 1m0.5s"
    )
    assert "rayClusterName" not in s["status"]["pendingServiceStatus"]
    assert _conds(s)["UpgradeInProgress"] == ("False", "Initializing")
    assert recorder.events[-1] == (
        "Warning",
        "RayServiceInitializingTimeout",
        "RayService initializing timeout exceeded after 1m0.5s (configured timeout: 1m0s)",
    )


# ---- the Serve client against the fake head's faults -------------------------------------------------


async def test_serve_calls_and_proxy_health_under_faults() -> None:
    import time

    from support.fake_dashboard import FakeDashboard

    async with FakeDashboard() as fake:
        head = fake.cluster("rc")
        factory = dash.DashboardClientFactory(
            dash.Loopback(lambda c: fake.cluster(c["metadata"]["name"]).base_url, timeout=0.5),
            proxies=dash.LoopbackProxyAddress(lambda pod, port: head.base_url, timeout=0.5),
        )
        cluster = {"metadata": {"name": "rc", "namespace": "ns"}}
        pod = {"metadata": {"name": "rc-head", "namespace": "ns"}, "status": {"podIP": "127.0.0.1"}}
        client, proxy = factory.for_cluster(cluster), factory.for_proxy(pod, 8000)
        try:
            with pytest.raises(dash.DashboardUnavailable):  # no proxy listens before Serve starts
                await proxy.check_proxy_actor_health()
            await client.update_deployments({"applications": [{"name": "a", "import_path": "m:app"}]})
            await proxy.check_proxy_actor_health()
            head.serve.draining = True
            with pytest.raises(dash.DashboardError, match=r"CheckProxyActorHealth fails\. status code: 503"):
                await proxy.check_proxy_actor_health()
            head.serve.draining = False
            for fault, error in ((head.reset, dash.DashboardUnavailable), (head.hang, dash.DashboardTimeout)):
                fault()
                start = time.monotonic()
                with pytest.raises(error):
                    await client.get_serve_details()
                with pytest.raises(error):
                    await proxy.check_proxy_actor_health()
                assert time.monotonic() - start < 1.5  # each call bounded by its 0.5 s timeout
                head.heal()
            head.fail_all("boom")
            with pytest.raises(dash.DashboardError, match="GetServeDetails fail: 500 Internal Server Error boom"):
                await client.get_serve_details()
            head.heal()
            head.delay = 0.2  # slow but within the timeout
            assert (await client.get_serve_details()).applications["a"].status == "RUNNING"
        finally:
            await factory.close()


# ---- shouldPrepareNewCluster (upstream's unit table, spec §5.1) -------------------------------------------


def _image(s: dict[str, Any], image: str) -> dict[str, Any]:
    out = copy.deepcopy(s)
    out["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = image
    return out


def _appended(s: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(s)
    group = copy.deepcopy(out["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]) | {"groupName": "w2"}
    out["spec"]["rayClusterConfig"]["workerGroupSpecs"].append(group)
    return out


@pytest.mark.parametrize(
    ("case", "want"),
    [
        ("no cluster at all", True),
        ("active with the same spec", False),
        ("active, a worker group appended (in place instead)", False),
        ("active, another image", True),
        ("active, another image, ENABLE_ZERO_DOWNTIME=false", False),
        ("active, another image, upgradeStrategy None", False),
        ("pending with the same spec", False),
        ("pending, another image (it is replaced)", True),
        ("pending, another image, but serving already (the promotion pass)", False),
        ("active, another image, while rolling back", False),
    ],
)
def test_should_prepare_new_cluster(case: str, want: bool) -> None:
    """When a new pending RayCluster is due: the goal spec against the pending cluster if any, else the
    active one; never while the pending cluster is being promoted or a rollback runs."""
    env: dict[str, str] = {}
    base = svc()
    goal = _image(base, "rayproject/ray:2.53.0") if "another image" in case else base
    if "appended" in case:
        goal = _appended(base)
    if "upgradeStrategy None" in case:
        goal["spec"]["upgradeStrategy"] = {"type": "None"}
    if "ENABLE_ZERO_DOWNTIME" in case:
        env["ENABLE_ZERO_DOWNTIME"] = "false"
    goal["status"] = {}
    if "rolling back" in case:
        goal["status"]["conditions"] = [{"type": "RollbackInProgress", "status": "True"}]
    active = None if case == "no cluster at all" else cluster_for(base, "svc-aaaaa")
    pending = cluster_for(base, "svc-bbbbb") if case.startswith("pending") else None
    r = rs.RayServiceReconciler(None, None, None, None, rs.RayServiceOptions(env=env))  # type: ignore[arg-type]
    serving = "serving already" in case
    assert r._should_prepare_new_cluster(goal, active, pending, serving) is want


def test_deprecated_unhealthy_thresholds_are_accepted_and_change_nothing() -> None:
    """serviceUnhealthySecondThreshold and deploymentUnhealthySecondThreshold are still in the CRD but
    ignored (spec §1): a RayService with them is valid and builds the same cluster, with the same hash."""
    from api.v1 import validation as v

    plain = svc()
    old = svc(serviceUnhealthySecondThreshold=60, deploymentUnhealthySecondThreshold=30)
    v.validate_ray_service(old)
    assert rs.build_ray_cluster(old, "svc-abcde") == rs.build_ray_cluster(plain, "svc-abcde")
    assert rs.is_cluster_spec_hash_equal(old, cluster_for(plain), partial=False)
