"""An asyncio client for the Ray dashboard's Jobs and Serve REST API (spec §6, §15).

Upstream: ``controllers/ray/utils/dashboardclient/dashboard_httpclient.go`` (the client),
``utils/types/dashboard_httpclient.go`` (payloads) and ``utils/util.go`` (construction and address
resolution). The RayJob controller creates one client per reconcile through
:meth:`DashboardClientFactory.for_cluster`; the factory owns one shared :class:`aiohttp.ClientSession`.

Behaviour kept from upstream
  * ``GET /api/jobs/<id>`` answering 404 raises :class:`JobNotFound` with the message
    ``Job <id> does not exist on the cluster`` (upstream returns a K8s BadRequest; callers branch on it).
  * ``POST /api/jobs/`` answering 500 with "Please use a different submission_id" in the body raises
    :class:`JobAlreadySubmitted`, which carries the submission id; callers treat it as submitted.
  * ``POST /api/jobs/<id>/stop`` answering ``stopped: false`` fetches the job and fails only if the job
    is not terminal. ``GET .../logs`` and ``GET /api/jobs/`` answering 404 give ``None`` / ``[]``;
    ``DELETE /api/jobs/<id>`` ignores the answer.
  * ``x-ray-authorization: Bearer <token>`` on every request when a token is configured.
  * Timeouts: 2 s total for direct access, 10 s through the Kubernetes API server proxy.

Deliberate deviations
  * Upstream ``GetJobInfo`` does not check status codes other than 404, so a JSON error body (for
    example a ``Status`` object from the API server proxy) decodes into a job with status ``""`` (spec
    Q13). Here any other non-2xx answer raises :class:`DashboardError`; the caller sees a failed status
    check instead of a job that silently looks "new".
  * Every public call runs under one deadline (``asyncio.timeout``) equal to the request timeout,
    connection-pool wait included. ``stop_job``'s follow-up ``GET`` shares the deadline, so no caller
    ever waits longer than the timeout (upstream allows one timeout per HTTP request).
  * Responses are decoded into dataclasses that keep only the known fields; unknown fields and
    ``null`` values are tolerated everywhere.

Connection pool (one per factory)
  ``TCPConnector(limit=1024, limit_per_host=8)``. Each Ray head is a distinct (host, port) key, and a
  reconcile makes at most a couple of sequential calls to its cluster, so eight connections per head is
  ample. The per-host cap is what isolates heads from each other: a black-holed dashboard can hold at
  most eight sockets (each released at the 2 s deadline) and further calls to it queue on *its own*
  slots, inside their own deadline, instead of draining the shared pool that the other heads use.
  1024 in total covers >100 simultaneously black-holed heads before any healthy head would wait.
  Through the Kubernetes proxy every head shares the API server's host, so there the Kubernetes
  client's own pool is used and isolation relies on the 10 s deadline.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol, Self, TypeVar
from urllib.parse import urlsplit

import aiohttp
import orjson
import yaml

from controllers.ray.utils import constants as C
from controllers.ray.utils.util import (
    check_name,
    generate_head_service_name,
    get_cluster_domain_name,
    is_auth_enabled,
)

if TYPE_CHECKING:
    from internal.client import Client

__all__ = [
    "DIRECT_TIMEOUT_SECONDS",
    "PROXY_TIMEOUT_SECONDS",
    "DashboardAddressError",
    "DashboardAddressResolver",
    "DashboardClientFactory",
    "DashboardEndpoint",
    "DashboardError",
    "DashboardTimeout",
    "DashboardUnavailable",
    "FixedAddress",
    "JobAlreadySubmitted",
    "JobNotFound",
    "JobStatus",
    "JobStopFailed",
    "KubernetesPodProxy",
    "KubernetesProxy",
    "Loopback",
    "LoopbackProxyAddress",
    "PodIPProxy",
    "ProxyAddressResolver",
    "RayDashboardClient",
    "RayHttpProxyClient",
    "RayJobInfo",
    "RayJobRequest",
    "ServeApplicationDetails",
    "ServeApplicationStatus",
    "ServeDeploymentDetails",
    "ServeDeploymentStatus",
    "ServeDetails",
    "ServiceDNS",
    "fetch_head_service_url",
    "is_job_terminal",
    "read_auth_token",
    "service_dns_address",
]

# ---- constants ---------------------------------------------------------------------------------------

DIRECT_TIMEOUT_SECONDS: Final = 2.0  # RayHTTPClientDirectTimeoutSeconds
PROXY_TIMEOUT_SECONDS: Final = 10.0  # RayHTTPClientProxyTimeoutSeconds

JOB_PATH: Final = "/api/jobs/"  # the trailing '/' is required by the dashboard
SERVE_DETAILS_PATH: Final = "/api/serve/applications/"
DEPLOY_PATH_V2: Final = "/api/serve/applications/"
PROXY_HEALTH_PATH: Final = "/" + C.RAY_SERVE_PROXY_HEALTH_PATH
MAX_PROXY_ERROR_BODY_BYTES: Final = 4 * 1024  # upstream reads at most 4 KiB of a failed health answer
VERSION_PATH: Final = "/api/version"
SERVE_API_TYPE: Final = "declarative"

AUTH_HEADER: Final = "x-ray-authorization"
DUPLICATE_SUBMISSION_MARKER: Final = "Please use a different submission_id"

POOL_LIMIT: Final = 1024
POOL_LIMIT_PER_HOST: Final = 8
KEEPALIVE_SECONDS: Final = 15.0

MAX_ERROR_BODY_BYTES: Final = 256 * 1024  # read at most this much of an error answer
MAX_BODY_BYTES: Final = 64 * 1024 * 1024  # and at most this much of a successful one
BODY_EXCERPT_CHARS: Final = 1024  # what an error message and DashboardError.body keep

_JSON_HEADERS: Final = {"Content-Type": "application/json"}

_T = TypeVar("_T")


class JobStatus(StrEnum):
    """Ray job statuses (``ray.job_submission.JobStatus``); KubeRay adds ``""`` for "new"."""

    NEW = ""
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


_TERMINAL: Final = frozenset({JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED})


def is_job_terminal(status: str) -> bool:
    """``rayv1.IsJobTerminal``: STOPPED, SUCCEEDED and FAILED never change again."""
    return status in _TERMINAL


# ---- errors --------------------------------------------------------------------------------------------


def _excerpt(body: bytes | str, limit: int = BODY_EXCERPT_CHARS) -> str:
    """At most ``limit`` characters of ``body``: its start and its end (where a traceback names the error)."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} ...({len(text) - 2 * half} characters cut)... {text[-half:]}"


