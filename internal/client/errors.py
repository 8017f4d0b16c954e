"""Typed API errors, decided from the HTTP status and the Status object's reason."""

from __future__ import annotations

from typing import Any

import orjson


class ApiError(Exception):
    """An error answer from the API server (or a request that never got one)."""

    status: int = 0

    def __init__(
        self,
        message: str,
        status: int = 0,
        reason: str = "",
        body: dict[str, Any] | None = None,
        retry_after_header: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status or type(self).status
        self.reason = reason
        self.body = body or {}
        self.retry_after_header = retry_after_header

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked the client to wait: the Retry-After header, else the Status's
        details.retryAfterSeconds."""
        if self.retry_after_header is not None:
            return self.retry_after_header
        details = self.body.get("details") or {}
        secs = details.get("retryAfterSeconds")
        return float(secs) if isinstance(secs, int | float) else None


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class MethodNotAllowed(ApiError):
    status = 405


class Conflict(ApiError):
    """409 on a write: stale resourceVersion or a server-side apply conflict."""

    status = 409


class AlreadyExists(Conflict):
    """409 on create: the name is taken."""


class Gone(ApiError):
    """410: the resourceVersion is too old (compacted); relist."""

    status = 410


class UnsupportedMediaType(ApiError):
    status = 415


class Invalid(ApiError):
    """422: the object failed validation; ``causes`` lists the fields."""

    status = 422

    @property
    def causes(self) -> list[dict[str, Any]]:
        return list((self.body.get("details") or {}).get("causes") or [])


class TooManyRequests(ApiError):
    status = 429


class ServerError(ApiError):
    status = 500


class Timeout(ApiError):
    """The request timed out: client side (no answer in time) or a 504 from the server."""

    status = 504


class NotLeader(ApiError):
    """Client side: a write refused before it was sent, because this replica no longer holds a valid
    leader lease (another may hold it already). Never reaches the API server."""


class WatchStalled(Timeout):
    """Client side: a watch stream went silent (no event, no bookmark) or outlived the deadline the
    server was asked to close it by. Its connection is presumed dead (half-open)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    c.status: c
    for c in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        Gone,
        UnsupportedMediaType,
        Invalid,
        TooManyRequests,
        Timeout,
    )
}


def parse_retry_after(value: str | None) -> int | None:
    """The Retry-After header as client-go reads it: whole seconds only (an HTTP date or a fraction
    is ignored), negative treated as 0."""
    if value is None:
        return None
    try:
        return max(0, int(value.strip()))
    except ValueError:
        return None


def from_response(status: int, data: bytes, retry_after: str | None = None) -> ApiError:
    body: dict[str, Any] = {}
    if data:
        try:
            decoded = orjson.loads(data)
            if isinstance(decoded, dict):
                body = decoded
        except orjson.JSONDecodeError:
            body = {"message": data[:500].decode(errors="replace")}
    reason = str(body.get("reason") or "")
    message = str(body.get("message") or f"HTTP {status}")
    if status == 409 and reason == "AlreadyExists":
        cls: type[ApiError] = AlreadyExists
    elif status == 410 or reason in ("Expired", "Gone"):
        cls = Gone
    elif status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif status >= 500:
        cls = ServerError
    else:
        cls = ApiError
    return cls(message, status=status, reason=reason, body=body, retry_after_header=parse_retry_after(retry_after))


def is_not_found(e: BaseException) -> bool:
    return isinstance(e, NotFound)


def is_conflict(e: BaseException) -> bool:
    return isinstance(e, Conflict) and not isinstance(e, AlreadyExists)
