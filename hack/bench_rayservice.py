"""Benchmark of the RayService controller on the simulated cluster (make bench-rayservice).

Starts a private T2 plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok with one
fake node; the ray.io CRDs installed before the simulator starts) and the operator in this process with
its real wiring (``controller_setups``: RayCluster, RayJob and RayService controllers on
internal.app.run_operator). A helper process (this script with ``--helper``) runs what the plane lacks,
so that its CPU and memory are not counted as the operator's:

* the fake Ray heads (test/support/fake_dashboard.py with the Serve model of fake_serve.py at Ray's
  measured timings: a PUT is RUNNING 3 s later), one virtual head per RayCluster on one loopback port
  (``/c/<cluster>``), created on first use; the operator's dashboard client gets a per-host connection
  cap of 256 so that heads sharing that port do not share one head's cap;
* the EndpointSlice controller for the RayService Services (kwok's loopback pod IPs are refused in
  EndpointSlices, so kube-controller-manager publishes none): from informers on Pods and Services, one
  slice per Service with the Pods its selector matches, as test/integration/test_rayservice.py does.

Phases (RayServices with a head-only cluster and one application):

  1. creates N RayServices (default 100) and measures the time until every one is ``Ready``;
  2. steady state: N Ready RayServices for ``--steady`` seconds (each is reconciled every 2 s forever,
     one Serve GET and one proxy health check per pass): operator CPU and reconcile rate;
  3. upgrade wave: changes ``rayClusterConfig`` (an env var of the head container) of all N at once:
     each gets a pending RayCluster, the serve config is applied there, traffic switches when its
     application is RUNNING, and the old cluster is deleted ``rayClusterDeletionDelaySeconds`` later.
     Measures the time until every service serves from its new cluster and until every old cluster is
     gone, and whether any service lost ``Ready`` meanwhile (it must not: zero-downtime);
  4. serve-config wave: changes ``serveConfigV2`` (a ``user_config``) of all N at once, applied in place
     with one PUT per service: the time until every PUT succeeded and a later pass read the app RUNNING.

Progress is read from the operator's own informers (event handlers, no extra watch). Prints Markdown
tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import gc
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))  # the fake dashboard lives with the test support code

from kuberay_operator.main import cache_selectors, controller_setups  # noqa: E402

from api.config.v1alpha1 import Configuration  # noqa: E402
from controllers.ray.utils.dashboard import (  # noqa: E402
    DashboardClientFactory,
    Loopback,
    LoopbackProxyAddress,
    RayDashboardClient,
)
from internal.app import Options, Runtime, run_operator  # noqa: E402
from internal.client import AlreadyExists, Client, Conflict, NotFound, api_client, load_configuration  # noqa: E402
from internal.client.resources import (  # noqa: E402
    ENDPOINTSLICES,
    NAMESPACES,
    PODS,
    RAYCLUSTERS,
    RAYSERVICES,
    SERVICES,
)
from internal.controller import Controller, Request, Result  # noqa: E402
from internal.controlplane import ControlPlane, build_binaries  # noqa: E402
from internal.informer import HandlerFuncs  # noqa: E402

CRD_DIR = REPO / "config" / "crd" / "bases"
NS = "bench-rayservices"
POLL = 0.5
CREATE_CONCURRENCY = 32
CLUSTER_LABEL = "ray.io/cluster"
RS_SELECTOR = "ray.io/originated-from-crd=RayService"
DEPLOY_SECONDS = 3.0  # a fake head runs a PUT config 3 s later (ServeTiming.realistic, Ray's figure here)

Obj = dict[str, Any]

SERVE_CONFIG = """\
applications:
- name: app1
  route_prefix: /
  import_path: hello:app
  deployments:
  - name: Hello
    num_replicas: 1
    user_config:
      greeting: hi