class DashboardError(Exception):
    """A failed dashboard call: ``status`` is the HTTP status (None when there was no answer) and
    ``body`` at most :data:`BODY_EXCERPT_CHARS` characters of the answer."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "", url: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = _excerpt(body)
        self.url = url


class DashboardTimeout(DashboardError, TimeoutError):
    """No (complete) answer within the request timeout."""


class DashboardUnavailable(DashboardError):
    """No HTTP answer at all: connection refused or reset, name resolution or TLS failure."""


class DashboardAddressError(DashboardError):
    """The address strategy cannot name a dashboard for this cluster."""


class JobNotFound(DashboardError):
    """``GetJobInfo`` got a 404 (upstream: a K8s BadRequest error with the same message)."""

    def __init__(self, job_id: str, *, body: str = "", url: str = "") -> None:
        super().__init__(f"Job {job_id} does not exist on the cluster", status=404, body=body, url=url)
        self.job_id = job_id


class JobAlreadySubmitted(DashboardError):
    """The submission id is taken (HTTP 500, "Please use a different submission_id"). Upstream returns
    the id together with this error; callers use :attr:`submission_id` as the submitted job's id."""

    def __init__(self, submission_id: str, *, body: str = "", url: str = "") -> None:
        super().__init__(
            f"submission ID '{submission_id}' already used, Please use a different submission_id",
            status=500,
            body=body,
            url=url,
        )
        self.submission_id = submission_id


class JobStopFailed(DashboardError):
    """``stopped: false`` and the job is still not terminal."""

    def __init__(self, info: RayJobInfo, *, url: str = "") -> None:
        super().__init__(f"failed to stop job: {info}", url=url)
        self.info = info


# ---- payloads ------------------------------------------------------------------------------------------


def _s(value: object) -> str:
    return value if isinstance(value, str) else ""


