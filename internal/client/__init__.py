"""The async Kubernetes client: raw dicts via orjson, typed errors, QPS limiting, metrics, spans."""

from internal.client.client import Client, ConnectionFailed, Obj, PatchType
from internal.client.config import api_client, load_configuration
from internal.client.errors import (
    AlreadyExists,
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    NotLeader,
    ServerError,
    Timeout,
    TooManyRequests,
    Unauthorized,
    WatchStalled,
    is_conflict,
    is_not_found,
)
from internal.client.metrics import ClientMetrics
from internal.client.resources import Resource

__all__ = [
    "AlreadyExists",
    "ApiError",
    "BadRequest",
    "Client",
    "ClientMetrics",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "Gone",
    "Invalid",
    "NotFound",
    "NotLeader",
    "Obj",
    "PatchType",
    "Resource",
    "ServerError",
    "Timeout",
    "TooManyRequests",
    "Unauthorized",
    "WatchStalled",
    "api_client",
    "is_conflict",
    "is_not_found",
    "load_configuration",
]
