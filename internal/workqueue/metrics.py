"""``workqueue_*`` metrics (client-go ``util/workqueue/metrics.go`` + controller-runtime's provider).

Names, label sets and buckets match controller-runtime so the upstream Grafana dashboard works
unchanged. Nothing is registered at import time: :class:`PrometheusMetricsProvider` registers the
families on the registry the caller passes, once per provider, and hands out per-queue children.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .clock import Clock, Timer

T = TypeVar("T", bound=Hashable)
T_contra = TypeVar("T_contra", bound=Hashable, contravariant=True)

# client-go's defaultUnfinishedWorkUpdatePeriod.
UNFINISHED_WORK_UPDATE_PERIOD = 0.5
# controller-runtime caps the distinct `priority` label values of workqueue_depth.
PRIORITY_CARDINALITY_LIMIT = 25
EXCEEDED_CARDINALITY_LIMIT = "exceeded_cardinality_limit"


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """prometheus.ExponentialBuckets. Multiplies step by step like Go does, so the float values (and
    therefore the rendered `le` labels) are the same bit for bit."""
    buckets = []
    for _ in range(count):
        buckets.append(start)
        start *= factor
    return tuple(buckets)


# ExponentialBuckets(10e-9, 10, 12): 1e-8 s … 1e3 s.
DURATION_BUCKETS = exponential_buckets(10e-9, 10, 12)


class GaugeMetric(Protocol):
    def inc(self) -> None: ...

    def dec(self) -> None: ...


class SettableGaugeMetric(Protocol):
    def set(self, value: float) -> None: ...


class CounterMetric(Protocol):
    def inc(self) -> None: ...


class HistogramMetric(Protocol):
    def observe(self, amount: float) -> None: ...


class DepthMetricWithPriority(Protocol):
    def inc(self, priority: int) -> None: ...

    def dec(self, priority: int) -> None: ...


class MetricsProvider(Protocol):
    """Factory for one queue's metrics, keyed by the queue name (client-go's MetricsProvider)."""

    def new_depth_metric(self, name: str) -> GaugeMetric: ...

    def new_adds_metric(self, name: str) -> CounterMetric: ...

    def new_latency_metric(self, name: str) -> HistogramMetric: ...

    def new_work_duration_metric(self, name: str) -> HistogramMetric: ...

    def new_unfinished_work_seconds_metric(self, name: str) -> SettableGaugeMetric: ...

    def new_longest_running_processor_seconds_metric(self, name: str) -> SettableGaugeMetric: ...

    def new_retries_metric(self, name: str) -> CounterMetric: ...


class _PriorityDepth:
    """workqueue_depth children labelled by priority, with the cardinality cap."""

    def __init__(self, depth: Gauge, name: str) -> None:
        self._depth = depth
        self._name = name
        self._seen: set[int] = set()

    def _label(self, priority: int) -> str:
        if priority not in self._seen:
            if len(self._seen) >= PRIORITY_CARDINALITY_LIMIT:
                return EXCEEDED_CARDINALITY_LIMIT
            self._seen.add(priority)
        return str(priority)

    def inc(self, priority: int) -> None:
        self._depth.labels(self._name, self._name, self._label(priority)).inc()

    def dec(self, priority: int) -> None:
        self._depth.labels(self._name, self._name, self._label(priority)).dec()


class PrometheusMetricsProvider:
    """controller-runtime's WorkqueueMetricsProvider on a caller-owned registry.

    Labels `name` and `controller` both carry the queue name; `workqueue_depth` also has `priority`
    ("" for the classic queue). Create one provider per registry and share it between queues:
    a second provider on the same registry is a duplicate registration and raises ValueError.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("name", "controller")
        self.depth = Gauge(
            "workqueue_depth",
            "Current depth of workqueue by workqueue and priority",
            (*labels, "priority"),
            registry=registry,
        )
        self.adds = Counter(
            "workqueue_adds_total", "Total number of adds handled by workqueue", labels, registry=registry
        )
        self.latency = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            labels,
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            labels,
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        self.unfinished = Gauge(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been observed by "
            "work_duration. Large values indicate stuck threads. One can deduce the number of stuck "
            "threads by observing the rate at which this increases.",
            labels,
            registry=registry,
        )
        self.longest_running_processor = Gauge(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
            labels,
            registry=registry,
        )
        self.retries = Counter(
            "workqueue_retries_total",
            "Total number of retries handled by workqueue",
            labels,
            registry=registry,
        )

    def new_depth_metric(self, name: str) -> GaugeMetric:
        return self.depth.labels(name, name, "")

    def new_depth_metric_with_priority(self, name: str) -> DepthMetricWithPriority:
        return _PriorityDepth(self.depth, name)

    def new_adds_metric(self, name: str) -> CounterMetric:
        return self.adds.labels(name, name)

    def new_latency_metric(self, name: str) -> HistogramMetric:
        return self.latency.labels(name, name)

    def new_work_duration_metric(self, name: str) -> HistogramMetric:
        return self.work_duration.labels(name, name)

    def new_unfinished_work_seconds_metric(self, name: str) -> SettableGaugeMetric:
        return self.unfinished.labels(name, name)

    def new_longest_running_processor_seconds_metric(self, name: str) -> SettableGaugeMetric:
        return self.longest_running_processor.labels(name, name)

    def new_retries_metric(self, name: str) -> CounterMetric:
        return self.retries.labels(name, name)


