"""The session guard stops a test from reaching anything but loopback, before a packet is sent."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest


def test_connect_to_a_pod_ip_is_refused_and_recorded(loopback_guard: Any) -> None:
    with socket.socket() as s, pytest.raises(PermissionError, match="non-loopback"):
        s.connect(("10.0.0.7", 8265))
    assert loopback_guard.violations
    loopback_guard.violations.clear()  # this test expected it; any other test would now fail


def test_service_dns_name_lookup_is_refused(loopback_guard: Any) -> None:
    with pytest.raises(PermissionError):
        socket.getaddrinfo("raycluster-head-svc.default.svc.cluster.local", 8265)
    loopback_guard.violations.clear()


async def test_asyncio_connections_are_guarded_too(loopback_guard: Any) -> None:
    with pytest.raises(PermissionError):
        await asyncio.wait_for(asyncio.open_connection("192.168.1.1", 80), 5)
    loopback_guard.violations.clear()


async def test_loopback_is_allowed() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        _, writer = await asyncio.open_connection("localhost", port)
        writer.close()
