"""An async Kubernetes client (connection set-up in ``config``: kubeconfig or in-cluster), speaking
JSON decoded with orjson into plain dicts: no generated models on any path.

Every request has a timeout, passes a client-side QPS/burst limiter, is counted in the
``rest_client_*`` metrics and gets a child span when a trace is active.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import orjson
from opentelemetry import trace

from internal.client import errors, fence
from internal.client.config import Connection
from internal.client.metrics import ClientMetrics
from internal.client.ratelimit import TokenBucket
from internal.client.resources import Resource

PatchType = Literal["merge", "json", "strategic", "apply"]
_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
log = logging.getLogger("kuberay.client")

DEFAULT_TIMEOUT = 30.0
DEFAULT_PAGE_SIZE = 500
_JSON = "application/json"

Obj = dict[str, Any]


class ConnectionFailed(errors.ApiError):
    """No HTTP answer: connection refused, reset, or TLS failure."""


# client-go's rest client: DefaultMaxRetries (10) and the 1 s artificial Retry-After it gives a GET
# whose connection was reset. It does not cap the server's Retry-After; we cap it so one answer cannot
# park a reconcile worker for longer than a call's default timeout.
MAX_RETRIES = 10
# A request the API server left unanswered this long (whole seconds, not a short caller timeout that a
# busy server may overrun) means its connection is dead: the pool is dropped (Connection.reset).
POOL_RESET_AFTER = DEFAULT_TIMEOUT
MAX_RETRY_WAIT = DEFAULT_TIMEOUT
_RESET_RETRY_WAIT = 1.0


class _Reset(Exception):
    """A connection reset or EOF before the answer: retryable for GETs only (writes are not idempotent)."""

    def __init__(self, failed: ConnectionFailed) -> None:
        super().__init__(str(failed))
        self.failed = failed


def _is_reset(e: aiohttp.ClientError) -> bool:
    # client-go: net.IsConnectionReset / IsProbableEOF. aiohttp reports a peer that closed before
    # answering as ServerDisconnectedError, and ECONNRESET as a ClientOSError.
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return True
    return isinstance(e, aiohttp.ClientOSError) and e.errno == errno.ECONNRESET


def _retry_wait(method: str, e: Exception) -> float | None:
    """How long to wait before retrying, or None when the failure is not retryable (client-go's
    checkWait: a 429 or any 5xx with a Retry-After of whole seconds)."""
    if isinstance(e, _Reset):
        return _RESET_RETRY_WAIT if method == "GET" else None
    assert isinstance(e, errors.ApiError)
    if (e.status == 429 or e.status >= 500) and e.retry_after_header is not None:
        return min(float(e.retry_after_header), MAX_RETRY_WAIT)
    return None


def _limiter_key(path: str) -> str:
    """The API group, version and resource of a request path ("apps/v1/deployments", "v1/pods"): the
    unit controller-runtime gives a rate limiter of its own."""
    parts = path.split("?", 1)[0].split("/")
    if len(parts) < 3 or parts[1] not in ("api", "apis"):
        return ""
    i = 3 if parts[1] == "api" else 4
    rest = parts[i:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    return "/".join([*parts[2:i], rest[0] if rest else ""])


class Client:
    """CRUD, list (paged), watch, patch (merge, JSON, strategic, server-side apply), status and
    delete for any resource. ``api`` supplies the connection pool, TLS and credentials.

    ``qps``/``burst`` apply per resource type, as in controller-runtime, whose client builds one
    client-go REST client, each with its own token bucket, per GroupVersionKind: with the same
    ``--qps`` flag, writes of pods do not wait behind writes of RayJob statuses."""

    def __init__(
        self,
        api: Connection,
        *,
        qps: float = 100.0,
        burst: int = 200,
        timeout: float = DEFAULT_TIMEOUT,
        metrics: ClientMetrics | None = None,
        tracer: trace.Tracer | None = None,
        user_agent: str = "kuberay-py-operator",
    ) -> None:
        self.api = api
        self.host = str(api.configuration.host).rstrip("/")
        self._host_label = urlsplit(self.host).netloc
        self.qps, self.burst = qps, burst
        self._limiters: dict[str, TokenBucket] = {}
        self.timeout = timeout
        self.metrics = metrics
        self.tracer = tracer or trace.get_tracer("kuberay-py.client")
        self.user_agent = user_agent
        # Set by leader election: False once this replica may no longer write (its lease lapsed or
        # was lost). Checked before each write asks for a connection and again as its bytes are
        # written (internal/client/fence.py), never for reads.
        self.write_fence: Callable[[], bool] | None = None

    def limiter(self, path: str) -> TokenBucket:
        """The token bucket of the resource type ``path`` addresses."""
        key = _limiter_key(path)
        bucket = self._limiters.get(key)
        if bucket is None:
            bucket = self._limiters[key] = TokenBucket(self.qps, self.burst)
        return bucket

    async def close(self) -> None:
        await self.api.close()

    # ---- plumbing --------------------------------------------------------------------------------

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": _JSON, "User-Agent": self.user_agent}
        if content_type:
            headers["Content-Type"] = content_type
        # Bearer tokens (in-cluster) are re-read as they rotate; client certificates live in the pool.
        headers.update(await self.api.auth_headers())
        return headers

    def _session(self) -> aiohttp.ClientSession:
        return self.api.session()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = _JSON,
        timeout: float | None = None,
        verb: str | None = None,
    ) -> Any:
        """One API call; returns the decoded JSON answer or raises a typed ApiError.

        As client-go's rest client: a 429, or a 5xx carrying Retry-After, is retried after the
        server's delay (capped at ``MAX_RETRY_WAIT``) up to ``MAX_RETRIES`` times, each retry passing
        the QPS limiter again; a GET whose connection was reset is retried after 1 s. ``timeout``
        bounds the whole call, retries included: a retry whose wait would overrun it is not made and
        the server's answer is raised instead."""
        verb = verb or method
        data = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
        t = timeout or self.timeout
        deadline = time.monotonic() + t
        with self.tracer.start_as_current_span(
            f"{verb} {path}", kind=trace.SpanKind.CLIENT, attributes={"http.method": method, "http.url": path}
        ) as span:
            attempt = 0
            while True:
                try:
                    return await self._attempt(method, path, query, data, content_type, deadline, t, verb, span)
                except (errors.ApiError, _Reset) as e:
                    wait = _retry_wait(method, e)
                    if wait is None or attempt >= MAX_RETRIES or time.monotonic() + wait >= deadline:
                        if isinstance(e, _Reset):
                            raise e.failed from e.__cause__
                        raise
                    attempt += 1
                    span.set_attribute("http.retry_count", attempt)
                    if self.metrics:
                        code = str(e.status) if isinstance(e, errors.ApiError) else "<error>"
                        self.metrics.retries.labels(code, verb, self._host_label).inc()
                    await asyncio.sleep(wait)

    async def _attempt(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        data: bytes | None,
        content_type: str,
        deadline: float,
        t: float,
        verb: str,
        span: trace.Span,
    ) -> Any:
        waited = await self.limiter(path).acquire()
        if self.metrics:
            self.metrics.rate_limiter.labels(verb, self._host_label).observe(waited)
        headers = await self._headers(content_type if data is not None else None)
        fenced = self.write_fence if method != "GET" else None
        if fenced is not None and not fenced():
            raise errors.NotLeader(f"{method} {path}: not sent, this replica no longer holds the leader lease")
        start = time.monotonic()
        code = "<error>"
        try:
            async with self._session().request(
                method,
                self.host + path,
                params=dict(query) if query else None,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=max(0.001, deadline - start)),
                trace_request_ctx=fence.request_context(fenced),  # checked again as the bytes go out
                **self.api.request_kwargs,
            ) as resp:
                raw = await resp.read()
                code = str(resp.status)
                span.set_attribute("http.status_code", resp.status)
                if resp.status >= 400:
                    raise errors.from_response(resp.status, raw, resp.headers.get("Retry-After"))
                return orjson.loads(raw) if raw else None
        except TimeoutError as e:
            if deadline - start >= POOL_RESET_AFTER:
                log.warning("%s %s: no answer within %.0fs; dropping every pooled connection", method, path, t)
                self.api.reset()
            raise errors.Timeout(f"{method} {path}: no answer within {t:.0f}s") from e
        except aiohttp.ClientError as e:
            if isinstance(e.__cause__, errors.NotLeader):
                raise e.__cause__ from None
            failed = ConnectionFailed(f"{method} {path}: {e}")
            if _is_reset(e):
                raise _Reset(failed) from e
            raise failed from e
        finally:
            if self.metrics:
                self.metrics.requests.labels(code, method, self._host_label).inc()
                self.metrics.latency.labels(verb, self._host_label).observe(time.monotonic() - start)

    # ---- reads -----------------------------------------------------------------------------------

    async def get(self, res: Resource, name: str, namespace: str | None = None, *, timeout: float | None = None) -> Obj:
        obj: Obj = await self.request("GET", res.path(name, namespace), verb="GET", timeout=timeout)
        return obj

    async def list_pages(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Obj]:
        """Yield each page of a LIST. If a continue token expires mid-way, fall back to one full
        list at the same resourceVersion (client-go's FullListIfExpired)."""
        query: dict[str, str] = {}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        if resource_version is not None:
            query["resourceVersion"] = resource_version
        if resource_version_match:
            query["resourceVersionMatch"] = resource_version_match
        if limit > 0:
            query["limit"] = str(limit)
        path = res.collection_path(namespace)
        first = True
        while True:
            try:
                page: Obj = await self.request("GET", path, query=query, timeout=timeout, verb="LIST")
            except errors.Gone:
                if first or "continue" not in query:
                    raise
                query.pop("continue")
                query.pop("limit", None)
                page = await self.request("GET", path, query=query, timeout=timeout, verb="LIST")
                _fill_kind(page, res)
                yield page
                return
            first = False
            _fill_kind(page, res)
            yield page
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            query["continue"] = token
            # A continued list is pinned to the first page's snapshot; RV options must not repeat.
            query.pop("resourceVersion", None)
            query.pop("resourceVersionMatch", None)

    async def list(self, res: Resource, namespace: str | None = None, **kw: Any) -> Obj:
        """All pages of a LIST merged into one list object (items, metadata.resourceVersion)."""
        items: list[Obj] = []
        meta: Obj = {}
        async for page in self.list_pages(res, namespace, **kw):
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
        meta.pop("continue", None)
        return {"apiVersion": res.api_version, "kind": f"{res.kind}List", "metadata": meta, "items": items}

    async def watch(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        timeout_seconds: int | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_bookmarks: bool = True,
        send_initial_events: bool = False,
        read_timeout: float = 90.0,
        connect_timeout: float = 10.0,
        deadline: float | None = None,
    ) -> AsyncGenerator[Obj, None]:
        """Yield watch events ({"type", "object"}) as dicts until the server closes the stream.

        ``read_timeout`` is an inactivity timeout: a stream silent for that long (no event and no
        bookmark) is treated as dead and raises WatchStalled, so a half-open connection cannot hang an
        informer forever. ``deadline`` bounds the whole stream: a watch asked to end after
        ``timeout_seconds`` that is still open well past it is dead too (WatchStalled), which a quiet
        resource would otherwise hide until ``read_timeout``. An ERROR event is raised as the matching
        ApiError (410 → Gone). Use with ``contextlib.aclosing`` so the connection is released when the caller stops."""
        query: dict[str, str] = {"watch": "true"}
        if resource_version is not None:
            query["resourceVersion"] = resource_version
        if timeout_seconds:
            query["timeoutSeconds"] = str(timeout_seconds)
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        if allow_bookmarks:
            query["allowWatchBookmarks"] = "true"
        if send_initial_events:
            query["sendInitialEvents"] = "true"
            query["resourceVersionMatch"] = "NotOlderThan"
        path = res.collection_path(namespace)
        await self.limiter(path).acquire()
        headers = await self._headers(None)
        code = "<error>"
        try:
            async with self._session().get(
                self.host + path,
                params=query,
                headers=headers,
                timeout=aiohttp.ClientTimeout(
                    total=deadline, connect=connect_timeout, sock_connect=connect_timeout, sock_read=read_timeout
                ),
                **self.api.request_kwargs,
            ) as resp:
                code = str(resp.status)
                if resp.status != 200:
                    raise errors.from_response(resp.status, await resp.read(), resp.headers.get("Retry-After"))
                buf = b""
                async for chunk in resp.content.iter_any():
                    buf += chunk
                    while True:
                        nl = buf.find(b"\n")
                        if nl < 0:
                            break
                        line, buf = buf[:nl], buf[nl + 1 :]
                        if line.strip():
                            yield _decode_event(line)
                if buf.strip():
                    yield _decode_event(buf)
        except TimeoutError as e:
            raise errors.WatchStalled(
                f"watch {path}: silent for {read_timeout:.0f}s or open past its {deadline or 0:.0f}s deadline"
            ) from e
        except aiohttp.ClientPayloadError:
            return  # the server cut the stream mid-chunk: a closed watch, resume from the last RV
        except aiohttp.ClientError as e:
            raise ConnectionFailed(f"watch {path}: {e}") from e
        finally:
            if self.metrics:
                self.metrics.requests.labels(code, "GET", self._host_label).inc()

    # ---- writes ----------------------------------------------------------------------------------

    async def create(
        self,
        res: Resource,
        obj: Obj,
        namespace: str | None = None,
        *,
        dry_run: bool = False,
        timeout: float | None = None,
    ) -> Obj:
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        query = {"dryRun": "All"} if dry_run else None
        out: Obj = await self.request(
            "POST", res.collection_path(ns), body=obj, query=query, verb="POST", timeout=timeout
        )
        return out

    async def update(
        self, res: Resource, obj: Obj, *, subresource: str | None = None, timeout: float | None = None
    ) -> Obj:
        """PUT the object (its metadata.resourceVersion makes this a compare-and-swap: 409 if stale)."""
        meta = obj["metadata"]
        out: Obj = await self.request(
            "PUT", res.path(meta["name"], meta.get("namespace"), subresource), body=obj, verb="PUT", timeout=timeout
        )
        return out

    async def update_status(self, res: Resource, obj: Obj) -> Obj:
        return await self.update(res, obj, subresource="status")

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        timeout: float | None = None,
    ) -> Obj:
        query: dict[str, str] = {}
        if field_manager:
            query["fieldManager"] = field_manager
        if force:
            query["force"] = "true"
        out: Obj = await self.request(
            "PATCH",
            res.path(name, namespace, subresource),
            body=patch,
            query=query,
            content_type=_PATCH_CONTENT_TYPES[patch_type],
            verb="PATCH",
            timeout=timeout,
        )
        return out

    async def apply(
        self, res: Resource, obj: Obj, *, field_manager: str, force: bool = True, subresource: str | None = None
    ) -> Obj:
        """Server-side apply of ``obj`` (which carries apiVersion, kind and metadata.name)."""
        meta = obj["metadata"]
        return await self.patch(
            res,
            meta["name"],
            obj,
            meta.get("namespace"),
            patch_type="apply",
            subresource=subresource,
            field_manager=field_manager,
            force=force,
        )

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: Literal["Foreground", "Background", "Orphan"] | None = None,
        uid: str | None = None,
        resource_version: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> Obj | None:
        """Delete; returns the object (if deletion is deferred by finalizers) or the Status."""
        opts: Obj = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if propagation_policy:
            opts["propagationPolicy"] = propagation_policy
        if uid or resource_version:
            opts["preconditions"] = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if grace_period_seconds is not None:
            opts["gracePeriodSeconds"] = grace_period_seconds
        out: Obj | None = await self.request("DELETE", res.path(name, namespace), body=opts, verb="DELETE")
        return out

    async def delete_collection(
        self,
        res: Resource,
        namespace: str,
        *,
        label_selector: str,
        propagation_policy: Literal["Foreground", "Background", "Orphan"] | None = None,
    ) -> Obj | None:
        """DeleteAllOf: every object in ``namespace`` matching ``label_selector``."""
        opts: Obj = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if propagation_policy:
            opts["propagationPolicy"] = propagation_policy
        out: Obj | None = await self.request(
            "DELETE",
            res.collection_path(namespace),
            body=opts,
            query={"labelSelector": label_selector},
            verb="DELETECOLLECTION",
        )
        return out


def _fill_kind(page: Obj, res: Resource) -> None:
    # LIST items carry no apiVersion/kind; watch events do. Make cache entries uniform.
    for item in page.get("items") or ():
        item.setdefault("apiVersion", res.api_version)
        item.setdefault("kind", res.kind)


def _decode_event(line: bytes) -> Obj:
    ev: Obj = orjson.loads(line)
    if ev.get("type") == "ERROR":
        status = ev.get("object") or {}
        raise errors.from_response(int(status.get("code") or 500), orjson.dumps(status))
    return ev
