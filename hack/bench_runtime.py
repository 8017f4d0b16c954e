"""Benchmark of the runtime's informer on a real control plane (make bench-runtime).

Creates N pods (default 10,000) on a private etcd + kube-apiserver from a helper process, then
measures in this process (which holds nothing else):
  - the initial LIST (paged, 500 per page) + decode + cache time until the informer has synced;
  - memory per cached pod above the baseline (RSS, and tracemalloc in a second pass);
  - watch events processed per second while a second process patches pods as fast as it can, and the
    informer's own ceiling: decoding and applying recorded watch lines with no server in the loop.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from internal.client import Client, api_client, load_configuration  # noqa: E402
from internal.client.client import _decode_event  # noqa: E402
from internal.client.resources import NAMESPACES, PODS  # noqa: E402
from internal.controlplane import ControlPlane, build_binaries  # noqa: E402
from internal.informer import HandlerFuncs, Informer  # noqa: E402

NS = "bench"


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def pod(i: int) -> dict[str, Any]:
    # Shaped like a Ray worker pod: labels, env, resources, a probe.
    return {
        "metadata": {
            "name": f"bench-{i:05d}",
            "namespace": NS,
            "labels": {
                "ray.io/cluster": f"c{i // 100}",
                "ray.io/node-type": "worker",
                "ray.io/group": "workers",
                "app.kubernetes.io/created-by": "kuberay-operator",
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "ray-worker",
                    "image": "rayproject/ray:2.52.0",
                    "command": ["/bin/bash", "-lc", "--"],
                    "args": ["ulimit -n 65536; ray start --address=c-head-svc.bench.svc.cluster.local:6379 --block"],
                    "env": [{"name": f"VAR_{k}", "value": "x" * 20} for k in range(8)],
                    "resources": {"limits": {"cpu": "1", "memory": "2Gi"}, "requests": {"cpu": "1", "memory": "2Gi"}},
                    "readinessProbe": {"exec": {"command": ["bash", "-c", "wget -T 2 -q -O- http://localhost:52365"]}},
                }
            ]
        },
    }


async def load(kubeconfig: str, n: int, patches: int) -> None:
    """Helper-process mode: create n pods, or patch pods ``patches`` times, as fast as possible."""
    c = Client(api_client(await load_configuration(kubeconfig), 64), qps=0)
    sem = asyncio.Semaphore(64)

    async def create(i: int) -> None:
        async with sem:
            await c.create(PODS, pod(i))

    async def patch(i: int) -> None:
        async with sem:
            await c.patch(PODS, f"bench-{i % n:05d}", {"metadata": {"annotations": {"tick": str(i)}}}, NS)

    try:
        if patches:
            await asyncio.gather(*(patch(i) for i in range(patches)))
        else:
            await c.create(NAMESPACES, {"metadata": {"name": NS}})
            await asyncio.gather(*(create(i) for i in range(n)))
    finally:
        await c.close()


async def helper(kubeconfig: Path, n: int, patches: int = 0) -> float:
    t = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--load", str(kubeconfig), "--pods", str(n), "--updates", str(patches)
    )
    if await proc.wait() != 0:
        raise RuntimeError("load process failed")
    return time.monotonic() - t


async def sync_informer(c: Client, **kw: Any) -> tuple[Informer, asyncio.Task[None], float]:
    inf = Informer(c, PODS, namespace=NS, **kw)
    task = asyncio.create_task(inf.run())
    t = time.monotonic()
    await inf.wait_for_sync(600)
    return inf, task, time.monotonic() - t


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def bench(plane: ControlPlane, n: int, updates: int) -> dict[str, str]:
    create_s = await helper(plane.kubeconfig, n)
    reader = Client(api_client(await load_configuration(str(plane.kubeconfig)), 4), qps=0)

    # Pass 1: time and RSS, untraced.
    gc.collect()
    rss0 = rss_mib()
    received: list[float] = []
    all_in = asyncio.Event()

    def on_update(old: object, new: object) -> None:
        received.append(time.monotonic())
        if len(received) >= updates:
            all_in.set()

    inf, task, sync_s = await sync_informer(reader)
    inf.add_event_handler(HandlerFuncs(update=on_update))
    gc.collect()
    rss1 = rss_mib()
    json_size = len(orjson.dumps(next(iter(inf.list()))))

    patch_s = await helper(plane.kubeconfig, n, updates)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_in.wait(), 120)
    got = len(received)
    span = (received[-1] - received[0]) if got > 1 else float("nan")

    # The informer's own ceiling: decode + store + notify for recorded MODIFIED lines.
    lines = [orjson.dumps({"type": "MODIFIED", "object": o}) for o in inf.list()]
    t = time.monotonic()
    for i, line in enumerate(lines):
        ev = _decode_event(line)
        ev["object"]["metadata"]["resourceVersion"] = f"x{i}"
        inf.modified(ev["object"])
    ceiling = len(lines) / (time.monotonic() - t)
    await stop(task)
    del inf, lines
    gc.collect()

    # Pass 2: memory retained by the cache, by tracemalloc.
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    probe, probe_task, _ = await sync_informer(reader)
    await stop(probe_task)
    gc.collect()
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    traced = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
    del probe
    await reader.close()
    return {
        "pods": f"{n}",
        "pod JSON as cached (bytes, managedFields stripped)": f"{json_size}",
        "create the pods from a helper process (s)": f"{create_s:.1f}",
        "initial list + decode + cache until synced (s)": f"{sync_s:.2f}",
        "RSS growth per cached pod (KiB)": f"{(rss1 - rss0) * 1024 / n:.1f}",
        "memory per cached pod, tracemalloc (KiB)": f"{traced / n / 1024:.1f}",
        "RSS of the process after sync (MiB)": f"{rss1:.0f}",
        "patch load from a second process (updates/s)": f"{updates / patch_s:.0f}",
        "watch events received / sent": f"{got}/{updates}",
        "watch events processed under that load (events/s)": f"{got / span:.0f}" if got > 1 else "n/a",
        "informer ceiling: decode + store + notify, no server (events/s)": f"{ceiling:.0f}",
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--updates", type=int, default=5_000)
    ap.add_argument("--load", metavar="KUBECONFIG", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load:
        asyncio.run(load(args.load, args.pods, args.updates))
        return 0
    plane = ControlPlane(bin_dir=build_binaries(), work_dir=Path(tempfile.mkdtemp(prefix="bench-runtime-")))
    plane.start()
    try:
        res = asyncio.run(bench(plane, args.pods, args.updates))
    finally:
        plane.stop()
    print("| measure | value |\n|---|---|")
    for k, v in res.items():
        print(f"| {k} | {v} |")
    print(
        f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
        f"command: make bench-runtime (hack/bench_runtime.py --pods {args.pods} --updates {args.updates})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
