"""End to end on a real Ray head (ray[default] on 127.0.0.1): the operator runs RayJobs on the
simulated cluster, and every dashboard call the controller makes goes to the real head.

- an HTTPMode RayJob runs a real Python entrypoint to Complete/SUCCEEDED and its logs are retrievable;
- a failing entrypoint ends Failed/AppFailed;
- the K8sJobMode submitter command that the controller generated, run locally against the head,
  really submits and follows the job (and a retried submitter does not submit twice);
- a SUCCEEDED job with deletion rules cleans up as the rules say, keeping the real driver log.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.operator import running_operator
from support.ray_env import ray_env
from support.wait import eventually, gone

from controllers.ray import raycluster_controller, rayjob_controller
from controllers.ray.utils.dashboard import DashboardClientFactory, Loopback
from internal.app import Runtime
from internal.client import Client, NotFound
from internal.client.resources import CONFIGMAPS, JOBS, RAYCLUSTERS, RAYJOBS

pytestmark = [pytest.mark.e2e, pytest.mark.t2]

RAYJOB = yaml.safe_load(
    """
apiVersion: ray.io/v1
kind: RayJob
metadata:
  name: e2e
spec:
  entrypoint: python -c "print('hello from a real ray job')"
  submissionMode: HTTPMode
  rayClusterSpec:
    rayVersion: '2.60.0'
    headGroupSpec:
      rayStartParams: {}
      template:
        spec:
          containers:
          - name: ray-head
            image: rayproject/ray:2.60.0
"""
)


def rayjob(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    j = copy.deepcopy(RAYJOB)
    j["metadata"] = {"name": name, "namespace": ns}
    j["spec"].update(spec)
    return j


@contextlib.asynccontextmanager
async def operator_on_real_head(plane: Any, head_url: str) -> AsyncIterator[DashboardClientFactory]:
    # Every RayCluster the operator creates is "reached" at the one real head on loopback.
    factory = DashboardClientFactory(Loopback(lambda cluster: head_url))

    def rayjob_setup(rt: Runtime) -> list[Any]:
        return rayjob_controller.setup(rt, rayjob_controller.RayJobOptions(env={}, gates=rt.gates), factory)

    try:
        async with running_operator(plane, [raycluster_controller.setup, rayjob_setup]):
            yield factory
    finally:
        await factory.close()


async def state(c: Client, ns: str, name: str, want: str, timeout: float = 180) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        st = (await c.get(RAYJOBS, name, ns)).get("status") or {}
        return st if st.get("jobDeploymentStatus") == want else None

    return await eventually(reached, timeout, f"RayJob {name} {want}", interval=0.5)


async def test_http_mode_job_succeeds_on_a_real_head(
    ray_head: Any, sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_on_real_head(sim_cluster, ray_head.dashboard_url) as dashboards:
        await kclient.create(RAYJOBS, rayjob("ok", namespace))
        st = await state(kclient, namespace, "ok", "Complete")
        assert st["jobStatus"] == "SUCCEEDED" and "reason" not in st  # omitted when empty, as upstream writes it
        assert st["rayJobInfo"]["startTime"] and st["rayJobInfo"]["endTime"]
        cluster = await kclient.get(RAYCLUSTERS, st["rayClusterName"], namespace)
        client = dashboards.for_cluster(cluster, st["dashboardURL"])
        logs = await client.get_job_log(st["jobId"])
        assert logs is not None and "hello from a real ray job" in logs


async def test_failing_entrypoint_ends_failed_app_failed(
    ray_head: Any, sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_on_real_head(sim_cluster, ray_head.dashboard_url):
        await kclient.create(RAYJOBS, rayjob("bad", namespace, entrypoint='python -c "import sys; sys.exit(3)"'))
        st = await state(kclient, namespace, "bad", "Failed")
        assert st["reason"] == "AppFailed" and st["jobStatus"] == "FAILED" and st["failed"] == 1


async def test_generated_submitter_command_submits_and_follows_on_a_real_head(
    ray_head: Any, sim_cluster: Any, kclient: Client, namespace: str, tmp_path: Path
) -> None:
    async with operator_on_real_head(sim_cluster, ray_head.dashboard_url):
        job = rayjob("sub", namespace, submissionMode="K8sJobMode", entrypoint='python -c "print(6 * 7)"')
        job["metadata"]["annotations"] = {}
        await kclient.create(RAYJOBS, job)

        async def submitter() -> dict[str, Any] | None:
            try:
                return await kclient.get(JOBS, "sub", namespace)
            except NotFound:
                return None

        sub = await eventually(submitter, 120, "the submitter Job")
    container = sub["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", "") for e in container["env"]}
    # Run exactly what the submitter pod would run, with the head's real address on loopback.
    env["RAY_DASHBOARD_ADDRESS"] = ray_head.dashboard_url.removeprefix("http://")
    script = " ".join(container["args"]).replace(
        f"http://{(await kclient.get(RAYJOBS, 'sub', namespace))['status']['dashboardURL']}", ray_head.dashboard_url
    )
    # Nothing may dial the in-cluster name from here (it would need DNS): it must all be replaced.
    assert ".svc.cluster.local" not in script, script
    run_env = {
        **os.environ,
        **env,
        **ray_env(tmp_path / "home"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*container["command"], script], capture_output=True, text=True, env=run_env, timeout=180, check=False
        )

    first = await asyncio.to_thread(run)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "42" in first.stdout  # `ray job logs --follow` printed the driver's output
    assert f"Job '{env['RAY_JOB_SUBMISSION_ID']}' submitted successfully" in first.stdout
    # A retried submitter pod attaches to the logs instead of submitting twice.
    second = await asyncio.to_thread(run)
    assert second.returncode == 0 and "submitted successfully" not in second.stdout and "42" in second.stdout


async def test_deletion_rules_clean_up_and_keep_the_real_driver_log(
    ray_head: Any, sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    rules = {"deletionRules": [{"policy": "DeleteCluster", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 0}}]}
    async with operator_on_real_head(sim_cluster, ray_head.dashboard_url):
        await kclient.create(RAYJOBS, rayjob("rules", namespace, deletionStrategy=rules))
        st = await state(kclient, namespace, "rules", "Complete")

        cluster = st["rayClusterName"]
        await eventually(lambda: gone(kclient, RAYCLUSTERS, cluster, namespace), 60, "DeleteCluster to remove it")
        cm = await kclient.get(CONFIGMAPS, "rules-driver-log", namespace)
        assert "hello from a real ray job" in cm["data"]["driver.log"]
        assert (await kclient.get(RAYJOBS, "rules", namespace))["status"]["driverLogConfigMap"] == "rules-driver-log"
