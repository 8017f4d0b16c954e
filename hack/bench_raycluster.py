"""Benchmark of the RayCluster controller on the simulated cluster (make bench-raycluster).

Starts a private T2 plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok with one
fake node), runs the operator in this process (internal.app.run_operator, the real wiring), then:
  1. creates N RayClusters (default 100) of 1 head + W workers (default 3) at once and measures the
     time until every one reports ``status.state == ready`` with W ready workers;
  2. creates one RayCluster whose worker group has 0 replicas, then sets it to S (default 1,000) and
     measures the time until the operator has created the S pods, the scheduler has bound them, kwok
     has made them Running/Ready, and the status reports ``readyWorkerReplicas == S``;
  3. records this process's RSS (/proc/self/statm) before and after each phase.
Progress is read from the operator's own informer cache (no extra watch in this process) and the
RayCluster status from the API server. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kuberay_operator.main import cache_selectors, controller_setups  # noqa: E402

from api.config.v1alpha1 import Configuration  # noqa: E402
from controllers.ray import raycluster_controller  # noqa: E402
from internal.app import Options, Runtime, run_operator  # noqa: E402
from internal.client import Client, api_client, load_configuration  # noqa: E402
from internal.client.resources import NAMESPACES, PODS, RAYCLUSTERS, Resource  # noqa: E402
from internal.controller import Controller  # noqa: E402
from internal.controlplane import ControlPlane, build_binaries  # noqa: E402

CRD_DIR = REPO / "config" / "crd" / "bases"
NS_MANY = "bench-many"
NS_SCALE = "bench-scale"
POLL = 0.5

Obj = dict[str, Any]


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reconciles(rt: Runtime) -> tuple[int, int]:
    """(reconciles, reconcile errors) of the RayCluster controller so far, from its metrics."""
    total = sum(
        rt.registry.get_sample_value("controller_runtime_reconcile_total", {"controller": "raycluster", "result": r})
        or 0
        for r in ("success", "error", "requeue", "requeue_after")
    )
    errors = rt.registry.get_sample_value("controller_runtime_reconcile_errors_total", {"controller": "raycluster"})
    return int(total), int(errors or 0)


def reconcile_delta(rt: Runtime, before: tuple[int, int]) -> str:
    total, errors = reconciles(rt)
    return f"{total - before[0]} / {errors - before[1]}"


def ray_cluster(name: str, ns: str, workers: int, max_workers: int) -> Obj:
    container = {"image": "rayproject/ray:2.52.0"}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "rayVersion": "2.52.0",
            "headGroupSpec": {
                "rayStartParams": {},
                "template": {
                    "spec": {
                        "containers": [
                            {
                                **container,
                                "name": "ray-head",
                                "resources": {
                                    "requests": {"cpu": "500m", "memory": "512Mi"},
                                    "limits": {"cpu": "500m", "memory": "512Mi"},
                                },
                            }
                        ]
                    }
                },
            },
            "workerGroupSpecs": [
                {
                    "groupName": "workers",
                    "replicas": workers,
                    "minReplicas": 0,
                    "maxReplicas": max_workers,
                    "rayStartParams": {},
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    **container,
                                    "name": "ray-worker",
                                    "resources": {
                                        "requests": {"cpu": "100m", "memory": "128Mi"},
                                        "limits": {"cpu": "100m", "memory": "128Mi"},
                                    },
                                }
                            ]
                        }
                    },
                }
            ],
        },
    }


def _ready(pod: Mapping[str, Any]) -> bool:
    st = pod.get("status") or {}
    return st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or ()
    )


class Clock:
    """Seconds since a phase started, and the first time each milestone was reached."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.marks: dict[str, float] = {}

    def now(self) -> float:
        return time.monotonic() - self.t0

    def mark(self, what: str, reached: bool = True) -> None:
        if reached and what not in self.marks:
            self.marks[what] = self.now()

    def get(self, what: str) -> str:
        return f"{self.marks[what]:.1f}" if what in self.marks else "not reached"


async def until(cond: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll ``cond`` (sync or async) every POLL seconds; raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(POLL)


async def start_operator(
    args: argparse.Namespace, kubeconfig: Path
) -> tuple[Runtime, asyncio.Event, asyncio.Task[None]]:
    runtimes: list[Runtime] = []

    def capture(rt: Runtime) -> list[Controller]:
        runtimes.append(rt)
        return []

    setups = [capture, *controller_setups()] if args.all_controllers else [capture, raycluster_controller.setup]
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
        setups=setups,
        cache_by_object=cache_selectors(),
        graceful_shutdown_timeout=10,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_operator(opts, stop))
    await until(lambda: task.done() or (runtimes and runtimes[0].manager.probe_port), 60, "the operator to serve")
    if task.done():
        task.result()
    rt = runtimes[0]
    await rt.cache.wait_for_sync(60)
    return rt, stop, task


