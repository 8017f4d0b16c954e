"""The API client's Retry-After handling (client-go's rest client: checkWait, DefaultMaxRetries) against
a loopback fake that answers as kube-apiserver does when it throttles: HTTP 429 with a ``Status``
body (reason TooManyRequests, details.retryAfterSeconds) and a ``Retry-After`` header."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

import internal.client.client as client_mod
from internal.client import (
    Client,
    ClientMetrics,
    ConnectionFailed,
    NotLeader,
    Resource,
    ServerError,
    TooManyRequests,
    api_client,
)
from internal.client.config import RestConfig
from internal.client.errors import parse_retry_after

CM = Resource("", "v1", "configmaps", "ConfigMap", namespaced=True)
OK = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}}


def throttled(retry_after: str | None = "1", code: int = 429) -> web.Response:
    """kube-apiserver's throttling answer (staging/.../apiserver/pkg/endpoints/handlers/responsewriters)."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Too many requests, please try again later.",
        "reason": "TooManyRequests" if code == 429 else "InternalError",
        "details": {"retryAfterSeconds": int(retry_after)} if retry_after and retry_after.isdigit() else {},
        "code": code,
    }
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return web.Response(status=code, body=orjson.dumps(status), content_type="application/json", headers=headers)


@dataclass
class FakeApiserver:
    """Answers each request with the next scripted response (then 200 with ``OK``); records arrivals."""

    script: list[Callable[[], web.StreamResponse]] = field(default_factory=list)
    arrivals: list[tuple[float, str, bytes]] = field(default_factory=list)
    reset_next: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.arrivals.append((time.monotonic(), request.method, await request.read()))
        if self.reset_next > 0:
            self.reset_next -= 1
            assert request.transport is not None
            request.transport.close()  # the peer goes away before answering: an EOF for the client
            return web.Response()
        if self.script:
            return self.script.pop(0)()
        return web.Response(body=orjson.dumps(OK), content_type="application/json")


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeApiserver, Client, CollectorRegistry]]:
    srv = FakeApiserver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", srv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    registry = CollectorRegistry()
    client = Client(
        api_client(RestConfig(host=f"http://127.0.0.1:{port}"), 4), qps=0, metrics=ClientMetrics.register(registry)
    )
    try:
        yield srv, client, registry
    finally:
        await client.close()
        await runner.cleanup()


def retries(registry: CollectorRegistry, code: str, verb: str) -> float:
    v = registry.get_sample_value(
        "rest_client_request_retries_total", {"code": code, "verb": verb, "host": _host(registry)}
    )
    return v or 0.0


def _host(registry: CollectorRegistry) -> str:
    for metric in registry.collect():
        for s in metric.samples:
            if "host" in s.labels:
                return s.labels["host"]
    return ""


async def test_waits_as_told_then_succeeds(fake: tuple[FakeApiserver, Client, CollectorRegistry]) -> None:
    srv, client, registry = fake
    srv.script = [lambda: throttled("1"), lambda: throttled("1")]
    obj = await client.get(CM, "a", "ns")
    assert obj == OK
    times = [t for t, _, _ in srv.arrivals]
    assert len(times) == 3
    # Each retry came no sooner than the server's Retry-After (1 s).
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times)), times
    assert retries(registry, "429", "GET") == 2
    assert (
        registry.get_sample_value(
            "rest_client_requests_total", {"code": "429", "method": "GET", "host": _host(registry)}
        )
        == 2
    )


async def test_gives_up_after_client_go_limit(fake: tuple[FakeApiserver, Client, CollectorRegistry]) -> None:
    srv, client, registry = fake
    srv.script = [lambda: throttled("0")] * 20
    with pytest.raises(TooManyRequests) as e:
        await client.get(CM, "a", "ns")
    assert len(srv.arrivals) == 1 + client_mod.MAX_RETRIES == 11
    assert e.value.retry_after == 0
    assert retries(registry, "429", "GET") == 10


async def test_write_body_resent_on_retry(fake: tuple[FakeApiserver, Client, CollectorRegistry]) -> None:
    srv, client, registry = fake
    srv.script = [lambda: throttled("0")]
    await client.create(CM, OK, "ns")
    assert [m for _, m, _ in srv.arrivals] == ["POST", "POST"]
    assert srv.arrivals[0][2] == srv.arrivals[1][2] == orjson.dumps(OK)
    assert retries(registry, "429", "POST") == 1


async def test_5xx_retried_only_with_retry_after(fake: tuple[FakeApiserver, Client, CollectorRegistry]) -> None:
    srv, client, _ = fake
    srv.script = [lambda: throttled("0", code=503)]
    assert await client.get(CM, "a", "ns") == OK
    assert len(srv.arrivals) == 2
    srv.arrivals.clear()
    srv.script = [lambda: throttled(None, code=500)]
    with pytest.raises(ServerError):
        await client.get(CM, "a", "ns")
    assert len(srv.arrivals) == 1
    srv.arrivals.clear()
    # A 429 whose Retry-After is an HTTP date is not a wait client-go understands: no retry.
    srv.script = [lambda: throttled("Wed, 21 Oct 2015 07:28:00 GMT")]
    with pytest.raises(TooManyRequests):
        await client.get(CM, "a", "ns")
    assert len(srv.arrivals) == 1


async def test_wait_beyond_call_timeout_not_made(fake: tuple[FakeApiserver, Client, CollectorRegistry]) -> None:
    srv, client, _ = fake
    srv.script = [lambda: throttled("5")]
    start = time.monotonic()
    with pytest.raises(TooManyRequests):
        await client.get(CM, "a", "ns", timeout=2)
    assert time.monotonic() - start < 2
    assert len(srv.arrivals) == 1


