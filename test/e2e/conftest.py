"""A real Ray head (``ray[default]``, the ``e2e`` extra) on 127.0.0.1 for end-to-end dashboard tests.

The head runs as ``ray start --head --block`` in a session of its own, with every port pinned to a free
loopback port, Ray's loopback switch in its environment (``support/ray_env.py``: without it Ray moves
to the machine's routable address, and the session's process-tree guard fails the test),
``RAY_TMPDIR``/``--temp-dir`` in a private directory and a marker variable in its environment.
Teardown ends only what this fixture started: SIGTERM to the ``ray start`` process (which stops its
children), then any process still carrying the marker (workers, job drivers) by pid.
``ray stop --force`` is deliberately not used: it kills every Ray process of the user on the machine,
including other test runs' heads.

Tests here are skipped with a reason when ``ray[default]==2.60.0`` is not installed; when it is, a head
that does not start is a test failure.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.ray_env import ray_env

RAY_VERSION = "2.60.0"
MARKER_ENV = "KUBERAY_PY_E2E_RAY_HEAD"
START_DEADLINE = 180.0
STOP_DEADLINE = 30.0


def _ray_unavailable() -> str | None:
    """Why a real head cannot run here, or None."""
    try:
        import ray  # type: ignore[import-untyped]
    except ImportError:
        return "ray is not installed: pip install -e '.[e2e]' (ray[default]==2.60.0)"
    if importlib.util.find_spec("aiohttp_cors") is None:  # a dependency of ray[default] only
        return "ray is installed without the [default] extra (no dashboard): pip install 'ray[default]==2.60.0'"
    if ray.__version__ != RAY_VERSION:
        return f"ray {ray.__version__} is installed; these tests pin {RAY_VERSION}"
    if _ray_cli() is None:
        return "the ray CLI is not on PATH next to the interpreter"
    return None


def _ray_cli() -> str | None:
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else shutil.which("ray")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class RayHead:
    dashboard_url: str  # http://127.0.0.1:<port>
    gcs_address: str
    temp_dir: Path
    log: Path
    marker: str


def _http_ok(url: str, expect: bytes | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200 and (expect is None or expect in r.read()))
    except (urllib.error.URLError, OSError):
        return False


def _marked_pids(marker: str) -> list[int]:
    """Processes of this user whose environment carries ``MARKER_ENV=<marker>``."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _wait_gone(pids: list[int], deadline: float) -> list[int]:
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _is_zombie(p)]
        if alive:
            time.sleep(0.2)
    return alive


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _stop_head(proc: subprocess.Popen[bytes], marker: str) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    leftovers = _marked_pids(marker)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    for pid in _wait_gone(leftovers, time.monotonic() + 10):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    reason = _ray_unavailable()
    if reason:
        pytest.skip(reason)
    ray = _ray_cli()
    assert ray is not None
    temp_dir = Path(tempfile.mkdtemp(prefix="krpy-ray-", dir="/tmp"))  # short: Ray's socket paths are long
    log = temp_dir / "ray-start.log"
    marker = uuid.uuid4().hex
    (
        gcs,
        dashboard,
        agent_http,
        agent_grpc,
        client_server,
        metrics,
        runtime_env_agent,
        node_manager,
        object_manager,
    ) = _free_ports(9)
    cmd = [
        ray,
        "start",
        "--head",
        "--block",
        "--num-cpus=2",
        "--node-ip-address=127.0.0.1",
        "--dashboard-host=127.0.0.1",
        "--include-dashboard=true",
        f"--port={gcs}",
        f"--dashboard-port={dashboard}",
        f"--dashboard-agent-listen-port={agent_http}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--ray-client-server-port={client_server}",
        f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={runtime_env_agent}",
        f"--node-manager-port={node_manager}",
        f"--object-manager-port={object_manager}",
        "--object-store-memory=200000000",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    env = dict(os.environ)
    env.update(
        {
            **ray_env(temp_dir / "home"),
            MARKER_ENV: marker,
            "RAY_TMPDIR": str(temp_dir),
            "RAY_USAGE_STATS_ENABLED": "0",
            # Job entrypoints run `python ...`: make it this interpreter (the venv need not be activated).
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.pop("RAY_ADDRESS", None)
    url = f"http://127.0.0.1:{dashboard}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=temp_dir
        )
    try:
        deadline = time.monotonic() + START_DEADLINE
        while not (_http_ok(url + "/api/gcs_healthz", b"success") and _http_ok(url + "/api/version")):
            if proc.poll() is not None:
                pytest.fail(f"ray start exited with {proc.returncode}; see {log}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the Ray head did not become healthy within {START_DEADLINE:.0f}s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield RayHead(url, f"127.0.0.1:{gcs}", temp_dir, log, marker)
    finally:
        _stop_head(proc, marker)
        shutil.rmtree(temp_dir, ignore_errors=True)
