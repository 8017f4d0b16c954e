"""Decoding ray.io/v1 objects (make bench-api): a 10,000-RayJob list through orjson alone versus through
the api/v1 typed views (orjson + a view per item + reading the fields a reconcile reads)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from api.v1 import RayJob  # noqa: E402

N = 10_000


def sample() -> dict[str, object]:
    docs = yaml.safe_load_all((REPO / "config" / "samples" / "ray-job.complete.yaml").read_text())
    return next(d for d in docs if d and d.get("kind") == "RayJob")


def best_of(fn: object, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    base = sample()
    items = []
    for i in range(N):
        obj = orjson.loads(orjson.dumps(base))
        obj["metadata"]["name"] = f"job-{i}"
        items.append(obj)
    body = orjson.dumps({"apiVersion": "ray.io/v1", "kind": "RayJobList", "items": items})

    def plain() -> None:
        orjson.loads(body)

    def typed() -> None:
        for raw in orjson.loads(body)["items"]:
            RayJob(raw)

    def typed_read() -> None:
        for raw in orjson.loads(body)["items"]:
            job = RayJob(raw)
            _ = (job.metadata.name, job.spec.entrypoint, job.spec.submission_mode, job.status.job_deployment_status)

    t_plain, t_typed, t_read = best_of(plain), best_of(typed), best_of(typed_read)
    print("| measure | value |\n|---|---|")
    print(f"| list size | {N} RayJobs, {len(body) / 2**20:.1f} MiB of JSON |")
    print(f"| orjson.loads alone (s) | {t_plain:.3f} |")
    print(f"| orjson + a RayJob view per item (s) | {t_typed:.3f} ({t_typed / t_plain:.2f}x) |")
    print(f"| ... and reading name, entrypoint, mode, deployment status (s) | {t_read:.3f} ({t_read / t_plain:.2f}x) |")
    print(f"\ncommand: make bench-api (hack/bench_api_decode.py); best of 5; python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