"""


def rayservice(name: str, deletion_delay: int, workers: int) -> Obj:
    head = {
        "name": "ray-head",
        "image": "rayproject/ray:2.60.0",
        "ports": [
            {"containerPort": 6379, "name": "gcs-server"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 8000, "name": "serve"},
        ],
        # Small requests: 2 x N heads (during the wave) must fit the fake node.
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "100m", "memory": "256Mi"}},
        "env": [{"name": "BENCH_WAVE", "value": "0"}],
    }
    groups = []
    if workers:
        worker = {"name": "ray-worker", "image": "rayproject/ray:2.60.0", "resources": head["resources"]}
        groups.append(
            {
                "groupName": "w",
                "replicas": workers,
                "minReplicas": 0,
                "maxReplicas": workers,
                "rayStartParams": {},
                "template": {"spec": {"containers": [worker]}},
            }
        )
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "serveConfigV2": SERVE_CONFIG,
            "rayClusterDeletionDelaySeconds": deletion_delay,
            "rayClusterConfig": {
                "rayVersion": "2.60.0",
                "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [head]}}},
                "workerGroupSpecs": groups,
            },
        },
    }


# ---- measuring -------------------------------------------------------------------------------------------


def rss_mib(pid: int | None = None) -> float:
    try:
        with open(f"/proc/{pid or 'self'}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def peak_rss_mib(pid: int | None = None) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid or 'self'}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid or 'self'}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def pct(values: Iterable[float], p: float) -> float:
    xs = sorted(values)
    if not xs:
        return float("nan")
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


def spread(values: list[float], unit: str = "s", scale: float = 1.0, digits: int = 1) -> str:
    if not values:
        return "n/a"
    return " / ".join(f"{pct(values, p) * scale:.{digits}f}" for p in (50, 99, 100)) + f" {unit}"


def sample_sum(rt: Runtime, metric: str, labels: Mapping[str, str]) -> float:
    return sum(
        smp.value
        for fam in rt.registry.collect()
        for smp in fam.samples
        if smp.name == metric and all(smp.labels.get(k) == v for k, v in labels.items())
    )


class LoopLag:
    """How late a 50 ms sleep wakes up on the operator's event loop."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []

    async def run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            now = time.monotonic()
            self.samples.append((now, now - t - 0.05))

    def between(self, t0: float, t1: float) -> list[float]:
        return [lag for t, lag in self.samples if t0 <= t <= t1]


class Meter:
    """The operator's own metrics, its event-loop lag and the CPU time of the operator process, the
    helper (fake heads + EndpointSlice publisher), each control-plane process and the rest."""

    NAMES: ClassVar[tuple[tuple[str, str, dict[str, str]], ...]] = (
        ("requests", "rest_client_requests_total", {}),
        ("rs_reconciles", "controller_runtime_reconcile_total", {"controller": "rayservice"}),
        ("rs_errors", "controller_runtime_reconcile_errors_total", {"controller": "rayservice"}),
        ("rc_reconciles", "controller_runtime_reconcile_total", {"controller": "raycluster"}),
        ("rc_errors", "controller_runtime_reconcile_errors_total", {"controller": "raycluster"}),
    )

    def __init__(self, rt: Runtime, pids: Mapping[str, int], lag: LoopLag) -> None:
        self.rt = rt
        self.lag = lag
        self.pids = dict(pids)
        self.t0 = time.monotonic()
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        out = {k: sample_sum(self.rt, name, labels) for k, name, labels in self.NAMES}
        out["cpu:operator"] = cpu_seconds(None)
        out.update({f"cpu:{name}": cpu_seconds(pid) for name, pid in self.pids.items()})
        out["cpu:machine"] = machine_busy_seconds()
        return out

    def rows(self) -> dict[str, str]:
        now = self._read()
        d = {k: now[k] - self.start[k] for k in now}
        t1 = time.monotonic()
        span = max(t1 - self.t0, 1e-9)
        ours = {k.removeprefix("cpu:"): v for k, v in d.items() if k.startswith("cpu:") and k != "cpu:machine"}
        ours["rest of the machine"] = max(0.0, d["cpu:machine"] - sum(ours.values()))
        cpu = ", ".join(f"{name} {v / span:.0%}" for name, v in sorted(ours.items(), key=lambda kv: -kv[1]))
        return {
            "**operator CPU seconds in the phase** (user + system, the whole operator process)": (
                f"**{d['cpu:operator']:.1f}** ({d['cpu:operator'] / span:.0%} of one core)"
            ),
            "operator API requests in the phase / per s": f"{d['requests']:.0f} / {d['requests'] / span:.0f}",
            "RayService reconciles / errors (per s)": (
                f"{d['rs_reconciles']:.0f} / {d['rs_errors']:.0f} ({d['rs_reconciles'] / span:.0f}/s)"
            ),
            "RayCluster reconciles / errors": f"{d['rc_reconciles']:.0f} / {d['rc_errors']:.0f}",
            "operator event-loop lag, p50 / p99 / max": spread(self.lag.between(self.t0, t1), "ms", 1000, 0),
            f"CPU over the phase ({span:.0f} s), in % of one core (the machine has {os.cpu_count()})": cpu,
        }


