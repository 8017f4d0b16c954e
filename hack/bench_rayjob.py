"""Benchmark of the RayJob controller on the simulated cluster (make bench-rayjob).

Starts a private T2 plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok with one
fake node; the ray.io CRDs installed before the simulator starts), a fake Ray dashboard on loopback
(test/support/fake_dashboard.py: one virtual head per RayCluster, each on its own 127.0.0.1 port as real
heads are distinct hosts) and the operator in this process with the RayCluster and RayJob controllers
(internal.app.run_operator, the real wiring). Every Ray job the operator submits runs the fake script
RUNNING, then SUCCEEDED ``--succeed-after`` seconds later. RayJobs are HTTPMode with a head-only
rayClusterSpec (one pod per job).

  1. creates N RayJobs (default 1,000) as fast as a bounded-concurrency loop allows and measures the
     time from the first create until every one is ``Complete``, and the create rate;
  2. in a fresh namespace, creates M RayJobs (default 200) of which a share (default 10 %) get a
     black-holed dashboard (``hang()``: connections accepted, nothing answered) as soon as their Ray
     job is RUNNING; measures the duration of every RayJob reconcile (the controller's reconciler is
     wrapped) for healthy vs black-holed jobs while the heads hang, and the time until every healthy
     RayJob is ``Complete``;
  3. records this process's RSS (/proc/self/statm) at the end.
Progress is read from the operator's own informer (an event handler, no extra watch or polling of the
API server). Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))  # the fake dashboard lives with the test support code

from kuberay_operator.main import cache_selectors  # noqa: E402
from support.fake_dashboard import FakeCluster, FakeDashboard  # noqa: E402

from api.config.v1alpha1 import Configuration  # noqa: E402
from controllers.ray import raycluster_controller, rayjob_controller  # noqa: E402
from controllers.ray.utils import constants as C  # noqa: E402
from controllers.ray.utils.dashboard import DashboardClientFactory, Loopback  # noqa: E402
from internal.app import Options, Runtime, run_operator  # noqa: E402
from internal.client import Client, api_client, load_configuration  # noqa: E402
from internal.client.resources import NAMESPACES, RAYCLUSTERS, RAYJOBS  # noqa: E402
from internal.controller import Controller, Request, Result  # noqa: E402
from internal.controlplane import ControlPlane, build_binaries  # noqa: E402
from internal.informer import HandlerFuncs  # noqa: E402

CRD_DIR = REPO / "config" / "crd" / "bases"
NS_MANY = "bench-rayjobs"
NS_HOLES = "bench-blackhole"
POLL = 0.5
CREATE_CONCURRENCY = 32

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


def spread(values: list[float], unit: str = "s", scale: float = 1.0, digits: int = 1) -> str:
    """``p50 / p99 / max`` of ``values`` (times ``scale``), or n/a."""
    if not values:
        return "n/a"
    return " / ".join(f"{pct(values, p) * scale:.{digits}f}" for p in (50, 99, 100)) + f" {unit}"


def rayjob(name: str, ns: str) -> Obj:
    """HTTPMode, head-only cluster (no worker groups): one pod per RayJob."""
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "entrypoint": "python -c \"print('hello')\"",
            "submissionMode": "HTTPMode",
            "rayClusterSpec": {
                "rayVersion": "2.52.0",
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "ray-head",
                                    "image": "rayproject/ray:2.52.0",
                                    # Small requests: 1,200 heads must fit the fake node (1k CPUs).
                                    "resources": {
                                        "requests": {"cpu": "100m", "memory": "256Mi"},
                                        "limits": {"cpu": "100m", "memory": "256Mi"},
                                    },
                                }
                            ]
                        }
                    },
                },
                "workerGroupSpecs": [],
            },
        },
    }


class Heads:
    """The fake Ray heads: one virtual cluster per RayCluster, given its own loopback port as soon as
    the RayCluster appears in the operator's cache (a head is a distinct host:port in a real cluster,
    so the dashboard client's per-host connection cap isolates heads as it does in production).
    ``resolve`` is the Loopback address table; the scripts are set when a head is first seen."""

    def __init__(self, fake: FakeDashboard, succeed_after: float, own_port: bool) -> None:
        self.fake = fake
        self.succeed_after = succeed_after
        self.own_port = own_port
        self.holes: set[Key] = set()  # RayJobs whose head will be black-holed
        self.shared_port_calls = 0  # resolutions that happened before the head had its own port
        self._tasks: set[asyncio.Task[Any]] = set()

    @staticmethod
    def job_of(cluster: Mapping[str, Any]) -> Key:
        meta = cluster["metadata"]
        return str(meta["namespace"]), str((meta.get("labels") or {}).get(C.RAY_ORIGINATED_FROM_CR_NAME_LABEL_KEY))

    def ensure(self, cluster: Mapping[str, Any]) -> FakeCluster:
        name = str(cluster["metadata"]["name"])
        known = name in self.fake.clusters
        head = self.fake.cluster(name)
        if not known:
            if self.job_of(cluster) in self.holes:
                head.set_default_script("RUNNING")  # never ends: the head will hang while it runs
            else:
                head.set_default_script("RUNNING", ("SUCCEEDED", self.succeed_after))
        return head

    def resolve(self, cluster: Mapping[str, Any]) -> str:
        head = self.ensure(cluster)
        if self.own_port and head.port == self.fake.port:
            self.shared_port_calls += 1  # the same FakeCluster, reached through /c/<name> meanwhile
        return str(head.base_url)

    def on_cluster(self, obj: Obj, _initial: bool = False) -> None:
        self.ensure(obj)
        if self.own_port:
            task = asyncio.get_running_loop().create_task(self.fake.cluster_on_own_port(obj["metadata"]["name"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def heal_all(self) -> None:
        for head in self.fake.clusters.values():
            head.heal()


class Tracker:
    """First time each RayJob was seen in each jobDeploymentStatus (and each Ray jobStatus), from an
    event handler on the operator's RayJob informer; black-holes a head when its job reports RUNNING."""

    def __init__(self, rt: Runtime, heads: Heads) -> None:
        self.heads = heads
        self.seen: dict[Key, dict[str, float]] = {}
        self.hung: dict[Key, float] = {}
        for inf in rt.cache.informers_for(RAYJOBS):
            inf.add_event_handler(HandlerFuncs(add=lambda o, _i: self.on(o), update=lambda _o, n: self.on(n)))

    def on(self, obj: Obj) -> None:
        meta, st = obj["metadata"], obj.get("status") or {}
        key = (str(meta["namespace"]), str(meta["name"]))
        marks = self.seen.setdefault(key, {})
        now = time.monotonic()
        for state in (st.get("jobDeploymentStatus"), f"job:{st.get('jobStatus') or ''}"):
            if state and state not in marks:
                marks[state] = now
        if key in self.heads.holes and key not in self.hung and st.get("jobStatus") == "RUNNING":
            self.heads.fake.cluster(st["rayClusterName"]).hang()
            self.hung[key] = now

    def count(self, keys: Iterable[Key], state: str) -> int:
        return sum(1 for k in keys if state in self.seen.get(k, {}))

    def when(self, keys: Iterable[Key], state: str) -> list[float]:
        return [self.seen[k][state] for k in keys if state in self.seen.get(k, {})]


