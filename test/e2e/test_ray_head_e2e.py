"""The dashboard client against a real Ray 2.60 head on 127.0.0.1 (the ``ray_head`` fixture)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.wait import eventually

from controllers.ray.utils.dashboard import (
    DashboardClientFactory,
    DashboardTimeout,
    JobAlreadySubmitted,
    JobNotFound,
    Loopback,
    RayDashboardClient,
    RayJobInfo,
    RayJobRequest,
)

pytestmark = pytest.mark.e2e

CLUSTER = {"metadata": {"name": "e2e", "namespace": "default"}, "spec": {}}
JOB_DEADLINE = 120.0


@pytest.fixture
async def client(ray_head: Any) -> AsyncIterator[RayDashboardClient]:
    async with DashboardClientFactory(Loopback({"default/e2e": ray_head.dashboard_url})) as factory:
        yield factory.for_cluster(CLUSTER, "")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def submit(client: RayDashboardClient, req: RayJobRequest) -> str:
    """Submit as the operator does: a timed-out attempt is retried, and the duplicate answer to a retry
    means the first attempt went through."""
    deadline = time.monotonic() + 60
    retried = False
    while True:
        try:
            return await client.submit_job(req)
        except DashboardTimeout:
            if time.monotonic() > deadline:
                raise
            retried = True
        except JobAlreadySubmitted as e:
            if not retried:
                raise
            return e.submission_id


async def wait_status(client: RayDashboardClient, job_id: str, want: set[str]) -> RayJobInfo:
    async def reached() -> RayJobInfo | None:
        try:
            info = await client.get_job_info(job_id)
        except DashboardTimeout:  # a busy 2-CPU head may miss the 2 s budget now and then
            return None
        assert not (info.is_terminal and info.status not in want), f"{job_id} ended {info.status}: {info.message}"
        return info if info.status in want else None

    result: RayJobInfo = await eventually(reached, timeout=JOB_DEADLINE, what=f"{job_id} in {want}", interval=0.5)
    return result


async def test_version_and_unknown_job(client: RayDashboardClient) -> None:
    version = await client.get_version()
    assert version["ray_version"] == "2.60.0"
    with pytest.raises(JobNotFound, match="Job no-such-job does not exist on the cluster"):
        await client.get_job_info("no-such-job")
    assert await client.get_job_log("no-such-job") is None


async def test_submit_follow_to_success_and_read_logs(client: RayDashboardClient) -> None:
    job_id = new_id("hello")
    req = RayJobRequest(
        entrypoint="python -c \"print('hello from ray')\"",
        submission_id=job_id,
        metadata={"origin": "kuberay-py-e2e"},
        runtime_env={"env_vars": {"E2E": "1"}},
    )
    assert await submit(client, req) == job_id
    info = await wait_status(client, job_id, {"SUCCEEDED"})
    assert info.submission_id == job_id
    assert info.metadata.get("origin") == "kuberay-py-e2e"
    assert info.end_time >= info.start_time > 0

    async def logged() -> bool:
        logs = await client.get_job_log(job_id)
        return logs is not None and "hello from ray" in logs

    await eventually(logged, timeout=30, what="the driver output in the job logs", interval=0.5)
    assert job_id in [j.submission_id for j in await client.list_jobs()]


async def test_failing_entrypoint_ends_failed(client: RayDashboardClient) -> None:
    job_id = new_id("fail")
    await submit(client, RayJobRequest('python -c "import sys; sys.exit(3)"', job_id))
    info = await wait_status(client, job_id, {"FAILED"})
    assert "3" in info.message


async def test_duplicate_submission_id(client: RayDashboardClient) -> None:
    job_id = new_id("dup")
    req = RayJobRequest('python -c "pass"', job_id)
    await submit(client, req)
    with pytest.raises(JobAlreadySubmitted) as exc:
        await client.submit_job(req)
    assert exc.value.submission_id == job_id
    assert "Please use a different submission_id" in exc.value.body


async def test_stop_and_delete(client: RayDashboardClient) -> None:
    job_id = new_id("sleepy")
    await submit(client, RayJobRequest('python -c "import time; time.sleep(600)"', job_id))
    await wait_status(client, job_id, {"RUNNING"})

    await client.delete_job(job_id)  # a running job cannot be deleted; the answer is ignored
    assert (await client.get_job_info(job_id)).status == "RUNNING"

    await client.stop_job(job_id)
    await wait_status(client, job_id, {"STOPPED"})
    await client.stop_job(job_id)  # stopped=false on a terminal job is fine

    await client.delete_job(job_id)

    async def gone() -> bool:
        try:
            await client.get_job_info(job_id)
        except JobNotFound:
            return True
        return False

    await eventually(gone, timeout=30, what=f"{job_id} deleted", interval=0.5)


async def test_concurrent_status_checks(client: RayDashboardClient) -> None:
    job_id = new_id("many")
    await submit(client, RayJobRequest('python -c "pass"', job_id))
    infos = await asyncio.gather(*(client.get_job_info(job_id) for _ in range(20)), return_exceptions=True)
    assert all(isinstance(i, RayJobInfo | DashboardTimeout) for i in infos)
    assert any(isinstance(i, RayJobInfo) for i in infos)
    await wait_status(client, job_id, {"SUCCEEDED"})