class ReconcileTimes:
    """Wraps the RayService reconciler: the duration of every reconcile."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.ends: dict[str, list[tuple[float, float]]] = {}  # name -> (start, end) of each finished reconcile

    def install(self, ctrl: Controller) -> None:
        real = ctrl.reconciler.reconcile

        async def timed(req: Request) -> Result:
            t = time.monotonic()
            try:
                return await real(req)
            finally:
                end = time.monotonic()
                self.samples.append((t, end - t))
                self.ends.setdefault(req.name, []).append((t, end))

        setattr(ctrl.reconciler, "reconcile", timed)  # noqa: B010 (an instance attribute shadows the method)

    def first_pass_after(self, name: str, since: float) -> float | None:
        """When the first reconcile of ``name`` that started after ``since`` finished."""
        return next((end for start, end in self.ends.get(name, ()) if start >= since), None)

    def between(self, t0: float, t1: float) -> list[float]:
        return [d for t, d in self.samples if t0 <= t <= t1]


def _ready(st: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or ())


def _upgrading(st: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "UpgradeInProgress" and c.get("status") == "True" for c in st.get("conditions") or ())


class Tracker:
    """From event handlers on the operator's RayService and RayCluster informers: when each service was
    first Ready, which cluster serves it (and since when), every loss of Ready after it was first
    reached, and when each RayCluster was deleted."""

    def __init__(self, rt: Runtime) -> None:
        self.first_ready: dict[str, float] = {}
        self.active: dict[str, tuple[str, float]] = {}
        self.upgrading: dict[str, bool] = {}
        self.ready_lost: dict[str, int] = {}
        self.ready_now: dict[str, bool] = {}
        self.clusters: set[str] = set()
        self.peak_clusters = 0
        self.deleted: dict[str, float] = {}
        self.cluster_created: dict[str, float] = {}
        self.cluster_ready: dict[str, float] = {}
        self.app_status: dict[str, str] = {}
        self.app_changes: dict[str, list[tuple[str, float]]] = {}  # the active app's status, as it changes
        for inf in rt.cache.informers_for(RAYSERVICES):
            inf.add_event_handler(HandlerFuncs(add=lambda o, _i: self.on(o), update=lambda _o, n: self.on(n)))
        for inf in rt.cache.informers_for(RAYCLUSTERS):
            inf.add_event_handler(
                HandlerFuncs(
                    add=lambda o, _i: self.on_cluster(o),
                    update=lambda _o, n: self.on_cluster(n),
                    delete=self.on_cluster_gone,
                )
            )

    def on(self, obj: Obj) -> None:
        name, st = str(obj["metadata"]["name"]), obj.get("status") or {}
        now = time.monotonic()
        ready = _ready(st)
        if ready and name not in self.first_ready:
            self.first_ready[name] = now
        if name in self.first_ready and self.ready_now.get(name) and not ready:
            self.ready_lost[name] = self.ready_lost.get(name, 0) + 1
        self.ready_now[name] = ready
        active = str((st.get("activeServiceStatus") or {}).get("rayClusterName") or "")
        if active and self.active.get(name, ("", 0.0))[0] != active:
            self.active[name] = (active, now)
        self.upgrading[name] = _upgrading(st)
        app = ((st.get("activeServiceStatus") or {}).get("applicationStatuses") or {}).get("app1") or {}
        status = str(app.get("status") or "")
        if status and status != self.app_status.get(name):
            self.app_status[name] = status
            self.app_changes.setdefault(name, []).append((status, now))

    def on_cluster(self, obj: Any) -> None:
        name = str(obj["metadata"]["name"])
        now = time.monotonic()
        self.clusters.add(name)
        self.peak_clusters = max(self.peak_clusters, len(self.clusters))
        self.cluster_created.setdefault(name, now)
        if (obj.get("status") or {}).get("state") == "ready":
            self.cluster_ready.setdefault(name, now)

    def on_cluster_gone(self, obj: Any) -> None:
        obj = getattr(obj, "obj", obj)  # DeletedFinalStateUnknown carries the last state
        name = str(obj["metadata"]["name"])
        self.clusters.discard(name)
        self.deleted.setdefault(name, time.monotonic())


async def until(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL)
    return True


# ---- the helper process: fake heads and the EndpointSlice publisher ----------------------------------------


def helper_main(kubeconfig: str, namespace: str) -> int:
    """Runs until its stdin closes; prints ``PORT <n>`` once the fake heads listen."""
    return asyncio.run(_helper(kubeconfig, namespace))


async def _helper(kubeconfig: str, namespace: str) -> int:
    from support.fake_dashboard import FakeCluster, FakeDashboard
    from support.fake_serve import ServeTiming

    from internal.informer import Informer

    class AutoHeads(FakeDashboard):  # type: ignore[misc]  # the test support code is not type-checked
        """Every ``/c/<cluster>`` is a head that exists from its first request on."""

        def _cluster_for(self, request: Any) -> FakeCluster | None:
            name = request.match_info.get("cluster")
            if name is None:
                return super()._cluster_for(request)
            known = name in self.clusters
            c = self.cluster(name)
            if not known:
                c.serve.timing = ServeTiming.realistic()
                c.serve.timing.deploy = DEPLOY_SECONDS
            return c

    c = Client(api_client(await load_configuration(kubeconfig), 16), qps=0)
    pods = Informer(c, PODS, namespace=namespace)
    services = Informer(c, SERVICES, namespace=namespace, label_selector=RS_SELECTOR)
    dirty: set[str] = set()
    published: dict[str, tuple[str, list[Obj]]] = {}  # service -> (its uid, the endpoints published)

    def mark_pod(pod: Any) -> None:
        pod = getattr(pod, "obj", pod)
        cluster = (pod["metadata"].get("labels") or {}).get(CLUSTER_LABEL)
        for svc in services.list():
            if (svc["spec"].get("selector") or {}).get(CLUSTER_LABEL) == cluster:
                dirty.add(str(svc["metadata"]["name"]))

    def mark_svc(svc: Any) -> None:
        dirty.add(str(getattr(svc, "obj", svc)["metadata"]["name"]))

    def pod_changed(old: Any, new: Any) -> None:
        mark_pod(old)  # a label change can move a pod out of a Service's selection
        mark_pod(new)

    pods.add_event_handler(HandlerFuncs(add=lambda o, _i: mark_pod(o), update=pod_changed, delete=mark_pod))
    services.add_event_handler(
        HandlerFuncs(add=lambda o, _i: mark_svc(o), update=lambda _o, n: mark_svc(n), delete=mark_svc)
    )

    def endpoints(svc: Mapping[str, Any]) -> list[Obj]:
        selector = svc["spec"].get("selector") or {}
        out = []
        for p in pods.list():
            labels = p["metadata"].get("labels") or {}
            if p["metadata"].get("deletionTimestamp") or any(labels.get(k) != v for k, v in selector.items()):
                continue
            st = p.get("status") or {}
            ip = st.get("podIP") or ""
            if not ip:
                continue
            ready = any(x["type"] == "Ready" and x["status"] == "True" for x in st.get("conditions") or ())
            ref = {"kind": "Pod", "name": p["metadata"]["name"], "namespace": namespace, "uid": p["metadata"]["uid"]}
            # Loopback pod IPs are refused in EndpointSlices: an address in 10/8 that nobody dials.
            out.append(
                {"addresses": ["10." + ".".join(ip.split(".")[1:])], "conditions": {"ready": ready}, "targetRef": ref}
            )
        return sorted(out, key=lambda e: e["targetRef"]["name"])

    async def publish(name: str) -> None:
        svc = services.get(f"{namespace}/{name}")
        if svc is None:
            published.pop(name, None)
            return
        uid, eps = str(svc["metadata"]["uid"]), endpoints(svc)
        if published.get(name) == (uid, eps):
            return
        body: Obj = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-sim",
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Service", "name": name, "uid": uid, "controller": True}
                ],
            },
            "addressType": "IPv4",
            "endpoints": eps,
            "ports": [
                {"name": p.get("name"), "port": p["port"], "protocol": "TCP"} for p in svc["spec"].get("ports") or ()
            ],
        }
        try:
            old = await c.get(ENDPOINTSLICES, f"{name}-sim", namespace)
        except NotFound:
            with contextlib.suppress(AlreadyExists, NotFound):
                await c.create(ENDPOINTSLICES, body, namespace)
            published[name] = (uid, eps)
            return
        if old["metadata"]["ownerReferences"][0]["uid"] != uid:  # a Service re-created under the same name
            with contextlib.suppress(NotFound):
                await c.delete(ENDPOINTSLICES, f"{name}-sim", namespace)
            dirty.add(name)
            return
        body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        with contextlib.suppress(NotFound, Conflict):
            await c.update(ENDPOINTSLICES, body)
            published[name] = (uid, eps)

    async def publisher() -> None:
        while True:
            await asyncio.sleep(0.2)
            batch = sorted(dirty)
            dirty.clear()
            for name in batch:
                try:
                    await publish(name)
                except Exception:  # keep publishing the others; retried on the next change
                    dirty.add(name)

    async with AutoHeads() as fake:
        tasks = [asyncio.create_task(t) for t in (pods.run(), services.run(), publisher())]
        print(f"PORT {fake.port}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # the parent closes stdin to stop us
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await c.close()
    return 0


def start_helper(kubeconfig: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--helper", str(kubeconfig), NS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded: the helper prints its port or exits
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"the helper did not start: {line!r}")
    return proc, int(line.split()[1])


def stop_helper(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(OSError):
        assert proc.stdin is not None
        proc.stdin.close()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# ---- the operator -----------------------------------------------------------------------------------------


async def start_operator(
    args: argparse.Namespace, kubeconfig: Path, factory: DashboardClientFactory, times: ReconcileTimes
) -> tuple[Runtime, asyncio.Event, asyncio.Task[None]]:
    runtimes: list[Runtime] = []

    def capture(rt: Runtime) -> list[Controller]:
        runtimes.append(rt)
        rt.on_close(factory.close)
        return []

    def wrap_reconciler(rt: Runtime) -> list[Controller]:
        times.install(next(c for c in rt.manager.controllers if c.name == "rayservice"))
        return []

    opts = Options(
        config=Configuration(
            metricsAddr="127.0.0.1:0",
            probeAddr="127.0.0.1:0",
            enableLeaderElection=False,
            reconcileConcurrency=args.concurrency,
            qps=args.qps,
            burst=args.burst,
        ),
        kubeconfig=str(kubeconfig),
        setups=[capture, *controller_setups(factory), wrap_reconciler],
        cache_by_object=cache_selectors(),
        graceful_shutdown_timeout=10,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_operator(opts, stop))
    if not await until(lambda: task.done() or bool(runtimes and runtimes[0].manager.probe_port), 60):
        raise TimeoutError("the operator did not serve within 60s")
    if task.done():
        task.result()
    rt = runtimes[0]
    await rt.cache.wait_for_sync(60)
    return rt, stop, task


def secs(ts: list[float], t0: float, n: int) -> str:
    if len(ts) < n or n == 0:
        return f"not reached ({len(ts)}/{n})"
    return f"{max(ts) - t0:.1f}"


async def phase_ready(
    c: Client, args: argparse.Namespace, tr: Tracker, times: ReconcileTimes, meter: Callable[[], Meter]
) -> dict[str, str]:
    n = int(args.services)
    names = [f"rs-{i:03d}" for i in range(n)]
    dead = black_holed(args)
    live = [x for x in names if x not in dead]
    sem = asyncio.Semaphore(CREATE_CONCURRENCY)
    sent: dict[str, float] = {}

    async def create(name: str) -> None:
        async with sem:
            sent[name] = time.monotonic()
            await c.create(RAYSERVICES, rayservice(name, args.deletion_delay, args.workers), NS)

    gc.collect()
    rss0 = rss_mib()
    phase = meter()
    t0 = time.monotonic()
    await asyncio.gather(*(create(x) for x in names))
    create_s = time.monotonic() - t0
    done = await until(lambda: all(x in tr.first_ready for x in live), args.timeout)
    ready = [tr.first_ready[x] for x in live if x in tr.first_ready]
    first = {x: tr.active[x][0] for x in names if x in tr.active}
    rows = phase.rows()
    durations = times.between(t0, time.monotonic())
    out = {
        "RayServices created (head-only cluster, one Serve application)": f"{n}",
        f"create loop, {CREATE_CONCURRENCY} in flight (s)": f"{create_s:.1f}",
    }
    if dead:
        out["of which with a black-holed head (its dashboard and proxy never answer)"] = f"{len(dead)}"
        out["… of those `Ready` (0 expected)"] = f"{sum(x in tr.first_ready for x in dead)}"
    return out | {
        "**all `Ready`, from the first create** (s)"
        + (" (those with a live head)" if dead else ""): f"**{secs(ready, t0, len(live))}**"
        + ("" if done else " (deadline hit)"),
        "per service: create sent → `Ready`, p50 / p99 / max": spread(
            [tr.first_ready[x] - sent[x] for x in live if x in tr.first_ready]
        ),
        "… of which create sent → its RayCluster created": spread(
            [tr.cluster_created[cl] - sent[x] for x, cl in first.items() if cl in tr.cluster_created]
        ),
        "… RayCluster created → its state `ready` (head pod Running and Ready)": spread(
            [tr.cluster_ready[cl] - tr.cluster_created[cl] for cl in first.values() if cl in tr.cluster_ready]
        ),
        "… RayCluster `ready` → RayService `Ready` (Serve config PUT, app RUNNING, Services, endpoints)": spread(
            [tr.first_ready[x] - tr.cluster_ready[cl] for x, cl in first.items() if cl in tr.cluster_ready]
        ),
        f"RayService reconcile latency ({len(durations)} reconciles), p50 / p99 / max": spread(
            durations, "ms", 1000, 0
        ),
        **rows,
        "operator RSS before → after the phase (MiB)": f"{rss0:.0f} → {rss_mib():.0f}",
    }


async def phase_steady(args: argparse.Namespace, times: ReconcileTimes, meter: Callable[[], Meter]) -> dict[str, str]:
    phase = meter()
    t0 = time.monotonic()
    await asyncio.sleep(args.steady)  # a measurement window, not synchronisation
    durations = times.between(t0, time.monotonic())
    return {
        f"window with {args.services} `Ready` RayServices (s)": f"{args.steady:.0f}",
        f"RayService reconcile latency ({len(durations)} reconciles), p50 / p99 / max": spread(
            durations, "ms", 1000, 0
        ),
        **phase.rows(),
        "operator RSS (MiB)": f"{rss_mib():.0f}",
    }


async def phase_upgrade(
    c: Client, args: argparse.Namespace, tr: Tracker, times: ReconcileTimes, meter: Callable[[], Meter]
) -> dict[str, str]:
    names = sorted(tr.first_ready)
    before = {x: tr.active[x][0] for x in names if x in tr.active}
    lost0 = sum(tr.ready_lost.values())
    sem = asyncio.Semaphore(CREATE_CONCURRENCY)
    sent: dict[str, float] = {}

    async def bump(name: str) -> None:
        async with sem:
            svc = await c.get(RAYSERVICES, name, NS)
            config = copy.deepcopy(svc["spec"]["rayClusterConfig"])
            config["headGroupSpec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "BENCH_WAVE", "value": "1"}]
            sent[name] = time.monotonic()
            await c.patch(RAYSERVICES, name, {"spec": {"rayClusterConfig": config}}, NS)

    def switched(x: str) -> bool:
        return x in tr.active and tr.active[x][0] != before.get(x) and not tr.upgrading.get(x, True)

    gc.collect()
    rss0 = rss_mib()
    phase = meter()
    t0 = time.monotonic()
    await asyncio.gather(*(bump(x) for x in names))
    patch_s = time.monotonic() - t0
    done = await until(lambda: all(switched(x) for x in names), args.timeout)
    old = set(before.values())
    gone = await until(lambda: old <= tr.deleted.keys(), args.deletion_delay + args.timeout)
    rows = phase.rows()
    durations = times.between(t0, time.monotonic())
    switch_at = [tr.active[x][1] for x in names if switched(x)]
    after = {x: tr.active[x][0] for x in names if switched(x)}
    return {
        "RayServices upgraded at once (`rayClusterConfig`: a head env var changed)": f"{len(names)}",
        f"patch loop, {CREATE_CONCURRENCY} in flight (s)": f"{patch_s:.1f}",
        "**all serving from their new cluster, from the first patch** (s)": (
            f"**{secs(switch_at, t0, len(names))}**" + ("" if done else " (deadline hit)")
        ),
        "per service: patch sent → traffic on the new cluster, p50 / p99 / max": spread(
            [tr.active[x][1] - sent[x] for x in names if switched(x)]
        ),
        "… of which patch sent → new RayCluster created": spread(
            [tr.cluster_created[new] - sent[x] for x, new in after.items() if new in tr.cluster_created]
        ),
        "… new RayCluster created → its state `ready` (head pod Running and Ready)": spread(
            [tr.cluster_ready[new] - tr.cluster_created[new] for new in after.values() if new in tr.cluster_ready]
        ),
        "… RayCluster `ready` → traffic switched (Serve config PUT, app RUNNING, Services switched)": spread(
            [tr.active[x][1] - tr.cluster_ready[new] for x, new in after.items() if new in tr.cluster_ready]
        ),
        f"all old clusters deleted (rayClusterDeletionDelaySeconds {args.deletion_delay}), from the first patch (s)": (
            secs([tr.deleted[x] for x in old if x in tr.deleted], t0, len(old)) + ("" if gone else " (deadline hit)")
        ),
        "RayClusters at the peak (active + pending)": f"{tr.peak_clusters}",
        "**RayServices that lost `Ready` during the wave** (zero-downtime: 0 expected)": (
            f"**{sum(1 for x in names if tr.ready_lost.get(x))}** ({sum(tr.ready_lost.values()) - lost0} losses)"
        ),
        f"RayService reconcile latency ({len(durations)} reconciles), p50 / p99 / max": spread(
            durations, "ms", 1000, 0
        ),
        **rows,
        "operator RSS before → after the phase (MiB)": f"{rss0:.0f} → {rss_mib():.0f}",
    }


class RecordingFactory(DashboardClientFactory):
    """The operator's dashboard client factory, recording when each cluster's Serve config PUT succeeded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.puts: dict[str, list[float]] = {}

    def for_cluster(
        self, cluster: Mapping[str, Any], dashboard_url: str = "", token: str | None = None
    ) -> RayDashboardClient:
        client = super().for_cluster(cluster, dashboard_url, token)
        name, real, log = str(cluster["metadata"]["name"]), client.update_deployments, self.puts

        async def update(config: Any) -> None:
            await real(config)
            log.setdefault(name, []).append(time.monotonic())

        setattr(client, "update_deployments", update)  # noqa: B010 (an instance attribute shadows the method)
        return client


