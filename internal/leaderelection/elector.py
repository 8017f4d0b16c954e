"""Leader election on a coordination.k8s.io/v1 Lease: client-go's ``tools/leaderelection`` algorithm.

Expiry is judged only by this process's monotonic clock: the time at which it last saw the
record change plus the record's own ``leaseDurationSeconds``. Server timestamps (``renewTime``)
are written for humans and other tools and never compared with the local clock, so the scheme
tolerates any clock offset between replicas (not a difference in clock rate beyond
lease_duration / renew_deadline).

Unlike upstream, a replica that led fences its own writes (``may_write``, installed on its clients as
``Client.write_fence``): none is sent once its last successful renewal was sent renew_deadline ago,
so a leader stopped past its lease (SIGSTOP, a paused VM) and then resumed cannot write while a new
leader acts, in the time before it notices the loss. The residual window is the few instructions
between the check and the bytes leaving the socket.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Gauge

from internal.client import errors
from internal.client.resources import LEASES, Resource
from internal.leaderelection.record import LeaderElectionRecord, format_micro_time

log = logging.getLogger("kuberay.leaderelection")

JITTER_FACTOR = 1.2
EVENT_REASON = "LeaderElection"

Obj = dict[str, Any]


class LeaderElectionLost(Exception):
    """The leader could not renew its lease within renew_deadline; leader work was cancelled."""


class LeaseClient(Protocol):
    """The part of :class:`internal.client.Client` the elector uses."""

    async def get(self, res: Resource, name: str, namespace: str | None = None, *, timeout: float | None = None) -> Obj:
        """GET one object."""

    async def create(
        self,
        res: Resource,
        obj: Obj,
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        timeout: float | None = None,
    ) -> Obj:
        """POST one object."""

    async def update(
        self, res: Resource, obj: Obj, *, subresource: str | None = None, timeout: float | None = None
    ) -> Obj:
        """PUT one object (compare-and-swap on metadata.resourceVersion)."""


class EventSink(Protocol):
    """Anything with an ``event`` like :class:`internal.events.EventRecorder`."""

    def event(
        self,
        obj: Mapping[str, Any],
        type: str,
        reason: str,
        note: str,
        *,
        action: str | None = None,
        related: Mapping[str, Any] | None = None,
    ) -> object:
        """Record an event about ``obj``."""


@dataclass(frozen=True)
class LeaderElectionConfig:
    """controller-runtime's defaults. ``request_timeout`` defaults to max(renew_deadline / 2, 1 s)."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    jitter_factor: float = JITTER_FACTOR
    release_on_cancel: bool = False
    request_timeout: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # How long, after the lease is lost, to wait for the cancelled leader work to unwind before
    # raising anyway (the work is cancelled at once either way).
    lost_cancel_grace: float = 1.0

    def validate(self) -> None:
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if self.renew_deadline <= self.jitter_factor * self.retry_period:
            raise ValueError("renew_deadline must be greater than retry_period * jitter_factor")
        if self.lease_duration <= 0:
            raise ValueError("lease_duration must be greater than zero")
        if self.renew_deadline <= 0:
            raise ValueError("renew_deadline must be greater than zero")
        if self.retry_period <= 0:
            raise ValueError("retry_period must be greater than zero")
        if self.jitter_factor < 0:
            raise ValueError("jitter_factor must not be negative")
        # The record carries whole seconds; a sub-second lease would be written as 0 = always expired.
        if self.lease_duration < 1:
            raise ValueError("lease_duration must be at least 1 second")
        if self.request_timeout is not None and self.request_timeout <= 0:
            raise ValueError("request_timeout must be greater than zero")

    @property
    def effective_request_timeout(self) -> float:
        if self.request_timeout is not None:
            return self.request_timeout
        return max(self.renew_deadline / 2, 1.0)

    @property
    def lease_duration_seconds(self) -> int:
        return int(self.lease_duration)