class ReconcileTimes:
    """Wraps the RayJob controller's reconciler: (start, duration) of every reconcile, per request."""

    def __init__(self) -> None:
        self.by_key: dict[Key, list[tuple[float, float]]] = {}

    def install(self, ctrl: Controller) -> None:
        real = ctrl.reconciler.reconcile

        async def timed(req: Request) -> Result:
            t = time.monotonic()
            try:
                return await real(req)
            finally:
                self.by_key.setdefault((req.namespace or "", req.name), []).append((t, time.monotonic() - t))

        setattr(ctrl.reconciler, "reconcile", timed)  # noqa: B010 (an instance attribute shadows the method)

    def durations(self, keys: Iterable[Key], since: float | Mapping[Key, float], until: float) -> list[float]:
        """Durations of the reconciles of ``keys`` started in [since, until] (since: one time, or per key)."""
        out: list[float] = []
        for k in keys:
            t0 = since if isinstance(since, float) else since.get(k, math.inf)
            out.extend(d for t, d in self.by_key.get(k, ()) if t0 <= t <= until)
        return out


def sample_sum(rt: Runtime, metric: str, labels: Mapping[str, str]) -> float:
    """Sum of the operator's metric samples called ``metric`` whose labels include ``labels``."""
    return sum(
        smp.value
        for fam in rt.registry.collect()
        for smp in fam.samples
        if smp.name == metric and all(smp.labels.get(k) == v for k, v in labels.items())
    )


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid or 'self'}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (all cores; /proc/stat minus idle and iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


class LoopLag:
    """How late a 50 ms sleep wakes up on the operator's event loop: the loop's own saturation."""

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
    """What bounds a phase: the operator's own metrics (API requests and the client's QPS-limiter wait,
    the RayJob workqueue wait, reconcile errors), its event-loop lag, and the CPU time of this process,
    of each control-plane process and of the rest of the machine."""

    NAMES: ClassVar[tuple[tuple[str, str, dict[str, str]], ...]] = (
        ("requests", "rest_client_requests_total", {}),
        ("limiter_s", "rest_client_rate_limiter_duration_seconds_sum", {}),
        ("limiter_n", "rest_client_rate_limiter_duration_seconds_count", {}),
        ("queue_s", "workqueue_queue_duration_seconds_sum", {"name": "rayjob"}),
        ("queue_n", "workqueue_queue_duration_seconds_count", {"name": "rayjob"}),
        ("reconciles", "controller_runtime_reconcile_total", {"controller": "rayjob"}),
        ("errors", "controller_runtime_reconcile_errors_total", {"controller": "rayjob"}),
    )

    def __init__(self, rt: Runtime, plane: ControlPlane, lag: LoopLag) -> None:
        self.rt = rt
        self.lag = lag
        self.pids = {name: p.pid for name, p in plane.processes.items()}
        self.t0 = time.monotonic()
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        out = {k: sample_sum(self.rt, name, labels) for k, name, labels in self.NAMES}
        out["cpu:this process"] = cpu_seconds(None)
        out.update({f"cpu:{name}": cpu_seconds(pid) for name, pid in self.pids.items()})
        out["cpu:machine"] = machine_busy_seconds()
        return out

    def rows(self) -> dict[str, str]:
        now = self._read()
        d = {k: now[k] - self.start[k] for k in now}
        t1 = time.monotonic()
        span = t1 - self.t0

        def mean(s: str, n: str) -> str:
            return f"{d[s] / d[n] * 1000:.0f}" if d[n] else "n/a"

        ours = {k.removeprefix("cpu:"): v for k, v in d.items() if k.startswith("cpu:") and k != "cpu:machine"}
        ours["rest of the machine"] = max(0.0, d["cpu:machine"] - sum(ours.values()))
        cpu = ", ".join(f"{name} {v / span:.0%}" for name, v in sorted(ours.items(), key=lambda kv: -kv[1]))
        return {
            "operator API requests in the phase / per s": f"{d['requests']:.0f} / {d['requests'] / span:.0f}",
            "mean wait in the operator client's QPS limiter per request (ms)": mean("limiter_s", "limiter_n"),
            "mean wait of a RayJob key in the workqueue before a worker takes it (ms)": mean("queue_s", "queue_n"),
            "RayJob reconciles / errors (conflicts: a write against a cache one write behind), from the metrics": (
                f"{d['reconciles']:.0f} / {d['errors']:.0f}"
            ),
            "operator event-loop lag, p50 / p99 / max": spread(self.lag.between(self.t0, t1), "ms", 1000, 0),
            f"CPU over the phase ({span:.0f} s), in % of one core (the machine has {os.cpu_count()})": cpu,
        }


async def until(cond: Callable[[], bool], timeout: float) -> bool:
    """Poll ``cond`` every POLL seconds; False once ``timeout`` has passed without it holding."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL)
    return True


async def start_operator(
    args: argparse.Namespace, kubeconfig: Path, factory: DashboardClientFactory, times: ReconcileTimes
) -> tuple[Runtime, asyncio.Event, asyncio.Task[None]]:
    runtimes: list[Runtime] = []

    def capture(rt: Runtime) -> list[Controller]:
        runtimes.append(rt)
        return []

    def rayjob_setup(rt: Runtime) -> list[Controller]:
        opts = rayjob_controller.RayJobOptions(env={}, gates=rt.gates)
        rt.on_close(factory.close)
        return rayjob_controller.setup(rt, opts, factory)

    def wrap_reconciler(rt: Runtime) -> list[Controller]:
        times.install(next(c for c in rt.manager.controllers if c.name == "rayjob"))
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
        setups=[capture, raycluster_controller.setup, rayjob_setup, wrap_reconciler],
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


async def create_all(c: Client, ns: str, names: list[str]) -> tuple[float, float, dict[Key, float]]:
    """Create the RayJobs with at most CREATE_CONCURRENCY in flight: (t of the first create, seconds for
    all, when each create was sent)."""
    sem = asyncio.Semaphore(CREATE_CONCURRENCY)
    sent: dict[Key, float] = {}

    async def create(name: str) -> None:
        async with sem:
            sent[(ns, name)] = time.monotonic()
            await c.create(RAYJOBS, rayjob(name, ns))

    t0 = time.monotonic()
    await asyncio.gather(*(create(n) for n in names))
    return t0, time.monotonic() - t0, sent


def secs(ts: list[float], t0: float, n: int) -> str:
    """Seconds from t0 until the n-th of ``ts`` (all of them reached), else how many did."""
    if len(ts) < n or n == 0:
        return f"not reached ({len(ts)}/{n})"
    return f"{max(ts) - t0:.1f}"


def per_job(tr: Tracker, keys: list[Key], frm: str, to: str) -> list[float]:
    return [tr.seen[k][to] - tr.seen[k][frm] for k in keys if {frm, to} <= tr.seen.get(k, {}).keys()]


async def phase_complete(
    rt: Runtime,
    c: Client,
    args: argparse.Namespace,
    tr: Tracker,
    fake: FakeDashboard,
    times: ReconcileTimes,
    meter: Callable[[], Meter],
) -> dict[str, str]:
    n = int(args.jobs)
    await c.create(NAMESPACES, {"metadata": {"name": NS_MANY}})
    names = [f"rj-{i:04d}" for i in range(n)]
    keys = [(NS_MANY, x) for x in names]
    gc.collect()
    rss0 = rss_mib()
    submits0 = fake.total_calls()["submit"]
    phase = meter()

    t0, create_s, sent = await create_all(c, NS_MANY, names)
    done = await until(lambda: tr.count(keys, "Complete") + tr.count(keys, "Failed") >= n, args.timeout)
    complete = tr.when(keys, "Complete")
    durations = times.durations(keys, t0, time.monotonic())
    rows = phase.rows()
    gc.collect()
    return {
        f"RayJobs created (HTTPMode, head-only cluster, Ray job SUCCEEDED {args.succeed_after:g} s after RUNNING)": (
            f"{n}"
        ),
        f"create loop, {CREATE_CONCURRENCY} in flight (s) / creates per s": f"{create_s:.1f} / {n / create_s:.0f}",
        "all `Initializing` (s)": secs(tr.when(keys, "Initializing"), t0, n),
        "all `Running` (RayCluster ready, dashboard URL known) (s)": secs(tr.when(keys, "Running"), t0, n),
        "first `Complete` (s)": f"{min(complete) - t0:.1f}" if complete else "not reached",
        "**all `Complete`, from the first create** (s)": f"**{secs(complete, t0, n)}**",
        "RayJobs `Failed`": f"{tr.count(keys, 'Failed')}" + ("" if done else " (deadline hit)"),
        "per job: create sent → `Complete`, p50 / p99 / max": spread(
            [tr.seen[k]["Complete"] - sent[k] for k in keys if "Complete" in tr.seen.get(k, {})]
        ),
        "per job: `Running` → `Complete`, p50 / p99 / max": spread(per_job(tr, keys, "Running", "Complete")),
        "Ray job submissions to the fake heads (exactly N expected)": f"{fake.total_calls()['submit'] - submits0}",
        f"RayJob reconciles ({len(durations)}): latency p50 / p99 / max": spread(durations, "ms", 1000, 0),
        **rows,
        "operator RSS before → after the phase (MiB)": f"{rss0:.0f} → {rss_mib():.0f}",
    }


async def phase_blackhole(
    rt: Runtime,
    c: Client,
    args: argparse.Namespace,
    tr: Tracker,
    heads: Heads,
    times: ReconcileTimes,
    meter: Callable[[], Meter],
) -> dict[str, str]:
    m = int(args.blackhole_jobs)
    every = max(1, round(1 / args.blackhole_share)) if args.blackhole_share > 0 else 0
    await c.create(NAMESPACES, {"metadata": {"name": NS_HOLES}})
    names = [f"rj-{i:04d}" for i in range(m)]
    holes = [(NS_HOLES, x) for i, x in enumerate(names) if every and i % every == every - 1]
    heads.holes.update(holes)
    healthy = [(NS_HOLES, x) for x in names if (NS_HOLES, x) not in heads.holes]
    phase = meter()

    t0, create_s, _ = await create_all(c, NS_HOLES, names)
    done = await until(
        lambda: tr.count(healthy, "Complete") + tr.count(healthy, "Failed") >= len(healthy), args.timeout
    )
    t_end = time.monotonic()
    all_hung = await until(lambda: len([k for k in holes if k in tr.hung]) >= len(holes), 0 if done else 1)
    complete = tr.when(healthy, "Complete")
    first_hang = min((tr.hung[k] for k in holes if k in tr.hung), default=t0)
    window = max(t_end - first_hang, 1e-9)
    ok_d = times.durations(healthy, first_hang, t_end)
    ok_all = times.durations(healthy, t0, t_end)
    bad_d = times.durations(holes, {k: tr.hung[k] for k in holes if k in tr.hung}, t_end)
    still_running = sum(1 for k in holes if "Running" in tr.seen.get(k, {}) and "Failed" not in tr.seen.get(k, {}))
    rows = phase.rows()
    heads.heal_all()
    return {
        "RayJobs created / of them black-holed": f"{m} / {len(holes)} ({len(holes) / max(m, 1):.0%})",
        "create loop (s)": f"{create_s:.1f}",
        "heads black-holed once their Ray job was RUNNING": f"{len(tr.hung)}" + ("" if all_hung else " (not all)"),
        "**all healthy RayJobs `Complete`, from the first create** (s)": f"**{secs(complete, t0, len(healthy))}**",
        "healthy RayJobs `Failed`": f"{tr.count(healthy, 'Failed')}" + ("" if done else " (deadline hit)"),
        "per healthy job: `Running` → `Complete`, p50 / p99 / max": spread(per_job(tr, healthy, "Running", "Complete")),
        "window: first head black-holed → last healthy `Complete` (s)": f"{t_end - first_hang:.1f}",
        f"**healthy RayJob reconcile latency in the window, p50 / p99 / max** ({len(ok_d)} reconciles)": (
            f"**{spread(ok_d, 'ms', 1000, 0)}**"
        ),
        f"healthy RayJob reconcile latency over the whole phase ({len(ok_all)} reconciles)": spread(
            ok_all, "ms", 1000, 0
        ),
        f"black-holed RayJob reconcile latency once hung, p50 / p99 / max ({len(bad_d)} reconciles)": spread(
            bad_d, "ms", 1000, 0
        ),
        f"worker time held by black-holed reconciles in the window (share of {args.concurrency} workers)": (
            f"{sum(bad_d) / window / args.concurrency:.0%}"
        ),
        "black-holed RayJobs still `Running` at the end (status-check timeout is 300 s)": f"{still_running}",
        "heads first resolved before they had their own port": f"{heads.shared_port_calls}",
        **rows,
    }


async def bench(plane: ControlPlane, args: argparse.Namespace, res: dict[str, dict[str, str]]) -> None:
    """Fills ``res`` (section title → rows) as the phases end, so a failure keeps what was measured."""
    gc.collect()
    rss_start = rss_mib()
    run = res.setdefault("run", {})
    async with FakeDashboard() as fake:
        heads = Heads(fake, args.succeed_after, own_port=not args.shared_port)
        factory = DashboardClientFactory(Loopback(heads.resolve))
        times = ReconcileTimes()
        rt, stop, task = await start_operator(args, plane.kubeconfig, factory, times)
        for inf in rt.cache.informers_for(RAYCLUSTERS):
            inf.add_event_handler(HandlerFuncs(add=heads.on_cluster))
        tr = Tracker(rt, heads)
        lag = LoopLag()
        lag_task = asyncio.create_task(lag.run())

        def meter() -> Meter:
            return Meter(rt, plane, lag)

        c = Client(api_client(await load_configuration(str(plane.kubeconfig)), CREATE_CONCURRENCY), qps=0)
        gc.collect()
        run["operator RSS: before start → started and synced (MiB)"] = f"{rss_start:.0f} → {rss_mib():.0f}"
        try:
            if args.jobs > 0:
                title = f"Phase 1: {args.jobs} RayJobs to `Complete`"
                res[title] = await phase_complete(rt, c, args, tr, fake, times, meter)
            if args.blackhole_jobs > 0:
                title = f"Phase 2: {args.blackhole_jobs} RayJobs, {args.blackhole_share:.0%} of their heads black-holed"
                res[title] = await phase_blackhole(rt, c, args, tr, heads, times, meter)
            gc.collect()
            run["operator RSS at the end, /proc/self/statm (MiB)"] = f"{rss_mib():.0f}"
            run["operator peak RSS over the run, VmHWM (MiB)"] = f"{peak_rss_mib():.0f}"
        finally:
            lag_task.cancel()
            heads.heal_all()
            await c.close()
            stop.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 30)


def main() -> int:
    defaults = Configuration()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1000, help="RayJobs of phase 1, 0 skips it (default 1000)")
    ap.add_argument(
        "--blackhole-jobs", type=int, default=200, help="RayJobs of phase 2 (black holes), 0 skips it (default 200)"
    )
    ap.add_argument(
        "--blackhole-share", type=float, default=0.1, help="share of phase-2 heads black-holed (default 0.1)"
    )
    ap.add_argument(
        "--succeed-after", type=float, default=3.0, help="seconds from RUNNING to SUCCEEDED of each Ray job (3)"
    )
    ap.add_argument("--concurrency", type=int, default=10, help="--reconcile-concurrency (default 10)")
    ap.add_argument("--qps", type=float, default=defaults.qps, help=f"operator client QPS (default {defaults.qps:g})")
    ap.add_argument(
        "--burst", type=int, default=defaults.burst, help=f"operator client burst (default {defaults.burst})"
    )
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed per phase (default 1800)")
    ap.add_argument(
        "--shared-port",
        action="store_true",
        help="serve every fake head on one port (/c/<name>): all heads then share one host's connection cap",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Failed reconciles (mostly status-update conflicts against a cache one write behind) are counted
    # from the controller's metrics in the table instead of logged one by one.
    logging.getLogger("kuberay.controller").setLevel(logging.CRITICAL)

    t = time.monotonic()
    work_dir = Path(tempfile.mkdtemp(prefix="bench-rayjob-"))
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
        shutil.rmtree(work_dir, ignore_errors=True)  # etcd data and logs: over 100 MiB at full size
        for title, rows in res.items():
            print(f"\n{title}\n\n| measure | value |\n|---|---|")
            for k, v in rows.items():
                print(f"| {k} | {v} |")
    flags = f"--jobs {args.jobs} --blackhole-jobs {args.blackhole_jobs} --blackhole-share {args.blackhole_share:g}"
    flags += f" --succeed-after {args.succeed_after:g} --concurrency {args.concurrency}"
    flags += f" --qps {args.qps:g} --burst {args.burst}" + (" --shared-port" if args.shared_port else "")
    print(
        f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
        f"command: make bench-rayjob (hack/bench_rayjob.py {flags})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
