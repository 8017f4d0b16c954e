"""The operator process in-process on a real API server: controllers reconcile what they watch, a
crashing reconcile is retried with backoff and counted, /metrics and the probes answer, a stop
drains gracefully, and a cache that never syncs makes the process fail."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from support.wait import eventually

from api.config.v1alpha1 import Configuration
from internal.app import Options, Runtime, run_operator
from internal.client import Client, Resource
from internal.client.resources import CONFIGMAPS
from internal.controller import (
    CacheSyncTimeout,
    Controller,
    ControllerOptions,
    Request,
    Result,
    for_object,
    label_selector,
)
from internal.workqueue import ItemExponentialFailureRateLimiter

EXPECTED_METRICS = [
    "controller_runtime_reconcile_total",
    "controller_runtime_reconcile_errors_total",
    "controller_runtime_terminal_reconcile_errors_total",
    "controller_runtime_reconcile_panics_total",
    "controller_runtime_reconcile_timeouts_total",
    "controller_runtime_reconcile_time_seconds_bucket",
    "controller_runtime_max_concurrent_reconciles",
    "controller_runtime_active_workers",
    "workqueue_depth",
    "workqueue_adds_total",
    "workqueue_queue_duration_seconds_bucket",
    "workqueue_work_duration_seconds_bucket",
    "workqueue_unfinished_work_seconds",
    "workqueue_longest_running_processor_seconds",
    "workqueue_retries_total",
    "rest_client_requests_total",
    "rest_client_request_duration_seconds_bucket",
    "leader_election_master_status",
    "process_resident_memory_bytes",
]


class Echo:
    """Copies data.want into data.seen; a ConfigMap named 'crash' raises until it has crashed 3 times."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.crashes = 0

    async def reconcile(self, req: Request) -> Result:
        try:
            obj = self.rt.cache.get(CONFIGMAPS, req.name, req.namespace)
        except Exception:
            return Result()
        if req.name == "crash" and self.crashes < 3:
            self.crashes += 1
            raise RuntimeError("boom")
        data = obj.get("data") or {}
        if data.get("seen") != data.get("want"):
            await self.rt.client.patch(CONFIGMAPS, req.name, {"data": {"seen": data.get("want")}}, req.namespace)
        return Result()


@contextlib.asynccontextmanager
async def operator(
    control_plane: Any, setups: list[Any], *, leader_election: bool = True, namespace: str = "default"
) -> AsyncIterator[tuple[asyncio.Task[None], asyncio.Event, list[Runtime]]]:
    runtimes: list[Runtime] = []

    def capture(rt: Runtime) -> list[Controller]:
        runtimes.append(rt)
        return []

    stop = asyncio.Event()
    opts = Options(
        config=Configuration(metricsAddr="127.0.0.1:0", probeAddr="127.0.0.1:0", enableLeaderElection=leader_election),
        kubeconfig=str(control_plane.kubeconfig),
        leader_election_namespace=namespace,
        setups=[capture, *setups],
        graceful_shutdown_timeout=10,
    )
    task = asyncio.create_task(run_operator(opts, stop))
    try:
        await eventually(lambda: runtimes and runtimes[0].manager.probe_port, 30, "the manager to serve probes")
        yield task, stop, runtimes
    finally:
        stop.set()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 30)


async def http_get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(5)) as r,
    ):
        return r.status, await r.text()


async def test_operator_reconciles_counts_crashes_and_serves_metrics(
    control_plane: Any, kclient: Client, namespace: str
) -> None:
    echo: list[Echo] = []

    def setup(rt: Runtime) -> list[Controller]:
        e = Echo(rt)
        echo.append(e)
        opts = ControllerOptions(workers=2, rate_limiter=ItemExponentialFailureRateLimiter(0.05, 1.0))
        c = Controller("echo", e, rt.cache, opts, metrics=rt.controller_metrics, queue_metrics=rt.queue_metrics)
        c.watch(CONFIGMAPS, for_object, label_selector("app=echo"))
        return [c]

    async with operator(control_plane, [setup], namespace=namespace) as (task, stop, rts):
        mgr = rts[0].manager
        for name in ("one", "crash"):
            await kclient.create(
                CONFIGMAPS,
                {"metadata": {"name": name, "namespace": namespace, "labels": {"app": "echo"}}, "data": {"want": name}},
            )

        async def reconciled() -> bool:
            for name in ("one", "crash"):
                obj = await kclient.get(CONFIGMAPS, name, namespace)
                if obj["data"].get("seen") != name:
                    return False
            return True

        await eventually(reconciled, 60, "both ConfigMaps reconciled (the crashing one after its retries)")
        assert echo[0].crashes == 3
        assert mgr.elected.is_set()

        status, body = await http_get(mgr.metrics_port or 0, "/metrics")
        assert status == 200
        missing = [m for m in EXPECTED_METRICS if f"\n{m}" not in body]
        assert not missing, f"metrics missing from /metrics: {missing}"
        samples = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in body.splitlines()
            if line and not line.startswith("#")
        }
        assert samples['controller_runtime_reconcile_panics_total{controller="echo"}'] == 3
        assert samples['controller_runtime_reconcile_errors_total{controller="echo"}'] == 3
        assert samples['workqueue_retries_total{controller="echo",name="echo"}'] >= 3
        assert samples['controller_runtime_max_concurrent_reconciles{controller="echo"}'] == 2
        assert samples['leader_election_master_status{name="ray-operator-leader"}'] == 1

        for path in ("/healthz", "/readyz"):
            assert await http_get(mgr.probe_port or 0, path) == (200, "ok")
        stop.set()
        await asyncio.wait_for(task, 30)  # a requested stop is a clean exit


async def test_a_cache_that_never_syncs_fails_the_operator(control_plane: Any, namespace: str) -> None:
    missing_kind = Resource("example.invalid", "v1", "nothings", "Nothing")

    def setup(rt: Runtime) -> list[Controller]:
        opts = ControllerOptions(cache_sync_timeout=1.0)
        c = Controller("never-synced", Echo(rt), rt.cache, opts, metrics=rt.controller_metrics)
        c.watch(missing_kind)
        return [c]

    async with operator(control_plane, [setup], leader_election=False) as (task, _stop, _rts):
        with pytest.raises(BaseException) as err:
            await asyncio.wait_for(task, 30)
    group = err.value
    assert isinstance(group, BaseExceptionGroup) and group.subgroup(CacheSyncTimeout) is not None
