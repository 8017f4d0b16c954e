"""Fixtures for the dashboard-client tests: a fake dashboard on 127.0.0.1 and a client factory that
reaches its virtual clusters through the Loopback address strategy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.fake_dashboard import FakeDashboard

from controllers.ray.utils.dashboard import DashboardClientFactory, Loopback


@pytest.fixture
async def fake() -> AsyncIterator[FakeDashboard]:
    async with FakeDashboard() as server:
        yield server


@pytest.fixture
async def factory(fake: FakeDashboard) -> AsyncIterator[DashboardClientFactory]:
    """Cluster ``<ns>/<name>`` maps to the fake's virtual cluster ``<name>`` (created on first use)."""

    def address(cluster: dict[str, Any]) -> str:
        return fake.cluster(cluster["metadata"]["name"]).base_url

    async with DashboardClientFactory(Loopback(address)) as f:
        yield f