async def phase_serve_wave(
    c: Client,
    args: argparse.Namespace,
    tr: Tracker,
    factory: RecordingFactory,
    times: ReconcileTimes,
    meter: Callable[[], Meter],
) -> dict[str, str]:
    """Every RayService gets a new ``user_config``: applied in place on its active cluster (one PUT each).
    The application is RUNNING again 3 s after the PUT on the fake heads (Ray's figure on this host); the
    RayService status shows DEPLOYING only if a pass happens to read it in between."""
    names = sorted(tr.first_ready)
    before = {x: tr.active[x][0] for x in names if x in tr.active}
    clusters0 = len(tr.clusters)
    lost0 = sum(tr.ready_lost.values())
    sem = asyncio.Semaphore(CREATE_CONCURRENCY)
    sent: dict[str, float] = {}

    async def edit(name: str) -> None:
        async with sem:
            sent[name] = time.monotonic()
            config = SERVE_CONFIG.replace("greeting: hi", "greeting: hello again")
            await c.patch(RAYSERVICES, name, {"spec": {"serveConfigV2": config}}, NS)

    def put_at(x: str) -> float | None:
        return next((t for t in factory.puts.get(before.get(x, ""), ()) if t >= sent.get(x, math.inf)), None)

    def redeployed(x: str) -> float | None:
        """When the status showed the app RUNNING again after showing it DEPLOYING after the PUT."""
        t0, seen_deploying = put_at(x), False
        for status, t in tr.app_changes.get(x, ()):
            if t0 is None or t < t0:
                continue
            seen_deploying = seen_deploying or status != "RUNNING"
            if seen_deploying and status == "RUNNING":
                return t
        return None

    gc.collect()
    phase = meter()
    t0 = time.monotonic()
    await asyncio.gather(*(edit(x) for x in names))
    patch_s = time.monotonic() - t0
    done = await until(lambda: all(put_at(x) is not None for x in names), args.timeout)

    def seen_running(x: str) -> float | None:
        """When a pass that started once the app ran the new config (3 s after its PUT) finished with the
        application RUNNING: the operator has read the new release as healthy."""
        put = put_at(x)
        if put is None or tr.app_status.get(x) != "RUNNING":
            return None
        return times.first_pass_after(x, put + DEPLOY_SECONDS)

    await until(lambda: all(seen_running(x) is not None for x in names), args.timeout)
    rows = phase.rows()
    durations = times.between(t0, time.monotonic())
    puts = {x: t for x in names if (t := put_at(x)) is not None}
    back = {x: t for x in names if (t := redeployed(x)) is not None}
    seen = {x: t for x in names if (t := seen_running(x)) is not None}
    same = sum(1 for x in names if tr.active.get(x, ("", 0.0))[0] == before.get(x))
    return {
        "RayServices whose `serveConfigV2` changed at once (a deployment's `user_config`)": f"{len(names)}",
        f"patch loop, {CREATE_CONCURRENCY} in flight (s)": f"{patch_s:.1f}",
        "**new config PUT to every active cluster, from the first patch** (s)": (
            f"**{secs(list(puts.values()), t0, len(names))}**" + ("" if done else " (deadline hit)")
        ),
        "per service: patch sent → PUT done, p50 / p99 / max": spread([puts[x] - sent[x] for x in puts]),
        "**the operator read every application RUNNING the new config, from the first patch** (s)": (
            f"**{secs(list(seen.values()), t0, len(names))}**"
        ),
        "services whose status showed DEPLOYING in between (a pass fell inside the 3 s deploy)": f"{len(back)}",
        "services still on the same cluster / RayClusters before → after (in place: no new cluster)": (
            f"{same} / {clusters0} → {len(tr.clusters)}"
        ),
        "RayServices that lost `Ready`": f"{sum(tr.ready_lost.values()) - lost0}",
        f"RayService reconcile latency ({len(durations)} reconciles), p50 / p99 / max": spread(
            durations, "ms", 1000, 0
        ),
        **rows,
    }


