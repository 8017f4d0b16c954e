"""A fake Ray dashboard (the Jobs and Serve REST API of spec §15.1) on 127.0.0.1, for fault injection
and scripted job lifecycles. It is not a Ray model: jobs only do what a test scripts.

One :class:`FakeDashboard` process-local server hosts any number of virtual clusters:

* ``fake.cluster("rc-a")`` — a *path-prefixed* cluster, ``http://127.0.0.1:<port>/c/rc-a`` (a dict entry:
  hundreds cost nothing);
* ``await fake.cluster_on_own_port("rc-b")`` — a cluster with its own listening socket,
  ``http://127.0.0.1:<port2>`` (distinct host:port, so a client's per-host connection limit applies to
  it alone);
* ``fake.default`` — the cluster served at the root of the main port.

Per-cluster controls (:class:`FakeCluster`):

* job scripts: ``default_script`` for every new job, ``script(id, ...)`` for one id (before or after
  submission); :class:`Step` ``after`` is seconds since the previous transition, ``None`` waits for
  ``advance(id)``; ``set_status``/``finish`` jump directly. Terminal statuses never change (as in Ray).
* ``forget_jobs()`` / ``forget_job(id)``: a head restart without GCS FT (404 for the ids afterwards).
* ``hang()``: every request is accepted and never answered until ``heal()``; ``reset()``: every
  connection is aborted; ``fail_all()``: every request gets 500; ``fail_next(endpoint, status, body,
  times)``: one-shot faults; ``delay``: latency.
* ``serve``: the head's Serve controller and proxy (``support/fake_serve.py``: PUT validation as Ray
  2.60, DEPLOYING → RUNNING over ``serve.timing``, deployment statuses, ``/-/healthz``).
* ``no_agent``: submit answers 500 "No available agent ..."; ``stop_noop``: stop answers
  ``stopped: false`` and leaves the job running; ``required_token``: 401 without
  ``x-ray-authorization: Bearer <token>``; ``gcs_healthy``.
* observation: ``calls`` (a Counter per endpoint name, see :data:`ENDPOINTS`), ``requests`` (the last
  1000 requests with headers and bodies), ``serve_configs`` (PUT bodies).

Error texts and codes follow Ray 2.60 ``job_head.py`` (§15.5): ``Job <id> does not exist`` 404, the
duplicate id as a 500 traceback containing "Please use a different submission_id", ``Can only ... of
submission type jobs`` 400, deleting a non-terminal job 500.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from support.fake_serve import ServeModel, ServeValidationError

ENDPOINTS = (
    "version",
    "gcs_healthz",
    "submit",
    "list",
    "get",
    "logs",
    "tail",
    "stop",
    "delete",
    "serve_get",
    "serve_put",
    "serve_delete",
    "proxy_healthz",
)
TERMINAL = frozenset({"STOPPED", "SUCCEEDED", "FAILED"})
MESSAGES = {
    "PENDING": "Job has not started yet.",
    "RUNNING": "Job is currently running.",
    "STOPPED": "Job was intentionally stopped.",
    "SUCCEEDED": "Job finished successfully.",
    "FAILED": "Job failed.",
}
_ID_ALPHABET = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz123456789" if c not in "IloO0")
Mode = Literal["ok", "hang", "error", "reset"]


def _traceback(where: str, exc: str) -> str:
    """A Python traceback as long as a real one (a few KiB), the exception on its last line."""
    frames = "".join(
        f'  File "/home/ray/anaconda3/lib/python3.11/site-packages/ray/dashboard/modules/job/{mod}.py", '
        f"line {100 + 37 * i}, in {fn}\n    result = await self._{fn}(request, *args, **kwargs)\n"
        f"             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        for i, (mod, fn) in enumerate(
            [("job_head", where), ("job_head", "submit_job_internal"), ("job_manager", "submit_job")] * 4
        )
    )
    return f"Traceback (most recent call last):\n{frames}{exc}\n"


@dataclass
class Step:
    """A scripted transition: to ``status`` ``after`` seconds after the previous one (None: on advance())."""

    status: str
    after: float | None = 0.0
    message: str | None = None
    error_type: str | None = None
    exit_code: int | None = None


StepLike = Step | str | tuple[str, float | None]


def steps(*items: StepLike) -> list[Step]:
    """``steps("RUNNING", ("SUCCEEDED", 0.5))``: a bare status means "immediately"."""
    out: list[Step] = []
    for item in items:
        if isinstance(item, Step):
            out.append(item)
        elif isinstance(item, str):
            out.append(Step(item, 0.0))
        else:
            out.append(Step(item[0], item[1]))
    return out


@dataclass
class Seen:
    endpoint: str
    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class FakeJob:
    submission_id: str
    entrypoint: str
    request: dict[str, Any] = field(default_factory=dict)
    type: str = "SUBMISSION"
    status: str = "PENDING"
    message: str = MESSAGES["PENDING"]
    error_type: str | None = None
    start_time: int = 0
    end_time: int | None = None
    driver_exit_code: int | None = None
    core_job_id: str | None = None
    log_text: str = ""
    pending: deque[Step] = field(default_factory=deque)
    _mono: float = 0.0  # monotonic time of the last transition
    _mono0: float = 0.0
    _wall0_ms: int = 0

    def __post_init__(self) -> None:
        self._mono0 = self._mono = time.monotonic()
        self._wall0_ms = self.start_time = self.start_time or int(time.time() * 1000)
        if not self.log_text:
            self.log_text = f"fake driver output for {self.submission_id}: {self.entrypoint}\n"

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def _wall_ms(self, mono: float) -> int:
        return self._wall0_ms + int((mono - self._mono0) * 1000)

    def apply(self, step: Step, at: float | None = None) -> None:
        if self.terminal:
            raise AssertionError(f"job {self.submission_id} is {self.status}; a terminal status never changes")
        at = time.monotonic() if at is None else at
        self.status = step.status
        self.message = step.message if step.message is not None else MESSAGES.get(step.status, "")
        if step.error_type is not None:
            self.error_type = step.error_type
        if step.status != "PENDING" and self.core_job_id is None:
            self.core_job_id = f"{random.randrange(1, 0xFFFF):04x}0000"
        if step.status in TERMINAL:
            self.end_time = self._wall_ms(at)
            self.pending.clear()
            if step.exit_code is not None:
                self.driver_exit_code = step.exit_code
            elif step.status == "SUCCEEDED":
                self.driver_exit_code = 0
            elif step.status == "FAILED":
                self.driver_exit_code = 1
        self._mono = at

    def tick(self) -> None:
        """Apply every timed step that is due (lazy: no task runs per job)."""
        now = time.monotonic()
        while self.pending and not self.terminal:
            step = self.pending[0]
            if step.after is None or now - self._mono < step.after:
                return
            self.pending.popleft()
            self.apply(step, at=self._mono + step.after)

    @property
    def logs(self) -> str:
        return "" if self.status == "PENDING" else self.log_text

    def details(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        placed = self.status != "PENDING"
        req = self.request
        d: dict[str, Any] = {
            "type": self.type,
            "job_id": self.core_job_id,
            "submission_id": self.submission_id if self.type == "SUBMISSION" else None,
            "driver_info": {"id": self.core_job_id, "node_ip_address": "127.0.0.1", "pid": "4242"} if placed else None,
            "status": self.status,
            "entrypoint": self.entrypoint,
            "message": self.message,
            "error_type": self.error_type,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "metadata": req.get("metadata") or {},
            "runtime_env": req.get("runtime_env") or {},
            "driver_agent_http_address": "http://127.0.0.1:52365" if placed else None,
            "driver_node_id": "f" * 56 if placed else None,
            "driver_exit_code": self.driver_exit_code,
            "entrypoint_num_cpus": req.get("entrypoint_num_cpus"),
            "entrypoint_num_gpus": req.get("entrypoint_num_gpus"),
            "entrypoint_memory": req.get("entrypoint_memory"),
            "entrypoint_resources": req.get("entrypoint_resources"),
        }
        d.update(extra)
        return d


class FakeCluster:
    """One virtual Ray head. All controls are plain attributes or sync methods (call them from tests)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.base_url = ""
        self.port = 0
        self.mode: Mode = "ok"
        self.delay = 0.0
        self.no_agent = False
        self.stop_noop = False
        self.gcs_healthy = True
        self.required_token: str | None = None
        self.error_body = "Internal Server Error: injected fault"
        self.calls: Counter[str] = Counter()
        self.requests: deque[Seen] = deque(maxlen=1000)
        self.jobs: dict[str, FakeJob] = {}
        self.default_script: list[Step] = steps("RUNNING")
        self.scripts: dict[str, list[Step]] = {}
        # Real JobDetails carry more fields than KubeRay reads; add some unknown ones on purpose.
        self.extra_job_fields: dict[str, Any] = {}
        # Serve: the model of this head's Serve controller and proxy (support/fake_serve.py).
        self.serve = ServeModel()
        # Ray 2.60 sends no ``deploy_mode`` (older Rays sent ``MULTI_APP``); set it to model one of those.
        self.deploy_mode: str | None = None
        self.serve_configs: list[Any] = []
        self._faults: dict[str, deque[tuple[int, str]]] = {}
        self._released = asyncio.Event()
        self._released.set()

    def __repr__(self) -> str:
        return f"FakeCluster({self.name!r}, {self.base_url!r}, mode={self.mode})"

    # ---- faults ------------------------------------------------------------------------------------

    def hang(self) -> None:
        """Accept connections and requests, answer none of them (until heal())."""
        self.mode = "hang"
        if self._released.is_set():
            self._released = asyncio.Event()

    def fail_all(self, body: str | None = None) -> None:
        """Answer every request with HTTP 500."""
        self.mode = "error"
        if body is not None:
            self.error_body = body

    def reset(self) -> None:
        """Abort the connection of every request without an answer (a head whose process died)."""
        self.mode = "reset"

    def heal(self) -> None:
        """Back to normal; requests held by hang() proceed."""
        self.mode = "ok"
        self._released.set()

    def fail_next(self, endpoint: str, status: int = 500, body: str = "injected fault", times: int = 1) -> None:
        assert endpoint in ENDPOINTS, endpoint
        self._faults.setdefault(endpoint, deque()).extend([(status, body)] * times)

    def forget_jobs(self) -> None:
        """A head restart without GCS fault tolerance: every job (and its logs) is gone."""
        self.jobs.clear()

    def forget_job(self, submission_id: str) -> None:
        self.jobs.pop(submission_id, None)

    # ---- lifecycles --------------------------------------------------------------------------------

    def script(self, submission_id: str, *items: StepLike) -> None:
        """The steps for one job id: used at submission, or replaces the remaining steps of a known job."""
        job = self.jobs.get(submission_id)
        if job is None:
            self.scripts[submission_id] = steps(*items)
        else:
            job.pending = deque(steps(*items))
            job._mono = time.monotonic()

    def set_default_script(self, *items: StepLike) -> None:
        self.default_script = steps(*items)

    def job(self, submission_id: str) -> FakeJob:
        job = self.jobs[submission_id]
        job.tick()
        return job

    def status(self, submission_id: str) -> str:
        return self.job(submission_id).status

    def advance(self, submission_id: str) -> str:
        """Apply the next scripted step now, whatever its delay."""
        job = self.job(submission_id)
        if job.pending:
            job.apply(job.pending.popleft())
        return job.status

    def set_status(
        self,
        submission_id: str,
        status: str,
        *,
        message: str | None = None,
        error_type: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        """Jump to ``status`` now and drop the rest of the script."""
        job = self.job(submission_id)
        job.pending.clear()
        job.apply(Step(status, 0.0, message, error_type, exit_code))

    def finish(self, submission_id: str, status: str = "SUCCEEDED", **kw: Any) -> None:
        job = self.job(submission_id)
        if job.status == "PENDING":
            job.apply(Step("RUNNING"))
        self.set_status(submission_id, status, **kw)

    def add_job(
        self,
        submission_id: str,
        entrypoint: str = "python -c pass",
        *,
        status: str = "RUNNING",
        type: str = "SUBMISSION",
        request: dict[str, Any] | None = None,
        log_text: str = "",
    ) -> FakeJob:
        """Seed a job directly (e.g. submitted by someone else, or a DRIVER-type job)."""
        job = FakeJob(submission_id, entrypoint, dict(request or {}), type=type, log_text=log_text)
        if status != "PENDING":
            job.apply(Step(status))
        self.jobs[submission_id] = job
        return job


class FakeDashboard:
    """The server. ``async with FakeDashboard() as fake:``; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.clusters: dict[str, FakeCluster] = {}
        self._by_addr: dict[tuple[str, int], FakeCluster] = {}  # the listening (host, port)
        self._sites: dict[str, web.BaseSite] = {}
        self._runner: web.AppRunner | None = None
        self.default = FakeCluster("default")
        # Called with (cluster, endpoint, status) once Ray has acted on a request and before the answer
        # leaves: the chaos tier kills the operator there ("submitted to Ray, status not yet written").
        self.on_handled: Callable[[FakeCluster, str, int], None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> FakeDashboard:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        for prefix in ("", "/c/{cluster}"):
            r = app.router
            r.add_get(prefix + "/api/version", self._wrap("version", self._version))
            r.add_get(prefix + "/api/gcs_healthz", self._wrap("gcs_healthz", self._gcs_healthz))
            r.add_post(prefix + "/api/jobs/", self._wrap("submit", self._submit))
            r.add_get(prefix + "/api/jobs/", self._wrap("list", self._list))
            r.add_get(prefix + "/api/jobs/{job_id}", self._wrap("get", self._get))
            r.add_delete(prefix + "/api/jobs/{job_id}", self._wrap("delete", self._delete))
            r.add_get(prefix + "/api/jobs/{job_id}/logs", self._wrap("logs", self._logs))
            r.add_get(prefix + "/api/jobs/{job_id}/logs/tail", self._wrap("tail", self._tail))
            r.add_post(prefix + "/api/jobs/{job_id}/stop", self._wrap("stop", self._stop))
            r.add_get(prefix + "/api/serve/applications/", self._wrap("serve_get", self._serve_get))
            r.add_put(prefix + "/api/serve/applications/", self._wrap("serve_put", self._serve_put))
            r.add_delete(prefix + "/api/serve/applications/", self._wrap("serve_delete", self._serve_delete))
            # The head's Serve proxy (port 8000 on a real head), served here next to its dashboard.
            r.add_get(prefix + "/-/healthz", self._wrap("proxy_healthz", self._proxy_healthz))
        # handler_cancellation: a client that gives up (timeout) cancels its hung handler.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        sock = _listen(self.host)
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        self._sites[""] = site
        self.default.base_url, self.default.port = self.base_url, self.port
        self._by_addr[(self.host, self.port)] = self.default

    async def stop(self) -> None:
        for c in [self.default, *self.clusters.values()]:
            c._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- clusters ----------------------------------------------------------------------------------

    def cluster(self, name: str) -> FakeCluster:
        """Get or create the path-prefixed cluster ``name`` (``<base>/c/<name>``)."""
        assert name and "/" not in name, name
        c = self.clusters.get(name)
        if c is None:
            c = self.clusters[name] = FakeCluster(name)
            c.base_url, c.port = f"{self.base_url}/c/{name}", self.port
        return c

    async def cluster_on_own_port(self, name: str) -> FakeCluster:
        """Get or create cluster ``name`` served at the root of a port of its own."""
        assert self._runner is not None, "start() first"
        c = self.cluster(name)
        if name not in self._sites:
            sock = _listen(self.host)
            port = sock.getsockname()[1]
            site = web.SockSite(self._runner, sock)
            await site.start()
            self._sites[name] = site
            self._by_addr[(self.host, port)] = c
            c.base_url, c.port = f"http://{self.host}:{port}", port
        return c

    async def cluster_on_address(self, name: str, host: str, port: int = 8265) -> FakeCluster:
        """Get or create cluster ``name`` served at the root of ``host:port`` (a loopback address that a
        head Service's DNS name is made to resolve to, for an operator that dials the real name)."""
        assert self._runner is not None, "start() first"
        c = self.cluster(name)
        if name not in self._sites:
            sock = _listen(host, port)
            site = web.SockSite(self._runner, sock)
            await site.start()
            self._sites[name] = site
            self._by_addr[(host, port)] = c
            c.base_url, c.port = f"http://{host}:{port}", port
        return c

    async def remove_cluster(self, name: str) -> None:
        """Delete the cluster (its own port, if any, stops listening)."""
        c = self.clusters.pop(name, None)
        if c is None:
            return
        c._released.set()
        site = self._sites.pop(name, None)
        if site is not None:
            for addr in [a for a, owner in self._by_addr.items() if owner is c]:
                del self._by_addr[addr]
            await site.stop()

    def url_table(self, namespace: str = "default") -> dict[str, str]:
        """``{"<ns>/<name>": base_url}`` for every cluster, for the Loopback address strategy."""
        return {f"{namespace}/{n}": c.base_url for n, c in self.clusters.items()}

    def total_calls(self) -> Counter[str]:
        total: Counter[str] = Counter(self.default.calls)
        for c in self.clusters.values():
            total.update(c.calls)
        return total

    # ---- request plumbing --------------------------------------------------------------------------

    def _cluster_for(self, request: web.Request) -> FakeCluster | None:
        name = request.match_info.get("cluster")
        if name is not None:
            return self.clusters.get(name)
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        return self._by_addr.get((sockname[0], sockname[1])) if sockname else None

    def _wrap(
        self, endpoint: str, handler: Callable[[FakeCluster, web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            cluster = self._cluster_for(request)
            if cluster is None:
                if "cluster" not in request.match_info and request.transport is not None:
                    request.transport.close()  # a removed own-port cluster: drop kept-alive connections too
                return web.Response(status=502, text=f"fake dashboard: no cluster {request.match_info.get('cluster')}")
            body = await request.read()
            cluster.calls[endpoint] += 1
            cluster.requests.append(Seen(endpoint, request.method, request.path_qs, CIMultiDict(request.headers), body))
            if cluster.mode == "hang":
                await cluster._released.wait()
            if cluster.mode == "reset":
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=503)  # never delivered
            if cluster.delay:
                await asyncio.sleep(cluster.delay)
            if cluster.mode == "error":
                return web.Response(status=500, text=cluster.error_body)
            if cluster.required_token is not None:
                got = request.headers.get("x-ray-authorization", "")
                if got != f"Bearer {cluster.required_token}":
                    return web.Response(status=401, text="Unauthorized: missing or invalid authentication token")
            faults = cluster._faults.get(endpoint)
            if faults:
                status, text = faults.popleft()
                return web.Response(status=status, text=text)
            answer = await handler(cluster, request)
            if self.on_handled is not None:
                self.on_handled(cluster, endpoint, answer.status)
            return answer

        return handle

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")

    @staticmethod
    def _lookup(cluster: FakeCluster, request: web.Request, action: str | None) -> FakeJob | web.Response:
        job_id = request.match_info["job_id"]
        job = cluster.jobs.get(job_id)
        if job is None:
            return web.Response(status=404, text=f"Job {job_id} does not exist")
        job.tick()
        if action is not None and job.type != "SUBMISSION":
            return web.Response(status=400, text=f"Can only {action} submission type jobs")
        return job

    # ---- handlers ----------------------------------------------------------------------------------

    async def _version(self, cluster: FakeCluster, request: web.Request) -> web.Response:
        return self._json(
            {"version": "4", "ray_version": "2.60.0", "ray_commit": "fake", "session_name": f"session_{cluster.name}"}
        )

    async def _gcs_healthz(self, cluster: FakeCluster, request: web.Request) -> web.Response:
        if not cluster.gcs_healthy:
            return web.Response(status=503, reason="Health check failed: GCS is not alive")
        return web.Response(text="success", content_type="application/text")

    async def _submit(self, cluster: FakeCluster, request: web.Request) -> web.Response:
        try:
            raw = orjson.loads(await request.read())
        except orjson.JSONDecodeError as e:
            return web.Response(status=400, text=_traceback("submit_job", f"json.decoder.JSONDecodeError: {e}"))
        if not isinstance(raw, dict):
            return web.Response(status=400, text=_traceback("submit_job", "TypeError: request body is not an object"))
        body = {k: v for k, v in raw.items() if v is not None}
        entrypoint = body.get("entrypoint")
        if not isinstance(entrypoint, str):
            msg = f"TypeError: entrypoint must be a string, got {type(entrypoint)}"
            return web.Response(status=400, text=_traceback("submit_job", msg))
        metadata = body.get("metadata", {})
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            msg = f"TypeError: metadata must be a dict of strings, got {metadata!r}"
            return web.Response(status=400, text=_traceback("submit_job", msg))
        if cluster.no_agent:
            return web.Response(status=500, text="No available agent to submit job, please try again later.")
        submission_id = body.get("submission_id") or body.get("job_id")
        if not submission_id:
            submission_id = "raysubmit_" + "".join(random.choices(_ID_ALPHABET, k=16))
        if submission_id in cluster.jobs:
            agent = _traceback(
                "submit_job",
                f"ValueError: Job with submission_id {submission_id} already exists. "
                "Please use a different submission_id.",
            )
            msg = f"RuntimeError: Request failed with status code 400: {agent}."
            return web.Response(status=500, text=_traceback("submit_job", msg))
        job = FakeJob(submission_id, entrypoint, body)
        job.pending = deque(cluster.scripts.pop(submission_id, None) or list(cluster.default_script))
        cluster.jobs[submission_id] = job
        job.tick()
        return self._json({"job_id": submission_id, "submission_id": submission_id})

    async def _list(self, cluster: FakeCluster, request: web.Request) -> web.Response:
        jobs = list(cluster.jobs.values())
        for j in jobs:
            j.tick()
        ordered = [j for j in jobs if j.type == "SUBMISSION"] + [j for j in jobs if j.type != "SUBMISSION"]
        return self._json([j.details(cluster.extra_job_fields) for j in ordered])

    async def _get(self, cluster: FakeCluster, request: web.Request) -> web.Response:
        job = self._lookup(cluster, request, None)
        if isinstance(job, web.Response):
            return job
        return self._json(job.details(cluster.extra_job_fields))

    async def _logs(self, cluster: FakeCluster, request: web.Request) -> web.Response:
        job = self._lookup(cluster, request, "get logs of")
        if isinstance(job, web.Response):
            return job
        return self._json({"logs": job.logs})

    async def _tail(self, cluster: FakeCluster, request: web.Request) -> web.StreamResponse:
        job = self._lookup(cluster, request, "get logs of")
        if isinstance(job, web.Response):
            return job
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sent = 0
        while not ws.closed:
            job.tick()
            text = job.logs
            if len(text) > sent:
                await ws.send_str(text[sent:])
                sent = len(text)
            if job.terminal or job.submission_id not in cluster.jobs:
                break
            try:  # the server's own poll interval (Ray polls every 1 s); a client close ends it early
                msg = await ws.receive(timeout=0.05)
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
            except TimeoutError:
                pass
        await ws.close()
        return ws

    async def _stop(self, cluster: FakeCluster, request: web.Request) -> web.Response:
        job = self._lookup(cluster, request, "stop")
        if isinstance(job, web.Response):
            return job
        if cluster.stop_noop or job.terminal:
            return self._json({"stopped": False})
        job.apply(Step("STOPPED"))
        return self._json({"stopped": True})

    async def _delete(self, cluster: FakeCluster, request: web.Request) -> web.Response:
        job = self._lookup(cluster, request, "delete")
        if isinstance(job, web.Response):
            return job
        if not job.terminal:
            msg = (
                f"RuntimeError: Attempted to delete job '{job.submission_id}', "
                f"but it is in a non-terminal state {job.status}."
            )
            return web.Response(status=500, text=_traceback("delete_job", msg))
        del cluster.jobs[job.submission_id]
        return self._json({"deleted": True})

    async def _serve_get(self, cluster: FakeCluster, request: web.Request) -> web.Response:
        api_type = request.query.get("api_type")
        if api_type is not None and api_type.lower() not in ("imperative", "declarative"):
            return web.Response(
                status=400, text=f"Invalid 'api_type' value: '{api_type}'. Must be one of: imperative, declarative"
            )
        details = cluster.serve.details()
        if api_type is not None and api_type.lower() == "imperative":
            details["applications"] = {}  # every app of this model is deployed through the REST API
        if cluster.serve.running and cluster.deploy_mode is not None:
            details["deploy_mode"] = cluster.deploy_mode
        return web.Response(body=orjson.dumps(details), content_type="application/json", charset="utf-8", status=200)

    async def _serve_put(self, cluster: FakeCluster, request: web.Request) -> web.Response:
        try:
            config = orjson.loads(await request.read())
        except orjson.JSONDecodeError as e:
            text = _traceback("put_all_applications", f"json.decoder.JSONDecodeError: {e}")
            return web.Response(status=500, text=text)
        try:
            cluster.serve.put(config)
        except ServeValidationError as e:
            return web.Response(status=400, text=str(e))
        cluster.serve_configs.append(config)
        return web.Response(status=200)

    async def _serve_delete(self, cluster: FakeCluster, request: web.Request) -> web.Response:
        cluster.serve.delete()
        return web.Response(status=200)

    async def _proxy_healthz(self, cluster: FakeCluster, request: web.Request) -> web.Response:
        answer = cluster.serve.healthz()
        if answer is None:  # no proxy listens before Serve starts: the connection is refused
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)  # never delivered
        status, text = answer
        return web.Response(status=status, text=text)


def _listen(host: str, port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock
