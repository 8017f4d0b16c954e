"""Start-up checks that turn the usual first-run mistakes into one line a person can act on, before
any informer starts: a kubeconfig that cannot be read, an API server that cannot be reached or refuses
the credentials, API resources that are not installed, and permissions the identity lacks.

It knows nothing of Ray: the caller (cmd/) says which group/version and which permissions it needs,
and words the advice. Every call has a timeout. The checks need no RBAC grant of their own: /version,
discovery, SelfSubjectReview and SelfSubjectAccessReview are open to every authenticated user through
the default ``system:public-info-viewer``, ``system:discovery`` and ``system:basic-user`` roles."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

from internal.client import (
    ApiError,
    Client,
    ConnectionFailed,
    Forbidden,
    NotFound,
    Timeout,
    Unauthorized,
    api_client,
    load_configuration,
)

CHECK_TIMEOUT = 10.0
_CONCURRENCY = 16
_SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class StartupError(Exception):
    """A start-up check failed: ``exit_code`` 2 for bad input (a kubeconfig), 1 for the environment."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class Access:
    """One permission, as a SelfSubjectAccessReview asks it. ``resource`` may name a subresource
    (``pods/status``); ``namespace`` "" means cluster-wide."""

    verb: str
    group: str
    resource: str
    namespace: str = ""

    def __str__(self) -> str:
        name = f"{self.resource}.{self.group}" if self.group else self.resource
        where = f"in namespace {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {name} {where}"


# ---- connecting ----------------------------------------------------------------------------------------


def _kubeconfig_path(kubeconfig: str | None) -> str | None:
    """The file load_configuration will read, or None for the in-cluster ServiceAccount."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        return path
    default = Path.home() / ".kube" / "config"
    return str(default) if default.exists() else None


def _check_source(kubeconfig: str | None) -> str | None:
    """The kubeconfig file to use (None: in-cluster), after checking it can be read and parsed."""
    path = _kubeconfig_path(kubeconfig)
    if path is None:
        if not os.environ.get("KUBERNETES_SERVICE_HOST") or not _SA_TOKEN.exists():
            raise StartupError(
                "no kubeconfig: pass --kubeconfig or set KUBECONFIG (or run in a pod with a ServiceAccount)", 2
            )
    elif os.pathsep not in path:  # a KUBECONFIG list is merged by the loader, missing files skipped
        _check_kubeconfig_file(path)
    return path


def _check_kubeconfig_file(path: str) -> None:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise StartupError(f"cannot read kubeconfig {path}: {e.strerror or e}", 2) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise StartupError(f"kubeconfig {path} is not valid YAML{where}: {e.problem}", 2) from None
    if not isinstance(doc, dict) or not doc.get("clusters"):
        raise StartupError(f"kubeconfig {path} defines no clusters", 2)


async def connect(kubeconfig: str | None, timeout: float = CHECK_TIMEOUT) -> Client:
    """A client for the checks, from the same kubeconfig (or in-cluster account) the operator uses.
    It is not rate-limited the way the operator's is: the checks are a short burst of cheap requests."""
    path = _check_source(kubeconfig)
    try:
        cfg = await load_configuration(kubeconfig)
    except Exception as e:  # the loader raises anything from ConfigException to TypeError on bad input
        source = f"kubeconfig {path}" if path else "the in-cluster ServiceAccount"
        raise StartupError(f"cannot use {source}: {e}", 2) from None
    return Client(api_client(cfg, pool_size=_CONCURRENCY), qps=1000, burst=1000, timeout=timeout)


def _why(e: BaseException) -> str:
    """The useful part of a connection failure (refused, DNS, TLS), without the exception chain."""
    cause = e.__cause__ or e
    if isinstance(cause, aiohttp.ClientConnectorCertificateError):
        return f"its TLS certificate is not trusted ({cause.certificate_error})"
    if isinstance(cause, aiohttp.ClientConnectorError):
        err = cause.os_error
        if isinstance(err, ConnectionRefusedError):
            return "connection refused"
        if isinstance(err, socket.gaierror):
            return f"cannot resolve the host name ({err.strerror})"
        if isinstance(err, ssl.SSLError):
            return f"TLS handshake failed ({err.reason or err})"
        return (err.strerror or str(err)).lower()
    return str(cause)


