"""workqueue_* metrics: names, labels and buckets, and values after a scripted run on a fake clock."""

from __future__ import annotations

import asyncio

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry

from internal.workqueue import (
    FakeClock,
    ItemExponentialFailureRateLimiter,
    PrometheusMetricsProvider,
    Queue,
    RateLimitingQueue,
)
from internal.workqueue.metrics import EXCEEDED_CARDINALITY_LIMIT, PRIORITY_CARDINALITY_LIMIT

DEADLINE = 5.0
NAME = "raycluster"
LABELS = {"name": NAME, "controller": NAME}
DEPTH_LABELS = {**LABELS, "priority": ""}


def sample(registry: CollectorRegistry, metric: str, labels: dict[str, str] = LABELS) -> float | None:
    return registry.get_sample_value(metric, labels)


async def test_families_have_upstream_names_labels_and_buckets(
    registry: CollectorRegistry, provider: PrometheusMetricsProvider, clock: FakeClock
) -> None:
    q: Queue[str] = Queue(name=NAME, metrics_provider=provider, clock=clock)
    q.add("a")
    await asyncio.wait_for(q.get(), DEADLINE)
    q.done("a")
    families = {f.name: f for f in registry.collect()}
    expected_types = {
        "workqueue_depth": "gauge",
        "workqueue_adds": "counter",  # exposed as workqueue_adds_total
        "workqueue_queue_duration_seconds": "histogram",
        "workqueue_work_duration_seconds": "histogram",
        "workqueue_unfinished_work_seconds": "gauge",
        "workqueue_longest_running_processor_seconds": "gauge",
        "workqueue_retries": "counter",
    }
    assert {n: f.type for n, f in families.items()} == expected_types
    depth_labels = {frozenset(s.labels) for s in families["workqueue_depth"].samples}
    assert depth_labels == {frozenset({"name", "controller", "priority"})}
    for name in ("workqueue_adds", "workqueue_queue_duration_seconds", "workqueue_work_duration_seconds"):
        assert {frozenset(s.labels) - {"le"} for s in families[name].samples} == {frozenset({"name", "controller"})}
    le = [s.labels["le"] for s in families["workqueue_queue_duration_seconds"].samples if s.name.endswith("_bucket")]
    # ExponentialBuckets(10e-9, 10, 12), multiplied step by step exactly as Go does.
    assert le == [
        "1e-08",
        "1e-07",
        "1e-06",
        "9.999999999999999e-06",
        "9.999999999999999e-05",
        "0.001",
        "0.01",
        "0.1",
        "1.0",
        "10.0",
        "100.0",
        "1000.0",
        "+Inf",
    ]