def _opt_s(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _u(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value >= 0:
        return int(value)
    return 0


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}


def _any_map(value: object) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass
class RayJobRequest:
    """The body of ``POST /api/jobs/`` (upstream ``RayJobRequest``). Only ``entrypoint`` is always sent;
    everything else is omitted when empty or zero."""

    entrypoint: str
    submission_id: str = ""
    runtime_env: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    entrypoint_num_cpus: float = 0.0
    entrypoint_num_gpus: float = 0.0
    entrypoint_resources: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.runtime_env:
            body["runtime_env"] = self.runtime_env
        if self.metadata:
            body["metadata"] = self.metadata
        if self.entrypoint_resources:
            body["entrypoint_resources"] = self.entrypoint_resources
        body["entrypoint"] = self.entrypoint
        if self.submission_id:
            body["submission_id"] = self.submission_id
        if self.entrypoint_num_cpus:
            body["entrypoint_num_cpus"] = self.entrypoint_num_cpus
        if self.entrypoint_num_gpus:
            body["entrypoint_num_gpus"] = self.entrypoint_num_gpus
        return body

    @classmethod
    def from_rayjob(cls, rayjob: Mapping[str, Any]) -> Self:
        """``ConvertRayJobToReq``: entrypoint, ``status.jobId``, metadata, the parsed ``runtimeEnvYAML``,
        entrypoint CPUs/GPUs and the ``entrypointResources`` JSON string. Raises ValueError when the YAML
        or the JSON does not parse."""
        spec = _obj(rayjob.get("spec"))
        status = _obj(rayjob.get("status"))
        runtime_env: dict[str, Any] | None = None
        runtime_env_yaml = _s(spec.get("runtimeEnvYAML"))
        if runtime_env_yaml:
            try:
                parsed = yaml.safe_load(runtime_env_yaml)
            except yaml.YAMLError as e:
                raise ValueError(f"failed to unmarshal RuntimeEnvYAML: {runtime_env_yaml}: {e}") from e
            if parsed is not None and not isinstance(parsed, dict):
                raise ValueError(f"failed to unmarshal RuntimeEnvYAML: {runtime_env_yaml}: not a mapping")
            runtime_env = _any_map(parsed) if parsed is not None else None
        resources: dict[str, float] | None = None
        resources_json = _s(spec.get("entrypointResources"))
        if resources_json:
            try:
                decoded = orjson.loads(resources_json)
            except orjson.JSONDecodeError as e:
                raise ValueError(f"invalid entrypointResources {resources_json!r}: {e}") from e
            if decoded is not None:
                if not isinstance(decoded, dict) or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) for v in decoded.values()
                ):
                    raise ValueError(f"invalid entrypointResources {resources_json!r}: want an object of numbers")
                resources = {str(k): float(v) for k, v in decoded.items()}
        metadata = _str_map(spec.get("metadata")) or None
        return cls(
            entrypoint=_s(spec.get("entrypoint")),
            submission_id=_s(status.get("jobId")),
            runtime_env=runtime_env,
            metadata=metadata,
            entrypoint_num_cpus=_num(spec.get("entrypointNumCpus")),
            entrypoint_num_gpus=_num(spec.get("entrypointNumGpus")),
            entrypoint_resources=resources,
        )


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


@dataclass
class RayJobInfo:
    """``GET /api/jobs/<id>`` as KubeRay reads it (upstream ``RayJobInfo``); other fields are dropped."""

    status: str = ""
    entrypoint: str = ""
    job_id: str = ""
    submission_id: str = ""
    message: str = ""
    error_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    runtime_env: dict[str, Any] = field(default_factory=dict)
    start_time: int = 0  # epoch ms
    end_time: int = 0

    @classmethod
    def from_json(cls, data: object) -> Self:
        d = _obj(data)
        return cls(
            status=_s(d.get("status")),
            entrypoint=_s(d.get("entrypoint")),
            job_id=_s(d.get("job_id")),
            submission_id=_s(d.get("submission_id")),
            message=_s(d.get("message")),
            error_type=_opt_s(d.get("error_type")),
            metadata=_str_map(d.get("metadata")),
            runtime_env=_any_map(d.get("runtime_env")),
            start_time=_u(d.get("start_time")),
            end_time=_u(d.get("end_time")),
        )

    @property
    def is_terminal(self) -> bool:
        return is_job_terminal(self.status)


@dataclass
class ServeDeploymentStatus:
    name: str = ""
    status: str = ""
    message: str = ""


@dataclass
class ServeDeploymentDetails(ServeDeploymentStatus):
    route_prefix: str = ""

    @classmethod
    def from_json(cls, data: object) -> Self:
        d = _obj(data)
        return cls(
            name=_s(d.get("name")),
            status=_s(d.get("status")),
            message=_s(d.get("message")),
            route_prefix=_s(d.get("route_prefix")),
        )


@dataclass
class ServeApplicationStatus:
    name: str = ""
    status: str = ""
    message: str = ""
    deployments: dict[str, ServeDeploymentStatus] = field(default_factory=dict)


@dataclass
class ServeApplicationDetails:
    name: str = ""
    status: str = ""
    message: str = ""
    route_prefix: str = ""
    docs_path: str = ""
    deployments: dict[str, ServeDeploymentDetails] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: object) -> Self:
        d = _obj(data)
        return cls(
            name=_s(d.get("name")),
            status=_s(d.get("status")),
            message=_s(d.get("message")),
            route_prefix=_s(d.get("route_prefix")),
            docs_path=_s(d.get("docs_path")),
            deployments={str(k): ServeDeploymentDetails.from_json(v) for k, v in _obj(d.get("deployments")).items()},
        )

    def to_status(self) -> ServeApplicationStatus:
        return ServeApplicationStatus(
            name=self.name,
            status=self.status,
            message=self.message,
            deployments={
                k: ServeDeploymentStatus(name=v.name, status=v.status, message=v.message)
                for k, v in self.deployments.items()
            },
        )


@dataclass
class ServeDetails:
    applications: dict[str, ServeApplicationDetails] = field(default_factory=dict)
    deploy_mode: str = ""

    @classmethod
    def from_json(cls, data: object) -> Self:
        d = _obj(data)
        return cls(
            applications={str(k): ServeApplicationDetails.from_json(v) for k, v in _obj(d.get("applications")).items()},
            deploy_mode=_s(d.get("deploy_mode")),
        )


