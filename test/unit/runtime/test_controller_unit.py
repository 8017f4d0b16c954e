"""Controller unit tests: the reconcile result table, panic recovery, worker/metric bookkeeping,
no concurrent reconciles of one key, and sync gating — with scripted reconcilers and fake clients.

Most tests run the controller with no watches (so no cache is consulted) and add Requests to its
queue directly. The queue is swapped for a recording RateLimitingQueue; the result-table tests give
it a FakeClock so requeue delays are checked exactly and fire only when the test advances time."""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from internal.client import Conflict
from internal.client.resources import PODS
from internal.controller import (
    CacheSyncTimeout,
    Controller,
    ControllerMetrics,
    ControllerOptions,
    Request,
    Result,
    TerminalError,
    Watch,
)
from internal.informer import Cache
from internal.workqueue import FakeClock, ItemExponentialFailureRateLimiter, RateLimitingQueue

NAME = "ctl"
A, B = Request("ns", "a"), Request("ns", "b")


async def wait_until(pred: Callable[[], bool], timeout: float = 2.0) -> None:
    async def poll() -> None:
        while not pred():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), timeout)


async def settle(turns: int = 20) -> None:
    """Let every runnable task run; used only to show that something does *not* happen."""
    for _ in range(turns):
        await asyncio.sleep(0)


class RecordingQueue(RateLimitingQueue[Request]):
    """Records the controller's queue decisions in order."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.ops: list[tuple[Any, ...]] = []

    def add_rate_limited(self, item: Request) -> None:
        self.ops.append(("rate_limited", item))
        super().add_rate_limited(item)

    def forget(self, item: Request) -> None:
        self.ops.append(("forget", item))
        super().forget(item)

    def add_after(self, item: Request, delay: float) -> None:
        self.ops.append(("after", item, delay))
        super().add_after(item, delay)

    def decisions(self) -> list[tuple[Any, ...]]:
        """The controller's own calls (add_after made by add_rate_limited is folded into it)."""
        out: list[tuple[Any, ...]] = []
        for op in self.ops:
            if op[0] == "after" and out and out[-1][0] == "rate_limited" and len(out[-1]) == 2:
                out[-1] = (*out[-1], op[2])  # ("rate_limited", item, delay)
            else:
                out.append(op)
        return out


Outcome = Result | BaseException | Callable[[], Any]


class ScriptedReconciler:
    """Plays each key's scripted outcomes in order (then succeeds); records every call."""

    def __init__(self, script: dict[Request, list[Outcome]] | None = None) -> None:
        self.script: dict[Request, deque[Outcome]] = {k: deque(v) for k, v in (script or {}).items()}
        self.calls: list[Request] = []

    def count(self, req: Request) -> int:
        return sum(1 for c in self.calls if c == req)

    async def reconcile(self, request: Request) -> Result:
        self.calls.append(request)
        await asyncio.sleep(0)
        q = self.script.get(request)
        step: Outcome = q.popleft() if q else Result()
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            out = step()
            if asyncio.iscoroutine(out):
                out = await out
            return out if isinstance(out, Result) else Result()
        return step


@dataclass
class Env:
    controller: Controller
    queue: RecordingQueue
    registry: CollectorRegistry
    limiter: ItemExponentialFailureRateLimiter[Request]
    clock: FakeClock | None
    task: asyncio.Task[None] | None = None

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, {"controller": NAME, **labels})

    def total(self, result: str) -> float | None:
        return self.metric("controller_runtime_reconcile_total", result=result)


@dataclass
class ControllerEnv:
    envs: list[Env] = field(default_factory=list)

    def __call__(
        self,
        reconciler: Any,
        *,
        workers: int = 1,
        fake_clock: bool = True,
        cache: Cache | None = None,
        watches: list[Watch] | None = None,
        **opts: Any,
    ) -> Env:
        registry = CollectorRegistry()
        limiter: ItemExponentialFailureRateLimiter[Request] = ItemExponentialFailureRateLimiter(0.001, 0.01)
        ctl = Controller(
            NAME,
            reconciler,
            cache or Cache(None),  # type: ignore[arg-type]  # never used: no watches
            ControllerOptions(workers=workers, rate_limiter=limiter, watches=watches or [], **opts),
            metrics=ControllerMetrics.register(registry),
        )
        clock = FakeClock(start=100.0) if fake_clock else None
        queue = RecordingQueue(limiter, name=NAME, clock=clock)
        ctl.queue = queue
        env = Env(ctl, queue, registry, limiter, clock)
        self.envs.append(env)
        return env

    def start(self, env: Env) -> asyncio.Task[None]:
        env.task = asyncio.create_task(env.controller.run())
        return env.task


