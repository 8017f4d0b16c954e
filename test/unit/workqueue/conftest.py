"""Fixtures shared by the work-queue unit tests."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from internal.workqueue import FakeClock, PrometheusMetricsProvider


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def provider(registry: CollectorRegistry) -> PrometheusMetricsProvider:
    return PrometheusMetricsProvider(registry)
