"""The manager owns every task of the operator as one structured task group:

- on every replica: the metrics and probe servers, then the shared cache;
- on the leader only (or at once without leader election): the controllers and other leader work.

Stop (SIGTERM/SIGINT → ``stop()``): controllers stop taking keys and finish in-flight reconciles
within the grace period, then everything is cancelled. Losing the lease is different: leader work
is cancelled at once and ``run()`` raises, so the process exits non-zero while another replica
takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry

from internal.controller import Controller
from internal.informer import Cache
from internal.metrics import HealthChecks, metrics_app, parse_addr, probes_app, start_server

log = logging.getLogger("kuberay.manager")


class Elector(Protocol):
    """Leader election: runs ``lead`` while holding the lease; raises when the lease is lost."""

    async def run(self, on_started_leading: Callable[[], Awaitable[None]]) -> None: ...


@dataclass
class ManagerOptions:
    metrics_addr: str = ":8080"
    probe_addr: str = ":8082"
    graceful_shutdown_timeout: float = 30.0


@dataclass
class Manager:
    cache: Cache
    registry: CollectorRegistry
    options: ManagerOptions = field(default_factory=ManagerOptions)
    elector: Elector | None = None
    controllers: list[Controller] = field(default_factory=list)
    leader_runnables: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    runnables: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    healthz: HealthChecks = field(default_factory=HealthChecks)
    readyz: HealthChecks = field(default_factory=HealthChecks)
    metrics_port: int | None = None
    probe_port: int | None = None

    def __post_init__(self) -> None:
        self._stop = asyncio.Event()
        self.elected = asyncio.Event()
        self.healthz.add("ping", lambda: None)
        self.readyz.add("ping", lambda: None)

    def add_controller(self, controller: Controller) -> None:
        self.controllers.append(controller)

    def stop(self) -> None:
        """Ask for a graceful stop (signal handlers call this)."""
        self._stop.set()

    async def run(self) -> None:
        runners: list[web.AppRunner] = []
        try:
            await self._start_servers(runners)
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(r()) for r in self.runnables]
                tasks.append(tg.create_task(self.cache.run(), name="cache"))
                leader = tg.create_task(self._leader_side(), name="leader-work")
                stopping = tg.create_task(self._stop.wait(), name="stop-signal")
                await asyncio.wait({leader, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not stopping.done():
                    await stopping  # leader work ended by itself (no controllers): serve until stopped
                await self._drain_controllers()
                for t in [*tasks, leader]:
                    t.cancel()
            log.info("manager stopped")
        finally:
            for runner in runners:
                await runner.cleanup()

    async def _start_servers(self, runners: list[web.AppRunner]) -> None:
        if addr := parse_addr(self.options.metrics_addr):
            runner, self.metrics_port = await start_server(metrics_app(self.registry), addr)
            runners.append(runner)
            log.info("serving metrics on %s:%d/metrics", addr[0], self.metrics_port)
        if addr := parse_addr(self.options.probe_addr):
            runner, self.probe_port = await start_server(probes_app(self.healthz, self.readyz), addr)
            runners.append(runner)
            log.info("serving health probes on %s:%d", addr[0], self.probe_port)

    async def _leader_side(self) -> None:
        if self.elector is None:
            await self._lead()
        else:
            await self.elector.run(self._lead)

    async def _lead(self) -> None:
        self.elected.set()
        log.info("starting %d controllers", len(self.controllers))
        async with asyncio.TaskGroup() as tg:
            for c in self.controllers:
                tg.create_task(c.run(), name=f"controller {c.name}")
            for r in self.leader_runnables:
                tg.create_task(r())

    async def _drain_controllers(self) -> None:
        grace = self.options.graceful_shutdown_timeout
        log.info("stopping: draining controllers (grace %.0fs)", grace)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.gather(*(c.stop(grace) for c in self.controllers))
