"""Assembly of an operator process: client, cache, manager, leader election, and the controllers that
the caller's set-up functions register (controller-runtime's ``ctrl.NewManager`` role). It knows nothing
of Ray: cmd/main.py chooses the controllers and the cache scoping, as upstream's ``main.go`` does, and
calls ``run_operator``; tests call it in-process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from api.config.v1alpha1 import Configuration
from internal.client import Client, ClientMetrics, api_client, load_configuration
from internal.controller import Controller, ControllerMetrics
from internal.events.recorder import EventRecorder, dropped_counter
from internal.features import FeatureGates
from internal.informer import ByObject, Cache, CacheOptions
from internal.leaderelection import LeaderElector, default_identity
from internal.manager import Manager, ManagerOptions
from internal.metrics import new_registry
from internal.workqueue import PrometheusMetricsProvider

log = logging.getLogger("kuberay.app")

LEADER_ELECTION_ID = "ray-operator-leader"


@dataclass
class Runtime:
    """Everything a controller set-up function needs."""

    client: Client
    cache: Cache
    manager: Manager
    config: Configuration
    gates: FeatureGates
    controller_metrics: ControllerMetrics
    queue_metrics: PrometheusMetricsProvider
    registry: CollectorRegistry
    #: the recorders' own client (own QPS budget), as controller-runtime's recorder provider builds its
    #: own clientset: events never queue behind, nor delay, reconcile writes
    event_client: Client | None = None
    _recorders: dict[str, EventRecorder] = field(default_factory=dict)
    _dropped: Counter | None = None
    _closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    def on_close(self, close: Callable[[], Awaitable[Any]]) -> None:
        """Run ``close`` when the operator stops (after the manager), e.g. a controller's HTTP pools."""
        self._closers.append(close)

    def recorder(self, name: str) -> EventRecorder:
        """The event recorder of one controller (reportingController=name), sending in the background."""
        if name not in self._recorders:
            if self._dropped is None:
                self._dropped = dropped_counter(self.registry)
            rec = EventRecorder(self.event_client or self.client, name, dropped=self._dropped)
            self._recorders[name] = rec
            self.manager.runnables.append(rec.run)
        return self._recorders[name]


ControllerSetup = Callable[[Runtime], list[Controller]]


@dataclass
class Options:
    config: Configuration = field(default_factory=Configuration)
    gates: FeatureGates = field(default_factory=FeatureGates)
    kubeconfig: str | None = None
    graceful_shutdown_timeout: float = 30.0
    leader_election_namespace: str = "default"
    setups: list[ControllerSetup] = field(default_factory=list)
    # Per-resource cache scoping (label/field selectors), as upstream's cache options in main.go.
    cache_by_object: dict[Any, ByObject] = field(default_factory=dict)


async def build(opts: Options) -> Runtime:
    cfg = opts.config
    registry = new_registry()
    kube_cfg = await load_configuration(opts.kubeconfig)
    client_metrics = ClientMetrics.register(registry)
    # The leader-election identity in the User-Agent: an audit log names which replica sent each request.
    identity = default_identity()
    agent = f"kuberay-operator/py ({identity})"
    client = Client(
        api_client(kube_cfg, pool_size=64),
        qps=cfg.qps,
        burst=cfg.burst,
        metrics=client_metrics,
        user_agent=agent,
    )
    event_client = Client(
        api_client(kube_cfg, pool_size=8),
        qps=cfg.qps,
        burst=cfg.burst,
        metrics=client_metrics,
        user_agent=agent,
    )
    # Watches hold their connection for their whole life: give them a pool of their own so they can
    # never starve reconcile traffic.
    watch_client = Client(api_client(kube_cfg, pool_size=256), qps=cfg.qps, burst=cfg.burst, user_agent=agent)
    cache = Cache(
        watch_client,
        CacheOptions(
            namespaces=cfg.watch_namespaces(),
            by_object=dict(opts.cache_by_object),
        ),
    )
    elector = None
    if cfg.enableLeaderElection:
        # The Lease has a client of its own (as client-go's leader election): the write fence below
        # must never hold back the renewals that keep it open.
        lease_client = Client(api_client(kube_cfg, pool_size=2), qps=cfg.qps, burst=cfg.burst, user_agent=agent)
        elector = LeaderElector(
            lease_client, opts.leader_election_namespace, LEADER_ELECTION_ID, identity=identity, registry=registry
        )
        client.write_fence = event_client.write_fence = elector.may_write
    manager = Manager(
        cache,
        registry,
        ManagerOptions(
            metrics_addr=cfg.metricsAddr,
            probe_addr=cfg.probeAddr,
            graceful_shutdown_timeout=opts.graceful_shutdown_timeout,
        ),
        elector=elector,
    )
    manager.readyz.add("informers-synced", lambda: None if cache.has_synced() else "caches not synced")
    rt = Runtime(
        client=client,
        cache=cache,
        manager=manager,
        config=cfg,
        gates=opts.gates,
        controller_metrics=ControllerMetrics.register(registry),
        queue_metrics=PrometheusMetricsProvider(registry),
        registry=registry,
        event_client=event_client,
    )
    if elector is not None:
        rt.on_close(lease_client.close)
    for setup in opts.setups:
        for c in setup(rt):
            manager.add_controller(c)
    return rt


async def run_operator(opts: Options, stop: asyncio.Event, started: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (graceful) or something fatal happens (raises)."""
    rt = await build(opts)
    if not rt.manager.controllers:
        log.info("no controllers are registered in this build yet: running the manager skeleton only")

    async def watch_stop() -> None:
        await stop.wait()
        rt.manager.stop()

    try:
        async with asyncio.TaskGroup() as tg:
            waiter = tg.create_task(watch_stop())
            run = tg.create_task(rt.manager.run())
            if started is not None:
                started.set()
            await run
            waiter.cancel()
    finally:
        for close in reversed(rt._closers):
            try:
                await close()
            except Exception as e:  # one failing close must not leak the clients below
                log.warning("closing %r failed: %s", close, e)
        await rt.client.close()
        if rt.event_client is not None:
            await rt.event_client.close()
        await rt.cache.client.close()