@pytest.fixture
async def ctl_env() -> AsyncIterator[ControllerEnv]:
    envs = ControllerEnv()
    yield envs
    for e in envs.envs:
        if e.task is not None and not e.task.done():
            e.task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await e.task


# ---- metrics initialisation ----------------------------------------------------------------------


async def test_metrics_initialised_at_start(ctl_env: ControllerEnv) -> None:
    env = ctl_env(ScriptedReconciler(), workers=4)
    ctl_env.start(env)
    await asyncio.wait_for(env.controller.started.wait(), 2)
    for r in ("success", "error", "requeue", "requeue_after"):
        assert env.total(r) == 0.0
    for m in (
        "controller_runtime_reconcile_errors_total",
        "controller_runtime_terminal_reconcile_errors_total",
        "controller_runtime_reconcile_panics_total",
        "controller_runtime_reconcile_timeouts_total",
        "controller_runtime_active_workers",
    ):
        assert env.metric(m) == 0.0, m
    assert env.metric("controller_runtime_max_concurrent_reconciles") == 4.0


# ---- result table --------------------------------------------------------------------------------


async def test_success_forgets(ctl_env: ControllerEnv) -> None:
    env = ctl_env(ScriptedReconciler())
    ctl_env.start(env)
    env.queue.add(A)
    await wait_until(lambda: len(env.queue.ops) == 1)
    assert env.queue.decisions() == [("forget", A)]
    assert env.total("success") == 1.0
    assert env.metric("controller_runtime_reconcile_errors_total") == 0.0
    assert env.metric("controller_runtime_reconcile_time_seconds_count") == 1.0


async def test_error_requeues_rate_limited_without_forget(ctl_env: ControllerEnv) -> None:
    """An error requeues through the rate limiter and keeps the failure count. (A Python reconcile
    either returns a Result or raises, so "error together with requeue_after" cannot carry the
    requeue_after at all: the error path always uses the limiter's delay — checked here.)"""
    rec = ScriptedReconciler({A: [Conflict("stale"), Conflict("stale again"), Result()]})
    env = ctl_env(rec)
    assert env.clock is not None
    ctl_env.start(env)
    env.queue.add(A)
    await wait_until(lambda: len(env.queue.decisions()) == 1)
    assert env.queue.decisions() == [("rate_limited", A, 0.001)]
    assert env.queue.num_requeues(A) == 1
    assert len(env.queue) == 0  # waiting for its delay, not ready

    env.clock.advance(0.0009)
    await settle()
    assert rec.count(A) == 1  # not before the backoff
    env.clock.advance(0.0001)
    await wait_until(lambda: len(env.queue.decisions()) == 2)
    assert rec.count(A) == 2
    assert env.queue.decisions()[1] == ("rate_limited", A, 0.002)  # backoff grows: no forget
    assert env.queue.num_requeues(A) == 2

    env.clock.advance(0.002)
    await wait_until(lambda: len(env.queue.decisions()) == 3)
    assert env.queue.decisions()[2] == ("forget", A)
    assert env.queue.num_requeues(A) == 0
    assert env.total("error") == 2.0
    assert env.total("success") == 1.0
    assert env.metric("controller_runtime_reconcile_errors_total") == 2.0
    assert env.metric("controller_runtime_reconcile_panics_total") == 0.0  # an API error is no panic


async def test_terminal_error_no_requeue_no_forget(ctl_env: ControllerEnv) -> None:
    rec = ScriptedReconciler({A: [Conflict("stale"), TerminalError("spec is invalid")]})
    env = ctl_env(rec)
    assert env.clock is not None
    ctl_env.start(env)
    env.queue.add(A)
    await wait_until(lambda: len(env.queue.decisions()) == 1)
    env.clock.advance(0.001)
    await wait_until(lambda: rec.count(A) == 2)
    await settle()
    assert env.queue.decisions() == [("rate_limited", A, 0.001)]  # nothing after the terminal error
    assert env.queue.num_requeues(A) == 1  # not forgotten
    assert len(env.queue) == 0
    assert env.clock.pending_timers == 0  # and nothing waiting
    env.clock.advance(3600)
    await settle()
    assert rec.count(A) == 2
    assert env.metric("controller_runtime_terminal_reconcile_errors_total") == 1.0
    assert env.metric("controller_runtime_reconcile_errors_total") == 2.0
    assert env.total("error") == 2.0
    assert env.metric("controller_runtime_reconcile_panics_total") == 0.0