def default_identity() -> str:
    """``hostname_uuid4``: unique per process, as controller-runtime builds it."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


_GAUGES: weakref.WeakKeyDictionary[CollectorRegistry, Gauge] = weakref.WeakKeyDictionary()


def master_status_gauge(registry: CollectorRegistry | None) -> Gauge:
    """``leader_election_master_status{name}``, registered once per registry (None: unregistered)."""
    if registry is None:
        return Gauge(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. "
            "'name' is the string used to identify the lease. Please make sure to group by name.",
            ["name"],
            registry=None,
        )
    gauge = _GAUGES.get(registry)
    if gauge is None:
        gauge = Gauge(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. "
            "'name' is the string used to identify the lease. Please make sure to group by name.",
            ["name"],
            registry=registry,
        )
        _GAUGES[registry] = gauge
    return gauge


class LeaderElector:
    """One participant in the election for the Lease ``namespace/name``.

    ``clock`` is a monotonic clock (seconds), used for observation times and deadlines;
    ``wall_clock`` gives the timestamps written into the Lease; ``sleep`` and ``rand`` drive the
    retry pacing. All are injectable for tests."""

    def __init__(
        self,
        client: LeaseClient,
        namespace: str,
        name: str,
        identity: str | None = None,
        config: LeaderElectionConfig | None = None,
        registry: CollectorRegistry | None = None,
        *,
        recorder: EventSink | None = None,
        on_new_leader: Callable[[str], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config or LeaderElectionConfig()
        self.config.validate()
        if not name:
            raise ValueError("the lease name must not be empty")
        if not namespace:
            raise ValueError("the lease namespace must not be empty")
        self.identity = default_identity() if identity is None else identity
        if not self.identity:
            raise ValueError("identity must not be empty")
        self.client = client
        self.namespace = namespace
        self.name = name
        self.recorder = recorder
        self.on_new_leader = on_new_leader
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._rand = rand

        self._lease: Obj | None = None  # the Lease as last read or written (carries resourceVersion)
        self._observed = LeaderElectionRecord()
        self._observed_raw: bytes | None = None
        self._observed_time = 0.0  # local monotonic time the observed record was last seen to change
        self._reported_leader = ""
        self._leading = False
        self._led = False  # has ever led: from then on writes need a valid lease (may_write)
        self._valid_until = 0.0  # local monotonic time until which this replica's lease is surely its own
        self.slowpath_count = 0  # leader_election_slowpath_total: defined upstream, not registered

        self._gauge = master_status_gauge(registry).labels(name=name)
        self._gauge.set(0)

    # ---- state -------------------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """True from a successful acquire until the lease is lost or released."""
        return self._leading

    @property
    def observed_record(self) -> LeaderElectionRecord:
        return self._observed

    @property
    def observed_time(self) -> float:
        return self._observed_time

    @property
    def leader(self) -> str:
        """The holder according to the last observed record ("" if none)."""
        return self._observed.holder_identity

    def may_write(self) -> bool:
        """The write fence: True before this replica ever led (start-up work), then only while it leads
        and its last successful renewal was *sent* less than renew_deadline ago. A standby takes over
        lease_duration after it saw that renewal, so a write passing the fence cannot overlap a new
        leader's, even if this process was stopped (SIGSTOP, a frozen VM) and has just resumed."""
        if not self._led:
            return True
        return self._leading and self._clock() < self._valid_until

    def _holds_observed(self) -> bool:
        # client-go's IsLeader(): the last observed record names this process.
        return self._observed.holder_identity == self.identity

    def _lease_valid(self, now: float) -> bool:
        return self._observed_time + self._observed.lease_duration_seconds > now

    def _set_observed(self, record: LeaderElectionRecord) -> None:
        self._observed = record
        self._observed_time = self._clock()

    def check(self, max_tolerable_expired: float = 0.0) -> str | None:
        """Health check (client-go ``HealthzAdaptor``): unhealthy if leading but this process has not
        seen its own renewal for lease_duration + ``max_tolerable_expired``. Returns the reason or None."""
        if not self._holds_observed() or not self._leading:
            return None
        if self._clock() - self._observed_time > self.config.lease_duration + max_tolerable_expired:
            return f"failed election to renew leadership on lease {self.name}"
        return None

    def jittered_retry_period(self) -> float:
        """``wait.Jitter(retry_period, jitter_factor)``: a value in [retry, retry·(1 + jitter))."""
        return self.config.retry_period * (1 + self._rand() * self.config.jitter_factor)

    # ---- lease I/O ---------------------------------------------------------------------------------

    def _request_timeout(self, remaining: float | None) -> float:
        t = self.config.effective_request_timeout
        return t if remaining is None else max(min(t, remaining), 0.001)

    async def _get(self, timeout: float) -> LeaderElectionRecord:
        lease = await self.client.get(LEASES, self.name, self.namespace, timeout=timeout)
        self._lease = lease
        return LeaderElectionRecord.from_lease_spec(lease.get("spec"))

    async def _create(self, record: LeaderElectionRecord, timeout: float) -> None:
        meta: Obj = {"name": self.name, "namespace": self.namespace}
        if self.config.labels:
            meta["labels"] = dict(self.config.labels)
        body = {
            "apiVersion": LEASES.api_version,
            "kind": LEASES.kind,
            "metadata": meta,
            "spec": record.to_lease_spec(),
        }
        self._lease = await self.client.create(LEASES, body, self.namespace, timeout=timeout)

    async def _update(self, record: LeaderElectionRecord, timeout: float) -> None:
        if self._lease is None:
            raise errors.ApiError("lease not initialized, get or create it first")
        body = dict(self._lease)
        meta = dict(body.get("metadata") or {})
        if self.config.labels:
            meta["labels"] = {**(meta.get("labels") or {}), **self.config.labels}
        body["metadata"] = meta
        body["spec"] = record.to_lease_spec()
        body.setdefault("apiVersion", LEASES.api_version)
        body.setdefault("kind", LEASES.kind)
        self._lease = await self.client.update(LEASES, body, timeout=timeout)

    def _now_micro(self) -> str:
        return format_micro_time(self._wall_clock())

    # ---- the algorithm -----------------------------------------------------------------------------

    async def try_acquire_or_renew(self, remaining: float | None = None) -> bool:
        """One attempt to acquire or renew; True if this process holds the lease afterwards.

        ``remaining`` bounds each request's timeout (the rest of the renew deadline)."""
        sent = self._clock()  # a success makes the lease surely ours until sent + renew_deadline
        ts = self._now_micro()
        desired = LeaderElectionRecord(
            holder_identity=self.identity,
            lease_duration_seconds=self.config.lease_duration_seconds,
            acquire_time=ts,
            renew_time=ts,
        )

        # 1. Fast path: the leader updates optimistically, assuming its last write is current.
        if self._holds_observed() and self._lease_valid(self._clock()):
            fast = desired.with_(
                acquire_time=self._observed.acquire_time,
                leader_transitions=self._observed.leader_transitions,
            )
            try:
                await self._update(fast, self._request_timeout(remaining))
            except errors.ApiError as e:
                log.info("optimistic renewal of lease %s/%s failed (%s); slow path", self.namespace, self.name, e)
            else:
                self._set_observed(fast)
                self._valid_until = sent + self.config.renew_deadline
                return True

        # 2. Get or create.
        try:
            old = await self._get(self._request_timeout(remaining))
        except errors.NotFound:
            try:
                await self._create(desired, self._request_timeout(remaining))
            except errors.ApiError as e:
                log.warning("creating lease %s/%s failed: %s", self.namespace, self.name, e)
                return False
            self._set_observed(desired)
            self._valid_until = sent + self.config.renew_deadline
            return True
        except errors.ApiError as e:
            log.warning("reading lease %s/%s failed: %s", self.namespace, self.name, e)
            return False

        # 3. A changed record restarts the expiry countdown, measured on the local clock.
        raw = old.raw()
        if raw != self._observed_raw:
            self._set_observed(old)
            self._observed_raw = raw

        # 4. Held by someone else and not expired (by local observation): give up for now.
        now = self._clock()
        if old.holder_identity and self._lease_valid(now) and not self._holds_observed():
            return False

        # 5. Renew (keep acquireTime and transitions) or take over (one more transition).
        if self._holds_observed():
            desired = desired.with_(acquire_time=old.acquire_time, leader_transitions=old.leader_transitions)
            self.slowpath_count += 1
        else:
            desired = desired.with_(leader_transitions=old.leader_transitions + 1)

        # 6. Compare-and-swap through the resourceVersion of the Lease just read.
        try:
            await self._update(desired, self._request_timeout(remaining))
        except errors.ApiError as e:
            log.info("updating lease %s/%s failed: %s", self.namespace, self.name, e)
            return False
        self._set_observed(desired)
        self._valid_until = sent + self.config.renew_deadline
        return True

    async def _attempt(self, remaining: float | None) -> bool:
        """try_acquire_or_renew bounded by ``remaining`` seconds; any failure is False."""
        try:
            if remaining is None:
                return await self.try_acquire_or_renew()
            async with asyncio.timeout(remaining):
                return await self.try_acquire_or_renew(remaining)
        except TimeoutError:
            log.info("lease %s/%s: attempt ran out of time", self.namespace, self.name)
            return False
        except Exception:
            log.exception("lease %s/%s: unexpected error in an election attempt", self.namespace, self.name)
            return False
        finally:
            self._maybe_report_transition()

    def _maybe_report_transition(self) -> None:
        holder = self._observed.holder_identity
        if holder == self._reported_leader:
            return
        self._reported_leader = holder
        log.info("lease %s/%s: new leader observed: %r", self.namespace, self.name, holder)
        if self.on_new_leader is not None:
            try:
                self.on_new_leader(holder)
            except Exception:
                log.exception("on_new_leader callback failed")

    async def acquire(self) -> None:
        """Loop until this process holds the lease (attempts every retry_period, jittered)."""
        log.info("attempting to acquire leader lease %s/%s as %s", self.namespace, self.name, self.identity)
        while True:
            if await self._attempt(None):
                break
            await self._sleep(self.jittered_retry_period())
        self._leading = self._led = True
        self._gauge.set(1)
        log.info("successfully acquired lease %s/%s", self.namespace, self.name)
        self._record_event("became leader")

    async def _renew_until_lost(self, on_lost: Callable[[], None]) -> None:
        """Renew every retry_period; each renewal may retry until renew_deadline. Returns (after
        calling ``on_lost``) only when a renewal could not succeed within the deadline."""
        cfg = self.config
        while True:
            deadline = self._clock() + cfg.renew_deadline
            renewed = False
            while True:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                if await self._attempt(remaining):
                    renewed = True
                    break
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                await self._sleep(min(cfg.retry_period, remaining))
            if not renewed:
                log.error(
                    "failed to renew lease %s/%s within %.1fs: leader election lost",
                    self.namespace,
                    self.name,
                    cfg.renew_deadline,
                )
                self._leading = False
                self._gauge.set(0)
                on_lost()
                return
            await self._sleep(cfg.retry_period)

    async def release(self) -> bool:
        """Give the lease up if this process holds it: holder "" and leaseDurationSeconds 1, so a
        standby takes over on its next attempt. Retries conflicts, bounded by renew_deadline."""
        cfg = self.config
        deadline = self._clock() + cfg.renew_deadline
        try:
            async with asyncio.timeout(cfg.renew_deadline):
                while True:
                    remaining = deadline - self._clock()
                    try:
                        current = await self._get(self._request_timeout(remaining))
                    except errors.NotFound:
                        log.info("lease %s/%s not found; nothing to release", self.namespace, self.name)
                        return False
                    if current.holder_identity != self.identity:
                        return True
                    ts = self._now_micro()
                    released = LeaderElectionRecord(
                        holder_identity="",
                        lease_duration_seconds=1,
                        acquire_time=ts,
                        renew_time=ts,
                        leader_transitions=current.leader_transitions,
                    )
                    try:
                        await self._update(released, self._request_timeout(deadline - self._clock()))
                    except errors.Conflict:
                        continue  # re-read: still ours?
                    self._set_observed(released)
                    log.info("released lease %s/%s", self.namespace, self.name)
                    return True
        except (errors.ApiError, TimeoutError) as e:
            log.warning("releasing lease %s/%s failed: %s", self.namespace, self.name, e)
            return False

    def _record_event(self, what: str) -> None:
        if self.recorder is None:
            return
        subject: Obj = dict(self._lease or {})
        subject.setdefault("metadata", {"name": self.name, "namespace": self.namespace})
        subject["apiVersion"] = LEASES.api_version
        subject["kind"] = LEASES.kind
        try:
            self.recorder.event(subject, "Normal", EVENT_REASON, f"{self.identity} {what}", action=EVENT_REASON)
        except Exception:
            log.exception("recording the leader election event failed")

    # ---- run ---------------------------------------------------------------------------------------

    async def run(
        self,
        on_started_leading: Callable[[], Awaitable[None]],
        *,
        on_stopped_leading: Callable[[], object] | None = None,
    ) -> None:
        """Acquire the lease, run ``on_started_leading()`` as a task, and renew until:

        * renewal fails for renew_deadline: the leader work is cancelled at once, the lease is
          released if configured, and :class:`LeaderElectionLost` is raised;
        * this coroutine is cancelled: the leader work is cancelled and awaited, the lease is
          released if configured, and the cancellation propagates;
        * the leader work raises: renewal stops, the lease is released if configured, and the
          exception propagates. Leader work that returns normally does not end the term (as upstream).

        ``on_stopped_leading`` is always called when this returns, even if it never led."""
        leader_task: asyncio.Task[None] | None = None
        try:
            await self.acquire()

            async def leader_work() -> None:
                await on_started_leading()

            task = leader_task = asyncio.create_task(leader_work(), name=f"leader:{self.name}")
            lost = False

            def on_lost() -> None:
                nonlocal lost
                lost = True
                task.cancel()  # at once: another replica may take over soon

            renew_task = asyncio.create_task(self._renew_until_lost(on_lost), name=f"renew:{self.name}")
            try:
                pending: set[asyncio.Task[None]] = {task, renew_task}
                while renew_task in pending:
                    _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        break  # the leader work failed: stop renewing
            finally:
                if not renew_task.done():
                    renew_task.cancel()
                    await asyncio.wait({renew_task})
                self._leading = False
                self._gauge.set(0)
                if not task.done():
                    task.cancel()
                    await asyncio.wait({task}, timeout=self.config.lost_cancel_grace if lost else None)
                if self.config.release_on_cancel:
                    await self.release()
                self._record_event("stopped leading")
            if not renew_task.cancelled():
                renew_error = renew_task.exception()
                if renew_error is not None:
                    raise renew_error
            if lost:
                raise LeaderElectionLost(f"leader election lost: lease {self.namespace}/{self.name}")
            if task.done() and not task.cancelled():
                task.result()  # re-raises the leader work's error
        finally:
            self._leading = False
            self._gauge.set(0)
            if leader_task is not None and not leader_task.done():
                leader_task.cancel()
            if on_stopped_leading is not None:
                try:
                    on_stopped_leading()
                except Exception:
                    log.exception("on_stopped_leading callback failed")