# ---- the client ----------------------------------------------------------------------------------------


@dataclass
class _Answer:
    status: int
    reason: str
    body: bytes
    url: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status <= 299

    @property
    def status_line(self) -> str:  # Go's resp.Status, e.g. "500 Internal Server Error"
        return f"{self.status} {self.reason}".rstrip()


SessionProvider = Callable[[], aiohttp.ClientSession]
HeadersProvider = Callable[[], Awaitable[Mapping[str, str]]]


class RayDashboardClient:
    """One Ray head's dashboard. Cheap to create; the session belongs to whoever made the client."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession | SessionProvider,
        *,
        timeout: float = DIRECT_TIMEOUT_SECONDS,
        token: str | None = None,
        extra_headers: HeadersProvider | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self.timeout = timeout
        self.token = token or None
        self._extra_headers = extra_headers

    def __repr__(self) -> str:
        return f"RayDashboardClient({self.base_url!r}, timeout={self.timeout})"

    # ---- plumbing ----------------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        s = self._session
        return s if isinstance(s, aiohttp.ClientSession) else s()

    async def _headers(self, content_type: bool) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self._extra_headers is not None:
            headers.update(await self._extra_headers())
        if content_type:
            headers.update(_JSON_HEADERS)
        if self.token:
            headers[AUTH_HEADER] = f"Bearer {self.token}"
        return headers

    async def _request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        content_type: bool = False,
        params: Mapping[str, str] | None = None,
    ) -> _Answer:
        url = self.base_url + path
        headers = await self._headers(content_type)
        async with self._get_session().request(
            method,
            url,
            data=data,
            headers=headers,
            params=params,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        ) as resp:
            ok = 200 <= resp.status <= 299
            body = await _read_capped(resp, MAX_BODY_BYTES if ok else MAX_ERROR_BODY_BYTES, url, ok)
            return _Answer(resp.status, resp.reason or "", body, url)

    async def _bounded(self, op: str, work: Callable[[], Awaitable[_T]]) -> _T:
        """Run one public call under a single deadline and type every transport failure."""
        try:
            async with asyncio.timeout(self.timeout):
                return await work()
        except DashboardError:
            raise
        except TimeoutError as e:
            raise DashboardTimeout(f"{op}: no answer from {self.base_url} within {self.timeout:g}s") from e
        except aiohttp.ClientError as e:
            raise DashboardUnavailable(f"{op}: {self.base_url}: {e}") from e

    @staticmethod
    def _decode(answer: _Answer, op: str) -> Any:
        try:
            return orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            raise DashboardError(
                f"{op} fail: {_excerpt(answer.body)}", status=answer.status, body=_body_text(answer), url=answer.url
            ) from None

    @staticmethod
    def _fail(answer: _Answer, op: str) -> DashboardError:
        return DashboardError(
            f"{op} fail: {answer.status_line} {_excerpt(answer.body)}",
            status=answer.status,
            body=_body_text(answer),
            url=answer.url,
        )

    # ---- jobs --------------------------------------------------------------------------------------

    async def get_job_info(self, job_id: str) -> RayJobInfo:
        """``GET /api/jobs/<id>``; 404 raises :class:`JobNotFound`."""
        return await self._bounded("GetJobInfo", lambda: self._get_job_info(job_id))

    async def _get_job_info(self, job_id: str) -> RayJobInfo:
        answer = await self._request("GET", JOB_PATH + job_id)
        if answer.status == 404:
            raise JobNotFound(job_id, body=_body_text(answer), url=answer.url)
        if not answer.ok:
            raise self._fail(answer, "GetJobInfo")
        return RayJobInfo.from_json(self._decode(answer, "GetJobInfo"))

    async def list_jobs(self) -> list[RayJobInfo]:
        """``GET /api/jobs/``; 404 gives ``[]`` (upstream: nil)."""

        async def work() -> list[RayJobInfo]:
            answer = await self._request("GET", JOB_PATH)
            if answer.status == 404:
                return []
            if not answer.ok:
                raise self._fail(answer, "ListJobs")
            decoded = self._decode(answer, "ListJobs")
            if not isinstance(decoded, list):
                raise DashboardError(
                    f"ListJobs fail: {_excerpt(answer.body)}", status=answer.status, body=_body_text(answer)
                )
            return [RayJobInfo.from_json(item) for item in decoded]

        return await self._bounded("ListJobs", work)

    async def submit_job(self, request: RayJobRequest) -> str:
        """``POST /api/jobs/``; returns the job id. A taken submission id raises
        :class:`JobAlreadySubmitted` (``e.submission_id`` is the id to use)."""

        async def work() -> str:
            payload = orjson.dumps(request.to_json())
            answer = await self._request("POST", JOB_PATH, data=payload, content_type=True)
            if not answer.ok:
                if answer.status == 500 and DUPLICATE_SUBMISSION_MARKER.encode() in answer.body:
                    raise JobAlreadySubmitted(request.submission_id, body=_body_text(answer), url=answer.url)
                raise self._fail(answer, "SubmitJob")
            return _s(_obj(self._decode(answer, "SubmitJob")).get("job_id"))

        return await self._bounded("SubmitJob", work)

    async def submit_rayjob(self, rayjob: Mapping[str, Any]) -> str:
        """``SubmitJob(rayJob)``: :meth:`RayJobRequest.from_rayjob`, then :meth:`submit_job`."""
        return await self.submit_job(RayJobRequest.from_rayjob(rayjob))

    async def get_job_log(self, job_id: str) -> str | None:
        """``GET /api/jobs/<id>/logs``; 404 gives ``None``."""

        async def work() -> str | None:
            answer = await self._request("GET", f"{JOB_PATH}{job_id}/logs")
            if answer.status == 404:
                return None
            if not answer.ok:
                raise self._fail(answer, "GetJobLog")
            return _s(_obj(self._decode(answer, "GetJobLog")).get("logs"))

        return await self._bounded("GetJobLog", work)

    async def stop_job(self, job_id: str) -> None:
        """``POST /api/jobs/<id>/stop``. ``stopped: false`` is an error only when the job is not terminal."""

        async def work() -> None:
            answer = await self._request("POST", f"{JOB_PATH}{job_id}/stop", content_type=True)
            if not answer.ok:
                raise self._fail(answer, "StopJob")
            decoded = self._decode(answer, "StopJob")
            if _obj(decoded).get("stopped") is True:
                return
            info = await self._get_job_info(job_id)
            if not info.is_terminal:
                raise JobStopFailed(info, url=answer.url)

        await self._bounded("StopJob", work)

    async def delete_job(self, job_id: str) -> None:
        """``DELETE /api/jobs/<id>``; like upstream, the answer is ignored (only transport errors raise)."""

        async def work() -> None:
            await self._request("DELETE", JOB_PATH + job_id, content_type=True)

        await self._bounded("DeleteJob", work)

    # ---- serve -------------------------------------------------------------------------------------

    async def get_serve_details(self) -> ServeDetails:
        """``GET /api/serve/applications/?api_type=declarative``."""

        async def work() -> ServeDetails:
            answer = await self._request("GET", SERVE_DETAILS_PATH, params={"api_type": SERVE_API_TYPE})
            if not answer.ok:
                raise self._fail(answer, "GetServeDetails")
            return ServeDetails.from_json(self._decode(answer, "GetServeDetails"))

        return await self._bounded("GetServeDetails", work)

    async def get_multi_application_status(self) -> dict[str, ServeApplicationStatus]:
        details = await self.get_serve_details()
        return {name: app.to_status() for name, app in details.applications.items()}

    async def update_deployments(self, config: bytes | str | Mapping[str, Any]) -> None:
        """``PUT /api/serve/applications/`` with the Serve config JSON."""
        if isinstance(config, bytes):
            payload = config
        elif isinstance(config, str):
            payload = config.encode()
        else:
            payload = orjson.dumps(config)

        async def work() -> None:
            answer = await self._request("PUT", DEPLOY_PATH_V2, data=payload, content_type=True)
            if not answer.ok:
                raise self._fail(answer, "UpdateDeployments")

        await self._bounded("UpdateDeployments", work)

    # ---- misc --------------------------------------------------------------------------------------

    async def get_version(self) -> dict[str, Any]:
        """``GET /api/version`` (what the Ray SDK calls first): ``{version, ray_version, ...}``."""

        async def work() -> dict[str, Any]:
            answer = await self._request("GET", VERSION_PATH)
            if not answer.ok:
                raise self._fail(answer, "GetVersion")
            return _any_map(self._decode(answer, "GetVersion"))

        return await self._bounded("GetVersion", work)


def _body_text(answer: _Answer) -> str:
    return answer.body.decode("utf-8", errors="replace")


async def _read_capped(resp: aiohttp.ClientResponse, cap: int, url: str, must_fit: bool) -> bytes:
    """Read at most ``cap`` bytes. An error answer is simply cut; a successful one that does not fit is
    an error (a partial JSON document is useless)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            if must_fit:
                raise DashboardError(f"answer from {url} is larger than {cap} bytes", status=resp.status, url=url)
            break
    return b"".join(chunks)[:cap]