async def bench(plane: ControlPlane, args: argparse.Namespace, res: dict[str, dict[str, str]]) -> None:
    gc.collect()
    rss_start = rss_mib()
    run = res.setdefault("run", {})
    helper, port = start_helper(plane.kubeconfig)
    base = f"http://127.0.0.1:{port}/c/"
    # A black-holed head: a listening socket nobody accepts from, so requests connect (or queue for the
    # backlog) and never get an answer, as a head behind a dropped route or a hung process.
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind(("127.0.0.1", 0))
    hole.listen(1)
    dead_base = f"http://127.0.0.1:{hole.getsockname()[1]}/c/"
    dead = black_holed(args)

    def head(cluster: str) -> str:
        return (dead_base if cluster.rsplit("-", 1)[0] in dead else base) + cluster

    try:
        factory = RecordingFactory(
            Loopback(lambda cluster: head(str(cluster["metadata"]["name"]))),
            proxies=LoopbackProxyAddress(lambda pod, _port: head(str(pod["metadata"]["labels"][CLUSTER_LABEL]))),
            limit_per_host=256,  # every fake head shares the helper's one host:port
        )
        times = ReconcileTimes()
        rt, stop, task = await start_operator(args, plane.kubeconfig, factory, times)
        tr = Tracker(rt)
        lag = LoopLag()
        lag_task = asyncio.create_task(lag.run())
        pids = {"helper (fake heads, EndpointSlices)": helper.pid}
        pids.update({n: p.pid for n, p in plane.processes.items() if p.pid is not None})

        def meter() -> Meter:
            return Meter(rt, pids, lag)

        c = Client(api_client(await load_configuration(str(plane.kubeconfig)), CREATE_CONCURRENCY), qps=0)
        await c.create(NAMESPACES, {"metadata": {"name": NS}})
        gc.collect()
        run["operator RSS: before start → started and synced (MiB)"] = f"{rss_start:.0f} → {rss_mib():.0f}"
        try:
            res[f"Phase 1: {args.services} RayServices to `Ready`"] = await phase_ready(c, args, tr, times, meter)
            if args.steady > 0:
                res[f"Phase 2: steady state, {args.services} `Ready` RayServices"] = await phase_steady(
                    args, times, meter
                )
            if args.upgrade:
                res[f"Phase 3: upgrade wave, {args.services} RayServices get a new cluster"] = await phase_upgrade(
                    c, args, tr, times, meter
                )
            if args.serve_wave:
                title = f"Phase 4: serve config wave, {args.services} RayServices updated in place"
                res[title] = await phase_serve_wave(c, args, tr, factory, times, meter)
            gc.collect()
            run["operator RSS at the end, /proc/self/statm (MiB)"] = f"{rss_mib():.0f}"
            run["operator peak RSS over the run, VmHWM (MiB)"] = f"{peak_rss_mib():.0f}"
            run["helper (fake heads + EndpointSlice publisher) RSS at the end (MiB)"] = f"{rss_mib(helper.pid):.0f}"
        finally:
            lag_task.cancel()
            await c.close()
            stop.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 30)
    finally:
        stop_helper(helper)
        hole.close()


