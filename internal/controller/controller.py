"""A controller: watches feed a rate-limited work queue; N workers run the reconciler on each key.

As controller-runtime: workers start only after every watched informer has synced (bounded by
``cache_sync_timeout``); a key is never reconciled by two workers at once; an error requeues with
backoff, ``requeue_after`` requeues after a delay, success forgets the key's failures; an API error
(``ApiError``) is an ordinary error; any other exception escaping the reconciler is counted as a panic
and treated as an error, never killing a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from internal.client import ApiError, Conflict, Resource
from internal.controller.handlers import MapFunc, for_object
from internal.controller.metrics import ControllerMetrics
from internal.controller.predicates import Predicate
from internal.controller.reconcile import ReconcileError, Reconciler, Request, Result, TerminalError
from internal.informer import Cache, DeletedFinalStateUnknown, HandlerFuncs
from internal.logging import log_context
from internal.workqueue import PrometheusMetricsProvider, QueueShutDown, RateLimitingQueue
from internal.workqueue.ratelimiter import RateLimiter, default_controller_rate_limiter

log = logging.getLogger("kuberay.controller")

Obj = Mapping[str, Any]


@dataclass
class Watch:
    resource: Resource
    mapper: MapFunc | Callable[[Obj], Iterable[Request]] = for_object
    predicates: tuple[Predicate, ...] = ()


@dataclass
class ControllerOptions:
    workers: int = 1
    cache_sync_timeout: float = 120.0
    reconcile_timeout: float | None = None
    rate_limiter: RateLimiter[Request] | None = None
    watches: list[Watch] = field(default_factory=list)


class CacheSyncTimeout(RuntimeError):
    pass


class Controller:
    def __init__(
        self,
        name: str,
        reconciler: Reconciler,
        cache: Cache,
        options: ControllerOptions,
        *,
        metrics: ControllerMetrics | None = None,
        queue_metrics: PrometheusMetricsProvider | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.name = name
        self.reconciler = reconciler
        self.cache = cache
        self.options = options
        self.metrics = metrics
        self.tracer = tracer or trace.get_tracer("kuberay-py.controller")
        self.queue: RateLimitingQueue[Request] = RateLimitingQueue(
            options.rate_limiter or default_controller_rate_limiter(),
            name=name,
            metrics_provider=queue_metrics,
        )
        self.started = asyncio.Event()
        #: The kind the controller is "For" (the first watch that maps an object to its own key).
        self.for_resource: Resource | None = None

    def watch(self, resource: Resource, mapper: Any = for_object, *predicates: Predicate) -> Controller:
        self.options.watches.append(Watch(resource, mapper, tuple(predicates)))
        if mapper is for_object and self.for_resource is None:
            self.for_resource = resource
        return self

    def _controller_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"controller": self.name}
        if self.for_resource is not None:
            fields["controllerGroup"] = self.for_resource.group
            fields["controllerKind"] = self.for_resource.kind
        return fields

    def _log_fields(self, req: Request) -> dict[str, Any]:
        """controller-runtime's reconcile logger values, so log queries written for it work: the
        controller, its group and kind, the object as ``{"<Kind>": {name, namespace}}`` (klog.KRef),
        ``namespace``, ``name`` and ``reconcileID``."""
        fields = self._controller_fields()
        r = self.for_resource
        if r is not None:
            fields[r.kind] = {"name": req.name, "namespace": req.namespace}
        fields["namespace"] = req.namespace
        fields["name"] = req.name
        fields["reconcileID"] = str(uuid.uuid4())
        return fields

    # ---- event plumbing --------------------------------------------------------------------------

    def _handler(self, w: Watch) -> HandlerFuncs:
        def enqueue(objs: Iterable[Obj]) -> None:
            seen: set[Request] = set()
            for o in objs:
                for req in w.mapper(o):
                    if req not in seen:
                        seen.add(req)
                        self.queue.add(req)

        def on_add(obj: dict[str, Any], initial: bool) -> None:
            if all(p.create(obj) for p in w.predicates):
                enqueue([obj])

        def on_update(old: dict[str, Any], new: dict[str, Any]) -> None:
            if all(p.update(old, new) for p in w.predicates):
                enqueue([old, new])

        def on_delete(obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
            o = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
            if all(p.delete(o) for p in w.predicates):
                enqueue([o])

        return HandlerFuncs(on_add, on_update, on_delete)

    # ---- running ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Register watches, wait for the caches, then run the workers until cancelled."""
        if self.metrics:
            self.metrics.init_controller(self.name, self.options.workers)
        log.info("Starting Controller", extra=self._controller_fields())
        registrations = []
        for w in self.options.watches:
            for inf in self.cache.informers_for(w.resource):
                registrations.append((inf, inf.add_event_handler(self._handler(w))))
        try:
            async with asyncio.timeout(self.options.cache_sync_timeout):
                # Initial adds reach handlers inline, so a synced informer means synced handlers.
                for inf, _ in registrations:
                    await inf.wait_for_sync()
        except TimeoutError:
            raise CacheSyncTimeout(
                f"controller {self.name}: caches not synced within {self.options.cache_sync_timeout:.0f}s"
            ) from None
        # controller-runtime's start-up lines and keys.
        log.info("Starting workers", extra={**self._controller_fields(), "worker count": self.options.workers})
        self.started.set()
        try:
            async with asyncio.TaskGroup() as tg:
                for i in range(self.options.workers):
                    tg.create_task(self._worker(), name=f"{self.name}-worker-{i}")
        finally:
            self.queue.shutdown()
            for inf, reg in registrations:
                inf.remove_event_handler(reg)

    async def stop(self, grace: float) -> None:
        """Stop handing out keys; let in-flight reconciles finish for up to ``grace`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self.queue.shutdown_with_drain()

    async def _worker(self) -> None:
        while True:
            try:
                req = await self.queue.get()
            except QueueShutDown:
                return
            if self.metrics:
                self.metrics.active_workers.labels(self.name).inc()
            try:
                await self._reconcile_handler(req)
            finally:
                if self.metrics:
                    self.metrics.active_workers.labels(self.name).dec()
                self.queue.done(req)
            # queue.get() does not suspend while keys are queued, and a reconcile served from the cache
            # may not either: yield once per key so watches, probes and lease renewals keep running.
            await asyncio.sleep(0)

    async def _reconcile_handler(self, req: Request) -> None:
        start = time.monotonic()
        outcome = "success"
        err: BaseException | None = None
        result = Result()
        with (
            log_context(**self._log_fields(req)),
            self.tracer.start_as_current_span(
                f"reconcile {self.name}",
                attributes={"controller": self.name, "namespace": req.namespace, "name": req.name},
            ) as span,
        ):
            try:
                if self.options.reconcile_timeout:
                    async with asyncio.timeout(self.options.reconcile_timeout):
                        result = await self.reconciler.reconcile(req)
                else:
                    result = await self.reconciler.reconcile(req)
            except TerminalError as e:
                err, outcome = e, "terminal"
            except (ApiError, ReconcileError) as e:
                # An API error (conflict, not found, throttled, ...) is what a Go reconciler returns as
                # its error: requeued with backoff, but not a panic and not worth a traceback.
                err, outcome = e, "error"
            except TimeoutError as e:
                err, outcome = e, "timeout"
            except Exception as e:
                err, outcome = e, "panic"
            m = self.metrics
            if err is not None:
                span.set_attribute("result", "error")
                span.record_exception(err)
                if m:
                    m.reconcile_errors.labels(self.name).inc()
                    m.reconcile_total.labels(self.name, "error").inc()
                if outcome == "terminal":
                    if m:
                        m.terminal_errors.labels(self.name).inc()
                    log.error("Reconciler error", extra={"error": str(err)})
                else:
                    if outcome == "panic" and m:
                        m.panics.labels(self.name).inc()
                    if outcome == "timeout" and m:
                        m.timeouts.labels(self.name).inc()
                    if result.requeue_after or result.requeue:
                        log.warning(
                            "Warning: Reconciler returned both a non-zero result and a non-nil error. The result "
                            "will always be ignored if the error is non-nil and the non-nil error causes "
                            "requeuing with exponential backoff."
                        )
                    # controller-runtime's message and key: alerts and queries look for them. A write
                    # conflict (409: the object changed since it was read) is optimistic concurrency
                    # working, not a fault: counted as an error like upstream, logged at info level.
                    log.log(
                        logging.INFO if isinstance(err, Conflict) else logging.ERROR,
                        "Reconciler error",
                        extra={"error": str(err) or type(err).__name__, "outcome": outcome},
                        exc_info=outcome == "panic",
                    )
                    self.queue.add_rate_limited(req)
            elif result.requeue_after > 0:
                span.set_attribute("result", "requeue_after")
                span.set_attribute("requeue_after", result.requeue_after)
                self.queue.forget(req)
                self.queue.add_after(req, result.requeue_after)
                if m:
                    m.reconcile_total.labels(self.name, "requeue_after").inc()
            elif result.requeue:
                span.set_attribute("result", "requeue")
                self.queue.add_rate_limited(req)
                if m:
                    m.reconcile_total.labels(self.name, "requeue").inc()
            else:
                span.set_attribute("result", "success")
                self.queue.forget(req)
                if m:
                    m.reconcile_total.labels(self.name, "success").inc()
            if m:
                m.reconcile_time.labels(self.name).observe(time.monotonic() - start)
