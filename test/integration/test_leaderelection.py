"""Leader election on a real API server, with short timings: lease 2 s, renew deadline 1.5 s,
retry period 0.3 s (jittered attempts every 0.3 to 0.66 s)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from internal.client import Client, api_client, load_configuration
from internal.client.resources import LEASES
from internal.leaderelection import LeaderElectionConfig, LeaderElectionLost, LeaderElector

LEASE = 2.0
RENEW = 1.5
RETRY = 0.3
MAX_POLL = RETRY * (1 + 1.2)  # longest gap between two acquire attempts
SLACK = 0.6  # API round trips and scheduling on a small, busy machine
NAME = "kuberay-lock"

# Each test runs several electors, each polling the server a few times a second.
pytestmark = pytest.mark.timeout(120)


def config(**kw: Any) -> LeaderElectionConfig:
    return LeaderElectionConfig(lease_duration=LEASE, renew_deadline=RENEW, retry_period=RETRY, **kw)


async def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll a condition (sync or async) until truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class Candidate:
    """One elector running ``run()`` in a task, with timestamps of its term."""

    elector: LeaderElector
    task: asyncio.Task[None] | None = None
    started_at: float | None = None
    work_cancelled_at: float | None = None
    stopped: bool = False
    events: list[str] = field(default_factory=list)

    def start(self) -> Candidate:
        async def work() -> None:
            self.started_at = time.monotonic()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.work_cancelled_at = time.monotonic()
                raise

        def stopped() -> None:
            self.stopped = True

        self.task = asyncio.create_task(self.elector.run(work, on_stopped_leading=stopped))
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, LeaderElectionLost):
            await self.task


@pytest.fixture
async def client(control_plane: Any) -> AsyncIterator[Client]:
    cfg = await load_configuration(str(control_plane.kubeconfig))
    c = Client(api_client(cfg, 10))
    yield c
    await c.close()


@pytest.fixture
async def candidates(client: Client, namespace: str) -> AsyncIterator[Callable[..., Candidate]]:
    made: list[Candidate] = []

    def make(identity: str, **kw: Any) -> Candidate:
        registry = kw.pop("registry", None)
        cfg = kw.pop("config", None) or config()
        le = LeaderElector(client, namespace, NAME, identity=identity, config=cfg, registry=registry, **kw)
        cand = Candidate(le)
        made.append(cand)
        return cand

    yield make
    for cand in made:
        if cand.task is not None and not cand.task.done():
            await cand.stop()


async def lease_spec(client: Client, namespace: str) -> dict[str, Any]:
    return dict((await client.get(LEASES, NAME, namespace)).get("spec") or {})


def leader_of(cands: list[Candidate]) -> list[str]:
    return [c.elector.identity for c in cands if c.elector.is_leader]


async def test_exactly_one_of_two_leads_and_the_standby_never_acquires_while_the_holder_renews(
    client: Client, namespace: str, candidates: Callable[..., Candidate]
) -> None:
    reg = CollectorRegistry()
    a = candidates("a", registry=reg).start()
    b = candidates("b", registry=reg).start()
    await wait_for(lambda: leader_of([a, b]), 10, "a leader")
    first = leader_of([a, b])
    assert len(first) == 1
    holder = next(c for c in (a, b) if c.elector.is_leader)
    standby = b if holder is a else a
    spec = await lease_spec(client, namespace)
    assert spec["holderIdentity"] == holder.elector.identity
    assert spec["leaseDurationSeconds"] == 2
    assert spec["leaseTransitions"] == 0
    assert reg.get_sample_value("leader_election_master_status", {"name": NAME}) == 1.0

    # Three lease durations: the holder keeps renewing, the standby keeps observing changes.
    renew_times = set()
    end = time.monotonic() + 3 * LEASE
    while time.monotonic() < end:
        assert leader_of([a, b]) == [holder.elector.identity]
        assert standby.started_at is None
        spec = await lease_spec(client, namespace)
        assert spec["holderIdentity"] == holder.elector.identity
        renew_times.add(spec["renewTime"])
        await asyncio.sleep(0.1)
    assert len(renew_times) >= 6  # renewed about every retry period
    assert (await lease_spec(client, namespace))["leaseTransitions"] == 0
    assert standby.elector.leader == holder.elector.identity


async def test_standby_takes_over_within_lease_duration_when_the_leader_dies_without_release(
    client: Client, namespace: str, candidates: Callable[..., Candidate]
) -> None:
    a = candidates("a").start()
    await wait_for(lambda: a.elector.is_leader, 10, "a to lead")
    b = candidates("b").start()
    await wait_for(lambda: b.elector.leader == "a", 5, "b to observe a")
    a_task = a.task
    assert a_task is not None
    killed = time.monotonic()
    a_task.cancel()  # renewals stop; release_on_cancel is off, so the Lease still names a
    with contextlib.suppress(asyncio.CancelledError):
        await a_task
    assert (await lease_spec(client, namespace))["holderIdentity"] == "a"

    await wait_for(lambda: b.started_at is not None, LEASE + 2 * MAX_POLL + 5, "b to take over")
    assert b.started_at is not None
    takeover = b.started_at - killed
    print(f"\ntakeover after the leader died: {takeover:.2f}s")
    # a renewed at most ~one retry period before it died; b needs a full lease duration of
    # unchanged observations after its first look at the final record.
    assert LEASE - RETRY - SLACK <= takeover <= LEASE + 2 * MAX_POLL + SLACK
    spec = await lease_spec(client, namespace)
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1


async def test_expiry_is_judged_by_local_observation_not_by_the_record_s_timestamps(
    client: Client, namespace: str, candidates: Callable[..., Candidate]
) -> None:
    # A record left by a long-dead holder, with a renewTime far in the past: a fresh process must
    # still wait the record's leaseDurationSeconds from its own first observation.
    for stamp in ("2001-01-01T00:00:00.000000Z", "2999-01-01T00:00:00.000000Z"):
        with contextlib.suppress(Exception):
            await client.delete(LEASES, NAME, namespace)
        await client.create(
            LEASES,
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": NAME},
                "spec": {
                    "holderIdentity": "ghost",
                    "leaseDurationSeconds": 3,  # not the local 2 s
                    "acquireTime": stamp,
                    "renewTime": stamp,
                    "leaseTransitions": 7,
                },
            },
            namespace,
        )
        cand = candidates(f"late-{stamp[:4]}")
        begun = time.monotonic()
        cand.start()
        await wait_for(lambda c=cand: c.started_at is not None, 3 + 2 * MAX_POLL + 5, "takeover of a dead lease")
        waited = cand.started_at - begun  # type: ignore[operator]
        print(f"\nrenewTime {stamp[:4]}: took over after {waited:.2f}s")
        assert 3.0 <= waited <= 3.0 + MAX_POLL + SLACK
        spec = await lease_spec(client, namespace)
        assert spec["holderIdentity"] == cand.elector.identity
        assert spec["leaseTransitions"] == 8
        await cand.stop()


async def test_with_release_on_cancel_a_standby_takes_over_within_one_retry_period(
    client: Client, namespace: str, candidates: Callable[..., Candidate]
) -> None:
    a = candidates("a", config=config(release_on_cancel=True)).start()
    await wait_for(lambda: a.elector.is_leader, 10, "a to lead")
    b = candidates("b").start()
    await wait_for(lambda: b.elector.leader == "a", 5, "b to observe a")
    released = time.monotonic()
    await a.stop()
    assert a.stopped and not a.elector.is_leader
    await wait_for(lambda: b.started_at is not None, 10, "b to take over")
    assert b.started_at is not None
    takeover = b.started_at - released
    print(f"\ntakeover after release: {takeover:.2f}s")
    assert takeover <= MAX_POLL + SLACK
    spec = await lease_spec(client, namespace)
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1


async def test_release_writes_empty_holder_and_one_second(
    client: Client, namespace: str, candidates: Callable[..., Candidate]
) -> None:
    a = candidates("a", config=config(release_on_cancel=True)).start()
    await wait_for(lambda: a.elector.is_leader, 10, "a to lead")
    await a.stop()
    spec = await lease_spec(client, namespace)
    assert spec["holderIdentity"] == ""
    assert spec["leaseDurationSeconds"] == 1
    assert spec["leaseTransitions"] == 0


async def test_leader_that_cannot_reach_the_server_stops_within_renew_deadline(
    control_plane: Any, client: Client, namespace: str, candidates: Callable[..., Candidate]
) -> None:
    reg = CollectorRegistry()
    a = candidates("a", registry=reg).start()
    await wait_for(lambda: a.elector.is_leader, 10, "a to lead")
    assert reg.get_sample_value("leader_election_master_status", {"name": NAME}) == 1.0

    cfg = copy.copy(await load_configuration(str(control_plane.kubeconfig)))
    cfg.host = "https://127.0.0.1:1"  # nothing listens: connection refused
    dead = Client(api_client(cfg, 2))
    try:
        cut = time.monotonic()
        a.elector.client = dead
        with pytest.raises(LeaderElectionLost):
            assert a.task is not None
            await asyncio.wait_for(asyncio.shield(a.task), RENEW + RETRY + 5)
        assert a.work_cancelled_at is not None
        stopped_after = a.work_cancelled_at - cut
        print(f"\nleader stopped {stopped_after:.2f}s after losing the server")
        assert RENEW - RETRY <= stopped_after <= RENEW + RETRY + SLACK
        assert not a.elector.is_leader and a.stopped
        assert reg.get_sample_value("leader_election_master_status", {"name": NAME}) == 0.0
    finally:
        await dead.close()


async def test_leader_whose_lease_was_taken_stops_within_renew_deadline_and_raises(
    client: Client, namespace: str, candidates: Callable[..., Candidate]
) -> None:
    reg = CollectorRegistry()
    a = candidates("a", registry=reg).start()
    await wait_for(lambda: a.elector.is_leader, 10, "a to lead")
    taken = time.monotonic()
    await client.patch(LEASES, NAME, {"spec": {"holderIdentity": "intruder"}}, namespace)
    assert a.task is not None
    with pytest.raises(LeaderElectionLost):
        await asyncio.wait_for(asyncio.shield(a.task), RENEW + RETRY + 5)
    assert a.work_cancelled_at is not None
    stopped_after = a.work_cancelled_at - taken
    print(f"\nleader stopped {stopped_after:.2f}s after its lease was taken")
    assert stopped_after <= RENEW + RETRY + SLACK
    assert reg.get_sample_value("leader_election_master_status", {"name": NAME}) == 0.0
    spec = await lease_spec(client, namespace)
    assert spec["holderIdentity"] == "intruder"  # the loser never wrote over it
