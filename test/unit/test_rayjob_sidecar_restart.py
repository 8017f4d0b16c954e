"""Gate SidecarSubmitterRestart (spec §3.8): the kubelet restarts a failed submitter sidecar, and the
RayJob fails only once the sidecar has restarted ``submitterConfig.backoffLimit`` times (2 by default);
the operator refuses to start with the gate on an API server older than Kubernetes 1.35."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from controllers.ray import rayjob_controller as rj
from internal.features import FeatureGates
from internal.startup import StartupError


class Heads:
    """The informer cache, holding one head pod with the given submitter container status."""

    def __init__(self, submitter: dict[str, Any]) -> None:
        self.pod = {"status": {"containerStatuses": [{"name": "ray-head"}, {"name": "ray-job-submitter", **submitter}]}}

    def list(self, *_a: Any, **_kw: Any) -> list[dict[str, Any]]:
        return [self.pod]


def check(submitter: dict[str, Any], gate: bool, **spec: Any) -> tuple[bool, dict[str, Any]]:
    gates = FeatureGates.parse(f"SidecarSubmitterRestart={str(gate).lower()}")
    r = rj.RayJobReconciler(None, Heads(submitter), None, None, rj.RayJobOptions(env={}, gates=gates))  # type: ignore[arg-type]
    job: dict[str, Any] = {
        "metadata": {"name": "j", "namespace": "ns"},
        "spec": {"submissionMode": "SidecarMode", **spec},
        "status": {"rayClusterName": "c", "jobStatus": "RUNNING", "jobDeploymentStatus": "Running"},
    }
    changed, _finished = asyncio.run(r._check_submitter(job, {}))
    return changed, job["status"]


FAILED_ONCE = {"exitCode": 1, "finishedAt": "2026-01-01T00:00:00Z"}


def test_without_the_gate_a_non_zero_exit_fails_the_job() -> None:
    changed, st = check({"state": {"terminated": FAILED_ONCE}, "restartCount": 0}, gate=False)
    assert changed and st["jobDeploymentStatus"] == "Failed" and st["reason"] == "SubmissionFailed"


def test_with_the_gate_a_restarting_sidecar_keeps_the_job_running() -> None:
    for restarts in (0, 1):
        status = {"state": {"terminated": FAILED_ONCE}, "lastState": {"terminated": FAILED_ONCE}}
        changed, st = check({**status, "restartCount": restarts}, gate=True)
        assert not changed and st["jobDeploymentStatus"] == "Running"
    # Recovered and running again after a restart: still fine.
    changed, st = check({"state": {"running": {}}, "lastState": {"terminated": FAILED_ONCE}, "restartCount": 1}, True)
    assert not changed


def test_with_the_gate_the_job_fails_after_the_allowed_restarts() -> None:
    status = {"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": FAILED_ONCE}}
    changed, st = check({**status, "restartCount": 2}, gate=True)
    assert changed and st["jobDeploymentStatus"] == "Failed" and st["reason"] == "SubmissionFailed"
    assert (
        st["message"]
        == "Ray head pod submitter container ray-job-submitter terminated due to exceeding max restart count"
    )
    # submitterConfig.backoffLimit sets the limit.
    changed, _ = check({**status, "restartCount": 2}, gate=True, submitterConfig={"backoffLimit": 3})
    assert not changed


def test_with_the_gate_a_successful_exit_after_restarts_is_not_a_failure() -> None:
    done = {"exitCode": 0, "finishedAt": "2026-01-01T00:01:00Z"}
    changed, st = check(
        {"state": {"terminated": done}, "lastState": {"terminated": FAILED_ONCE}, "restartCount": 5}, True
    )
    assert not changed and st["jobDeploymentStatus"] == "Running"


@pytest.mark.parametrize("version", ["v1.34.3", "v1.30.0-gke.100", ""])
def test_the_gate_needs_kubernetes_1_35(version: str) -> None:
    with pytest.raises(StartupError, match=r"SidecarSubmitterRestart needs Kubernetes v1\.35"):
        rj.check_kubernetes_version(FeatureGates.parse("SidecarSubmitterRestart=true"), version)
    rj.check_kubernetes_version(FeatureGates.parse(""), version)  # gate off: any version


@pytest.mark.parametrize("version", ["v1.35.0", "v1.36.2", "v2.0.0"])
def test_the_gate_starts_on_kubernetes_1_35_and_later(version: str) -> None:
    rj.check_kubernetes_version(FeatureGates.parse("SidecarSubmitterRestart=true"), version)
