"""The leader's write fence, checked once more at the last moment a write can still be held back.

``Client`` checks its ``write_fence`` before it asks the pool for a connection, but a write then
waits for a connection (maybe a TCP and TLS handshake) and for the event loop to run the task that
writes the body. A replica frozen in that gap (SIGSTOP, a paused VM) would, on waking, send a write
its fence passed long before. These aiohttp trace hooks run without yielding to the event loop
immediately before the request's bytes are handed to the socket (the headers of a bodiless request,
the coalesced headers and body of the others), so the remaining gap is a few bytecodes. Kubernetes
has no fencing token a server could check, so a client-side fence cannot close it entirely.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import aiohttp

from internal.client import errors

_KEY = "write_fence"


def request_context(fence: Callable[[], bool] | None) -> Mapping[str, Any] | None:
    """The ``trace_request_ctx`` that makes one request check ``fence`` as it is sent."""
    return None if fence is None else {_KEY: fence}


async def _check(
    _session: aiohttp.ClientSession,
    ctx: SimpleNamespace,
    params: aiohttp.TraceRequestHeadersSentParams | aiohttp.TraceRequestChunkSentParams,
) -> None:
    fence = (ctx.trace_request_ctx or {}).get(_KEY)
    if fence is not None and not fence():
        # aiohttp hands an exception raised while writing the body to the response as the cause of
        # a ClientConnectionError; Client unwraps it.
        raise errors.NotLeader(
            f"{params.method} {params.url.path}: not sent, this replica no longer holds the leader lease"
        )


def trace_config() -> aiohttp.TraceConfig:
    tc = aiohttp.TraceConfig()
    tc.on_request_headers_sent.append(_check)  # before a bodiless request's headers are written
    tc.on_request_chunk_sent.append(_check)  # before the body (with the buffered headers) is written
    tc.freeze()
    return tc
