"""controller-runtime's controller metrics: names, labels and buckets as upstream."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RECONCILE_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
    1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
)  # fmt: skip
RESULTS = ("success", "error", "requeue", "requeue_after")


@dataclass(frozen=True)
class ControllerMetrics:
    reconcile_total: Counter
    reconcile_errors: Counter
    terminal_errors: Counter
    panics: Counter
    timeouts: Counter
    reconcile_time: Histogram
    max_concurrent: Gauge
    active_workers: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ControllerMetrics:
        return cls(
            reconcile_total=Counter(
                "controller_runtime_reconcile",
                "Total number of reconciliations per controller",
                ["controller", "result"],
                registry=registry,
            ),
            reconcile_errors=Counter(
                "controller_runtime_reconcile_errors",
                "Total number of reconciliation errors per controller",
                ["controller"],
                registry=registry,
            ),
            terminal_errors=Counter(
                "controller_runtime_terminal_reconcile_errors",
                "Total number of terminal reconciliation errors per controller",
                ["controller"],
                registry=registry,
            ),
            panics=Counter(
                "controller_runtime_reconcile_panics",
                "Total number of reconciliation panics per controller",
                ["controller"],
                registry=registry,
            ),
            timeouts=Counter(
                "controller_runtime_reconcile_timeouts",
                "Total number of reconciliation timeouts per controller",
                ["controller"],
                registry=registry,
            ),
            reconcile_time=Histogram(
                "controller_runtime_reconcile_time_seconds",
                "Length of time per reconciliation per controller",
                ["controller"],
                buckets=RECONCILE_BUCKETS,
                registry=registry,
            ),
            max_concurrent=Gauge(
                "controller_runtime_max_concurrent_reconciles",
                "Maximum number of concurrent reconciles per controller",
                ["controller"],
                registry=registry,
            ),
            active_workers=Gauge(
                "controller_runtime_active_workers",
                "Number of currently used workers per controller",
                ["controller"],
                registry=registry,
            ),
        )

    def init_controller(self, name: str, workers: int) -> None:
        """Pre-create every label combination at 0, as controller-runtime's initMetrics."""
        for r in RESULTS:
            self.reconcile_total.labels(name, r)
        for c in (self.reconcile_errors, self.terminal_errors, self.panics, self.timeouts):
            c.labels(name)
        self.reconcile_time.labels(name)
        self.max_concurrent.labels(name).set(workers)
        self.active_workers.labels(name).set(0)
