"""The parity oracle: upstream KubeRay's operator (built by hack/build-upstream-operator.sh) run as a
subprocess against the test plane, watching one namespace.

It runs with the plane's admin kubeconfig (it is the reference, not the product under test), leader
election off, metrics and probes on 127.0.0.1 ports, in a private mount namespace whose /etc/hosts and
/etc/resolv.conf are files of the test: Ray dashboards are reached by the head Service's DNS name, which
the test maps to the loopback address where a fake dashboard listens, and every other name lookup goes
to 127.0.0.1 (no resolver outside the machine is ever asked). ``--use-kubernetes-proxy`` cannot be used
on this plane: kwok's loopback pod IPs get no EndpointSlices and kube-apiserver refuses to proxy to
loopback addresses."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from support.isolation import HOSTS, popen_isolated, resolv_conf

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "build-upstream-operator.sh"


def oracle_version() -> str:
    for line in (REPO / "hack" / "versions.env").read_text().splitlines():
        if line.startswith("KUBERAY_ORACLE_VERSION="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError("hack/versions.env does not set KUBERAY_ORACLE_VERSION")


def oracle_binary() -> Path:
    """Where the build script puts the oracle (it may not exist yet: run `make oracle`)."""
    out = subprocess.run(["bash", str(BUILD_SCRIPT), "--path"], capture_output=True, text=True, check=True, timeout=30)
    return Path(out.stdout.strip())


def _free_port() -> int:
    from internal.controlplane.plane import free_port

    return free_port()


class UpstreamOperator:
    """One upstream operator process; ``map_host`` makes a name resolve inside it."""

    def __init__(self, binary: Path, kubeconfig: Path, namespace: str, work: Path, gates: str = "") -> None:
        self.binary, self.kubeconfig, self.namespace, self.work, self.gates = binary, kubeconfig, namespace, work, gates
        self.hosts = work / "hosts"
        self.log = work / "upstream-operator.log"
        self.probe_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.mapped: dict[str, str] = {}

    def start(self, timeout: float = 60.0) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.hosts.write_text(HOSTS)
        resolv = self.work / "resolv.conf"
        resolv.write_text(resolv_conf())
        self.probe_port = _free_port()
        args = [
            str(self.binary),
            f"--metrics-addr=127.0.0.1:{_free_port()}",
            f"--health-probe-bind-address=127.0.0.1:{self.probe_port}",
            "--enable-leader-election=false",
            f"--watch-namespace={self.namespace}",
            "--reconcile-concurrency=2",
            f"--kubeconfig={self.kubeconfig}",
            "--log-stdout-encoder=json",
        ]
        if self.gates:
            args.append(f"--feature-gates={self.gates}")
        env = {**os.environ, "GODEBUG": "netdns=go"}
        env.pop("KUBECONFIG", None)
        self.proc = popen_isolated(args, hosts=self.hosts, resolv=resolv, log=self.log, env=env)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the upstream operator exited ({self.proc.returncode}): {self.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the upstream operator was not ready within {timeout}s: {self.tail()}")
            time.sleep(0.2)  # polling its readiness probe with a deadline

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.probe_port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def map_host(self, name: str, ip: str) -> None:
        """Appends to the bind-mounted file in place (same inode), so the running process sees it."""
        if self.mapped.get(name) == ip:
            return
        self.mapped[name] = ip
        with self.hosts.open("a") as f:
            f.write(f"{ip}\t{name}\n")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def __enter__(self) -> UpstreamOperator:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