async def test_requeue_after_forgets_then_requeues_after_delay(ctl_env: ControllerEnv) -> None:
    rec = ScriptedReconciler({A: [Conflict("stale"), Result(requeue_after=5.0)]})
    env = ctl_env(rec)
    assert env.clock is not None
    ctl_env.start(env)
    env.queue.add(A)
    await wait_until(lambda: len(env.queue.decisions()) == 1)
    assert env.queue.num_requeues(A) == 1
    env.clock.advance(0.001)
    await wait_until(lambda: len(env.queue.decisions()) == 3)
    assert env.queue.decisions()[1:] == [("forget", A), ("after", A, 5.0)]  # forget first
    assert env.queue.num_requeues(A) == 0
    assert env.total("requeue_after") == 1.0

    env.clock.advance(4.999)
    await settle()
    assert rec.count(A) == 2
    env.clock.advance(0.001)
    await wait_until(lambda: rec.count(A) == 3)
    assert env.total("success") == 1.0


async def test_requeue_true_is_rate_limited_without_forget(ctl_env: ControllerEnv) -> None:
    rec = ScriptedReconciler({A: [Result(requeue=True), Result(requeue=True)]})
    env = ctl_env(rec)
    assert env.clock is not None
    ctl_env.start(env)
    env.queue.add(A)
    await wait_until(lambda: len(env.queue.decisions()) == 1)
    env.clock.advance(0.001)
    await wait_until(lambda: len(env.queue.decisions()) == 2)
    assert env.queue.decisions() == [("rate_limited", A, 0.001), ("rate_limited", A, 0.002)]
    assert env.total("requeue") == 2.0
    assert env.metric("controller_runtime_reconcile_errors_total") == 0.0


# ---- panics --------------------------------------------------------------------------------------


async def test_unexpected_exception_is_a_recovered_panic_and_worker_survives(ctl_env: ControllerEnv) -> None:
    rec = ScriptedReconciler({A: [KeyError("bug"), ZeroDivisionError()]})
    env = ctl_env(rec, workers=1, fake_clock=False)  # real loop clock, 1-10 ms backoff
    task = ctl_env.start(env)
    env.queue.add(A)
    env.queue.add(B)
    # A panics twice, is retried with backoff each time, then succeeds; B is processed by the same
    # (only) worker in between.
    await wait_until(lambda: rec.count(A) == 3 and rec.count(B) == 1)
    await wait_until(lambda: env.total("success") == 2.0)
    assert not task.done()
    assert rec.calls[:2] == [A, B]
    assert env.metric("controller_runtime_reconcile_panics_total") == 2.0
    assert env.metric("controller_runtime_reconcile_errors_total") == 2.0
    assert env.total("error") == 2.0
    assert [d[0] for d in env.queue.decisions() if d[1] == A] == ["rate_limited", "rate_limited", "forget"]
    assert env.queue.num_requeues(A) == 0
    assert env.metric("controller_runtime_active_workers") == 0.0


async def test_reconcile_timeout_is_counted_and_requeued(ctl_env: ControllerEnv) -> None:
    never = asyncio.Event()
    rec = ScriptedReconciler({A: [never.wait]})
    env = ctl_env(rec, reconcile_timeout=0.01)
    ctl_env.start(env)
    env.queue.add(A)
    await wait_until(lambda: len(env.queue.decisions()) == 1)
    assert env.queue.decisions() == [("rate_limited", A, 0.001)]
    assert env.metric("controller_runtime_reconcile_timeouts_total") == 1.0
    assert env.metric("controller_runtime_reconcile_errors_total") == 1.0
    assert env.metric("controller_runtime_reconcile_panics_total") == 0.0


# ---- workers -------------------------------------------------------------------------------------


async def test_active_workers_tracks_in_flight_and_returns_to_zero(ctl_env: ControllerEnv) -> None:
    release = asyncio.Event()
    keys = [Request("ns", f"k{i}") for i in range(5)]
    rec = ScriptedReconciler({k: [release.wait] for k in keys})
    env = ctl_env(rec, workers=3)
    ctl_env.start(env)
    for k in keys:
        env.queue.add(k)
    await wait_until(lambda: len(rec.calls) == 3)
    await settle()
    assert len(rec.calls) == 3  # only 3 workers
    assert env.metric("controller_runtime_active_workers") == 3.0
    assert env.metric("controller_runtime_max_concurrent_reconciles") == 3.0
    release.set()
    await wait_until(lambda: env.total("success") == 5.0)
    await wait_until(lambda: env.metric("controller_runtime_active_workers") == 0.0)