async def test_retry_after_capped(
    fake: tuple[FakeApiserver, Client, CollectorRegistry], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, client, _ = fake
    monkeypatch.setattr(client_mod, "MAX_RETRY_WAIT", 0.2)
    srv.script = [lambda: throttled("3600")]
    assert await client.get(CM, "a", "ns", timeout=10) == OK
    assert len(srv.arrivals) == 2


async def test_cancelled_while_waiting(fake: tuple[FakeApiserver, Client, CollectorRegistry]) -> None:
    srv, client, _ = fake
    srv.script = [lambda: throttled("20")]
    task = asyncio.create_task(client.get(CM, "a", "ns"))
    deadline = time.monotonic() + 5
    while not srv.arrivals and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Sampled over a window: no retry went out after the cancellation.
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        assert len(srv.arrivals) == 1
        await asyncio.sleep(0.05)


async def test_reset_retried_for_get_only(fake: tuple[FakeApiserver, Client, CollectorRegistry]) -> None:
    srv, client, _registry = fake
    srv.reset_next = 1
    assert await client.get(CM, "a", "ns") == OK
    assert len(srv.arrivals) == 2
    srv.arrivals.clear()
    srv.reset_next = 1
    with pytest.raises(ConnectionFailed):
        await client.create(CM, OK, "ns")  # not idempotent: never resent on a reset
    assert len(srv.arrivals) == 1


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3
    assert parse_retry_after(" 0 ") == 0
    assert parse_retry_after("-4") == 0
    assert parse_retry_after("1.5") is None
    assert parse_retry_after(None) is None


def test_each_resource_type_has_its_own_rate_limiter() -> None:
    """controller-runtime builds one REST client (one token bucket) per GroupVersionKind: a burst of
    pod writes does not hold back a RayJob status write."""
    from internal.client.client import _limiter_key

    c = Client(api_client(RestConfig(host="http://127.0.0.1:1"), 1), qps=1, burst=1)
    assert _limiter_key("/api/v1/namespaces/ns/pods/p") == "v1/pods"
    assert _limiter_key("/api/v1/namespaces/ns/pods") == "v1/pods"
    assert _limiter_key("/apis/ray.io/v1/namespaces/ns/rayjobs/j/status") == "ray.io/v1/rayjobs"
    assert _limiter_key("/api/v1/namespaces/ns") == "v1/namespaces"
    assert _limiter_key("/apis/ray.io/v1/rayclusters?watch=true") == "ray.io/v1/rayclusters"
    assert _limiter_key("/version") == ""
    pods = c.limiter("/api/v1/namespaces/a/pods")
    assert pods is c.limiter("/api/v1/namespaces/b/pods/x")  # namespaces share their type's bucket
    assert pods is not c.limiter("/apis/ray.io/v1/namespaces/a/rayjobs/j/status")


async def test_a_throttled_resource_type_does_not_delay_another(
    fake: tuple[FakeApiserver, Client, CollectorRegistry],
) -> None:
    _srv, base, _registry = fake
    c = Client(base.api, qps=2, burst=1, metrics=ClientMetrics.register(CollectorRegistry()))
    other = Resource("", "v1", "secrets", "Secret", namespaced=True)
    await c.get(CM, "a", "ns")  # the burst of configmaps is spent
    slow = asyncio.create_task(c.get(CM, "a", "ns"))  # waits for the configmaps bucket
    await c.get(other, "a", "ns")  # not behind it
    assert not slow.done()
    await slow


async def test_a_closed_write_fence_keeps_writes_from_the_wire_but_not_reads(
    fake: tuple[FakeApiserver, Client, CollectorRegistry],
) -> None:
    """Leader election's fence (``Client.write_fence``): once this replica's lease may have lapsed, no
    create, update, patch or delete leaves the process; reads still do."""
    srv, client, _ = fake
    open_ = [True]
    client.write_fence = lambda: open_[0]
    await client.create(CM, OK, "ns")
    open_[0] = False
    with pytest.raises(NotLeader):
        await client.create(CM, OK, "ns")
    with pytest.raises(NotLeader):
        await client.patch(CM, "a", {"data": {"k": "v"}}, "ns")
    with pytest.raises(NotLeader):
        await client.delete(CM, "a", "ns")
    assert await client.get(CM, "a", "ns") == OK
    assert [m for _, m, _ in srv.arrivals] == ["POST", "GET"]


@pytest.mark.parametrize("write", ["create", "patch", "delete"])
async def test_a_write_whose_fence_closed_while_it_waited_to_be_sent_never_leaves(
    fake: tuple[FakeApiserver, Client, CollectorRegistry], write: str
) -> None:
    """The replica froze (SIGSTOP, a paused VM) after the fence let a write through but before its bytes
    went out, and woke with its lease lapsed: the fence, asked again as the bytes are written, holds
    it back. The fence below is open for the first check only; the pool has a connection already, so
    the second check is the one made at the socket."""
    srv, client, _ = fake
    await client.get(CM, "a", "ns")  # a pooled connection: the write does not wait for a new one
    checks = itertools.count()
    client.write_fence = lambda: next(checks) == 0
    call = {
        "create": lambda: client.create(CM, OK, "ns"),
        "patch": lambda: client.patch(CM, "a", {"data": {"k": "v"}}, "ns"),
        "delete": lambda: client.delete(CM, "a", "ns"),
    }[write]
    with pytest.raises(NotLeader):
        await call()
    assert next(checks) > 1, "the fence was not asked again as the write went out"
    assert [m for _, m, _ in srv.arrivals] == ["GET"]
    client.write_fence = None  # the client still works: nothing was left half-written on the pool
    await call()
    assert [m for _, m, _ in srv.arrivals][-1] in ("POST", "PATCH", "DELETE")