class PodCreates:
    """Counts the operator's pod creates per namespace, by wrapping its client's create."""

    def __init__(self, rt: Runtime) -> None:
        self.count: dict[str, int] = {}
        self.last: dict[str, float] = {}
        real = rt.client.create

        async def create(res: Resource, obj: Obj, namespace: str | None = None, **kw: Any) -> Obj:
            out = await real(res, obj, namespace, **kw)
            if res == PODS:
                ns = str(out["metadata"]["namespace"])
                self.count[ns] = self.count.get(ns, 0) + 1
                self.last[ns] = time.monotonic()
            return out

        rt.client.create = create  # type: ignore[method-assign]


async def phase_many(rt: Runtime, c: Client, args: argparse.Namespace, creates: PodCreates) -> dict[str, str]:
    n, w = int(args.clusters), int(args.workers)
    await c.create(NAMESPACES, {"metadata": {"name": NS_MANY}})
    gc.collect()
    rss0 = rss_mib()
    sem = asyncio.Semaphore(32)

    async def create(i: int) -> None:
        async with sem:
            await c.create(RAYCLUSTERS, ray_cluster(f"rc-{i:03d}", NS_MANY, w, max(w, 10)))

    rec0 = reconciles(rt)
    clock = Clock()
    await asyncio.gather(*(create(i) for i in range(n)))
    clock.mark("created")
    pods_wanted = n * (1 + w)

    def cache_progress() -> None:
        pods = rt.cache.list(PODS, NS_MANY)
        clock.mark("pods", len(pods) >= pods_wanted)
        clock.mark("bound", sum(1 for p in pods if (p.get("spec") or {}).get("nodeName")) >= pods_wanted)
        clock.mark("running", sum(1 for p in pods if _ready(p)) >= pods_wanted)

    async def all_ready() -> bool:
        cache_progress()
        items = (await c.list(RAYCLUSTERS, NS_MANY))["items"]
        ready = [
            rc
            for rc in items
            if (rc.get("status") or {}).get("state") == "ready" and rc["status"].get("readyWorkerReplicas") == w
        ]
        clock.mark("first ready", bool(ready))
        return len(ready) == n

    await until(all_ready, args.timeout, f"{n} RayClusters ready")
    clock.mark("all ready")
    gc.collect()
    rss1 = rss_mib()
    return {
        f"RayClusters of 1 head + {w} workers, created at once": f"{n} (= {pods_wanted} pods)",
        "all RayClusters created on the server (s)": clock.get("created"),
        "all their pods in the operator's cache (s)": clock.get("pods"),
        "all their pods bound by kube-scheduler (s)": clock.get("bound"),
        "all their pods Running and Ready (kwok) (s)": clock.get("running"),
        "first RayCluster `ready` (s)": clock.get("first ready"),
        "**all RayClusters `ready`** (s)": f"**{clock.get('all ready')}**",
        "pod creates by the operator (duplicates would show here)": f"{creates.count.get(NS_MANY, 0)}",
        "reconciles / reconcile errors (status-update conflicts) in the phase": reconcile_delta(rt, rec0),
        "operator RSS before → after these clusters (MiB)": f"{rss0:.0f} → {rss1:.0f}",
    }


