"""Event recorder logic against an in-memory events API and a fake clock."""

from __future__ import annotations

import asyncio
import copy
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from internal.client import ConnectionFailed, errors
from internal.client.resources import EVENTS
from internal.events import (
    EventRecorder,
    FakeRecorder,
    IsomorphicKey,
    SpamFilter,
    object_reference,
    reporting_instance_for,
    truncate_utf8,
)

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p1", "namespace": "ns", "uid": "u-1", "resourceVersion": "42"},
}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "u-n"}}


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    """Yield to the loop until ``pred()`` holds (real-time deadline, as a safety net only)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached")
        await asyncio.sleep(0)


class FakeTime:
    def __init__(self) -> None:
        self.now = 500.0
        self.wall = datetime(2026, 3, 1, tzinfo=UTC)
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall_clock(self) -> datetime:
        return self.wall + timedelta(seconds=self.now)

    def advance(self, dt: float) -> None:
        self.now += dt

    async def sleep(self, dt: float) -> None:
        self.sleeps.append(dt)
        await asyncio.sleep(0)


class FakeEvents:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self.failures: list[BaseException] = []  # raised by the next calls, in order

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    async def create(self, res: Any, obj: Any, namespace: str | None = None, **kw: Any) -> Any:
        assert res is EVENTS
        self.calls.append(("create", obj["metadata"]["name"], copy.deepcopy(obj)))
        self._maybe_fail()
        key = (namespace or "", obj["metadata"]["name"])
        if key in self.objects:
            raise errors.AlreadyExists("exists", reason="AlreadyExists")
        self.objects[key] = copy.deepcopy(obj)
        return obj

    async def patch(self, res: Any, name: str, patch: Any, namespace: str | None = None, **kw: Any) -> Any:
        assert res is EVENTS and kw.get("patch_type") == "merge"
        self.calls.append(("patch", name, copy.deepcopy(patch)))
        self._maybe_fail()
        key = (namespace or "", name)
        if key not in self.objects:
            raise errors.NotFound("not found")
        self.objects[key].update(copy.deepcopy(patch))
        return self.objects[key]

    def verbs(self) -> list[str]:
        return [c[0] for c in self.calls]


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def api() -> FakeEvents:
    return FakeEvents()


def recorder(api: FakeEvents, clock: FakeTime, **kw: Any) -> EventRecorder:
    kw.setdefault("reporting_instance", "ctl-host")
    return EventRecorder(
        api,
        "ctl",
        clock=clock,
        wall_clock=clock.wall_clock,
        sleep=clock.sleep,
        **kw,
    )


async def drain(rec: EventRecorder) -> None:
    """Process everything queued and wait for the writes (what run() does continuously)."""
    while not rec._queue.empty():
        rec._observe(rec._queue.get_nowait())
    while rec._tasks:
        await asyncio.wait(set(rec._tasks))


# ---- building events --------------------------------------------------------------------------------


def test_object_reference_from_an_object_dict() -> None:
    assert object_reference(POD) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "ns",
        "name": "p1",
        "uid": "u-1",
        "resourceVersion": "42",
    }
    assert "namespace" not in object_reference(NODE)


def test_reporting_instance_is_controller_dash_hostname_capped_at_128() -> None:
    assert reporting_instance_for("ctl") == f"ctl-{socket.gethostname()}"[:128]
    assert len(reporting_instance_for("c" * 100, "h" * 100)) == 128
    rec = EventRecorder(FakeEvents(), "kuberay-operator")
    assert rec.reporting_instance == f"kuberay-operator-{socket.gethostname()}"[:128]


def test_truncate_utf8_never_splits_characters() -> None:
    assert truncate_utf8("abc", 3) == "abc"
    cut = truncate_utf8("é" * 600, 1024)
    assert len(cut.encode()) <= 1024 and cut.endswith("...")


async def test_event_has_the_events_v1_fields(api: FakeEvents, clock: FakeTime) -> None:
    rec = recorder(api, clock)
    assert rec.event(POD, "Warning", "FailedCreate", "x" * 2000, action="CreatePod", related=NODE)
    await drain(rec)
    [(verb, name, ev)] = api.calls
    assert verb == "create"
    assert name.startswith("p1.")
    int(name.split(".", 1)[1], 16)
    assert ev["apiVersion"] == "events.k8s.io/v1" and ev["kind"] == "Event"
    assert ev["metadata"]["namespace"] == "ns"
    assert ev["type"] == "Warning"
    assert ev["reason"] == "FailedCreate"
    assert ev["action"] == "CreatePod"
    assert ev["reportingController"] == "ctl"
    assert ev["reportingInstance"] == "ctl-host"
    assert ev["regarding"] == object_reference(POD)
    assert ev["related"] == object_reference(NODE)
    assert len(ev["note"].encode()) <= 1024
    assert ev["eventTime"] == "2026-03-01T00:08:20.000000Z"
    assert "series" not in ev


async def test_cluster_scoped_objects_get_events_in_default(api: FakeEvents, clock: FakeTime) -> None:
    rec = recorder(api, clock)
    rec.event(NODE, "Normal", "Ready", "node is ready")
    await drain(rec)
    assert api.calls[0][2]["metadata"]["namespace"] == "default"
    assert api.calls[0][2]["action"] == "Ready"  # action defaults to the reason


def test_invalid_events_are_dropped_and_counted(api: FakeEvents, clock: FakeTime) -> None:
    rec = recorder(api, clock)
    assert not rec.event(POD, "Error", "X", "bad type")
    assert not rec.event({"metadata": {}}, "Normal", "X", "no name")
    assert not rec.event(POD, "Normal", "", "no reason")
    assert rec.stats.dropped_invalid == 3 and rec.queued == 0


def test_event_names_are_unique_even_within_one_nanosecond(api: FakeEvents, clock: FakeTime) -> None:
    rec = recorder(api, clock)
    names = {rec._event_name("p") for _ in range(1000)}
    assert len(names) == 1000
    assert len(rec._event_name("x" * 253)) <= 253


# ---- queue and spam filter -------------------------------------------------------------------------


def test_full_queue_drops_without_blocking(api: FakeEvents, clock: FakeTime) -> None:
    reg = CollectorRegistry()
    rec = recorder(api, clock, queue_size=3, registry=reg)
    results = [rec.event(POD, "Normal", f"R{i}", "n") for i in range(5)]
    assert results == [True, True, True, False, False]
    assert rec.stats.dropped_queue_full == 2
    assert (
        reg.get_sample_value("event_recorder_dropped_events_total", {"controller": "ctl", "reason": "queue_full"})
        == 2.0
    )


def test_default_queue_holds_1000(api: FakeEvents, clock: FakeTime) -> None:
    rec = recorder(api, clock, spam_burst=10_000)
    accepted = sum(rec.event(POD, "Normal", f"R{i}", "n") for i in range(1100))
    assert accepted == 1000 and rec.stats.dropped_queue_full == 100


def test_spam_filter_token_bucket() -> None:
    t = FakeTime()
    f = SpamFilter(clock=t)
    key = SpamFilter.key(object_reference(POD), "Normal")
    assert [f.allow(key) for _ in range(26)] == [True] * 25 + [False]
    t.advance(299)
    assert not f.allow(key)
    t.advance(1.01)
    assert f.allow(key)
    assert not f.allow(key)
    t.advance(300 * 100)
    assert sum(f.allow(key) for _ in range(30)) == 25  # refills to the burst, no further


def test_spam_budget_is_per_object_and_type_across_resource_versions(api: FakeEvents, clock: FakeTime) -> None:
    rec = recorder(api, clock)
    newer = copy.deepcopy(POD)
    newer["metadata"]["resourceVersion"] = "43"
    for i in range(25):
        assert rec.event(POD if i % 2 else newer, "Normal", f"R{i}", "n")
    assert not rec.event(POD, "Normal", "R", "n")
    assert rec.event(POD, "Warning", "R", "n")  # its own bucket
    other = copy.deepcopy(POD)
    other["metadata"].update(name="p2", uid="u-2")
    assert rec.event(other, "Normal", "R", "n")
    assert rec.stats.dropped_spam == 1


def test_spam_filter_lru_is_bounded() -> None:
    f = SpamFilter(cache_size=10, clock=FakeTime())
    for i in range(50):
        f.allow(("o", str(i)))
    assert len(f._buckets) == 10


# ---- aggregation ---------------------------------------------------------------------------------


def test_isomorphic_key_ignores_the_note_but_not_type_or_object() -> None:
    base = {
        "type": "Normal",
        "action": "A",
        "reason": "R",
        "reportingController": "c",
        "reportingInstance": "i",
        "regarding": object_reference(POD),
        "note": "one",
    }
    assert IsomorphicKey.of(base) == IsomorphicKey.of({**base, "note": "two"})
    assert IsomorphicKey.of(base) != IsomorphicKey.of({**base, "type": "Warning"})
    assert IsomorphicKey.of(base) != IsomorphicKey.of({**base, "action": "B"})
    assert IsomorphicKey.of(base) != IsomorphicKey.of({**base, "related": object_reference(NODE)})
    assert IsomorphicKey.of(base) != IsomorphicKey.of({**base, "regarding": object_reference(NODE)})


async def test_repeats_become_a_series_count_two_patched_at_once_later_counts_flushed(
    api: FakeEvents, clock: FakeTime
) -> None:
    rec = recorder(api, clock)
    rec.event(POD, "Normal", "Scaled", "scaled to 3")
    await drain(rec)
    assert api.verbs() == ["create"]
    name = api.calls[0][1]

    clock.advance(10)
    rec.event(POD, "Normal", "Scaled", "scaled to 3")
    await drain(rec)
    assert api.verbs() == ["create", "patch"]
    assert api.calls[1][1] == name
    assert api.calls[1][2] == {"series": {"count": 2, "lastObservedTime": "2026-03-01T00:08:30.000000Z"}}

    for _ in range(3):  # counted in memory only
        clock.advance(10)
        rec.event(POD, "Normal", "Scaled", "scaled to 3")
    await drain(rec)
    assert api.verbs() == ["create", "patch"]
    assert rec.stats.aggregated == 3

    rec.refresh()  # the periodic (30 min) flush
    await drain(rec)
    assert api.calls[-1] == ("patch", name, {"series": {"count": 5, "lastObservedTime": "2026-03-01T00:09:00.000000Z"}})
    rec.refresh()  # nothing new: no request
    await drain(rec)
    assert len(api.calls) == 3
    assert api.objects[("ns", name)]["series"]["count"] == 5


async def test_a_series_finishes_after_six_idle_minutes(api: FakeEvents, clock: FakeTime) -> None:
    rec = recorder(api, clock)
    for _ in range(3):
        rec.event(POD, "Normal", "Scaled", "n")
        clock.advance(1)
    await drain(rec)
    assert api.verbs() == ["create", "patch"]
    clock.advance(360.5)
    rec.event(POD, "Normal", "Scaled", "n")  # the old series is over: final count, then a new event
    await drain(rec)
    assert api.verbs() == ["create", "patch", "patch", "create"]
    assert api.calls[2][2]["series"]["count"] == 3
    assert api.calls[3][1] != api.calls[0][1]


async def test_sweep_forgets_idle_singletons_and_writes_final_counts(api: FakeEvents, clock: FakeTime) -> None:
    rec = recorder(api, clock)
    rec.event(POD, "Normal", "Once", "n")
    for _ in range(4):
        rec.event(POD, "Warning", "Often", "n")
    await drain(rec)
    assert len(rec._series) == 2
    clock.advance(200)
    rec.sweep()
    assert len(rec._series) == 2  # not idle long enough
    clock.advance(161)
    rec.sweep()
    await drain(rec)
    assert len(rec._series) == 0
    assert api.calls[-1][0] == "patch" and api.calls[-1][2]["series"]["count"] == 4


async def test_patch_of_a_missing_event_creates_it_with_its_series(api: FakeEvents, clock: FakeTime) -> None:
    rec = recorder(api, clock)
    rec.event(POD, "Normal", "R", "n")
    await drain(rec)
    api.objects.clear()  # the event expired server-side (TTL)
    rec.event(POD, "Normal", "R", "n")
    await drain(rec)
    assert api.verbs() == ["create", "patch", "create"]
    assert api.calls[2][2]["series"]["count"] == 2


async def test_transport_errors_are_retried_with_jittered_ten_second_sleeps(api: FakeEvents, clock: FakeTime) -> None:
    rec = recorder(api, clock)
    api.failures = [ConnectionFailed("refused"), errors.Timeout("slow"), errors.ServerError("500", status=500)]
    rec.event(POD, "Normal", "R", "n")
    await drain(rec)
    assert api.verbs() == ["create"] * 4
    assert len(api.objects) == 1
    assert len(clock.sleeps) == 3 and all(7.5 <= s <= 12.5 for s in clock.sleeps)


async def test_gives_up_after_twelve_tries(api: FakeEvents, clock: FakeTime) -> None:
    rec = recorder(api, clock)
    api.failures = [ConnectionFailed("refused")] * 20
    rec.event(POD, "Normal", "R", "n")
    await drain(rec)
    assert api.verbs() == ["create"] * 12
    assert len(clock.sleeps) == 11
    assert rec.stats.failed == 1


async def test_rejected_events_are_not_retried(api: FakeEvents, clock: FakeTime) -> None:
    rec = recorder(api, clock)
    api.failures = [errors.Invalid("bad", status=422)]
    rec.event(POD, "Normal", "R", "n")
    await drain(rec)
    assert api.verbs() == ["create"]
    assert rec.stats.failed == 1


def test_retry_delay_jitter_is_plus_minus_a_quarter(api: FakeEvents, clock: FakeTime) -> None:
    lo = recorder(api, clock, rand=lambda: 0.0)
    hi = recorder(api, clock, rand=lambda: 1.0)
    assert lo._retry_delay() == pytest.approx(7.5)
    assert hi._retry_delay() == pytest.approx(12.5)
    assert recorder(api, clock, retry_interval=0.01, rand=lambda: 0.5)._retry_delay() == pytest.approx(0.01)


async def test_series_writes_are_ordered_behind_the_create(clock: FakeTime) -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()

    class SlowCreate(FakeEvents):
        async def create(self, res: Any, obj: Any, namespace: str | None = None, **kw: Any) -> Any:
            entered.set()
            await gate.wait()
            return await super().create(res, obj, namespace, **kw)

    api = SlowCreate()
    rec = recorder(api, clock)
    rec.event(POD, "Normal", "R", "n")
    rec.event(POD, "Normal", "R", "n")
    while not rec._queue.empty():
        rec._observe(rec._queue.get_nowait())
    await asyncio.wait_for(entered.wait(), 5)  # the create is in flight
    for _ in range(10):
        await asyncio.sleep(0)  # give a racing patch every chance to go out
    assert api.calls == []  # the patch waits for the create
    gate.set()
    await drain(rec)
    assert api.verbs() == ["create", "patch"]
    assert clock.sleeps == []


async def test_run_sends_and_flushes_series_on_shutdown(api: FakeEvents) -> None:
    rec = EventRecorder(api, "ctl", retry_interval=0.01)
    task = asyncio.create_task(rec.run())
    for _ in range(4):
        rec.event(POD, "Normal", "R", "n")

    await until(lambda: len(api.calls) >= 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert api.verbs() == ["create", "patch", "patch"]
    assert api.calls[-1][2]["series"]["count"] == 4


async def test_run_stops_taking_from_the_queue_while_writes_are_stuck() -> None:
    gate = asyncio.Event()

    class Stuck(FakeEvents):
        async def create(self, res: Any, obj: Any, namespace: str | None = None, **kw: Any) -> Any:
            await gate.wait()
            return await super().create(res, obj, namespace, **kw)

    api = Stuck()
    rec = EventRecorder(api, "ctl", max_inflight=2, queue_size=3, shutdown_timeout=0.5)
    task = asyncio.create_task(rec.run())
    other = copy.deepcopy(POD)
    for i in range(10):
        other["metadata"]["name"] = f"p{i}"
        rec.event(other, "Normal", "R", "n")
        await until(lambda: rec.queued == 0 or len(rec._tasks) >= 2)  # the consumer took it, or is blocked
    assert len(rec._tasks) == 2
    assert rec.stats.dropped_queue_full == 10 - 2 - 3
    gate.set()

    await until(lambda: len(api.objects) >= 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# ---- FakeRecorder ------------------------------------------------------------------------------------


def test_fake_recorder_keeps_type_reason_note() -> None:
    rec = FakeRecorder()
    rec.event(POD, "Normal", "Created", "created pod p1")
    rec.eventf(POD, "Warning", "Failed", "failed %d times", 3)
    assert rec.events == [("Normal", "Created", "created pod p1"), ("Warning", "Failed", "failed 3 times")]
    assert rec.records[0].obj is POD
    rec.clear()
    assert rec.events == []
