"""The Configuration file decoder (api/config/v1alpha1.py): upstream's defaults, unknown fields as
warnings, one-line errors with the YAML line, checks on the fields that reach every pod, upstream's
batch-scheduler validation, and the hand-over of the pod fields to the RayCluster controller."""

from __future__ import annotations

from typing import Any

import pytest

from api.config.v1alpha1 import ConfigError, Configuration, batch_scheduler, decode
from controllers.ray.raycluster_controller import RayClusterOptions
from internal.features import FeatureGates

HEADER = "apiVersion: config.ray.io/v1alpha1\nkind: Configuration\n"


def load(body: str) -> tuple[Configuration, list[str]]:
    warnings: list[str] = []
    return decode(HEADER + body, warnings.append), warnings


def test_empty_file_is_the_defaults() -> None:
    cfg, warnings = load("")
    assert cfg == Configuration() and warnings == []


def test_every_field_is_read() -> None:
    cfg, _ = load(
        """
metricsAddr: 127.0.0.1:9000
probeAddr: 127.0.0.1:9001
enableLeaderElection: false
leaderElectionNamespace: ops
reconcileConcurrency: 4
watchNamespace: a,b
logFile: /var/log/op.log
logFileEncoder: console
logStdoutEncoder: console
useKubernetesProxy: true
enableMetrics: true
qps: 50
burst: 80
deleteRayJobAfterJobFinishes: true
"""
    )
    assert cfg.metricsAddr == "127.0.0.1:9000" and cfg.probeAddr == "127.0.0.1:9001"
    assert cfg.enableLeaderElection is False and cfg.leaderElectionNamespace == "ops"
    assert cfg.reconcileConcurrency == 4 and cfg.watch_namespaces() == ["a", "b"]
    assert cfg.logFile == "/var/log/op.log" and cfg.logFileEncoder == cfg.logStdoutEncoder == "console"
    assert cfg.useKubernetesProxy and cfg.enableMetrics and cfg.deleteRayJobAfterJobFinishes
    assert cfg.qps == 50 and cfg.burst == 80


def test_empty_values_get_upstream_defaults() -> None:
    cfg, _ = load('metricsAddr: ""\nprobeAddr: ""\nreconcileConcurrency: 0\nlogFileEncoder: ""\nqps: null\n')
    assert (cfg.metricsAddr, cfg.probeAddr, cfg.reconcileConcurrency) == (":8080", ":8082", 1)
    assert cfg.logFileEncoder == "json" and cfg.qps == 100.0


def test_unknown_fields_are_warnings_naming_the_field() -> None:
    cfg, warnings = load("reconcileConcurency: 3\nmetricsAddr: :9090\nfoo: {bar: 1}\n")
    assert cfg.metricsAddr == ":9090" and cfg.reconcileConcurrency == 1
    assert warnings == [
        "unknown field 'reconcileConcurency' in the configuration file is ignored",
        "unknown field 'foo' in the configuration file is ignored",
    ]


def test_delete_rayjob_after_job_finishes_warns_that_only_the_env_var_counts() -> None:
    cfg, warnings = load("deleteRayJobAfterJobFinishes: true\n")
    assert cfg.deleteRayJobAfterJobFinishes
    assert warnings == [
        "deleteRayJobAfterJobFinishes in the configuration file has no effect (as upstream): "
        "set the environment variable DELETE_RAYJOB_CR_AFTER_JOB_FINISHES=true instead"
    ]


