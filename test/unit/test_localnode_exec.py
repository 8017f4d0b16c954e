"""The local node's exec finds a container's process from the pod's status, and says clearly why not."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from internal.controlplane.localnode.podexec import ExecError, container_env, container_pid


def pod(*statuses: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "head"}, "status": {"containerStatuses": list(statuses)}}


def running(name: str, pid: int) -> dict[str, Any]:
    return {"name": name, "containerID": f"host-process://{pid}", "state": {"running": {}}}


def test_the_named_container_or_the_first_one() -> None:
    me = os.getpid()
    p = pod(running("ray-head", me), running("autoscaler", os.getppid()))
    assert container_pid(p, None) == me
    assert container_pid(p, "autoscaler") == os.getppid()


@pytest.mark.parametrize(
    ("status", "container", "message"),
    [
        (pod(), None, "pod head has no running containers"),
        (pod(running("ray-head", 1)), "nope", "container nope is not valid for pod head: choose one of ray-head"),
        (
            pod({"name": "ray-head", "state": {"waiting": {"reason": "CreateContainerError"}}}),
            None,
            "container ray-head of pod head is not running on the local node",
        ),
        (
            pod({"name": "ray-head", "containerID": "containerd://abc", "state": {"running": {}}}),
            None,
            "container ray-head of pod head is not running on the local node",
        ),
    ],
)
def test_clear_errors(status: dict[str, Any], container: str | None, message: str) -> None:
    with pytest.raises(ExecError, match=message):
        container_pid(status, container)


def test_a_process_that_is_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(ExecError, match=f"process {proc.pid} is gone"):
        container_pid(pod(running("ray-head", proc.pid)), None)


def test_the_environment_is_the_container_s() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; print('up', flush=True); time.sleep(30)"],
        env={"RAY_ADDRESS": "x:6379"},
        stdout=subprocess.PIPE,
    )
    try:
        # Read once the program runs (a container exec targets a long-running process; right after
        # fork its environ may not be readable yet).
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        # Read from the process itself (a test run may add its own marker variable to children).
        env = container_env(proc.pid)
        assert env.get("RAY_ADDRESS") == "x:6379" and "PATH" not in env, env
    finally:
        proc.kill()
        proc.wait()