async def test_no_key_is_reconciled_by_two_workers_at_once(ctl_env: ControllerEnv) -> None:
    keys = [Request("ns", f"k{i}") for i in range(8)]
    seq = 0
    last_add: dict[Request, int] = {}
    starts: defaultdict[Request, list[int]] = defaultdict(list)
    in_flight: set[Request] = set()
    overlaps: list[Request] = []
    peak = 0

    class Rec:
        async def reconcile(self, req: Request) -> Result:
            nonlocal seq, peak
            seq += 1
            starts[req].append(seq)
            if req in in_flight:
                overlaps.append(req)
            in_flight.add(req)
            peak = max(peak, len(in_flight))
            for _ in range(3):
                await asyncio.sleep(0)
            in_flight.discard(req)
            return Result()

    env = ctl_env(Rec(), workers=10)
    ctl_env.start(env)
    await asyncio.wait_for(env.controller.started.wait(), 2)
    for i in range(3000):
        k = keys[(i * 7) % len(keys)]
        seq += 1
        last_add[k] = seq
        env.queue.add(k)
        if i % 5 == 0:
            await asyncio.sleep(0)
    # Every key's last add is followed by a reconcile that started after it.
    await wait_until(lambda: all(starts[k] and starts[k][-1] > last_add[k] for k in keys), timeout=5)
    assert overlaps == []
    assert peak > 1  # the workers really did run concurrently
    await wait_until(lambda: env.metric("controller_runtime_active_workers") == 0.0)


# ---- sync gating ---------------------------------------------------------------------------------


@dataclass
class GatedClient:
    """A fake client whose LIST answers only when ``gate`` is set; the watch then stays open."""

    items: list[dict[str, Any]]
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    calls: list[str] = field(default_factory=list)

    async def list(self, resource: Any, namespace: str | None = None, **kw: Any) -> dict[str, Any]:
        self.calls.append("list")
        await self.gate.wait()
        return {"metadata": {"resourceVersion": "10"}, "items": copy.deepcopy(self.items)}

    async def watch(self, resource: Any, namespace: str | None = None, **kw: Any) -> AsyncIterator[dict[str, Any]]:
        self.calls.append("watch")
        await asyncio.Event().wait()
        yield {}  # pragma: no cover


def _pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": "1"}}


async def test_workers_start_only_after_the_initial_list_reached_the_handler(ctl_env: ControllerEnv) -> None:
    client = GatedClient([_pod("a"), _pod("b")])
    cache = Cache(client)  # type: ignore[arg-type]
    cache_task = asyncio.create_task(cache.run())
    rec = ScriptedReconciler()
    env = ctl_env(rec, cache=cache, watches=[Watch(PODS)], fake_clock=False)
    try:
        ctl_env.start(env)
        await wait_until(lambda: client.calls == ["list"])
        env.queue.add(Request("ns", "early"))  # queued, but nobody may take it before sync
        await settle(50)
        assert not env.controller.started.is_set()
        assert rec.calls == []
        client.gate.set()
        await asyncio.wait_for(env.controller.started.wait(), 2)
        await wait_until(lambda: len(rec.calls) == 3)
        assert sorted(rec.calls) == [A, B, Request("ns", "early")]
    finally:
        cache_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cache_task


async def test_cache_sync_timeout_fails_the_controller(ctl_env: ControllerEnv) -> None:
    client = GatedClient([_pod("a")])  # the list never answers
    cache = Cache(client)  # type: ignore[arg-type]
    cache_task = asyncio.create_task(cache.run())
    rec = ScriptedReconciler()
    env = ctl_env(rec, cache=cache, watches=[Watch(PODS)], cache_sync_timeout=0.05)
    try:
        with pytest.raises(CacheSyncTimeout):
            await asyncio.wait_for(env.controller.run(), 2)
        assert not env.controller.started.is_set()
        assert rec.calls == []
    finally:
        cache_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cache_task


async def test_cancel_stops_workers_and_shuts_the_queue(ctl_env: ControllerEnv) -> None:
    env = ctl_env(ScriptedReconciler(), workers=3)
    task = ctl_env.start(env)
    await asyncio.wait_for(env.controller.started.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert env.queue.shutting_down()