async def test_scripted_sequence(
    registry: CollectorRegistry, provider: PrometheusMetricsProvider, clock: FakeClock
) -> None:
    limiter: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    q: RateLimitingQueue[str] = RateLimitingQueue(limiter, name=NAME, metrics_provider=provider, clock=clock)

    for _ in range(5):
        q.add("a")  # deduplicated: counted once
    assert sample(registry, "workqueue_adds_total") == 1
    assert sample(registry, "workqueue_depth", DEPTH_LABELS) == 1
    q.add("b")
    assert sample(registry, "workqueue_adds_total") == 2
    assert sample(registry, "workqueue_depth", DEPTH_LABELS) == 2

    clock.advance(1.5)  # t=1.5
    assert await asyncio.wait_for(q.get(), DEADLINE) == "a"
    assert sample(registry, "workqueue_depth", DEPTH_LABELS) == 1
    assert sample(registry, "workqueue_queue_duration_seconds_count") == 1
    assert sample(registry, "workqueue_queue_duration_seconds_sum") == 1.5
    assert sample(registry, "workqueue_queue_duration_seconds_bucket", {**LABELS, "le": "1.0"}) == 0
    assert sample(registry, "workqueue_queue_duration_seconds_bucket", {**LABELS, "le": "10.0"}) == 1

    q.add("a")  # re-added while processing: counted and in depth, though not queued yet
    assert sample(registry, "workqueue_adds_total") == 3
    assert sample(registry, "workqueue_depth", DEPTH_LABELS) == 2
    assert len(q) == 1

    clock.advance(2.0)  # t=3.5
    q.done("a")  # requeues "a" without counting another add
    assert sample(registry, "workqueue_work_duration_seconds_count") == 1
    assert sample(registry, "workqueue_work_duration_seconds_sum") == 2.0
    assert sample(registry, "workqueue_adds_total") == 3
    assert sample(registry, "workqueue_depth", DEPTH_LABELS) == 2

    assert await asyncio.wait_for(q.get(), DEADLINE) == "b"  # waited 3.5 s
    assert await asyncio.wait_for(q.get(), DEADLINE) == "a"  # waited 2.0 s since its re-add
    assert sample(registry, "workqueue_depth", DEPTH_LABELS) == 0
    assert sample(registry, "workqueue_queue_duration_seconds_count") == 3
    assert sample(registry, "workqueue_queue_duration_seconds_sum") == 1.5 + 3.5 + 2.0

    clock.advance(1.0)  # t=4.5: the 500 ms ticker has run; both items in processing for 1 s
    assert sample(registry, "workqueue_unfinished_work_seconds") == 2.0
    assert sample(registry, "workqueue_longest_running_processor_seconds") == 1.0
    q.done("a")
    clock.advance(0.5)  # t=5.0: only "b" left, 1.5 s old
    assert sample(registry, "workqueue_unfinished_work_seconds") == 1.5
    assert sample(registry, "workqueue_longest_running_processor_seconds") == 1.5
    q.done("b")
    clock.advance(0.5)
    assert sample(registry, "workqueue_unfinished_work_seconds") == 0.0
    assert sample(registry, "workqueue_longest_running_processor_seconds") == 0.0
    assert sample(registry, "workqueue_work_duration_seconds_count") == 3

    assert sample(registry, "workqueue_retries_total") == 0
    q.add_after("c", 0)  # zero delay still counts as a retry
    q.add_rate_limited("d")
    q.add_after("e", 3.0)
    assert sample(registry, "workqueue_retries_total") == 3
    assert sample(registry, "workqueue_adds_total") == 4  # only "c" is in so far
    clock.advance(0.005)
    assert sample(registry, "workqueue_adds_total") == 5
    assert sample(registry, "workqueue_depth", DEPTH_LABELS) == 2

    q.shutdown()
    assert clock.pending_timers == 0  # ticker and delay timer both stopped
    q.add("f")
    q.add_after("g", 1.0)
    assert sample(registry, "workqueue_adds_total") == 5
    assert sample(registry, "workqueue_retries_total") == 3


async def test_no_metrics_without_provider_or_name(
    registry: CollectorRegistry, provider: PrometheusMetricsProvider, clock: FakeClock
) -> None:
    unnamed: Queue[str] = Queue(metrics_provider=provider, clock=clock)
    no_provider: Queue[str] = Queue(name=NAME, clock=clock)
    for q in (unnamed, no_provider):
        q.add("a")
        await asyncio.wait_for(q.get(), DEADLINE)
        q.done("a")
        q.shutdown()
    assert all(not f.samples for f in registry.collect())
    assert clock.pending_timers == 0


async def test_queues_share_a_provider_and_the_default_registry_is_untouched(
    registry: CollectorRegistry, provider: PrometheusMetricsProvider, clock: FakeClock
) -> None:
    one: Queue[str] = Queue(name="rayjob", metrics_provider=provider, clock=clock)
    two: Queue[str] = Queue(name="rayservice", metrics_provider=provider, clock=clock)
    one.add("a")
    two.add("a")
    two.add("b")
    assert registry.get_sample_value("workqueue_adds_total", {"name": "rayjob", "controller": "rayjob"}) == 1
    assert registry.get_sample_value("workqueue_adds_total", {"name": "rayservice", "controller": "rayservice"}) == 2
    assert prometheus_client.REGISTRY.get_sample_value("workqueue_adds_total", {**LABELS}) is None
    with pytest.raises(ValueError, match="Duplicated"):
        PrometheusMetricsProvider(registry)
    PrometheusMetricsProvider(CollectorRegistry())  # another registry is fine


def test_depth_with_priority_caps_label_cardinality(
    registry: CollectorRegistry, provider: PrometheusMetricsProvider
) -> None:
    depth = provider.new_depth_metric_with_priority(NAME)
    depth.inc(0)
    depth.inc(-100)
    depth.dec(0)
    assert registry.get_sample_value("workqueue_depth", {**LABELS, "priority": "0"}) == 0
    assert registry.get_sample_value("workqueue_depth", {**LABELS, "priority": "-100"}) == 1
    for p in range(1, PRIORITY_CARDINALITY_LIMIT + 5):
        depth.inc(p)
    overflow = {**LABELS, "priority": EXCEEDED_CARDINALITY_LIMIT}
    assert registry.get_sample_value("workqueue_depth", overflow) == 6
    assert registry.get_sample_value("workqueue_depth", {**LABELS, "priority": "23"}) == 1
