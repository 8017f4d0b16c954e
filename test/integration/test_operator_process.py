"""The operator as a process (cmd/main.py), as users run it: two replicas elect exactly one leader,
the standby takes over within the lease duration plus a retry period when the leader is killed, a
leader that loses its lease exits non-zero, and a leader frozen past its lease (SIGSTOP) does not
write after a standby took over (checked in kube-apiserver's audit log)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.wait import eventually

from internal.client import Client
from internal.client.resources import LEASES, RAYCLUSTERS, SERVICES
from internal.controlplane.plane import free_port

REPO = Path(__file__).resolve().parents[2]
LEASE = "ray-operator-leader"
LEASE_DURATION, RETRY_PERIOD, JITTER = 15.0, 2.0, 1.2


class Replica:
    def __init__(self, kubeconfig: Path, namespace: str, log: Path) -> None:
        self.metrics_port, self.probe_port = free_port(), free_port()
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "cmd" / "main.py"),
                f"--kubeconfig={kubeconfig}",
                f"--leader-election-namespace={namespace}",
                f"--metrics-addr=127.0.0.1:{self.metrics_port}",
                f"--health-probe-bind-address=127.0.0.1:{self.probe_port}",
                "--log-stdout-encoder=console",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
        )

    async def is_leader(self) -> bool | None:
        """The replica's own leader_election_master_status, or None if it does not answer."""
        try:
            async with (
                aiohttp.ClientSession() as s,
                s.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=aiohttp.ClientTimeout(2)) as r,
            ):
                body = await r.text()
        except (aiohttp.ClientError, TimeoutError):
            return None
        for line in body.splitlines():
            if line.startswith(f'leader_election_master_status{{name="{LEASE}"}}'):
                return float(line.rsplit(" ", 1)[1]) == 1.0
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    """Operator processes started by the test (with _start); all killed at the end."""
    made: list[Replica] = []
    yield made
    for r in made:
        r.stop()


def _start(replicas: list[Replica], control_plane: Any, namespace: str, tmp_path: Path) -> Replica:
    r = Replica(control_plane.operator_kubeconfig, namespace, tmp_path / f"replica-{len(replicas)}.log")
    replicas.append(r)
    return r


async def test_one_leader_and_takeover_when_the_leader_is_killed(
    control_plane: Any, namespace: str, tmp_path: Path, replicas: list[Replica]
) -> None:
    a = _start(replicas, control_plane, namespace, tmp_path)
    b = _start(replicas, control_plane, namespace, tmp_path)

    async def one_leader() -> tuple[Replica, Replica] | None:
        sa, sb = await a.is_leader(), await b.is_leader()
        if sa is None or sb is None or sa == sb:
            return None
        return (a, b) if sa else (b, a)

    leader, standby = await eventually(one_leader, 60, "exactly one of two replicas to lead")
    # It stays that way while the leader renews.
    for _ in range(5):
        assert await leader.is_leader() is True and await standby.is_leader() is False
        await asyncio.sleep(1)

    leader.proc.send_signal(signal.SIGKILL)  # no release: the standby must wait the lease out
    killed = time.monotonic()
    await eventually(standby.is_leader, 60, "the standby to take over")
    took = time.monotonic() - killed
    assert took <= LEASE_DURATION + RETRY_PERIOD * (1 + JITTER) + 2.0, f"takeover took {took:.1f}s"


async def test_a_leader_that_loses_its_lease_exits_non_zero(
    control_plane: Any, kclient: Client, namespace: str, tmp_path: Path, replicas: list[Replica]
) -> None:
    r = _start(replicas, control_plane, namespace, tmp_path)
    await eventually(r.is_leader, 60, "the replica to lead")
    lease = await kclient.get(LEASES, LEASE, namespace)
    lease["spec"]["holderIdentity"] = "someone-else"
    lease["spec"]["leaseDurationSeconds"] = 3600
    await kclient.update(LEASES, lease)
    code = await asyncio.to_thread(r.proc.wait, 60)
    assert code == 1, r.log.read_text()[-2000:]
    assert "LeaderElectionLost" in r.log.read_text()


