"""cmd/main.py's pure parts: upstream's flag names and defaults, how zap's flags and the configuration
resolve into the log options, the batch-scheduler refusal, and which permissions the start-up check
requires (fatal) or only wants (a warning)."""

from __future__ import annotations

import logging

import pytest
from kuberay_operator.main import configuration, log_options, parse_args, refuse_batch_scheduler, required_access

from api.config.v1alpha1 import Configuration
from internal.features import FeatureGates
from internal.startup import Access


def test_flag_defaults_are_upstreams() -> None:
    args = parse_args([])
    cfg = configuration(args, print)
    assert (cfg.metricsAddr, cfg.probeAddr, cfg.enableLeaderElection) == (":8080", ":8082", True)
    assert (cfg.reconcileConcurrency, cfg.watchNamespace, cfg.leaderElectionNamespace) == (1, "", "")
    assert (cfg.logFile, cfg.logFileEncoder, cfg.logStdoutEncoder) == ("", "json", "json")
    assert (cfg.enableBatchScheduler, cfg.batchScheduler, cfg.useKubernetesProxy) == (False, "", False)
    assert (cfg.enableMetrics, cfg.qps, cfg.burst) == (False, 100.0, 200)
    assert args.zap_time_encoding == "iso8601" and args.feature_gates == ""


def test_go_style_booleans() -> None:
    assert parse_args(["--enable-leader-election=false"]).enable_leader_election is False
    assert parse_args(["--enable-metrics"]).enable_metrics is True
    assert parse_args(["--use-kubernetes-proxy", "true"]).use_kubernetes_proxy is True


def test_flags_become_the_configuration() -> None:
    args = parse_args(["--reconcile-concurrency=3", "--watch-namespace=a, b", "--log-file-path=/x.log", "--qps=5"])
    cfg = configuration(args, print)
    assert cfg.reconcileConcurrency == 3 and cfg.watch_namespaces() == ["a", "b"]
    assert cfg.logFile == "/x.log" and cfg.qps == 5.0


def test_log_options_defaults() -> None:
    args = parse_args([])
    opts = log_options(args, configuration(args, print))
    assert (opts.encoder, opts.level, opts.stacktrace_level, opts.time_encoding) == (
        "json",
        logging.INFO,
        logging.ERROR,
        "iso8601",
    )
    assert opts.file_path == ""


def test_zap_devel_and_explicit_zap_flags() -> None:
    devel = log_options(parse_args(["--zap-devel"]), Configuration())
    assert (devel.encoder, devel.level, devel.stacktrace_level) == ("console", logging.DEBUG, logging.WARNING)
    args = parse_args(["--zap-devel", "--zap-encoder=json", "--zap-log-level=error", "--zap-stacktrace-level=panic"])
    explicit = log_options(args, Configuration())
    assert (explicit.encoder, explicit.level, explicit.stacktrace_level) == ("json", logging.ERROR, logging.CRITICAL)
    assert log_options(parse_args(["--zap-time-encoding=RFC3339Nano"]), Configuration()).time_encoding == "rfc3339nano"


def test_log_encoders_and_file_come_from_the_resolved_configuration() -> None:
    cfg = Configuration(logFile="/var/log/op.log", logFileEncoder="console", logStdoutEncoder="console")
    opts = log_options(parse_args([]), cfg)
    assert (opts.encoder, opts.file_path, opts.file_encoder) == ("console", "/var/log/op.log", "console")


@pytest.mark.parametrize(
    ("fields", "gates", "config_file", "message"),
    [
        ({"batchScheduler": "volcano"}, "", "", "--batch-scheduler=volcano: batch schedulers are not supported"),
        ({"enableBatchScheduler": True}, "", "", "--enable-batch-scheduler (= volcano): batch schedulers are not"),
        ({"batchScheduler": "yunikorn"}, "", "/etc/c.yaml", "batchScheduler: yunikorn in /etc/c.yaml: batch"),
        ({}, "KubernetesWAS=true", "", "--feature-gates=KubernetesWAS=true: batch schedulers are not supported"),
        ({"batchScheduler": "x"}, "", "", "batch scheduler configs validation failed: scheduler is not supported"),
    ],
)
def test_batch_schedulers_are_refused(fields: dict[str, object], gates: str, config_file: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        refuse_batch_scheduler(Configuration(**fields), FeatureGates.parse(gates), config_file)  # type: ignore[arg-type]
    assert message in str(e.value)


def test_no_batch_scheduler_is_fine() -> None:
    refuse_batch_scheduler(Configuration(), FeatureGates.parse(""))


def test_required_access_cluster_wide() -> None:
    required, wanted = required_access(Configuration(), "kuberay-system")
    for a in (
        Access("list", "ray.io", "rayclusters"),
        Access("watch", "ray.io", "rayjobs"),
        Access("watch", "", "pods"),
        Access("list", "batch", "jobs"),
        Access("create", "coordination.k8s.io", "leases", "kuberay-system"),
    ):
        assert a in required, a
    assert Access("create", "", "pods") in wanted and Access("update", "ray.io", "rayclusters/status") in wanted
    assert not set(required) & set(wanted)
    assert all(a.namespace == "" for a in [*required, *wanted] if a.resource != "leases")


def test_required_access_per_watched_namespace_and_no_lease_without_election() -> None:
    required, wanted = required_access(Configuration(watchNamespace="a,b", enableLeaderElection=False), "ops")
    assert Access("list", "ray.io", "rayclusters", "a") in required
    assert Access("list", "ray.io", "rayclusters", "b") in required
    assert all(a.namespace in ("a", "b") for a in [*required, *wanted])
    assert not any(a.resource == "leases" for a in [*required, *wanted])


def test_required_access_includes_a_gated_controller_only_with_its_gate() -> None:
    off, off_wanted = required_access(Configuration(), "ops")
    on, on_wanted = required_access(Configuration(), "ops", FeatureGates.parse("RayCronJob=true"))
    assert Access("watch", "ray.io", "raycronjobs") not in off
    assert Access("watch", "ray.io", "raycronjobs") in on
    assert Access("create", "ray.io", "rayjobs") in on_wanted
    assert Access("update", "ray.io", "raycronjobs/status") in on_wanted
    assert Access("update", "ray.io", "raycronjobs/status") not in off_wanted
    assert Access("watch", "ray.io", "rayservices") in off  # RayService is always on
