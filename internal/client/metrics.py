"""REST client metrics with client-go's names, labels and buckets."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)


@dataclass(frozen=True)
class ClientMetrics:
    requests: Counter
    latency: Histogram
    rate_limiter: Histogram
    retries: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ClientMetrics:
        return cls(
            requests=Counter(
                "rest_client_requests",
                "Number of HTTP requests, partitioned by status code, method, and host.",
                ["code", "method", "host"],
                registry=registry,
            ),
            latency=Histogram(
                "rest_client_request_duration_seconds",
                "Request latency in seconds. Broken down by verb, and host.",
                ["verb", "host"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            rate_limiter=Histogram(
                "rest_client_rate_limiter_duration_seconds",
                "Client side rate limiter latency in seconds. Broken down by verb, and host.",
                ["verb", "host"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            # client-go's retry counter: one per retry the server asked for (429/5xx with Retry-After).
            retries=Counter(
                "rest_client_request_retries",
                "Number of request retries, partitioned by status code, verb, and host.",
                ["code", "verb", "host"],
                registry=registry,
            ),
        )
