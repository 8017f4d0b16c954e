"""A loopback HTTP proxy in front of the real kube-apiserver that answers chosen requests the way
kube-apiserver does when it throttles (HTTP 429, a ``Status`` body with reason TooManyRequests and
details.retryAfterSeconds, and a ``Retry-After`` header), and forwards everything else, watches
streamed. The operator reaches it through a kubeconfig with the same ServiceAccount token, so its
RBAC is still the shipped one."""

from __future__ import annotations

import base64
import hashlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import yaml
from aiohttp import web

# Returns the Retry-After seconds to throttle this request with, or None to forward it.
Rule = Callable[[str, str, bytes], int | None]

_FORWARD_HEADERS = ("Authorization", "Content-Type", "Accept", "User-Agent")
_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding"}


@dataclass
class Arrival:
    at: float
    method: str
    path: str
    key: str  # method, path, query and body digest: a client's retry carries the same key
    throttled: int | None  # the Retry-After it was answered with, or None when forwarded


@dataclass
class ThrottlingProxy:
    upstream_kubeconfig: Path
    rule: Rule = lambda _m, _p, _b: None
    arrivals: list[Arrival] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    _server: str = ""
    _token: str = ""

    async def start(self) -> None:
        cfg = yaml.safe_load(self.upstream_kubeconfig.read_text())
        cluster = cfg["clusters"][0]["cluster"]
        self._server = cluster["server"].rstrip("/")
        self._token = cfg["users"][0]["user"].get("token", "")
        ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()

    def write_kubeconfig(self, path: Path) -> Path:
        """The upstream kubeconfig's user (the operator's token), pointed at this proxy."""
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "operator", "user": {"token": self._token}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "operator"}}],
            "current-context": "proxy",
        }
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        return path

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        key = f"{request.method} {request.path_qs} {hashlib.sha256(body).hexdigest()[:16]}"
        wait = self.rule(request.method, request.path, body)
        self.arrivals.append(Arrival(time.monotonic(), request.method, request.path, key, wait))
        if wait is not None:
            return throttled_response(wait)
        assert self._session is not None
        headers = {k: request.headers[k] for k in _FORWARD_HEADERS if k in request.headers}
        async with self._session.request(
            request.method,
            self._server + request.path_qs,
            data=body or None,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        ) as up:
            resp = web.StreamResponse(status=up.status)
            for k, v in up.headers.items():
                if k.lower() not in _HOP:
                    resp.headers[k] = v
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp


def throttled_response(retry_after: int) -> web.Response:
    """kube-apiserver's 429 (apiserver/pkg/endpoints/handlers/responsewriters.TooManyRequests shape)."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Too many requests, please try again later.",
        "reason": "TooManyRequests",
        "details": {"retryAfterSeconds": retry_after},
        "code": 429,
    }
    return web.Response(
        status=429,
        body=orjson.dumps(status),
        content_type="application/json",
        headers={"Retry-After": str(retry_after)},
    )
