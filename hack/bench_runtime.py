"""Benchmark of the runtime's informer on a real control plane (make bench-runtime).

Creates N pods (default 10,000) on a private etcd + kube-apiserver, then measures, in this process:
  - the initial LIST (paged, 500 per page) + decode + cache time until the informer has synced;
  - memory per cached pod above the baseline (tracemalloc of the cache, and RSS);
  - watch events processed per second while a separate process patches pods as fast as it can.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from internal.client import Client, api_client, load_configuration  # noqa: E402
from internal.client.resources import NAMESPACES, PODS  # noqa: E402
from internal.controlplane import ControlPlane, build_binaries  # noqa: E402
from internal.informer import HandlerFuncs, Informer  # noqa: E402

NS = "bench"


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def pod(i: int) -> dict[str, object]:
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


async def create_pods(c: Client, n: int, concurrency: int = 64) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await c.create(PODS, pod(i))

    await asyncio.gather(*(one(i) for i in range(n)))


PATCHER = """
import asyncio, sys
sys.path.insert(0, {repo!r})
from internal.client import Client, api_client, load_configuration
from internal.client.resources import PODS
async def main():
    c = Client(api_client(await load_configuration({kc!r}), 64), qps=0)
    sem = asyncio.Semaphore(64)
    async def one(i):
        async with sem:
            await c.patch(PODS, "bench-%05d" % (i % {n}), {{"metadata": {{"annotations": {{"tick": str(i)}}}}}}, {ns!r})
    await asyncio.gather(*(one(i) for i in range({m})))
    await c.close()
asyncio.run(main())
"""


async def bench(plane: ControlPlane, n: int, updates: int) -> dict[str, str]:
    cfg = await load_configuration(str(plane.kubeconfig))
    writer = Client(api_client(cfg, 64), qps=0)
    await writer.create(NAMESPACES, {"metadata": {"name": NS}})
    t = time.monotonic()
    await create_pods(writer, n)
    create_s = time.monotonic() - t

    reader = Client(api_client(cfg, 4), qps=0)
    gc.collect()
    rss0 = rss_mib()
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    inf = Informer(reader, PODS, namespace=NS)
    received: list[float] = []
    all_in = asyncio.Event()

    def on_update(old: object, new: object) -> None:
        received.append(time.monotonic())
        if len(received) >= updates:
            all_in.set()

    inf.add_event_handler(HandlerFuncs(update=on_update))
    task = asyncio.create_task(inf.run())
    t = time.monotonic()
    await inf.wait_for_sync(600)
    sync_s = time.monotonic() - t
    gc.collect()
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    traced = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
    rss1 = rss_mib()
    sample = next(iter(inf.list()))
    import orjson

    json_size = len(orjson.dumps(sample))

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PATCHER.format(repo=str(REPO), kc=str(plane.kubeconfig), n=n, m=updates, ns=NS),
    )
    t = time.monotonic()
    await proc.wait()
    patch_s = time.monotonic() - t
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_in.wait(), 120)
    got = len(received)
    span = (received[-1] - received[0]) if got > 1 else float("nan")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await reader.close()
    await writer.close()
    return {
        "pods": str(n),
        "pod JSON in cache (bytes, managedFields stripped)": str(json_size),
        "create N pods (s)": f"{create_s:.1f}",
        "initial list + decode + cache until synced (s)": f"{sync_s:.2f}",
        "cache memory per pod, tracemalloc (KiB)": f"{traced / n / 1024:.1f}",
        "RSS growth per pod (KiB)": f"{(rss1 - rss0) * 1024 / n:.1f}",
        "RSS after sync (MiB)": f"{rss1:.0f}",
        "watch updates received": f"{got}/{updates}",
        "patch load from a second process (updates/s)": f"{updates / patch_s:.0f}",
        "watch events processed (events/s)": f"{got / span:.0f}" if got > 1 else "n/a",
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--updates", type=int, default=5_000)
    args = ap.parse_args()
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
        f"\nmachine: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
        f"command: make bench-runtime (hack/bench_runtime.py --pods {args.pods} --updates {args.updates})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