class QueueMetrics(Protocol[T_contra]):
    """What a queue reports; called at the same points as client-go's queueMetrics."""

    def add(self, item: T_contra) -> None: ...

    def get(self, item: T_contra) -> None: ...

    def done(self, item: T_contra) -> None: ...

    def retry(self) -> None: ...

    def stop(self) -> None: ...


class _NoMetrics:
    def add(self, item: object) -> None:
        pass

    def get(self, item: object) -> None:
        pass

    def done(self, item: object) -> None:
        pass

    def retry(self) -> None:
        pass

    def stop(self) -> None:
        pass


class _DefaultQueueMetrics(Generic[T]):
    def __init__(self, provider: MetricsProvider, name: str, clock: Clock) -> None:
        self._clock = clock
        self._depth = provider.new_depth_metric(name)
        self._adds = provider.new_adds_metric(name)
        self._latency = provider.new_latency_metric(name)
        self._work_duration = provider.new_work_duration_metric(name)
        self._unfinished = provider.new_unfinished_work_seconds_metric(name)
        self._longest = provider.new_longest_running_processor_seconds_metric(name)
        self._retries = provider.new_retries_metric(name)
        self._add_times: dict[T, float] = {}
        self._processing_start: dict[T, float] = {}
        self._ticker: Timer | None = None
        self._next_tick = 0.0
        self._stopped = False

    def add(self, item: T) -> None:
        self._adds.inc()
        self._depth.inc()
        # Keep the first add time: queue duration counts from when the item first became dirty.
        self._add_times.setdefault(item, self._clock.now())

    def get(self, item: T) -> None:
        now = self._clock.now()
        self._depth.dec()
        self._processing_start[item] = now
        added = self._add_times.pop(item, None)
        if added is not None:
            self._latency.observe(now - added)
        # Started here rather than in the constructor: get() always runs inside the event loop, and
        # nothing can be unfinished before the first get().
        if self._ticker is None and not self._stopped:
            self._next_tick = now + UNFINISHED_WORK_UPDATE_PERIOD
            self._ticker = self._clock.call_at(self._next_tick, self._tick)

    def done(self, item: T) -> None:
        started = self._processing_start.pop(item, None)
        if started is not None:
            self._work_duration.observe(self._clock.now() - started)

    def retry(self) -> None:
        self._retries.inc()

    def stop(self) -> None:
        self._stopped = True
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def update_unfinished_work(self) -> None:
        now = self._clock.now()
        ages = [now - started for started in self._processing_start.values()]
        self._unfinished.set(sum(ages))
        self._longest.set(max(ages, default=0.0))

    def _tick(self) -> None:
        self.update_unfinished_work()
        now = self._clock.now()
        # Ticker semantics: fixed period, but drop missed ticks after a stall instead of bursting.
        self._next_tick += UNFINISHED_WORK_UPDATE_PERIOD
        if self._next_tick <= now:
            self._next_tick = now + UNFINISHED_WORK_UPDATE_PERIOD
        self._ticker = self._clock.call_at(self._next_tick, self._tick)


def new_queue_metrics(provider: MetricsProvider | None, name: str, clock: Clock) -> QueueMetrics[T]:
    """Metrics are on only for a named queue with a provider, as in client-go."""
    if provider is None or not name:
        return _NoMetrics()
    return _DefaultQueueMetrics(provider, name, clock)
