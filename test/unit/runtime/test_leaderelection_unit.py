"""Leader election logic against an in-memory Lease store and a fake monotonic clock."""

from __future__ import annotations

import asyncio
import copy
import re
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from internal.client import ConnectionFailed, errors
from internal.client.resources import LEASES
from internal.events import FakeRecorder
from internal.leaderelection import (
    LeaderElectionConfig,
    LeaderElectionLost,
    LeaderElectionRecord,
    LeaderElector,
    format_micro_time,
)

NS, NAME = "ns", "lock"
MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    """Yield to the loop until ``pred()`` holds (real-time deadline, as a safety net only)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached")
        await asyncio.sleep(0)


class FakeTime:
    """Monotonic seconds that move only through ``advance`` or the elector's own sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, dt: float) -> None:
        self.now += dt

    async def sleep(self, dt: float) -> None:
        self.sleeps.append(dt)
        self.now += dt
        await asyncio.sleep(0)


class FakeLeases:
    """Leases with resourceVersion compare-and-swap, request counting and injectable failure."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = 0
        self.calls: list[str] = []
        self.fail: BaseException | None = None

    def _check(self, verb: str) -> None:
        self.calls.append(verb)
        if self.fail is not None:
            raise self.fail

    def _bump(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(obj)

    async def get(self, res: Any, name: str, namespace: str | None = None, *, timeout: float | None = None) -> Any:
        assert res is LEASES and timeout is not None
        self._check("GET")
        obj = self.objects.get((namespace or "", name))
        if obj is None:
            raise errors.NotFound("not found")
        return copy.deepcopy(obj)

    async def create(self, res: Any, obj: Any, namespace: str | None = None, **kw: Any) -> Any:
        assert kw.get("timeout") is not None
        self._check("POST")
        key = (namespace or "", obj["metadata"]["name"])
        if key in self.objects:
            raise errors.AlreadyExists("exists", reason="AlreadyExists")
        stored = copy.deepcopy(obj)
        self.objects[key] = stored
        return self._bump(stored)

    async def update(self, res: Any, obj: Any, **kw: Any) -> Any:
        assert kw.get("timeout") is not None
        self._check("PUT")
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        cur = self.objects.get(key)
        if cur is None:
            raise errors.NotFound("gone")
        if obj["metadata"].get("resourceVersion") != cur["metadata"]["resourceVersion"]:
            raise errors.Conflict("stale resourceVersion")
        stored = copy.deepcopy(obj)
        self.objects[key] = stored
        return self._bump(stored)

    # helpers for tests
    def spec(self) -> dict[str, Any]:
        return dict(self.objects[(NS, NAME)]["spec"])

    def put_spec(self, **spec: Any) -> None:
        """Write the Lease as another process would."""
        obj = self.objects.setdefault((NS, NAME), {"metadata": {"name": NAME, "namespace": NS}, "spec": {}})
        obj["spec"] = spec
        self._bump(obj)


def elector(
    store: FakeLeases,
    clock: FakeTime,
    identity: str = "me",
    config: LeaderElectionConfig | None = None,
    **kw: Any,
) -> LeaderElector:
    return LeaderElector(
        store,
        NS,
        NAME,
        identity=identity,
        config=config or LeaderElectionConfig(),
        clock=clock,
        sleep=clock.sleep,
        **kw,
    )


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def store() -> FakeLeases:
    return FakeLeases()


# ---- configuration ----------------------------------------------------------------------------------


def test_defaults_are_controller_runtime_s() -> None:
    cfg = LeaderElectionConfig()
    assert (cfg.lease_duration, cfg.renew_deadline, cfg.retry_period, cfg.jitter_factor) == (15.0, 10.0, 2.0, 1.2)
    assert cfg.release_on_cancel is False
    assert cfg.effective_request_timeout == 5.0
    assert LeaderElectionConfig(lease_duration=3, renew_deadline=1.5, retry_period=0.5).effective_request_timeout == 1.0
    assert cfg.lease_duration_seconds == 15


@pytest.mark.parametrize(
    ("lease", "renew", "retry"),
    [
        (10, 10, 2),  # lease must exceed renew
        (9, 10, 2),
        (15, 2.4, 2),  # renew must exceed 1.2 * retry (equal is not enough)
        (15, 2, 2),
        (15, 10, 0),
        (15, 10, -1),
        (0.5, 0.4, 0.1),  # the record carries whole seconds
    ],
)
def test_validation_rejects_bad_timings(lease: float, renew: float, retry: float) -> None:
    with pytest.raises(ValueError):
        LeaderElectionConfig(lease_duration=lease, renew_deadline=renew, retry_period=retry).validate()


def test_validation_accepts_the_tight_test_timings() -> None:
    LeaderElectionConfig(lease_duration=2, renew_deadline=1.5, retry_period=0.3).validate()
    LeaderElectionConfig(lease_duration=15, renew_deadline=2.41, retry_period=2).validate()


def test_identity_defaults_to_hostname_underscore_uuid(store: FakeLeases) -> None:
    a = LeaderElector(store, NS, NAME)
    b = LeaderElector(store, NS, NAME)
    host, _, uid = a.identity.rpartition("_")
    assert host == socket.gethostname()
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", uid)
    assert a.identity != b.identity
    with pytest.raises(ValueError):
        LeaderElector(store, NS, NAME, identity="")
    with pytest.raises(ValueError):
        LeaderElector(store, NS, "", identity="x")


def test_jitter_stays_within_retry_times_one_to_two_point_two(store: FakeLeases) -> None:
    low = LeaderElector(store, NS, NAME, identity="a", rand=lambda: 0.0)
    high = LeaderElector(store, NS, NAME, identity="a", rand=lambda: 0.999999999)
    assert low.jittered_retry_period() == 2.0
    assert 4.39 < high.jittered_retry_period() < 4.4
    real = LeaderElector(store, NS, NAME, identity="a")
    samples = [real.jittered_retry_period() for _ in range(2000)]
    assert all(2.0 <= s < 4.4 for s in samples)
    assert max(samples) - min(samples) > 1.5  # actually jittered


def test_micro_time_format() -> None:
    dt = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert format_micro_time(dt) == "2026-01-02T03:04:05.000006Z"
    assert format_micro_time(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000000Z"


def test_record_round_trips_through_a_lease_spec() -> None:
    spec = {
        "holderIdentity": "x",
        "leaseDurationSeconds": 7,
        "acquireTime": "2026-01-02T03:04:05.000006Z",
        "renewTime": "2026-01-02T03:04:06.000006Z",
        "leaseTransitions": 3,
    }
    rec = LeaderElectionRecord.from_lease_spec(spec)
    assert rec.to_lease_spec() == spec
    assert LeaderElectionRecord.from_lease_spec(None) == LeaderElectionRecord()


# ---- try_acquire_or_renew -----------------------------------------------------------------------


async def test_missing_lease_is_created_with_the_full_record(store: FakeLeases, clock: FakeTime) -> None:
    le = elector(store, clock)
    assert await le.try_acquire_or_renew()
    spec = store.spec()
    assert spec["holderIdentity"] == "me"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0  # creation is not a transition
    assert spec["acquireTime"] == spec["renewTime"]
    assert MICRO.match(spec["renewTime"])
    assert store.calls == ["GET", "POST"]


async def test_standby_waits_for_the_record_s_duration_by_its_own_clock_whatever_renew_time_says(
    store: FakeLeases, clock: FakeTime
) -> None:
    # renewTime years in the past: a clock-comparing elector would take over at once.
    store.put_spec(
        holderIdentity="other",
        leaseDurationSeconds=7,  # the record's value wins over the local 15 s
        acquireTime="2001-01-01T00:00:00.000000Z",
        renewTime="2001-01-01T00:00:00.000000Z",
        leaseTransitions=4,
    )
    le = elector(store, clock)
    t0 = clock.now
    assert not await le.try_acquire_or_renew()  # first sight: countdown starts now
    assert le.observed_time == t0
    clock.advance(6.99)
    assert not await le.try_acquire_or_renew()
    assert store.spec()["holderIdentity"] == "other"
    clock.advance(0.02)
    assert await le.try_acquire_or_renew()
    spec = store.spec()
    assert spec["holderIdentity"] == "me"
    assert spec["leaseTransitions"] == 5  # a takeover
    assert spec["leaseDurationSeconds"] == 15


async def test_renew_time_in_the_future_does_not_extend_the_wait(store: FakeLeases, clock: FakeTime) -> None:
    store.put_spec(
        holderIdentity="other",
        leaseDurationSeconds=3,
        renewTime="2999-01-01T00:00:00.000000Z",
        acquireTime="2999-01-01T00:00:00.000000Z",
    )
    le = elector(store, clock)
    assert not await le.try_acquire_or_renew()
    clock.advance(3.01)
    assert await le.try_acquire_or_renew()


async def test_every_observed_change_restarts_the_countdown(store: FakeLeases, clock: FakeTime) -> None:
    store.put_spec(holderIdentity="other", leaseDurationSeconds=5, renewTime="2026-01-01T00:00:00.000000Z")
    le = elector(store, clock)
    assert not await le.try_acquire_or_renew()
    for i in range(1, 6):  # the holder keeps renewing every 4 s: never expires for the standby
        clock.advance(4)
        store.put_spec(holderIdentity="other", leaseDurationSeconds=5, renewTime=f"2026-01-01T00:00:0{i}.000000Z")
        assert not await le.try_acquire_or_renew()
    seen = le.observed_time
    clock.advance(4.99)  # now the holder stops
    assert not await le.try_acquire_or_renew()
    assert le.observed_time == seen  # an unchanged record does not restart the countdown
    clock.advance(0.02)
    assert await le.try_acquire_or_renew()


async def test_unchanged_metadata_only_change_does_not_restart_the_countdown(
    store: FakeLeases, clock: FakeTime
) -> None:
    store.put_spec(holderIdentity="other", leaseDurationSeconds=5)
    le = elector(store, clock)
    assert not await le.try_acquire_or_renew()
    clock.advance(3)
    store.objects[(NS, NAME)]["metadata"]["labels"] = {"x": "y"}
    store._bump(store.objects[(NS, NAME)])
    assert not await le.try_acquire_or_renew()
    clock.advance(2.01)
    assert await le.try_acquire_or_renew()


async def test_leader_renews_on_the_fast_path_keeping_acquire_time_and_transitions(
    store: FakeLeases, clock: FakeTime
) -> None:
    store.put_spec(holderIdentity="", leaseDurationSeconds=1, leaseTransitions=2)
    le = elector(store, clock, wall_clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    assert await le.try_acquire_or_renew()  # empty holder: no wait
    acquired = store.spec()
    assert acquired["leaseTransitions"] == 3
    store.calls.clear()
    le._wall_clock = lambda: datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC)
    clock.advance(2)
    assert await le.try_acquire_or_renew()
    assert store.calls == ["PUT"]  # no GET
    renewed = store.spec()
    assert renewed["acquireTime"] == acquired["acquireTime"]
    assert renewed["renewTime"] == "2026-01-01T00:00:02.000000Z"
    assert renewed["leaseTransitions"] == 3
    assert le.slowpath_count == 0


async def test_fast_path_conflict_falls_back_to_the_slow_path(store: FakeLeases, clock: FakeTime) -> None:
    le = elector(store, clock)
    assert await le.try_acquire_or_renew()
    # Someone touched the Lease (a label): our cached resourceVersion is stale.
    store.objects[(NS, NAME)]["metadata"]["labels"] = {"touched": "yes"}
    store._bump(store.objects[(NS, NAME)])
    store.calls.clear()
    clock.advance(2)
    assert await le.try_acquire_or_renew()
    assert store.calls == ["PUT", "GET", "PUT"]
    assert le.slowpath_count == 1
    assert store.spec()["leaseTransitions"] == 0
    assert store.spec()["holderIdentity"] == "me"


async def test_transitions_count_takeovers_only(store: FakeLeases, clock: FakeTime) -> None:
    cfg = LeaderElectionConfig(lease_duration=3, renew_deadline=2, retry_period=1)
    a = elector(store, clock, "a", cfg)
    b = elector(store, clock, "b", cfg)
    assert await a.try_acquire_or_renew()
    assert store.spec()["leaseTransitions"] == 0
    for _ in range(3):
        clock.advance(1)
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
    assert store.spec()["leaseTransitions"] == 0
    clock.advance(3.01)  # a stopped renewing
    assert await b.try_acquire_or_renew()
    assert store.spec()["leaseTransitions"] == 1
    clock.advance(1)
    assert await b.try_acquire_or_renew()
    assert store.spec()["leaseTransitions"] == 1
    # a's cached view still says it leads, but its lease by its own observation has expired:
    # fast path skipped, slow path sees b's record (new) and must wait.
    assert not await a.try_acquire_or_renew()
    assert store.spec()["holderIdentity"] == "b"
    clock.advance(3.01)
    assert await a.try_acquire_or_renew()
    assert store.spec()["leaseTransitions"] == 2


async def test_an_api_error_is_a_failed_attempt(store: FakeLeases, clock: FakeTime) -> None:
    le = elector(store, clock)
    store.fail = errors.ServerError("boom", status=500)
    assert not await le.try_acquire_or_renew()
    store.fail = None
    assert await le.try_acquire_or_renew()


async def test_release_writes_an_empty_holder_and_one_second_and_a_standby_takes_over_at_once(
    store: FakeLeases, clock: FakeTime
) -> None:
    a = elector(store, clock, "a")
    b = elector(store, clock, "b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert await a.release()
    spec = store.spec()
    assert spec["holderIdentity"] == ""
    assert spec["leaseDurationSeconds"] == 1
    assert spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"]
    assert await b.try_acquire_or_renew()  # no waiting: holder is empty
    assert store.spec()["leaseTransitions"] == 1
    # a no longer holds it: releasing again writes nothing.
    store.calls.clear()
    assert await a.release()
    assert store.calls == ["GET"]
    assert store.spec()["holderIdentity"] == "b"


async def test_health_check_reports_a_leader_that_stopped_observing_its_renewals(
    store: FakeLeases, clock: FakeTime
) -> None:
    le = elector(store, clock)
    assert le.check() is None  # not leading: healthy
    await le.acquire()
    assert le.check() is None
    clock.advance(15 + 5.01)
    assert le.check(5.0) is not None
    assert le.check(6.0) is None


async def test_write_fence_closes_renew_deadline_after_the_last_renewal_was_sent(
    store: FakeLeases, clock: FakeTime
) -> None:
    """A leader stopped (SIGSTOP) past its lease and resumed must not write before it notices the loss:
    its fence closes renew_deadline (10 s) after its last successful renewal was sent, 5 s before a
    standby may take over (lease_duration, 15 s, after it saw that renewal)."""
    le = elector(store, clock)
    assert le.may_write()  # never led: start-up work may write
    await le.acquire()
    assert le.may_write()
    clock.advance(9.9)
    assert le.may_write()
    clock.advance(0.2)  # 10.1 s since the acquiring request was sent, no renewal since: frozen
    assert not le.may_write()
    assert await le.try_acquire_or_renew()  # a renewal reopens it for another renew_deadline
    assert le.may_write()
    clock.advance(10.1)
    assert not le.may_write()
    # Once another holder took the lease over, nothing reopens the fence without a renewal.
    other = elector(store, clock, "other")
    clock.advance(15.1)
    assert await other.try_acquire_or_renew() is False  # first sighting of the record starts its countdown
    clock.advance(15.1)
    assert await other.try_acquire_or_renew()
    assert not le.may_write()


# ---- run() ------------------------------------------------------------------------------------------


def gauge(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("leader_election_master_status", {"name": NAME})


async def test_metric_is_zero_at_construction_then_one_while_leading(store: FakeLeases, clock: FakeTime) -> None:
    reg = CollectorRegistry()
    le = elector(store, clock, registry=reg)
    le2 = elector(store, clock, "other", registry=reg)  # a second elector shares the family
    assert gauge(reg) == 0.0
    started = asyncio.Event()
    stopped = []

    async def work() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(le.run(work, on_stopped_leading=lambda: stopped.append(True)))
    await asyncio.wait_for(started.wait(), 5)
    assert le.is_leader and gauge(reg) == 1.0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not le.is_leader and gauge(reg) == 0.0
    assert stopped == [True]
    assert not le2.is_leader


async def test_lost_lease_cancels_leader_work_at_once_and_raises(store: FakeLeases, clock: FakeTime) -> None:
    reg = CollectorRegistry()
    le = elector(store, clock, registry=reg)
    started = asyncio.Event()
    cancelled_at: list[float] = []
    renewals_ok = 0

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled_at.append(clock.now)
            raise

    task = asyncio.create_task(le.run(work))
    await asyncio.wait_for(started.wait(), 5)
    # Let a few renewals succeed, then make the API fail from a known moment on.
    while renewals_ok < 3:
        before = len(store.calls)
        await asyncio.sleep(0)
        renewals_ok += store.calls[before:].count("PUT")
    fail_from = clock.now
    store.fail = ConnectionFailed("refused")
    with pytest.raises(LeaderElectionLost):
        await asyncio.wait_for(task, 5)
    assert cancelled_at, "leader work was not cancelled"
    lost_after = cancelled_at[0] - fail_from
    # The first failing renewal starts within one retry period; it gives up renew_deadline later.
    assert 10.0 <= lost_after <= 10.0 + 2.0 + 1e-6
    assert gauge(reg) == 0.0
    assert not le.is_leader


async def test_lost_renewals_stop_when_someone_else_holds_the_lease(store: FakeLeases, clock: FakeTime) -> None:
    le = elector(store, clock)
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(le.run(work))
    await asyncio.wait_for(started.wait(), 5)
    t0 = clock.now
    store.put_spec(holderIdentity="usurper", leaseDurationSeconds=15)
    with pytest.raises(LeaderElectionLost):
        await asyncio.wait_for(task, 5)
    assert clock.now - t0 <= 12.0 + 1e-6
    assert store.spec()["holderIdentity"] == "usurper"  # never overwritten


async def test_cancel_releases_only_when_configured(clock: FakeTime) -> None:
    for release, holder in ((True, ""), (False, "me")):
        store = FakeLeases()
        le = elector(store, clock, config=LeaderElectionConfig(release_on_cancel=release))
        started = asyncio.Event()

        async def work(ev: asyncio.Event = started) -> None:
            ev.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(le.run(work))
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert store.spec()["holderIdentity"] == holder
        if release:
            assert store.spec()["leaseDurationSeconds"] == 1


async def test_on_stopped_leading_runs_even_if_never_leading(store: FakeLeases, clock: FakeTime) -> None:
    store.put_spec(holderIdentity="other", leaseDurationSeconds=15)
    le = elector(store, clock)
    stopped: list[bool] = []
    ran: list[bool] = []

    async def work() -> None:
        ran.append(True)

    task = asyncio.create_task(le.run(work, on_stopped_leading=lambda: stopped.append(True)))
    await until(lambda: clock.now >= 1008)  # a few acquire attempts
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stopped == [True] and ran == []
    assert store.spec()["holderIdentity"] == "other"
    # acquire attempts are spaced by jittered retry periods
    assert clock.sleeps and all(2.0 <= s < 4.4 for s in clock.sleeps)


async def test_failing_leader_work_ends_the_term_and_releases(store: FakeLeases, clock: FakeTime) -> None:
    le = elector(store, clock, config=LeaderElectionConfig(release_on_cancel=True))

    async def work() -> None:
        raise RuntimeError("leader work broke")

    with pytest.raises(RuntimeError, match="leader work broke"):
        await asyncio.wait_for(le.run(work), 5)
    assert store.spec()["holderIdentity"] == ""
    assert not le.is_leader


async def test_leader_work_returning_keeps_the_lease_until_cancelled(store: FakeLeases, clock: FakeTime) -> None:
    le = elector(store, clock)
    done = asyncio.Event()

    async def work() -> None:
        done.set()

    task = asyncio.create_task(le.run(work))
    await asyncio.wait_for(done.wait(), 5)
    start = clock.now
    await until(lambda: clock.now >= start + 20)  # renewals go on
    assert le.is_leader and not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_became_leader_event_is_recorded_on_the_lease(store: FakeLeases, clock: FakeTime) -> None:
    rec = FakeRecorder()
    new_leaders: list[str] = []
    le = elector(store, clock, recorder=rec, on_new_leader=new_leaders.append)
    await le.acquire()
    assert rec.events == [("Normal", "LeaderElection", "me became leader")]
    subject = rec.records[0].obj
    assert subject["kind"] == "Lease" and subject["apiVersion"] == "coordination.k8s.io/v1"
    assert subject["metadata"]["name"] == NAME and subject["metadata"]["namespace"] == NS
    assert new_leaders == ["me"]