def test_yaml_syntax_errors_name_the_line() -> None:
    with pytest.raises(ConfigError) as e:
        decode(HEADER + "metricsAddr: :8080\n  probeAddr: :8082\n")
    assert str(e.value) == "invalid YAML at line 4, column 12: mapping values are not allowed here"
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "the configuration file must be a YAML mapping"),
        ("kind: Configuration\n", "must have apiVersion config.ray.io/v1alpha1 and kind Configuration"),
        (HEADER + "enableMetrics: yes please\n", "field enableMetrics: must be of type bool, got str 'yes please'"),
        (HEADER + "reconcileConcurrency: true\n", "field reconcileConcurrency: must be of type int, got bool True"),
        (HEADER + "reconcileConcurrency: -2\n", "field reconcileConcurrency: must be at least 1, got -2"),
        (HEADER + "qps: fast\n", "field qps: must be of type float, got str 'fast'"),
        (HEADER + "logStdoutEncoder: xml\n", "field logStdoutEncoder: invalid encoder 'xml'"),
        (HEADER + "headSidecarContainers: {name: x}\n", "field headSidecarContainers: must be a list, got dict"),
        (HEADER + "workerSidecarContainers: [fluentbit]\n", "field workerSidecarContainers[0]: must be a mapping"),
        (HEADER + "headSidecarContainers: [{image: x}]\n", "field headSidecarContainers[0].name: must be a DNS-1123"),
        (HEADER + "headSidecarContainers: [{name: Log_Shipper, image: x}]\n", "must be a DNS-1123 label"),
        (HEADER + "workerSidecarContainers: [{name: fb}]\n", "field workerSidecarContainers[0].image: required"),
        (
            HEADER + "headSidecarContainers: [{name: fb, image: x, env: [{value: y}]}]\n",
            "field headSidecarContainers[0].env[0].name",
        ),
        (HEADER + "defaultContainerEnvs: [{name: '1X', value: y}]\n", "must be a valid environment variable name"),
        (HEADER + "defaultContainerEnvs: [{name: PORT, value: 8080}]\n", "field defaultContainerEnvs[0].value"),
        (HEADER + "defaultPodLabels: [a]\n", "field defaultPodLabels: must be a mapping"),
        (HEADER + "defaultPodLabels: {team: 3}\n", "keys and values must be strings"),
        (HEADER + "defaultPodLabels: {team: a b}\n", "value 'a b' of 'team' is not a valid label value"),
        (HEADER + "defaultPodLabels: {'Bad_Prefix/team': a}\n", "its prefix must be a DNS subdomain"),
        (HEADER + "defaultPodAnnotations: {'bad key': x}\n", "key 'bad key' is invalid"),
    ],
)
def test_invalid_files_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        decode(text)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_pod_fields_are_kept_as_written() -> None:
    cfg, _ = load(
        """
headSidecarContainers:
- name: fluentbit
  image: fluent/fluent-bit:3.0
  env: [{name: LEVEL, value: info}]
workerSidecarContainers: [{name: shipper, image: busybox, command: [sleep, infinity]}]
defaultContainerEnvs:
- {name: HTTP_PROXY, value: "http://proxy:3128"}
- name: NODE
  valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
defaultPodLabels: {example.com/team: ml, empty: ""}
defaultPodAnnotations: {note: "any text, even with spaces"}
"""
    )
    assert cfg.headSidecarContainers[0]["env"] == [{"name": "LEVEL", "value": "info"}]
    assert cfg.workerSidecarContainers == [{"name": "shipper", "image": "busybox", "command": ["sleep", "infinity"]}]
    assert cfg.defaultContainerEnvs[1] == {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    assert cfg.defaultPodLabels == {"example.com/team": "ml", "empty": ""}
    assert cfg.defaultPodAnnotations == {"note": "any text, even with spaces"}


def test_configuration_becomes_the_raycluster_options() -> None:
    cfg, _ = load(
        """
headSidecarContainers: [{name: fb, image: fluent}]
workerSidecarContainers: [{name: shipper, image: busybox}]
defaultContainerEnvs: [{name: TZ, value: UTC}]
defaultPodLabels: {team: ml}
defaultPodAnnotations: {note: hi}
"""
    )
    gates = FeatureGates.parse("RayMultiHostIndexing=false")
    opts = RayClusterOptions.from_configuration(cfg, gates)
    assert opts.gates is gates
    pc = opts.pod_config
    assert list(pc.head_sidecar_containers) == [{"name": "fb", "image": "fluent"}]
    assert list(pc.worker_sidecar_containers) == [{"name": "shipper", "image": "busybox"}]
    assert list(pc.default_container_envs) == [{"name": "TZ", "value": "UTC"}]
    assert pc.default_pod_labels == {"team": "ml"} and pc.default_pod_annotations == {"note": "hi"}


# ---- ValidateBatchSchedulerConfig ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "was", "chosen"),
    [
        ({}, False, ""),
        ({"batchScheduler": "volcano"}, False, "volcano"),
        ({"batchScheduler": "yunikorn"}, False, "yunikorn"),
        ({"batchScheduler": "kai-scheduler"}, False, "kai-scheduler"),
        ({"batchScheduler": "scheduler-plugins"}, False, "scheduler-plugins"),
        ({"enableBatchScheduler": True}, False, "volcano"),
        ({}, True, "kubernetes-was"),
    ],
)
def test_batch_scheduler_choice(fields: dict[str, Any], was: bool, chosen: str) -> None:
    assert batch_scheduler(Configuration(**fields), was) == chosen


@pytest.mark.parametrize(
    ("fields", "was", "message"),
    [
        ({"batchScheduler": "Volcano"}, False, "scheduler is not supported, name=Volcano"),
        ({"batchScheduler": "slurm"}, False, "scheduler is not supported, name=slurm"),
        (
            {"batchScheduler": "volcano", "enableBatchScheduler": True},
            False,
            "both feature flags enable-batch-scheduler (deprecated) and batch-scheduler are set. "
            "Please use batch-scheduler only",
        ),
        (
            {"batchScheduler": "yunikorn"},
            True,
            "the KubernetesWAS feature gate cannot be combined with --batch-scheduler or --enable-batch-scheduler",
        ),
        (
            {"enableBatchScheduler": True},
            True,
            "the KubernetesWAS feature gate cannot be combined with --batch-scheduler or --enable-batch-scheduler",
        ),
    ],
)
def test_batch_scheduler_errors_are_upstreams(fields: dict[str, Any], was: bool, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        batch_scheduler(Configuration(**fields), was)
    assert str(e.value) == message