def _cluster(name: str, namespace: str) -> dict[str, Any]:
    ctr = {"name": "ray-head", "image": "rayproject/ray:2.52.0"}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [ctr]}}}},
    }


def _writes_by(audit: Path, since: int, agent: str) -> list[dict[str, Any]]:
    """Mutating requests (not the Lease's own compare-and-swap) that kube-apiserver received from the
    client whose User-Agent is ``agent``, in the audit log from byte ``since`` on."""
    out = []
    with audit.open("rb") as f:
        f.seek(since)
        for line in f:
            ev = json.loads(line)
            if (
                ev.get("stage") in ("ResponseComplete", "Panic")  # the policy logs these stages
                and ev.get("userAgent") == agent
                and ev.get("verb") in ("create", "update", "patch", "delete", "deletecollection")
                and (ev.get("objectRef") or {}).get("resource") != "leases"
            ):
                out.append(ev)
    return out


async def test_a_leader_stopped_past_its_lease_never_writes_after_losing_it(
    control_plane: Any, kclient: Client, namespace: str, tmp_path: Path, replicas: list[Replica]
) -> None:
    """The old leader is frozen (SIGSTOP, as a paused VM or a stalled node) past its lease, a standby
    takes over and works, then the old one resumes. In the audit log, no write of the old leader is
    received after the new leader acquired the lease: its write fence closed before the lease could
    lapse. It then exits 1 (lease lost), as upstream's manager does."""
    audit = Path(control_plane.audit_log)
    old = _start(replicas, control_plane, namespace, tmp_path)
    await eventually(old.is_leader, 60, "the first replica to lead")
    old_identity = (await kclient.get(LEASES, LEASE, namespace))["spec"]["holderIdentity"]
    new = _start(replicas, control_plane, namespace, tmp_path)
    for i in range(3):
        await kclient.create(RAYCLUSTERS, _cluster(f"before-{i}", namespace), namespace)

    async def head_services(prefix: str, n: int) -> bool:
        names = {s["metadata"]["name"] for s in (await kclient.list(SERVICES, namespace))["items"]}
        return all(f"{prefix}-{i}-head-svc" in names for i in range(n))

    await eventually(lambda: head_services("before", 3), 60, "the first leader to build its clusters")
    since = os.path.getsize(audit)  # noqa: ASYNC240 (one stat)
    old.proc.send_signal(signal.SIGSTOP)
    try:
        await eventually(new.is_leader, 60, "the standby to take over from the frozen leader")
        lease = (await kclient.get(LEASES, LEASE, namespace))["spec"]
        assert lease["holderIdentity"] != old_identity
        # Work the old leader's informers will see when it resumes: new clusters, changed ones.
        for i in range(5):
            await kclient.create(RAYCLUSTERS, _cluster(f"after-{i}", namespace), namespace)
        for i in range(3):
            await kclient.patch(RAYCLUSTERS, f"before-{i}", {"metadata": {"labels": {"touched": "yes"}}}, namespace)
        await eventually(lambda: head_services("after", 5), 60, "the new leader to build the new clusters")
    finally:
        old.proc.send_signal(signal.SIGCONT)
    code = await asyncio.to_thread(old.proc.wait, 60)
    assert code == 1, old.log.read_text()[-2000:]
    assert "LeaderElectionLost" in old.log.read_text()

    agent = f"kuberay-operator/py ({old_identity})"
    took_over = lease["acquireTime"]
    late = [
        f"{e['verb']} {e['requestURI']} at {e['requestReceivedTimestamp']}"
        for e in _writes_by(audit, since, agent)
        if e["requestReceivedTimestamp"] >= took_over
    ]
    assert not late, f"the old leader wrote after {took_over}: {late}"
    # The attribution works: the same replica's writes before the freeze are in the log under its name.
    assert _writes_by(audit, 0, agent), "no write of the old leader found under its User-Agent"