# ---- address resolution --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardEndpoint:
    """Where and how to reach one cluster's dashboard. ``session``/``headers`` default to the factory's
    shared session and no extra headers."""

    base_url: str
    timeout: float = DIRECT_TIMEOUT_SECONDS
    session: SessionProvider | None = None
    headers: HeadersProvider | None = None


class DashboardAddressResolver(Protocol):
    """Maps a RayCluster (and its ``status.dashboardURL``-style ``host:port``) to an endpoint."""

    def resolve(self, cluster: Mapping[str, Any], dashboard_url: str) -> DashboardEndpoint: ...


def _meta(cluster: Mapping[str, Any]) -> tuple[str, str]:
    m = _obj(cluster.get("metadata"))
    return _s(m.get("namespace")), _s(m.get("name"))


def head_service_name(cluster: Mapping[str, Any]) -> str:
    _, name = _meta(cluster)
    return generate_head_service_name(C.CRDType.RAY_CLUSTER, _obj(cluster.get("spec")), name)


def _head_dashboard_port(cluster: Mapping[str, Any]) -> int:
    """The head container's port named ``dashboard`` (the head Service copies it), else 8265."""
    head = _obj(_obj(cluster.get("spec")).get("headGroupSpec"))
    containers = _obj(_obj(head.get("template")).get("spec")).get("containers")
    if isinstance(containers, list) and containers:
        for port in _obj(containers[0]).get("ports") or []:
            p = _obj(port)
            if p.get("name") == C.DASHBOARD_PORT_NAME and isinstance(p.get("containerPort"), int):
                return int(p["containerPort"])
    return C.DEFAULT_DASHBOARD_PORT


