"""Run the operator in-process (the entry point's real wiring: cmd/main.py's controllers and cache
selectors on internal.app) for a test, and stop it after."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from kuberay_operator.main import cache_selectors, controller_setups, gated_setups

from api.config.v1alpha1 import Configuration
from internal.app import Options, Runtime, run_operator
from internal.controller import Controller
from internal.features import FeatureGates
from support.wait import eventually


@contextlib.asynccontextmanager
async def running_operator(
    plane: Any,
    setups: list[Callable[[Runtime], list[Controller]]] | None = None,
    *,
    concurrency: int = 2,
    gates: str = "",
    namespaces: str = "",
    enable_metrics: bool = True,
    config: dict[str, Any] | None = None,
) -> AsyncIterator[Runtime]:
    """Yields the operator's Runtime once its manager serves; stops it gracefully afterwards. It runs as
    the shipped ServiceAccount with the generated RBAC (``plane.operator_kubeconfig``), never as admin."""
    runtimes: list[Runtime] = []

    def capture(rt: Runtime) -> list[Controller]:
        runtimes.append(rt)
        return []

    stop = asyncio.Event()
    opts = Options(
        config=Configuration(
            metricsAddr="127.0.0.1:0",
            probeAddr="127.0.0.1:0",
            enableLeaderElection=False,
            reconcileConcurrency=concurrency,
            watchNamespace=namespaces,
            enableMetrics=enable_metrics,
            **(config or {}),  # further Configuration fields, e.g. headSidecarContainers
        ),
        gates=FeatureGates.parse(gates),
        kubeconfig=str(plane.operator_kubeconfig),
        setups=[capture, *(controller_setups() + gated_setups() if setups is None else setups)],
        cache_by_object=cache_selectors(),
        graceful_shutdown_timeout=5,
    )
    task = asyncio.create_task(run_operator(opts, stop))
    try:
        await eventually(lambda: (runtimes and runtimes[0].manager.probe_port) or task.done(), 30, "operator start")
        if task.done():
            task.result()
        yield runtimes[0]
    finally:
        stop.set()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 30)
        if task.done() and not task.cancelled() and task.exception():
            raise task.exception()  # type: ignore[misc]
