"""``make run``'s command as a user runs it: the local plane with the local node comes up, prints how to
use it, runs a pod as a real process, and Ctrl-C (SIGINT) stops everything it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.proc_guard import ProcessTreeGuard, process_tree

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 180


def _read_until(proc: subprocess.Popen[str], pattern: str, lines: list[str]) -> re.Match[str]:
    assert proc.stdout is not None
    for line in proc.stdout:  # ends when the process exits; the pytest timeout bounds the whole test
        lines.append(line)
        m = re.search(pattern, line)
        if m:
            return m
    pytest.fail(f"make run exited ({proc.wait()}) before printing {pattern!r}:\n{''.join(lines[-40:])}")


@pytest.fixture
def make_run(process_guard: ProcessTreeGuard) -> Iterator[subprocess.Popen[str]]:
    from internal.controlplane.localnode import POD_CIDR

    if os.geteuid() != 0:
        pytest.fail("the local node needs root", pytrace=False)
    process_guard.allow(POD_CIDR)
    # What `make run` runs (Makefile: $(PY) cmd/main.py --local-control-plane), with console logs.
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "cmd" / "main.py"), "--local-control-plane", "--log-stdout-encoder=console"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_ctrl_c_stops_the_plane_the_node_and_every_pod_process(make_run: subprocess.Popen[str]) -> None:
    lines: list[str] = []
    kubeconfig = _read_until(make_run, r"export KUBECONFIG=(\S+)", lines).group(1)
    _read_until(make_run, r"kubectl apply -f config/samples/ray-job.sample.yaml", lines)
    # Keep reading its output, or it blocks on a full pipe.
    threading.Thread(target=lambda: lines.extend(make_run.stdout or ()), daemon=True).start()
    kubectl = ["kubectl", f"--kubeconfig={kubeconfig}"]
    pod = (
        '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"sleeper"},"spec":{"containers":'
        '[{"name":"c","image":"busybox","command":["python3","-c","import time; time.sleep(600)"]}]}}'
    )
    subprocess.run([*kubectl, "apply", "-f", "-"], input=pod, text=True, check=True, timeout=60, capture_output=True)
    subprocess.run(
        [*kubectl, "wait", "--for=condition=Ready", "pod/sleeper", "--timeout=120s"],
        check=True,
        timeout=150,
        capture_output=True,
    )
    started = process_tree(make_run.pid) - {make_run.pid}
    sleepers = [p for p in started if b"time.sleep(600)" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert sleepers, "the pod's process is not a descendant of make run"

    make_run.send_signal(signal.SIGINT)
    assert make_run.wait(timeout=120) == 0
    left = [p for p in started if Path(f"/proc/{p}").exists() and not _zombie(p)]
    assert left == [], f"processes left behind: {left}"
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=30).stdout
    assert "krpy0-" not in netns
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True, timeout=30).stdout
    assert " krpy0:" not in links


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