def service_dns_address(cluster: Mapping[str, Any], env: Mapping[str, str] | None = None) -> str:
    """``<head svc>.<ns>.svc.<CLUSTER_DOMAIN|cluster.local>:<dashboard port>`` computed from the spec (what
    :func:`fetch_head_service_url` returns when the Service matches the spec)."""
    ns, _ = _meta(cluster)
    domain = get_cluster_domain_name(os.environ if env is None else env)
    return f"{head_service_name(cluster)}.{ns}.svc.{domain}:{_head_dashboard_port(cluster)}"


class ServiceDNS:
    """In-cluster default: ``http://<dashboard_url>`` (upstream ``"http://" + url``); without a URL the
    head Service's DNS name is computed from the cluster. Never dials anything by itself."""

    def __init__(self, *, env: Mapping[str, str] | None = None, timeout: float = DIRECT_TIMEOUT_SECONDS) -> None:
        self.env = env
        self.timeout = timeout

    def base_url(self, cluster: Mapping[str, Any], dashboard_url: str = "") -> str:
        address = dashboard_url or service_dns_address(cluster, self.env)
        return address if "://" in address else "http://" + address

    def resolve(self, cluster: Mapping[str, Any], dashboard_url: str) -> DashboardEndpoint:
        return DashboardEndpoint(self.base_url(cluster, dashboard_url), self.timeout)


class KubernetesProxy:
    """``--use-kubernetes-proxy``: through the API server's service proxy, with the Kubernetes client's
    session (TLS, pool) and credentials, and the 10 s timeout."""

    def __init__(self, kube: Client, *, timeout: float = PROXY_TIMEOUT_SECONDS) -> None:
        self.kube = kube
        self.timeout = timeout

    def base_url(self, cluster: Mapping[str, Any], dashboard_url: str = "") -> str:
        ns, _ = _meta(cluster)
        svc = _s(_obj(_obj(cluster.get("status")).get("head")).get("serviceName")) or head_service_name(cluster)
        return f"{self.kube.host}/api/v1/namespaces/{ns}/services/{svc}:{C.DASHBOARD_PORT_NAME}/proxy"

    async def _headers(self) -> Mapping[str, str]:
        headers = await self.kube._headers(None)
        headers.pop("Accept", None)  # logs and errors are not always JSON
        return headers

    def resolve(self, cluster: Mapping[str, Any], dashboard_url: str) -> DashboardEndpoint:
        return DashboardEndpoint(
            self.base_url(cluster, dashboard_url), self.timeout, session=self.kube._session, headers=self._headers
        )


AddressTable = Mapping[str, str] | Callable[[Mapping[str, Any]], str | None]


class FixedAddress:
    """A base URL per cluster from a mapping (keys ``<ns>/<name>`` or ``<name>``) or a callable; for
    tests and ``make run``, where heads listen on 127.0.0.1 ports."""

    def __init__(self, addresses: AddressTable, *, timeout: float = DIRECT_TIMEOUT_SECONDS) -> None:
        self.addresses = addresses
        self.timeout = timeout

    def base_url(self, cluster: Mapping[str, Any], dashboard_url: str = "") -> str:
        ns, name = _meta(cluster)
        if callable(self.addresses):
            url = self.addresses(cluster)
        else:
            url = self.addresses.get(f"{ns}/{name}") or self.addresses.get(name)
        if not url:
            raise DashboardAddressError(f"no dashboard address configured for RayCluster {ns}/{name}")
        url = url if "://" in url else "http://" + url
        self._check(url)
        return url.rstrip("/")

    def _check(self, url: str) -> None:
        return None

    def resolve(self, cluster: Mapping[str, Any], dashboard_url: str) -> DashboardEndpoint:
        return DashboardEndpoint(self.base_url(cluster, dashboard_url), self.timeout)


class Loopback(FixedAddress):
    """:class:`FixedAddress` that refuses any host but loopback (127.0.0.0/8, ::1, localhost)."""

    def _check(self, url: str) -> None:
        host = urlsplit(url).hostname or ""
        if host == "localhost":
            return
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            pass
        raise DashboardAddressError(f"dashboard address {url} is not a loopback address")