def black_holed(args: argparse.Namespace) -> set[str]:
    """The RayServices whose heads never answer: the first ``--black-holed``."""
    return {f"rs-{i:03d}" for i in range(args.black_holed)}


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--helper":
        return helper_main(sys.argv[2], sys.argv[3])
    defaults = Configuration()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=100, help="RayServices (default 100)")
    ap.add_argument("--workers", type=int, default=0, help="worker pods per RayCluster (default 0: head only)")
    ap.add_argument("--steady", type=float, default=30, help="seconds of the steady-state window, 0 skips it (30)")
    ap.add_argument("--no-upgrade", dest="upgrade", action="store_false", help="skip the upgrade wave")
    ap.add_argument(
        "--no-serve-wave", dest="serve_wave", action="store_false", help="skip the in-place serve config wave"
    )
    ap.add_argument(
        "--deletion-delay", type=int, default=10, help="rayClusterDeletionDelaySeconds of every RayService (10)"
    )
    ap.add_argument(
        "--black-holed",
        type=int,
        default=0,
        help="RayServices whose head never answers (dashboard and proxy); the others are measured (0)",
    )
    ap.add_argument("--concurrency", type=int, default=10, help="--reconcile-concurrency (default 10)")
    ap.add_argument("--qps", type=float, default=defaults.qps, help=f"operator client QPS (default {defaults.qps:g})")
    ap.add_argument(
        "--burst", type=int, default=defaults.burst, help=f"operator client burst (default {defaults.burst})"
    )
    ap.add_argument("--timeout", type=float, default=900, help="seconds allowed per phase (default 900)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Failed reconciles (conflicts, "found 0 head" while a head pod is being made) are counted from the
    # controllers' metrics in the tables instead of logged one by one.
    logging.getLogger("kuberay.controller").setLevel(logging.CRITICAL)

    t = time.monotonic()
    work_dir = Path(tempfile.mkdtemp(prefix="bench-rayservice-"))
    plane = ControlPlane(bin_dir=build_binaries(), work_dir=work_dir)
    res: dict[str, dict[str, str]] = {}
    try:
        plane.start()
        plane.install_crds(sorted(CRD_DIR.glob("*.yaml")), timeout=60)
        plane.start_sim()
        res["run"] = {"T2 plane start + CRDs (s)": f"{time.monotonic() - t:.1f}"}
        asyncio.run(bench(plane, args, res))
    finally:
        plane.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
        for title, rows in res.items():
            print(f"\n{title}\n\n| measure | value |\n|---|---|")
            for k, v in rows.items():
                print(f"| {k} | {v} |")
    flags = f"--services {args.services} --workers {args.workers} --steady {args.steady:g}"
    flags += f" --deletion-delay {args.deletion_delay} --concurrency {args.concurrency}"
    flags += f" --qps {args.qps:g} --burst {args.burst}" + ("" if args.upgrade else " --no-upgrade")
    flags += "" if args.serve_wave else " --no-serve-wave"
    print(
        f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
        f"command: make bench-rayservice (hack/bench_rayservice.py {flags})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