async def phase_scale(rt: Runtime, c: Client, args: argparse.Namespace, creates: PodCreates) -> dict[str, str]:
    s = int(args.scale_to)
    await c.create(NAMESPACES, {"metadata": {"name": NS_SCALE}})
    await c.create(RAYCLUSTERS, ray_cluster("big", NS_SCALE, 0, max(s, 1000)))

    async def status() -> Obj:
        st: Obj = (await c.get(RAYCLUSTERS, "big", NS_SCALE)).get("status") or {}
        return st

    async def head_only_ready() -> bool:
        st = await status()
        return st.get("state") == "ready" and st.get("readyWorkerReplicas") == 0

    await until(head_only_ready, 120, "the 0-worker RayCluster ready")
    gc.collect()
    rss0 = rss_mib()
    groups = (await c.get(RAYCLUSTERS, "big", NS_SCALE))["spec"]["workerGroupSpecs"]
    groups[0]["replicas"] = s
    rec0 = reconciles(rt)
    clock = Clock()
    await c.patch(RAYCLUSTERS, "big", {"spec": {"workerGroupSpecs": groups}}, NS_SCALE)
    peak_rss = rss0

    async def scaled() -> bool:
        nonlocal peak_rss
        peak_rss = max(peak_rss, rss_mib())
        workers = rt.cache.list(PODS, NS_SCALE, labels={"ray.io/node-type": "worker"})
        clock.mark("cached", len(workers) >= s)
        clock.mark("bound", sum(1 for p in workers if (p.get("spec") or {}).get("nodeName")) >= s)
        clock.mark("running", sum(1 for p in workers if _ready(p)) >= s)
        st = await status()
        done = st.get("readyWorkerReplicas") == s and st.get("state") == "ready"
        clock.mark("status", done)
        return done

    await until(scaled, args.timeout, f"{s} ready workers")
    created_at = creates.last.get(NS_SCALE, clock.t0) - clock.t0
    gc.collect()
    rss1 = rss_mib()
    return {
        "one worker group scaled 0 → N": f"{s}",
        "operator's last pod create returned (s)": f"{created_at:.1f}",
        "all N pods in the operator's cache (s)": clock.get("cached"),
        "all N pods bound by kube-scheduler (s)": clock.get("bound"),
        "all N pods Running and Ready (kwok) (s)": clock.get("running"),
        "**status.readyWorkerReplicas == N** (s)": f"**{clock.get('status')}**",
        "pod creates by the operator for it (N + 1 head expected)": f"{creates.count.get(NS_SCALE, 0)}",
        "reconciles / reconcile errors in the phase": reconcile_delta(rt, rec0),
        "operator RSS before → after the scale-up (MiB)": f"{rss0:.0f} → {rss1:.0f} (max seen {peak_rss:.0f})",
    }


async def bench(plane: ControlPlane, args: argparse.Namespace) -> dict[str, str]:
    gc.collect()
    rss_start = rss_mib()
    rt, stop, task = await start_operator(args, plane.kubeconfig)
    creates = PodCreates(rt)
    c = Client(api_client(await load_configuration(str(plane.kubeconfig)), 32), qps=0)
    gc.collect()
    res: dict[str, str] = {
        "operator RSS: before start → started and synced (MiB)": f"{rss_start:.0f} → {rss_mib():.0f}"
    }
    try:
        res.update(await phase_many(rt, c, args, creates))
        if args.scale_to > 0:
            res.update(await phase_scale(rt, c, args, creates))
        res["operator peak RSS over the run, VmHWM (MiB)"] = f"{peak_rss_mib():.0f}"
    finally:
        await c.close()
        stop.set()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 30)
    return res


def main() -> int:
    defaults = Configuration()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clusters", type=int, default=100, help="RayClusters created at once (default 100)")
    ap.add_argument("--workers", type=int, default=3, help="workers per RayCluster in phase 1 (default 3)")
    ap.add_argument("--scale-to", type=int, default=1000, help="workers of the scaled group, 0 skips (default 1000)")
    ap.add_argument("--concurrency", type=int, default=10, help="--reconcile-concurrency (default 10)")
    ap.add_argument("--qps", type=float, default=defaults.qps, help=f"operator client QPS (default {defaults.qps:g})")
    ap.add_argument(
        "--burst", type=int, default=defaults.burst, help=f"operator client burst (default {defaults.burst})"
    )
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed per phase (default 1800)")
    ap.add_argument("--all-controllers", action="store_true", help="run every controller, not only RayCluster")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Failed reconciles (mostly status-update conflicts against a cache one write behind) are counted
    # from the controller's metrics in the table instead of logged one by one.
    logging.getLogger("kuberay.controller").setLevel(logging.CRITICAL)

    t = time.monotonic()
    plane = ControlPlane(bin_dir=build_binaries(), work_dir=Path(tempfile.mkdtemp(prefix="bench-raycluster-")))
    try:
        plane.start()
        plane.install_crds(sorted(CRD_DIR.glob("*.yaml")), timeout=60)
        plane.start_sim()
        plane_s = time.monotonic() - t
        res = {"T2 plane start + CRDs (s)": f"{plane_s:.1f}"}
        res.update(asyncio.run(bench(plane, args)))
    finally:
        plane.stop()
    print("| measure | value |\n|---|---|")
    for k, v in res.items():
        print(f"| {k} | {v} |")
    flags = f"--clusters {args.clusters} --workers {args.workers} --scale-to {args.scale_to}"
    flags += f" --concurrency {args.concurrency} --qps {args.qps:g} --burst {args.burst}"
    print(
        f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
        f"command: make bench-raycluster (hack/bench_raycluster.py {flags})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