# ---- Serve proxies (``httpproxy_httpclient.go``) --------------------------------------------------------


class ProxyAddressResolver(Protocol):
    """Maps a Ray Pod and its serve port to the base URL of its Serve proxy."""

    def resolve(self, pod: Mapping[str, Any], port: int) -> DashboardEndpoint: ...


def _pod_meta(pod: Mapping[str, Any]) -> tuple[str, str]:
    m = _obj(pod.get("metadata"))
    return _s(m.get("namespace")), _s(m.get("name"))


class PodIPProxy:
    """In-cluster default: ``http://<podIP>:<port>``. An empty pod IP gives a URL that fails at once
    (upstream: the request fails and the label becomes ``false``)."""

    def __init__(self, *, timeout: float = DIRECT_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout

    def resolve(self, pod: Mapping[str, Any], port: int) -> DashboardEndpoint:
        ip = _s(_obj(pod.get("status")).get("podIP"))
        host = f"[{ip}]" if ":" in ip else ip
        return DashboardEndpoint(f"http://{host}:{port}", self.timeout)


class KubernetesPodProxy:
    """``--use-kubernetes-proxy``: ``<apiserver>/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy`` (10 s)."""

    def __init__(self, kube: Client, *, timeout: float = PROXY_TIMEOUT_SECONDS) -> None:
        self.kube = kube
        self.timeout = timeout

    async def _headers(self) -> Mapping[str, str]:
        headers = await self.kube._headers(None)
        headers.pop("Accept", None)
        return headers

    def resolve(self, pod: Mapping[str, Any], port: int) -> DashboardEndpoint:
        ns, name = _pod_meta(pod)
        base = f"{self.kube.host}/api/v1/namespaces/{ns}/pods/{name}:{port}/proxy"
        return DashboardEndpoint(base, self.timeout, session=self.kube._session, headers=self._headers)


class LoopbackProxyAddress:
    """Tests: a callable ``(pod, port) -> base URL`` that must name a loopback address."""

    def __init__(
        self, address: Callable[[Mapping[str, Any], int], str], *, timeout: float = DIRECT_TIMEOUT_SECONDS
    ) -> None:
        self.address = address
        self.timeout = timeout

    def resolve(self, pod: Mapping[str, Any], port: int) -> DashboardEndpoint:
        url = self.address(pod, port)
        url = url if "://" in url else "http://" + url
        Loopback({})._check(url)
        return DashboardEndpoint(url.rstrip("/"), self.timeout)


class RayHttpProxyClient:
    """One Serve proxy (upstream ``RayHttpProxyClient``): only the health check KubeRay uses."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession | SessionProvider,
        *,
        timeout: float = DIRECT_TIMEOUT_SECONDS,
        extra_headers: HeadersProvider | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self.timeout = timeout
        self._extra_headers = extra_headers

    def __repr__(self) -> str:
        return f"RayHttpProxyClient({self.base_url!r}, timeout={self.timeout})"

    async def check_proxy_actor_health(self) -> None:
        """``GET <base>/-/healthz``: returns on exactly 200; otherwise raises :class:`DashboardError`
        (``CheckProxyActorHealth fails. status code: <n>, status: <s>, body: <at most 4 KiB>``) or the
        typed transport error. Never takes longer than the timeout. No auth header (as upstream)."""
        url = self.base_url + PROXY_HEALTH_PATH
        session = self._session if isinstance(self._session, aiohttp.ClientSession) else self._session()
        headers = dict(await self._extra_headers()) if self._extra_headers is not None else {}
        try:
            async with asyncio.timeout(self.timeout):
                async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                    if resp.status == 200:
                        return
                    body = await _read_capped(resp, MAX_PROXY_ERROR_BODY_BYTES, url, False)
                    status_line = f"{resp.status} {resp.reason or ''}".rstrip()
                    raise DashboardError(
                        f"CheckProxyActorHealth fails. status code: {resp.status}, status: {status_line}, "
                        f"body: {body.decode('utf-8', errors='replace')}",
                        status=resp.status,
                        body=body.decode("utf-8", errors="replace"),
                        url=url,
                    )
        except DashboardError:
            raise
        except TimeoutError as e:
            raise DashboardTimeout(f"CheckProxyActorHealth: no answer from {url} within {self.timeout:g}s") from e
        except (aiohttp.ClientError, ValueError) as e:
            raise DashboardUnavailable(f"CheckProxyActorHealth: {url}: {e}") from e


# ---- factory -------------------------------------------------------------------------------------------


class DashboardClientFactory:
    """Makes :class:`RayDashboardClient` objects for clusters; owns the shared session (see the module
    docstring for the pool sizing). Close it (or use ``async with``) when the operator stops."""

    def __init__(
        self,
        resolver: DashboardAddressResolver | None = None,
        *,
        proxies: ProxyAddressResolver | None = None,
        limit: int = POOL_LIMIT,
        limit_per_host: int = POOL_LIMIT_PER_HOST,
        keepalive_timeout: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.resolver: DashboardAddressResolver = resolver or ServiceDNS()
        self.proxies: ProxyAddressResolver = proxies or PodIPProxy()
        self.limit = limit
        self.limit_per_host = limit_per_host
        self.keepalive_timeout = keepalive_timeout
        self._shared: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The shared session, created on first use (inside the running loop)."""
        if self._shared is None or self._shared.closed:
            connector = aiohttp.TCPConnector(
                limit=self.limit,
                limit_per_host=self.limit_per_host,
                keepalive_timeout=self.keepalive_timeout,
                enable_cleanup_closed=False,
            )
            self._shared = aiohttp.ClientSession(
                connector=connector,
                # Each request carries its own timeout; this only stops aiohttp's 5-minute default.
                timeout=aiohttp.ClientTimeout(total=PROXY_TIMEOUT_SECONDS),
            )
        return self._shared

    def for_cluster(
        self, cluster: Mapping[str, Any], dashboard_url: str = "", token: str | None = None
    ) -> RayDashboardClient:
        """A client for ``cluster`` (a RayCluster dict). ``dashboard_url`` is ``status.dashboardURL``
        (``host:port``); ``token`` enables the ``x-ray-authorization`` header."""
        endpoint = self.resolver.resolve(cluster, dashboard_url)
        return RayDashboardClient(
            endpoint.base_url,
            endpoint.session or self.session,
            timeout=endpoint.timeout,
            token=token,
            extra_headers=endpoint.headers,
        )

    def for_proxy(self, pod: Mapping[str, Any], port: int) -> RayHttpProxyClient:
        """A client for the Serve proxy of ``pod`` (a Pod dict) on ``port`` (``RayHttpProxyClient``)."""
        endpoint = self.proxies.resolve(pod, port)
        return RayHttpProxyClient(
            endpoint.base_url,
            endpoint.session or self.session,
            timeout=endpoint.timeout,
            extra_headers=endpoint.headers,
        )

    async def close(self) -> None:
        if self._shared is not None and not self._shared.closed:
            await self._shared.close()
        self._shared = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# ---- Kubernetes-side helpers (spec §6.1) ---------------------------------------------------------------


async def fetch_head_service_url(
    kube: Client,
    cluster: Mapping[str, Any],
    port_name: str = C.DASHBOARD_PORT_NAME,
    env: Mapping[str, str] | None = None,
) -> str:
    """``FetchHeadServiceURL``: get the head Service, take its port named ``port_name`` and return
    ``<svc>.<ns>.svc.<CLUSTER_DOMAIN|cluster.local>:<port>``. Kubernetes errors propagate."""
    from internal.client.resources import SERVICES

    ns, _ = _meta(cluster)
    svc = await kube.get(SERVICES, head_service_name(cluster), ns)
    return head_service_url(svc, port_name, env)


def head_service_url(
    svc: Mapping[str, Any], port_name: str = C.DASHBOARD_PORT_NAME, env: Mapping[str, str] | None = None
) -> str:
    """The address part of ``FetchHeadServiceURL`` for a head Service already read (e.g. from the
    cache): ``<svc>.<ns>.svc.<domain>:<port of port_name>``."""
    port: int | None = None
    for p in _obj(svc.get("spec")).get("ports") or []:
        if _obj(p).get("name") == port_name:
            port = int(_obj(p).get("port") or 0)
            break
    if port is None:
        raise ValueError(f"{port_name} port is not found")
    meta = _obj(svc.get("metadata"))
    domain = get_cluster_domain_name(os.environ if env is None else env)
    return f"{_s(meta.get('name'))}.{_s(meta.get('namespace'))}.svc.{domain}:{port}"


async def read_auth_token(kube: Client, cluster: Mapping[str, Any]) -> str | None:
    """The dashboard token for ``cluster``: None unless ``authOptions.mode == token``; then Secret
    ``authOptions.secretName`` (or ``CheckName(<cluster>)``), key ``auth_token``. A missing Secret raises
    the Kubernetes NotFound error, a missing key :class:`DashboardError`."""
    from internal.client.resources import SECRETS

    if not is_auth_enabled(cluster):
        return None
    ns, name = _meta(cluster)
    auth = _obj(_obj(cluster.get("spec")).get("authOptions"))
    secret_name = _s(auth.get("secretName")) or check_name(name)
    secret = await kube.get(SECRETS, secret_name, ns)
    raw = _obj(secret.get("data")).get(C.RAY_AUTH_TOKEN_SECRET_KEY)
    if not isinstance(raw, str):
        raise DashboardError(f"secret {ns}/{secret_name} has no {C.RAY_AUTH_TOKEN_SECRET_KEY} key")
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as e:
        raise DashboardError(
            f"secret {ns}/{secret_name}: {C.RAY_AUTH_TOKEN_SECRET_KEY} is not valid base64: {e}"
        ) from e
