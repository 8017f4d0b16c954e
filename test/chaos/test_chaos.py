"""Chaos tier: RayJobs (HTTPMode, K8sJobMode) and RayClusters (scale, suspend, deletion) run on the T2
plane while, at points chosen by a seed, the operator *process* is killed with SIGKILL and restarted,
kube-apiserver is restarted, and the fake Ray dashboards hang, reset, answer 500/404 or answer slowly.
Afterwards the invariants users rely on are counted and printed as a table; every count must be 0.

    CHAOS_SEED=1 CHAOS_PROFILE=ci   pytest test/chaos -s     # make chaos-ci: a few minutes
    CHAOS_SEED=1 CHAOS_PROFILE=full pytest test/chaos -s     # make chaos

The operator runs as cmd/main.py does (test/chaos/operator_main.py), as the shipped ServiceAccount with
the generated RBAC (the plane's operator kubeconfig), never as admin."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import dataclasses
import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from support.endpointslices import endpoint_slices
from support.fake_dashboard import FakeCluster, FakeDashboard
from support.tcpproxy import BlackholeProxy
from support.wait import eventually

from internal.client import ApiError, Client, NotFound
from internal.client.resources import CONFIGMAPS, JOBS, PODS, RAYCLUSTERS, RAYJOBS, RAYSERVICES, SECRETS, SERVICES
from internal.controlplane.plane import free_port

pytestmark = [pytest.mark.t2, pytest.mark.chaos]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "chaos"
TERMINAL = ("Complete", "Failed")


@dataclass(frozen=True)
class Profile:
    duration: float  # seconds of workload + faults
    http_jobs: int
    k8s_jobs: int
    interactive_jobs: int  # the harness submits, as the user would, and sets spec.jobId
    sidecar_jobs: int  # the harness plays the submitter container in the head pod
    clusters: int  # standalone RayCluster lifecycles (created, scaled, suspended, Recreate-upgraded, deleted)
    rayservices: int  # each created, upgraded (new cluster) and maybe given a new Serve config
    kill_every: tuple[float, float]  # seconds between operator SIGKILLs (uniform)
    apiserver_restarts: int
    etcd_restarts: int
    watch_cuts: int  # every open connection of the operator goes silent (half-open), new ones work
    settle: float  # deadline for every RayJob to be terminal after the faults stop


PROFILES = {
    "ci": Profile(
        duration=120,
        http_jobs=10,
        k8s_jobs=4,
        interactive_jobs=2,
        sidecar_jobs=2,
        clusters=6,
        rayservices=2,
        kill_every=(6, 14),
        apiserver_restarts=1,
        etcd_restarts=1,
        watch_cuts=1,
        settle=180,
    ),
    "full": Profile(
        duration=900,
        http_jobs=80,
        k8s_jobs=30,
        interactive_jobs=15,
        sidecar_jobs=15,
        clusters=40,
        rayservices=10,
        kill_every=(1, 4),
        apiserver_restarts=4,
        etcd_restarts=3,
        watch_cuts=3,
        settle=420,
    ),
}

CONTAINER = {"image": "rayproject/ray:2.52.0", "resources": {"limits": {"cpu": "100m", "memory": "128Mi"}}}


def cluster_spec(workers: int) -> dict[str, Any]:
    return {
        "rayVersion": "2.52.0",
        "headGroupSpec": {
            "rayStartParams": {},
            "template": {"spec": {"containers": [{"name": "ray-head", **CONTAINER}]}},
        },
        "workerGroupSpecs": [
            {
                "groupName": "w",
                "replicas": workers,
                "minReplicas": 0,
                "maxReplicas": 4,
                "rayStartParams": {},
                "template": {"spec": {"containers": [{"name": "ray-worker", **CONTAINER}]}},
            }
        ],
    }


def serve_config(version: int) -> str:
    """One application; a new version is a new user_config, which Ray applies in place."""
    return (
        "applications:\n- name: app1\n  route_prefix: /\n  import_path: hello:app\n"
        f"  deployments:\n  - name: Hello\n    num_replicas: 1\n    user_config: {{version: {version}}}\n"
    )


@dataclass
class Counts:
    kills: int = 0
    aimed_kills: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # where -> count
    restarts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dashboard_faults: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicate_submissions: int = 0
    refused_resubmissions: int = 0
    stuck: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    excess_pods: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    recovery: list[tuple[str, float]] = field(default_factory=list)
    samples: int = 0
    not_recovered: list[str] = field(default_factory=list)
    wrong_outcome: list[str] = field(default_factory=list)
    self_exits: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # exit code -> count
    restart_403: int = 0  # requests refused while the restarted apiserver's RBAC cache was cold
    restart_403_reasons: dict[str, int] = field(default_factory=dict)
    jobs_by_end: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    services_not_ready: list[str] = field(default_factory=list)  # not Ready on the spec's cluster and config
    service_cluster_excess: list[str] = field(default_factory=list)  # > active + pending, sampled
    undercounted: list[str] = field(default_factory=list)  # ready RayCluster counting fewer pods than exist
    upgrades: int = 0  # RayService cluster upgrades and Serve config changes, RayCluster Recreate upgrades


class Operator:
    """The operator process; ``kill()`` is SIGKILL (no graceful shutdown), ``start()`` a fresh one."""

    def __init__(self, kubeconfig: Path, dashboard_url: str, logs: Path) -> None:
        self.kubeconfig, self.dashboard_url, self.logs = kubeconfig, dashboard_url, logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.incarnation = 0

    def start(self) -> None:
        self.kill()  # never two at once (leader election is off)
        self.incarnation += 1
        log = (self.logs / f"operator-{self.incarnation:03d}.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "test" / "chaos" / "operator_main.py"),
                f"--kubeconfig={self.kubeconfig}",
                "--enable-leader-election=false",
                f"--metrics-addr=127.0.0.1:{free_port()}",
                f"--health-probe-bind-address=127.0.0.1:{free_port()}",
                "--reconcile-concurrency=4",
                "--log-stdout-encoder=console",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "OTEL_TRACES_EXPORTER": "none",
                "CHAOS_DASHBOARD_URL": self.dashboard_url,
                "PYTHONUNBUFFERED": "1",  # a SIGKILL must not lose the log
            },
        )
        log.close()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def exited_by_itself(self) -> int | None:
        return self.proc.poll() if self.proc else None


@pytest.fixture
def operator_proc(sim_cluster: Any) -> Iterator[list[Operator]]:
    made: list[Operator] = []
    yield made
    for op in made:
        op.kill()


async def _list(c: Client, res: Any, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await c.list(res, ns, timeout=10))["items"]
    return items


class Chaos:
    def __init__(
        self, c: Client, ns: str, plane: Any, fake: FakeDashboard, op: Operator, seed: int, p: Profile, proxy: Any
    ):
        self.c, self.ns, self.plane, self.fake, self.op, self.p = c, ns, plane, fake, op, p
        self.proxy = proxy
        self.rng = random.Random(seed)
        self.counts = Counts()
        self.stop = asyncio.Event()
        self.no_kill = asyncio.Lock()  # held while recovery after an apiserver restart is measured
        self.cluster_of_job: dict[str, set[str]] = defaultdict(set)  # RayJob -> every RayCluster it used
        self.mode: dict[str, str] = {}
        self.k8s_seeded: set[tuple[str, str]] = set()
        self.desired: dict[str, list[tuple[float, int]]] = defaultdict(list)  # cluster -> (since, workers)
        self.terminal_seen: dict[str, str] = {}
        self.live_clusters: set[str] = set()
        self.interactive_sent: set[str] = set()
        self.scripted: set[str] = set()  # RayJob clusters whose fake head has its job lifecycle script
        self.submitter_done: set[tuple[str, str]] = set()  # (cluster, job id) whose submitter exited
        self.serve_configs: dict[str, str] = {}  # RayService -> its latest serveConfigV2
        self.side: list[asyncio.Task[None]] = []  # each RayService's later upgrade

    # ---- workload -----------------------------------------------------------------------------------

    async def jobs(self) -> None:
        kinds = ["HTTPMode"] * self.p.http_jobs + ["K8sJobMode"] * self.p.k8s_jobs
        kinds += ["InteractiveMode"] * self.p.interactive_jobs + ["SidecarMode"] * self.p.sidecar_jobs
        self.rng.shuffle(kinds)
        gap = self.p.duration * 0.7 / max(1, len(kinds))
        for i, mode in enumerate(kinds):
            name = f"job-{i:03d}"
            self.mode[name] = mode
            spec = {
                "entrypoint": "python -c pass",
                "submissionMode": mode,
                "shutdownAfterJobFinishes": True,
                "ttlSecondsAfterFinished": 0,
                "rayClusterSpec": cluster_spec(1),
            }
            if mode == "K8sJobMode":  # the submitter pod runs until the harness ends its Ray job (kwok hold)
                spec["submitterPodTemplate"] = {
                    "metadata": {"annotations": {"sim.kuberay-py.io/hold": "true"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "ray-job-submitter", **CONTAINER}]},
                }
            await self._retry(
                self.c.create,
                RAYJOBS,
                {
                    "apiVersion": "ray.io/v1",
                    "kind": "RayJob",
                    "metadata": {"name": name, "namespace": self.ns},
                    "spec": spec,
                },
            )
            await self._pause(self.rng.uniform(0.5, 1.5) * gap)

    async def clusters(self) -> None:
        """Standalone RayClusters: each is created, scaled and suspended/resumed a few times, then deleted."""
        per = self.p.duration / max(1, self.p.clusters)
        for i in range(self.p.clusters):
            if self.stop.is_set():
                return
            name = f"rc-{i:03d}"
            workers = self.rng.randint(0, 3)
            self.desired[name].append((time.time(), workers))
            self.live_clusters.add(name)
            obj: dict[str, Any] = {
                "apiVersion": "ray.io/v1",
                "kind": "RayCluster",
                "metadata": {"name": name, "namespace": self.ns},
                "spec": cluster_spec(workers),
            }
            recreate = self.rng.random() < 0.4
            if recreate:
                obj["spec"]["upgradeStrategy"] = {"type": "Recreate"}
            await self._retry(self.c.create, RAYCLUSTERS, obj)
            for step in range(self.rng.randint(1, 3)):
                await self._pause(self.rng.uniform(0.2, 0.5) * per)
                if recreate and step == 0:
                    # A pod template change: every pod is deleted and created again from the new template.
                    self.counts.upgrades += 1
                    head = {"template": {"metadata": {"annotations": {"chaos/revision": str(step + 2)}}}}
                    await self._patch_cluster(name, {"spec": {"headGroupSpec": head}}, workers)
                elif self.rng.random() < 0.3:
                    await self._patch_cluster(name, {"spec": {"suspend": True}}, 0)
                    await self._pause(self.rng.uniform(2, 5))
                    workers = self.rng.randint(0, 3)
                    await self._patch_cluster(name, {"spec": {"suspend": False}}, workers, scale=workers)
                else:
                    workers = self.rng.randint(0, 4)
                    await self._patch_cluster(name, {}, workers, scale=workers)
            await self._retry(self.c.delete, RAYCLUSTERS, name, self.ns)
            self._aim("at RayCluster deletion")
            self.live_clusters.discard(name)

    async def services(self) -> None:
        """RayServices: each created, later upgraded (a rayClusterConfig change: a new cluster, traffic
        switched when its applications run, the old one deleted), and half of them given a new Serve
        config (applied in place). Deleted with everything else at the end."""
        gap = self.p.duration * 0.5 / max(1, self.p.rayservices)
        for i in range(self.p.rayservices):
            if self.stop.is_set():
                return
            name = f"svc-{i:03d}"
            self.serve_configs[name] = serve_config(1)
            spec: dict[str, Any] = {"serveConfigV2": self.serve_configs[name], "rayClusterConfig": cluster_spec(1)}
            spec["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] = 1
            obj = {"apiVersion": "ray.io/v1", "kind": "RayService", "metadata": {"name": name, "namespace": self.ns}}
            await self._retry(self.c.create, RAYSERVICES, {**obj, "spec": spec})
            self.side.append(asyncio.create_task(self._upgrade_later(name)))
            await self._pause(self.rng.uniform(0.5, 1.5) * gap)

    async def _upgrade_later(self, name: str) -> None:
        await self._pause(self.rng.uniform(0.1, 0.3) * self.p.duration)
        if self.stop.is_set():
            return
        self.counts.upgrades += 1
        head = {"template": {"metadata": {"annotations": {"chaos/revision": "2"}}}}
        await self._retry(
            self.c.patch, RAYSERVICES, name, {"spec": {"rayClusterConfig": {"headGroupSpec": head}}}, self.ns
        )
        if self.rng.random() < 0.5:
            await self._pause(self.rng.uniform(5, 20))
            if self.stop.is_set():
                return
            self.counts.upgrades += 1
            self.serve_configs[name] = serve_config(2)
            await self._retry(self.c.patch, RAYSERVICES, name, {"spec": {"serveConfigV2": serve_config(2)}}, self.ns)

    async def _patch_cluster(self, name: str, patch: dict[str, Any], workers: int, scale: int | None = None) -> None:
        if scale is not None:
            obj = await self._retry(self.c.get, RAYCLUSTERS, name, self.ns)
            groups = obj["spec"]["workerGroupSpecs"]
            groups[0]["replicas"] = scale
            patch = {**patch, "spec": {**patch.get("spec", {}), "workerGroupSpecs": groups}}
        self.desired[name].append((time.time(), workers))
        await self._retry(self.c.patch, RAYCLUSTERS, name, patch, self.ns)

    async def dashboards(self) -> None:
        """Play the part of Ray and of the user: each RayJob's head gets a seeded lifecycle; the jobs the
        K8sJobMode and SidecarMode submitters would submit are added (nothing runs under kwok), and the
        sidecar's exit written into the head pod's status once its job ends; InteractiveMode jobs are
        submitted and their id set in the spec, as a user does. Every RayCluster gets a fake head (the
        RayServices' Serve). Runs until the end of the test."""
        while True:
            try:
                for rc in await _list(self.c, RAYCLUSTERS, self.ns):
                    self._head(rc["metadata"]["name"])
                pods = await _list(self.c, PODS, self.ns)
                for j in await _list(self.c, RAYJOBS, self.ns):
                    await self._play_job(j, pods)
            except ApiError:
                pass  # the apiserver is restarting: try again
            await asyncio.sleep(0.5)  # polling interval, not synchronisation

    def _head(self, cluster: str) -> FakeCluster:
        """The fake Ray head of a RayCluster, made (with the seeded lifecycle of the jobs submitted to it)
        before the operator can reach it: a job submitted to a head without its script would stay
        RUNNING for ever."""
        fc = self.fake.cluster(cluster)
        if cluster not in self.scripted:
            self.scripted.add(cluster)
            end = "FAILED" if self.rng.random() < 0.2 else "SUCCEEDED"
            fc.set_default_script(("RUNNING", self.rng.uniform(0.5, 2)), (end, self.rng.uniform(2, 8)))
        return fc

    async def _play_job(self, j: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        name, st = j["metadata"]["name"], j.get("status") or {}
        rc, mode = st.get("rayClusterName"), self.mode.get(name)
        if not rc:
            return
        self.cluster_of_job[name].add(rc)
        fc = self._head(rc)
        jid = st.get("jobId")
        if mode == "InteractiveMode":
            if st.get("jobDeploymentStatus") == "Waiting" and name not in self.interactive_sent:
                own = f"{name}-by-hand"
                if own not in fc.jobs:
                    fc.add_job(own, status="RUNNING")
                    fc.script(own, ("SUCCEEDED", self.rng.uniform(1, 5)))
                await self.c.patch(RAYJOBS, name, {"spec": {"jobId": own}}, self.ns, timeout=10)
                self.interactive_sent.add(name)
            return
        if mode not in ("K8sJobMode", "SidecarMode") or not jid:
            return
        head = next(iter(_ray_pods(pods, rc, "head")), None)
        if (rc, jid) not in self.k8s_seeded:
            if mode == "K8sJobMode" and not await self._exists(JOBS, name):
                return  # the submitter Job does not exist yet
            if mode == "SidecarMode" and head is None:
                return  # the head pod (and its submitter container) does not exist yet
            if jid not in fc.jobs:
                end = "FAILED" if mode == "SidecarMode" and self.rng.random() < 0.2 else "SUCCEEDED"
                fc.add_job(jid, status="RUNNING")
                fc.script(jid, (end, self.rng.uniform(1, 5)))
            self.k8s_seeded.add((rc, jid))
        ray = fc.jobs.get(jid)
        if ray is None or not ray.terminal or (rc, jid) in self.submitter_done:
            return
        if mode == "SidecarMode" and head is not None:
            await self._sidecar_exited(head)
            self.submitter_done.add((rc, jid))
        elif mode == "K8sJobMode":
            # `ray job submit` follows the job to its end: the submitter pod completes only now.
            held = [p for p in pods if (p["metadata"].get("labels") or {}).get("job-name") == name]
            for p in held:
                unhold = {"metadata": {"annotations": {"sim.kuberay-py.io/hold": None}}}
                await self.c.patch(PODS, p["metadata"]["name"], unhold, self.ns, timeout=10)
            if held:
                self.submitter_done.add((rc, jid))

    async def _sidecar_exited(self, head: dict[str, Any]) -> None:
        """Kubelet's part: the submitter container in the head pod exits 0 once its Ray job ended (`ray
        job submit` follows the job to its end)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        statuses = []
        for cs in (head.get("status") or {}).get("containerStatuses") or ():
            if cs.get("name") == "ray-job-submitter":
                started = ((cs.get("state") or {}).get("running") or {}).get("startedAt", now)
                term = {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": now}
                cs = {**cs, "ready": False, "started": False, "state": {"terminated": term}}
            statuses.append(cs)
        patch = {"status": {"containerStatuses": statuses}}
        await self.c.patch(PODS, head["metadata"]["name"], patch, self.ns, subresource="status", timeout=10)

    # ---- faults -------------------------------------------------------------------------------------

    async def supervisor(self) -> None:
        """Plays kubelet's part: an operator process that exited by itself (not our SIGKILL) is started
        again after 1 s. Upstream exits when the API server is unreachable at start-up, as ours does."""
        while True:
            await asyncio.sleep(0.5)  # polling interval
            code = self.op.exited_by_itself()
            if code is not None and code != -signal.SIGKILL:
                self.counts.self_exits[code] += 1
                await asyncio.sleep(1.0)  # restart back-off
                if self.op.exited_by_itself() == code:
                    self.op.start()

    def aimed_kill(self, cluster: FakeCluster, endpoint: str, status: int) -> None:
        """Kill points aimed at the windows that matter (fake dashboard hook, before Ray's answer leaves):
        right after Ray accepted a job submission, before the operator can write the status that says
        so; and right after Ray stopped or deleted a job for a RayJob being deleted, before the operator
        removes its finalizer. (``_aim`` after a deletion the harness asks for covers the other
        finalizers: the operator is killed as it starts on them.)"""
        where = {"submit": "after submit", "stop": "in finalizer (job stopped)", "delete": "in finalizer (job deleted)"}
        if status < 300 and endpoint in where:
            self._aim(where[endpoint])

    def _aim(self, where: str) -> None:
        """Half of the aimed moments, seeded; none while a recovery is being measured."""
        if self.rng.random() >= 0.5 or self.no_kill.locked():
            return
        self.op.kill()
        self.counts.aimed_kills[where] += 1
        asyncio.get_running_loop().call_later(self.rng.uniform(0.2, 1.5), self._restart_if_down)

    def _restart_if_down(self) -> None:
        if self.op.proc is not None and self.op.proc.poll() is not None:
            self.op.start()

    async def kills(self) -> None:
        while not self.stop.is_set():
            await self._pause(self.rng.uniform(*self.p.kill_every))
            if self.stop.is_set():
                return
            async with self.no_kill:
                self.op.kill()
                self.counts.kills += 1
                await self._pause(self.rng.uniform(0, 1.5))  # sometimes no operator for a moment
                self.op.start()

    async def restarts(self) -> None:
        """kube-apiserver and etcd restarts at seeded points, each followed by a recovery measurement."""
        kinds = ["apiserver"] * self.p.apiserver_restarts + ["etcd"] * self.p.etcd_restarts
        kinds += ["watchcut"] * self.p.watch_cuts
        self.rng.shuffle(kinds)
        t0 = time.monotonic()
        for k, kind in enumerate(kinds):
            at = self.p.duration * (k + 0.5 + self.rng.uniform(-0.2, 0.2)) / len(kinds)
            await self._pause(max(0.0, at - (time.monotonic() - t0)))
            if self.stop.is_set():
                return
            async with self.no_kill:
                audit = Path(self.plane.audit_log)
                since = os.path.getsize(audit) if os.path.exists(audit) else 0  # noqa: ASYNC240 (one stat)
                if kind == "watchcut":
                    self.proxy.blackhole_existing()
                else:
                    await asyncio.to_thread(self.plane.restart_apiserver if kind == "apiserver" else self._restart_etcd)
                self.counts.restarts[kind] += 1
                up = time.monotonic()
                # Recovery: the operator acts on an object created after the restart (its informers
                # have re-listed and re-watched): the canary cluster's head Service appears.
                canary = f"canary-{k}"
                obj = {
                    "apiVersion": "ray.io/v1",
                    "kind": "RayCluster",
                    "metadata": {"name": canary, "namespace": self.ns},
                    "spec": cluster_spec(0),
                }
                await self._retry(self.c.create, RAYCLUSTERS, obj)
                try:
                    await eventually(functools.partial(self._exists, SERVICES, f"{canary}-head-svc"), 120, "canary")
                    self.counts.recovery.append((kind, time.monotonic() - up))
                except pytest.fail.Exception:
                    self.counts.not_recovered.append(f"{kind} restart {k}: no head Service for {canary} in 120 s")
                await self._retry(self.c.delete, RAYCLUSTERS, canary, self.ns)
                if os.path.exists(audit):  # noqa: ASYNC240
                    self.counts.restart_403 += _drain_restart_refusals(audit, since, self.counts.restart_403_reasons)

    def _restart_etcd(self) -> None:
        """etcd stopped and started on the same data and port; ready when kube-apiserver is ready again."""
        etcd = self.plane.processes["etcd"]
        etcd.stop()
        etcd.start()
        self.plane.processes["kube-apiserver"].wait_ready(
            lambda: self.plane.request("GET", "/readyz").status == 200, 120, 0.2
        )

    async def dashboard_faults(self) -> None:
        while not self.stop.is_set():
            await self._pause(self.rng.uniform(1, 4))
            names = sorted(self.fake.clusters)
            if not names or self.stop.is_set():
                continue
            fc = self.fake.clusters[self.rng.choice(names)]
            fault = self.rng.choice(["hang", "500", "reset", "submit500", "get404", "slow"])
            self.counts.dashboard_faults[fault] += 1
            hold = self.rng.uniform(2, 8)
            if fault == "hang":
                fc.hang()
                asyncio.get_running_loop().call_later(hold, fc.heal)
            elif fault == "500":
                fc.fail_all()
                asyncio.get_running_loop().call_later(hold, fc.heal)
            elif fault == "reset":
                fc.reset()  # every connection aborted without an answer, as a head whose process died
                asyncio.get_running_loop().call_later(hold, fc.heal)
            elif fault == "submit500":
                fc.fail_next("submit", 500)
            elif fault == "get404":
                fc.fail_next("get", 404, "Job does not exist")
            else:  # slow
                fc.delay = 2.0
                asyncio.get_running_loop().call_later(hold, _set_delay, fc, 0.0)

    # ---- observation --------------------------------------------------------------------------------

    async def sampler(self) -> None:
        while True:
            with contextlib.suppress(ApiError):
                await self._sample()
            await asyncio.sleep(1.0)  # sampling interval

    async def _sample(self) -> None:
        jobs = await _list(self.c, RAYJOBS, self.ns)
        # Clusters read before pods: a pod of a cluster deleted since is the garbage collector's (the
        # orphan count covers it), not an excess.
        live = {
            rc["metadata"]["name"]: rc
            for rc in await _list(self.c, RAYCLUSTERS, self.ns)
            if not rc["metadata"].get("deletionTimestamp")
        }
        pods = [p for p in await _list(self.c, PODS, self.ns) if not p["metadata"].get("deletionTimestamp")]
        self.counts.samples += 1
        per_service: dict[str, list[str]] = defaultdict(list)
        for cname, cobj in live.items():
            for ref in cobj["metadata"].get("ownerReferences") or ():
                if ref.get("kind") == "RayService":
                    per_service[ref["name"]].append(cname)
        for svc, rcs in per_service.items():
            if len(rcs) > 2:  # an active and at most one pending cluster
                self.counts.service_cluster_excess.append(f"{svc}: {sorted(rcs)}")
        for j in jobs:
            name, st = j["metadata"]["name"], (j.get("status") or {}).get("jobDeploymentStatus")
            if name in self.terminal_seen and st != self.terminal_seen[name]:
                self.counts.regressions.append(f"{name}: {self.terminal_seen[name]} -> {st}")
            if st in TERMINAL:
                self.terminal_seen[name] = st
        per: dict[tuple[str, str], list[float]] = defaultdict(list)  # (cluster, node type) -> pod creations
        for p in pods:
            labels = p["metadata"].get("labels") or {}
            if "ray.io/cluster" in labels:
                born = calendar.timegm(time.strptime(p["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ"))
                per[(labels["ray.io/cluster"], labels.get("ray.io/node-type", ""))].append(born)
        for (rc, kind), created in per.items():
            n = len(created)
            if rc not in live:
                continue
            if kind == "head":
                allowed = 1
            elif rc in self.desired:
                # Every pod present now was created since the oldest of them: if more exist than the
                # cluster asked for at any one time since then, one was created beyond the desired count.
                # (A scale-down that is slow to apply, e.g. across an apiserver restart, is not that.)
                since = min(created) - 1.0  # creationTimestamp has whole seconds
                hist = self.desired[rc]
                allowed = max([w for t, w in hist if t >= since] + [w for t, w in hist if t < since][-1:])
            else:
                allowed = 1  # a RayJob's cluster: one worker
            if n > allowed:
                spec = live[rc]["spec"]
                replicas = [g.get("replicas") for g in spec.get("workerGroupSpecs") or ()]
                self.counts.excess_pods.append(
                    f"{rc}/{kind}: {n} pods > {allowed} (spec suspend={spec.get('suspend')} replicas={replicas})"
                )

    async def service_problems(self) -> dict[str, str]:
        """RayService -> why it is not yet what its spec asks: Ready, one cluster (no pending one left),
        whose head template is the spec's, serving the spec's Serve config."""
        clusters = {rc["metadata"]["name"]: rc for rc in await _list(self.c, RAYCLUSTERS, self.ns)}
        out: dict[str, str] = {}
        for svc in await _list(self.c, RAYSERVICES, self.ns):
            name, st = svc["metadata"]["name"], svc.get("status") or {}
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or ())
            active = (st.get("activeServiceStatus") or {}).get("rayClusterName") or ""
            owned = sorted(
                n
                for n, rc in clusters.items()
                if any(
                    r.get("name") == name and r.get("kind") == "RayService"
                    for r in rc["metadata"].get("ownerReferences") or ()
                )
            )
            want_head = svc["spec"]["rayClusterConfig"]["headGroupSpec"].get("template", {}).get("metadata")
            head = (
                clusters[active]["spec"]["headGroupSpec"].get("template", {}).get("metadata")
                if active in clusters
                else None
            )
            fc = self.fake.clusters.get(active)
            applied = fc.serve_configs[-1] if fc and fc.serve_configs else None
            if not ready:
                out[name] = "not Ready"
            elif owned != [active]:
                out[name] = f"clusters {owned}, active {active!r}"
            elif (head or {}).get("annotations") != (want_head or {}).get("annotations"):
                out[name] = f"active cluster {active} has an old head template"
            elif applied != yaml.safe_load(self.serve_configs.get(name, "")):
                out[name] = f"cluster {active} serves {applied}"
        return out

    async def undercounting_clusters(self) -> list[str]:
        """Live RayClusters whose status is ready yet counts fewer ready workers than there are ready
        worker pods, once the operator had time to catch up (60 s after the faults stopped)."""

        async def check() -> list[str]:
            pods = await _list(self.c, PODS, self.ns)
            out = []
            for rc in await _list(self.c, RAYCLUSTERS, self.ns):
                st, name = rc.get("status") or {}, rc["metadata"]["name"]
                if st.get("state") != "ready" or rc["metadata"].get("deletionTimestamp"):
                    continue
                ready_workers = sum(
                    1
                    for p in _ray_pods(pods, name, "worker")
                    if any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in (p.get("status") or {}).get("conditions") or ()
                    )
                )
                if int(st.get("readyWorkerReplicas") or 0) < ready_workers:
                    out.append(f"{name}: readyWorkerReplicas {st.get('readyWorkerReplicas')} < {ready_workers} pods")
            return out

        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(ApiError):
                found = await check()
                if not found or time.monotonic() > deadline:
                    return found
            await asyncio.sleep(1.0)  # polling interval

    # ---- helpers ------------------------------------------------------------------------------------

    async def _exists(self, res: Any, name: str) -> bool:
        try:
            await self.c.get(res, name, self.ns, timeout=5)
            return True
        except ApiError:
            return False

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _retry(self, fn: Any, *args: Any) -> Any:
        """A harness write that must happen even while the apiserver restarts."""
        deadline = time.monotonic() + 120
        while True:
            try:
                return await fn(*args)
            except NotFound:
                return None
            except ApiError as e:
                if getattr(e, "reason", "") == "AlreadyExists" or time.monotonic() > deadline:
                    if getattr(e, "reason", "") == "AlreadyExists":
                        return None
                    raise
                await asyncio.sleep(0.5)


class CuttableProxy(BlackholeProxy):
    """The operator's TCP path to kube-apiserver (TLS passes through; the certificate names 127.0.0.1).
    ``blackhole_existing()`` cuts every open connection silently, as a load balancer that forgot them."""

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            await super()._handle(cr, cw)
        except OSError:
            cw.close()  # kube-apiserver is down: refuse at once rather than leave the client waiting


def proxied_kubeconfig(src: Path, port: int, dest: Path) -> Path:
    cfg = yaml.safe_load(src.read_text())
    for cl in cfg["clusters"]:
        cl["cluster"]["server"] = f"https://127.0.0.1:{port}"
    dest.write_text(yaml.safe_dump(cfg))
    dest.chmod(0o600)
    return dest


def _drain_restart_refusals(audit_path: Path, since: int, reasons: dict[str, int]) -> int:
    """While kube-apiserver restarts it serves requests before its RBAC authorizer's informers have
    synced, and refuses them (403, decision forbid). The session's RBAC audit (test/conftest.py) would
    count those as missing grants: take the refusals logged in the restart window (audit offset
    ``since`` to now) out of it, count them with their reasons; a refusal at any other time stays and
    fails the run."""
    with audit_path.open("rb") as f:
        f.seek(since)
        data = f.read()
    uris: set[str] = set()
    for line in data.splitlines():
        if b'"forbid"' not in line:
            continue
        with contextlib.suppress(ValueError):
            ev = json.loads(line)
            ann = ev.get("annotations") or {}
            if (ev.get("responseStatus") or {}).get("code") == 403 and ann.get(
                "authorization.k8s.io/decision"
            ) == "forbid":
                uris.add(ev.get("requestURI", ""))
                why = ann.get("authorization.k8s.io/reason") or "(no reason)"
                reasons[why[:120]] = reasons.get(why[:120], 0) + 1
    key = next(
        (
            m._audit_key
            for m in list(sys.modules.values())
            if hasattr(m, "_audit_key") and hasattr(m, "_rbac_audit_report")
        ),
        None,
    )
    session = _SESSION.get("config")
    log = session.stash.get(key, None) if key is not None and session is not None else None
    if log is None:
        return 0
    refused = log.take_forbidden()
    kept = [r for r in refused if not any(r.endswith(f"({u})") for u in uris)]
    log._forbidden.extend(kept)
    return len(refused) - len(kept)


_SESSION: dict[str, Any] = {}


def _set_delay(fc: FakeCluster, d: float) -> None:
    fc.delay = d


@contextlib.asynccontextmanager
async def running(*coros: Any) -> AsyncIterator[list[asyncio.Task[Any]]]:
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield tasks
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t


async def test_chaos(
    sim_cluster: Any, kclient: Client, namespace: str, operator_proc: list[Operator], request: pytest.FixtureRequest
) -> None:
    _SESSION["config"] = request.config
    seed = int(os.environ.get("CHAOS_SEED", "1"))
    profile_name = os.environ.get("CHAOS_PROFILE", "ci")
    p = PROFILES[profile_name]
    if "CHAOS_DURATION" in os.environ:  # a shorter or longer run of the same profile
        p = dataclasses.replace(p, duration=float(os.environ["CHAOS_DURATION"]))
    logs = ARTIFACTS / f"seed-{seed}-{profile_name}"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    host, port = urlsplit(sim_cluster.server).hostname or "127.0.0.1", urlsplit(sim_cluster.server).port or 443
    proxy = CuttableProxy(host, port)
    await proxy.start()
    kubeconfig = proxied_kubeconfig(sim_cluster.operator_kubeconfig, proxy.port, logs / "operator.kubeconfig")
    async with FakeDashboard() as fake, contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(proxy.stop)
        op = Operator(kubeconfig, fake.base_url, logs)
        operator_proc.append(op)
        op.start()
        ch = Chaos(kclient, namespace, sim_cluster, fake, op, seed, p, proxy)
        fake.on_handled = ch.aimed_kill
        async with running(ch.dashboards(), ch.sampler(), ch.supervisor(), endpoint_slices(kclient, namespace, True)):
            async with running(ch.kills(), ch.restarts(), ch.dashboard_faults()) as faults:
                await asyncio.gather(ch.jobs(), ch.clusters(), ch.services())
                await ch._pause(max(0.0, p.duration - (time.monotonic() - started)))
                ch.stop.set()
                await asyncio.gather(*faults, *ch.side)  # the last restart and canary complete
            for fc in fake.clusters.values():
                fc.heal()
                fc.delay = 0.0

            # Every RayJob terminal (Complete or Failed), every RayService Ready on a cluster of its
            # current spec with its current Serve config, within the settle deadline.
            deadline = time.monotonic() + p.settle
            states: dict[str, Any] = {}
            final: dict[str, dict[str, Any]] = {}
            services: dict[str, str] = {}
            while time.monotonic() < deadline:
                with contextlib.suppress(ApiError):
                    final = {
                        j["metadata"]["name"]: j.get("status") or {} for j in await _list(kclient, RAYJOBS, namespace)
                    }
                    states = {n: st.get("jobDeploymentStatus") for n, st in final.items()}
                    services = await ch.service_problems()
                    if all(s in TERMINAL for s in states.values()) and not services:
                        break
                await asyncio.sleep(1.0)
            ch.counts.stuck = [f"{n}: {s}" for n, s in states.items() if s not in TERMINAL]
            ch.counts.services_not_ready = [f"{n}: {why}" for n, why in services.items()]
            ch.counts.undercounted = await ch.undercounting_clusters()
            # The RayJob reports what Ray said: its jobStatus is its Ray job's terminal status.
            for n, st in final.items():
                head = fake.clusters.get(st.get("rayClusterName") or "")
                ray = head.jobs.get(st.get("jobId") or "") if head else None
                if ray is not None and ray.terminal and st.get("jobStatus") != ray.status:
                    ch.counts.wrong_outcome.append(
                        f"{n} ({ch.mode.get(n)}): {st.get('jobDeploymentStatus')}/{st.get('jobStatus')},"
                        f" Ray {ray.status} ({st.get('reason')}: {str(st.get('message'))[:100]})"
                    )
            for s in states.values():
                ch.counts.jobs_by_end[str(s)] += 1

            # Ray jobs accepted per RayJob across every cluster it used: one attempt (backoffLimit 0).
            for job, rcs in ch.cluster_of_job.items():
                if ch.mode.get(job) != "HTTPMode":
                    continue
                accepted = sum(len(fake.clusters[rc].jobs) for rc in rcs if rc in fake.clusters)
                submits = sum(fake.clusters[rc].calls["submit"] for rc in rcs if rc in fake.clusters)
                ch.counts.duplicate_submissions += max(0, accepted - 1)
                ch.counts.refused_resubmissions += max(0, submits - accepted)

            # Delete everything; then nothing the operator made may be left without a live owner.
            for res in (RAYSERVICES, RAYJOBS, RAYCLUSTERS):
                for o in await _list(kclient, res, namespace):
                    with contextlib.suppress(NotFound):
                        await kclient.delete(res, o["metadata"]["name"], namespace)
                        ch._aim(f"at {res.kind} deletion")

            async def all_gone() -> bool:
                return not any([await _list(kclient, r, namespace) for r in (RAYSERVICES, RAYJOBS, RAYCLUSTERS)])

            await eventually(all_gone, 120, "every RayService, RayJob and RayCluster deleted (finalizers removed)")
            with contextlib.suppress(AssertionError, TimeoutError):
                await eventually(lambda: _orphans(kclient, namespace, want_none=True), 90, "dependents collected")
            ch.counts.orphans = await _orphans(kclient, namespace)
        table = _table(ch.counts, seed, profile_name, time.monotonic() - started, op.incarnation)
        print("\n" + table)
        (logs / "invariants.txt").write_text(table + "\n")
        (logs / "invariants.json").write_text(json.dumps(_as_json(ch.counts), indent=2, default=list))
    c = ch.counts
    bad = c.duplicate_submissions or c.stuck or c.orphans or c.excess_pods or c.regressions or c.not_recovered
    bad = bad or c.wrong_outcome or c.services_not_ready or c.service_cluster_excess or c.undercounted
    assert not bad, table


def _ray_pods(pods: list[dict[str, Any]], cluster: str, node_type: str) -> list[dict[str, Any]]:
    """The pods of ``cluster`` of one node type (head, worker) that are not being deleted."""
    return [
        p
        for p in pods
        if (p["metadata"].get("labels") or {}).get("ray.io/cluster") == cluster
        and p["metadata"]["labels"].get("ray.io/node-type") == node_type
        and not p["metadata"].get("deletionTimestamp")
    ]


async def _orphans(c: Client, ns: str, want_none: bool = False) -> Any:
    """Objects the operator made for a RayCluster or RayJob (labels or owner), once all are deleted."""
    out: list[str] = []
    for res in (PODS, SERVICES, JOBS, SECRETS, CONFIGMAPS):
        for o in await _list(c, res, ns):
            meta = o["metadata"]
            labels = meta.get("labels") or {}
            owners = [r["kind"] for r in meta.get("ownerReferences") or ()]
            if any(k.startswith("ray.io/") for k in labels) or {"RayCluster", "RayJob", "RayService"} & set(owners):
                out.append(f"{res.kind}/{meta['name']}")
    return (not out) if want_none else out


def _as_json(c: Counts) -> dict[str, Any]:
    return {k: (dict(v) if isinstance(v, defaultdict) else v) for k, v in c.__dict__.items()}


def _table(c: Counts, seed: int, profile: str, elapsed: float, incarnations: int) -> str:
    rec = ", ".join(f"{k} {r:.1f}s" for k, r in c.recovery) or "-"
    faults = ", ".join(f"{k} {v}" for k, v in sorted(c.dashboard_faults.items())) or "-"
    rows = [
        ("duplicate Ray job submissions", c.duplicate_submissions),
        ("RayJobs stuck (not Complete/Failed)", len(c.stuck)),
        ("orphans after deletion", len(c.orphans)),
        ("pods beyond desired (sampled)", len(c.excess_pods)),
        ("terminal RayJob regressions", len(c.regressions)),
        ("restarts not recovered in 120 s", len(c.not_recovered)),
        ("RayJobs whose jobStatus is not their Ray job's", len(c.wrong_outcome)),
        ("RayServices not Ready on their spec's cluster and Serve config", len(c.services_not_ready)),
        ("RayService clusters beyond active + pending (sampled)", len(c.service_cluster_excess)),
        ("ready RayClusters counting fewer pods than exist", len(c.undercounted)),
    ]
    lines = [
        f"chaos invariants  seed={seed} profile={profile}  {elapsed:.0f}s, {c.samples} samples",
        f"  faults: operator SIGKILL {c.kills} at random + {sum(c.aimed_kills.values())} aimed"
        f" {dict(c.aimed_kills)} (processes {incarnations}), restarts {dict(c.restarts)},"
        f" dashboard {faults}",
        f"  recovery after restart: {rec}; refused by its cold RBAC cache: {c.restart_403}",
        *(f"    {n} x {why}" for why, n in c.restart_403_reasons.items()),
        f"  operator exits by itself (exit code: count; restarted as kubelet would): {dict(c.self_exits) or 0}",
        f"  RayJobs by end state: {dict(c.jobs_by_end)}; upgrades (RayService, Serve config, Recreate): {c.upgrades}",
        f"  extra submit POSTs (after injected 500s or crashes; Ray refuses a known id): {c.refused_resubmissions}",
        "  | invariant | count |",
        "  |---|---|",
        *(f"  | {name} | {n} |" for name, n in rows),
    ]
    for what, items in (
        ("stuck", c.stuck),
        ("orphans", c.orphans),
        ("excess", c.excess_pods),
        ("regressions", c.regressions),
        ("not recovered", c.not_recovered),
        ("wrong outcome", c.wrong_outcome),
        ("services", c.services_not_ready),
        ("service clusters", c.service_cluster_excess),
        ("undercounted", c.undercounted),
    ):
        if items:
            lines.append(f"  {what}: {items[:10]}")
    return "\n".join(lines)
