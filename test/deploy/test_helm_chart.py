"""The Helm chart (helm-chart/kuberay-operator), rendered by the pinned Helm: upstream's values keys give
the operator flags it accepts, in upstream's order; its rules and CRDs are the generated ones; values the
operator would refuse fail the render with one line. The chart installed on a plane and the operator run
under its RBAC is in test_installed_operator.py (test_helm_install_...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kuberay_operator.main import configuration, parse_args
from support.helm import CHART, helm, template, template_error

from api.config.v1alpha1 import decode
from internal.features import FeatureGates

pytestmark = [pytest.mark.deploy]

REPO = Path(__file__).resolve().parents[2]
GATES = (
    "--feature-gates=RayClusterStatusConditions=true,RayJobDeletionPolicy=true,RayMultiHostIndexing=true,"
    "RayServiceIncrementalUpgrade=true,RayCronJob=false,RayClusterMTLS=false,RayClusterNetworkPolicy=false,"
    "RayClusterHistoryServer=false"
)


def _one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {[(o['kind'], o['metadata']['name']) for o in objects]}"
    return found[0]


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(c)


def _generated(path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((REPO / path).read_text()) if d]


def test_default_values_start_the_operator_as_upstreams_chart_does() -> None:
    objects = template()
    c = _container(objects)
    assert c["command"] == ["/manager"]  # upstream's path; the image keeps it
    assert c["args"] == [
        "--log-stdout-encoder",
        "json",
        "--log-file-encoder",
        "json",
        "--enable-leader-election=true",
        "--enable-metrics=true",
        "--reconcile-concurrency=1",
        "--qps=100",
        "--burst=200",
        GATES,
    ]
    # The operator takes those flags as upstream's does.
    args = parse_args(c["args"])
    cfg = configuration(args, print)
    assert cfg.enableMetrics and cfg.enableLeaderElection and cfg.watch_namespaces() is None
    assert (cfg.qps, cfg.burst, cfg.reconcileConcurrency) == (100.0, 200, 1)
    assert FeatureGates.parse(args.feature_gates).enabled("RayServiceIncrementalUpgrade")
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]  # Python's temporary files
    svc = _one(objects, "Service", "kuberay-operator")
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    selector = svc["spec"]["selector"]
    pod_labels = _one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert pod_labels["app.kubernetes.io/component"] == "kuberay-operator"


def test_the_roles_bind_the_generated_rules_to_the_service_account() -> None:
    objects = template()
    role = _one(objects, "ClusterRole", "kuberay-operator")
    assert role["rules"] == _generated("config/rbac/role.yaml")[0]["rules"]
    le = _one(objects, "Role", "kuberay-operator-leader-election")
    assert le["metadata"]["namespace"] == "default"
    assert le["rules"] == _generated("config/rbac/leader_election_role.yaml")[0]["rules"]
    sa = _one(objects, "ServiceAccount", "kuberay-operator")
    for binding in (_one(objects, "ClusterRoleBinding"), _one(objects, "RoleBinding")):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kuberay-operator", "namespace": "default"}]
    assert _one(objects, "ClusterRoleBinding")["roleRef"]["name"] == "kuberay-operator"
    deploy = _one(objects, "Deployment")
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_crds_are_the_generated_ones() -> None:
    crds = {o["metadata"]["name"]: o for o in template(include_crds=True) if o["kind"] == "CustomResourceDefinition"}
    want = {}
    for path in sorted((REPO / "config" / "crd" / "bases").glob("*.yaml")):
        (crd,) = _generated(str(path.relative_to(REPO)))
        want[crd["metadata"]["name"]] = crd
    assert crds == want


def test_single_namespace_install_gets_roles_in_each_watched_namespace_and_no_cluster_role() -> None:
    objects = template({"singleNamespaceInstall": True, "watchNamespace": ["team-a", "team-b"]}, namespace="ops")
    assert not [o for o in objects if o["kind"].startswith("Cluster")]
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects if o["kind"] == "Role"}
    assert roles == {
        ("team-a", "kuberay-operator"),
        ("team-b", "kuberay-operator"),
        ("ops", "kuberay-operator-leader-election"),
    }
    bindings = {(o["metadata"]["namespace"], o["roleRef"]["name"]) for o in objects if o["kind"] == "RoleBinding"}
    assert {("team-a", "kuberay-operator"), ("team-b", "kuberay-operator")} <= bindings
    for o in objects:
        if o["kind"] == "RoleBinding":
            assert o["subjects"][0]["namespace"] == "ops"
    args = _container(objects)["args"]
    assert args[args.index("--watch-namespace") + 1] == "team-a,team-b"
    assert configuration(parse_args(args), print).watch_namespaces() == ["team-a", "team-b"]
    # Without watchNamespace, the release's namespace alone, with one binding there.
    objects = template({"singleNamespaceInstall": True}, namespace="ops")
    args = _container(objects)["args"]
    assert args[args.index("--watch-namespace") + 1] == "ops"
    names = [(o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] in ("Role", "RoleBinding")]
    assert sorted(names) == sorted(set(names)), f"an object rendered twice: {names}"


def test_every_flag_value_reaches_the_operator() -> None:
    values = {
        "watchNamespace": ["a", "b"],
        "logging": {"baseDir": "/var/log/kuberay", "fileName": "operator.log", "sizeLimit": "1Gi"},
        "useKubernetesProxy": True,
        "leaderElectionEnabled": False,
        "metrics": {"enabled": False},
        "reconcileConcurrency": 4,
        "kubeClient": {"qps": 50.5, "burst": 70},
        "featureGates": [{"name": "RayCronJob", "enabled": True}],
    }
    objects = template(values)
    c = _container(objects)
    cfg = configuration(parse_args(c["args"]), print)
    assert cfg.watch_namespaces() == ["a", "b"]
    assert cfg.logFile == "/var/log/kuberay/operator.log"
    assert cfg.useKubernetesProxy and not cfg.enableLeaderElection and not cfg.enableMetrics
    assert (cfg.reconcileConcurrency, cfg.qps, cfg.burst) == (4, 50.5, 70)
    assert c["args"][-1] == "--feature-gates=RayCronJob=true"
    assert {"name": "kuberay-logs", "mountPath": "/var/log/kuberay"} in c["volumeMounts"]
    volumes = _one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "kuberay-logs", "emptyDir": {"sizeLimit": "1Gi"}} in volumes


def test_configuration_mode_mounts_a_configuration_the_operator_decodes() -> None:
    env = [{"name": "RAY_enable_open_telemetry", "value": "true"}]
    values = {
        "configuration": {"enabled": True, "defaultContainerEnvs": env, "defaultPodLabels": {"team": "ml"}},
        "singleNamespaceInstall": True,
        "kubeClient": {"qps": 20, "burst": 40},
    }
    objects = template(values, namespace="ops")
    c = _container(objects)
    assert c["args"] == ["--config", "/etc/kuberay/config.yaml", GATES]
    assert {"name": "operator-config", "mountPath": "/etc/kuberay", "readOnly": True} in c["volumeMounts"]
    volumes = _one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "operator-config", "configMap": {"name": "kuberay-operator-config"}} in volumes
    warnings: list[str] = []
    cfg = decode(_one(objects, "ConfigMap", "kuberay-operator-config")["data"]["config.yaml"], warnings.append)
    assert warnings == []
    assert cfg.watch_namespaces() == ["ops"] and (cfg.qps, cfg.burst) == (20.0, 40)
    assert cfg.enableMetrics and cfg.enableLeaderElection and cfg.reconcileConcurrency == 1
    assert cfg.defaultContainerEnvs == env and cfg.defaultPodLabels == {"team": "ml"}


def test_values_the_operator_would_refuse_fail_the_render_with_one_line() -> None:
    assert "values.reconcileConcurrency must be a positive integer" in template_error({"reconcileConcurrency": 0})
    assert "values.kubeClient.qps must be a valid float number" in template_error({"kubeClient": {"qps": "fast"}})
    assert "values.kubeClient.burst must be a non-negative integer" in template_error({"kubeClient": {"burst": -1}})


def test_service_monitor_and_batch_scheduler_rules() -> None:
    objects = template(
        {"metrics": {"serviceMonitor": {"enabled": True, "namespace": "monitoring", "additionalLabels": {"r": "p"}}}}
    )
    sm = _one(objects, "ServiceMonitor")
    assert sm["metadata"]["namespace"] == "monitoring" and sm["metadata"]["labels"]["r"] == "p"
    assert sm["spec"]["endpoints"] == [
        {"path": "/metrics", "targetPort": "http", "interval": "30s", "honorLabels": True}
    ]
    assert sm["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "kuberay-operator"}
    assert not [o for o in template() if o["kind"] == "ServiceMonitor"]
    # A batch scheduler adds its PodGroup rules (the operator itself then refuses to start: not ported).
    rules = _one(template({"batchScheduler": {"name": "volcano"}}), "ClusterRole")["rules"]
    assert {"apiGroups": ["scheduling.volcano.sh"], "resources": ["podgroups"]}.items() <= rules[-1].items()
    assert "--batch-scheduler=volcano" in _container(template({"batchScheduler": {"name": "volcano"}}))["args"]


def test_helm_lint_finds_nothing_to_warn_about() -> None:
    res = helm("lint", "--strict", str(CHART))
    assert res.returncode == 0, res.stdout + res.stderr