async def check_reachable(client: Client) -> str:
    """GET /version; returns the server's gitVersion."""
    try:
        info = await client.request("GET", "/version")
    except ConnectionFailed as e:
        raise StartupError(f"cannot reach the Kubernetes API server at {client.host}: {_why(e)}") from None
    except Timeout:
        raise StartupError(
            f"cannot reach the Kubernetes API server at {client.host}: no answer within {client.timeout:.0f}s"
        ) from None
    except Unauthorized:
        raise StartupError(
            f"the Kubernetes API server at {client.host} rejected the credentials (401 Unauthorized): "
            "the kubeconfig's token or certificate is wrong or expired"
        ) from None
    except ApiError as e:
        raise StartupError(f"the Kubernetes API server at {client.host} answered /version with: {e}") from None
    return str((info or {}).get("gitVersion") or "")


# ---- discovery -----------------------------------------------------------------------------------------


async def missing_resources(client: Client, group: str, version: str, plurals: Sequence[str]) -> list[str]:
    """Which of ``plurals`` the API server does not serve in ``group/version`` (discovery)."""
    try:
        doc = await client.request("GET", f"/apis/{group}/{version}")
    except NotFound:
        return list(plurals)
    except ApiError as e:
        raise StartupError(f"discovery of {group}/{version} failed: {e}") from None
    served = {r.get("name") for r in (doc or {}).get("resources") or ()}
    return [p for p in plurals if p not in served]


async def served_groups(client: Client) -> set[str]:
    """The API groups the server serves (discovery ``/apis``); raises :class:`StartupError`."""
    try:
        doc = await client.request("GET", "/apis")
    except ApiError as e:
        raise StartupError(f"discovery of the API groups failed: {e}") from None
    return {str(g.get("name")) for g in (doc or {}).get("groups") or ()}


# ---- permissions ---------------------------------------------------------------------------------------


async def identity(client: Client) -> str:
    """Who the API server thinks we are (SelfSubjectReview), or a description if it will not say."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    try:
        review = await client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=body)
    except ApiError:
        return "the operator's identity"
    name = ((review or {}).get("status") or {}).get("userInfo", {}).get("username")
    return f'"{name}"' if name else "the operator's identity"


async def _allowed(client: Client, access: Access) -> bool:
    resource, _, sub = access.resource.partition("/")
    attrs = {"verb": access.verb, "group": access.group, "resource": resource}
    if sub:
        attrs["subresource"] = sub
    if access.namespace:
        attrs["namespace"] = access.namespace
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attrs},
    }
    try:
        review = await client.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=body)
    except Forbidden as e:
        raise StartupError(f"cannot check the operator's permissions (SelfSubjectAccessReview): {e}") from None
    except ApiError as e:
        raise StartupError(f"checking the permission to {access} failed: {e}") from None
    return bool(((review or {}).get("status") or {}).get("allowed"))


async def denied(client: Client, wanted: Iterable[Access]) -> list[Access]:
    """The permissions in ``wanted`` the identity lacks, in ``wanted``'s order."""
    unique = list(dict.fromkeys(wanted))
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one(a: Access) -> bool:
        async with gate:
            return await _allowed(client, a)

    results = await asyncio.gather(*(one(a) for a in unique))
    return [a for a, ok in zip(unique, results, strict=True) if not ok]


def summarize(accesses: Sequence[Access], limit: int = 4) -> str:
    """A one-line list of permissions: the first ``limit``, then how many more."""
    shown = ", ".join(str(a) for a in accesses[:limit])
    more = len(accesses) - limit
    return f"{shown} and {more} more" if more > 0 else shown
