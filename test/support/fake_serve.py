"""A model of one Ray head's Serve REST API and HTTP proxy (Ray 2.60, spec ``rayservice.md`` §8), used
by ``fake_dashboard.FakeCluster.serve``.

What it models, per cluster:

* Serve is not running until the first successful PUT: GET answers the "never started" document and the
  proxy does not listen (the connection is reset). ``restart()`` is a head restart without GCS FT:
  every application is lost and Serve is down again.
* ``PUT /api/serve/applications/`` validates the body as Ray's ``ServeDeploySchema`` does (pydantic's
  400 text, footer and truncated ``input_value`` included, for the cases KubeRay users hit) and applies
  it declaratively: a new app, or one whose code changed (``import_path``/``runtime_env``/``args``), is
  built first (``DEPLOYING``, deployments ``{}``, ``deployment_topology`` null, ``route_prefix`` null or
  the previous build's), then its deployments go ``UPDATING`` and ``RUNNING`` after ``timing.deploy``
  seconds; an identical re-PUT flips the built app to ``DEPLOYING`` (deployments ``UPDATING``) for
  ``timing.redeploy`` seconds; applications absent from the config are ``DELETING`` for
  ``timing.delete`` seconds, then gone. ``route_prefix`` is not checked by the schema: a bad one fails
  the build.
* Failures: an ``import_path`` in ``failing_imports`` ends ``DEPLOY_FAILED`` with Ray's message; a
  deployment named in ``failing_constructors`` ends ``DEPLOY_FAILED``/``REPLICA_STARTUP_FAILED`` with
  no replica and its stopped attempts in ``recent_dead_replicas``;
  ``set_deployment_status(app, dep, status, message)`` scripts a deployment (``UNHEALTHY``,
  ``DEPLOY_FAILED``...) and the application status is derived from its deployments as Serve derives it
  (§8.4), until the application's config changes.
* The head proxy's ``GET /-/healthz``: 200 ``success`` once Serve runs (a head proxy answers even
  before its replicas run), 503 ``This node is being drained.`` while ``draining``.

Transport faults (hang, 500, reset, slow) are the cluster's (``FakeCluster.hang()`` and friends).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

APP_STATUSES = ("NOT_STARTED", "DEPLOYING", "DEPLOY_FAILED", "RUNNING", "UNHEALTHY", "DELETING")
DEPLOYMENT_STATUSES = ("UPDATING", "HEALTHY", "UNHEALTHY", "DEPLOY_FAILED", "UPSCALING", "DOWNSCALING")
NEVER_STARTED: dict[str, Any] = {"controller_info": {}, "proxies": {}, "applications": {}, "target_capacity": None}


@dataclass
class ServeTiming:
    """Seconds from a PUT to RUNNING, of the DEPLOYING flip of an identical re-PUT, and of DELETING.
    Ray on a 2-core host: about 3, 0.3 and 0.5 (``realistic()``)."""

    deploy: float = 0.0
    redeploy: float = 0.0
    delete: float = 0.0

    @classmethod
    def realistic(cls) -> ServeTiming:
        return cls(deploy=3.0, redeploy=0.3, delete=0.5)


class ServeValidationError(Exception):
    """A 400 from the PUT, with Ray's text (``repr`` of pydantic's ``ValidationError``)."""


NODE_ID = "f" * 56
PROXY_NAME = f"SERVE_PROXY_ACTOR-{NODE_ID}"
PYDANTIC_DOCS = "https://errors.pydantic.dev/2.14/v/"
# Ray 2.60's MAX_PER_REPLICA_RETRY_COUNT and DeploymentConfig.max_constructor_retry_count default.
RETRIES_PER_REPLICA = 3
MAX_CONSTRUCTOR_RETRIES = 20
HTTP_DEFAULTS: dict[str, Any] = {
    "host": "0.0.0.0",
    "port": 8000,
    "root_path": "",
    "request_timeout_s": None,
    "keep_alive_timeout_s": 90,
    "ssl_keyfile": None,
    "ssl_certfile": None,
    "ssl_keyfile_password": None,
    "ssl_ca_certs": None,
}
GRPC_DEFAULTS: dict[str, Any] = {
    "port": 9000,
    "grpc_servicer_functions": [],
    "request_timeout_s": None,
    "enable_reflection": True,
}


@dataclass
class _App:
    name: str
    config: dict[str, Any]
    since: float
    settle: float  # seconds after ``since`` until the deployments are healthy
    failure: str | None = None
    deleting_until: float | None = None
    overrides: dict[str, tuple[str, str]] = field(default_factory=dict)
    deployed_at: float = field(default_factory=time.time)
    # False while Serve builds (imports) the app: no deployments, no topology. A re-PUT of the same code
    # does not rebuild (Ray's code version: import_path, runtime_env, args).
    needs_build: bool = True
    # Ray keeps the last build's route prefix while a new version builds (null before any build).
    old_prefix: str | None = None
    failing_constructors: dict[str, str] = field(default_factory=dict)


# ---- pydantic's ValidationError text ---------------------------------------------------------------------

_Error = tuple[str, str, str, Any]  # loc ("" for the model), message, type, input


def _input_repr(value: Any) -> str:
    """pydantic-core shows ``repr(input)`` cut to its first 25 and last 24 characters beyond 50."""
    text = repr(value)
    return text if len(text) <= 50 else f"{text[:25]}...{text[-24:]}"


def _pydantic_text(errors: list[_Error]) -> str:
    n = len(errors)
    lines = [f"{n} validation error{'s' if n > 1 else ''} for ServeDeploySchema"]
    for loc, msg, kind, value in errors:
        if loc:  # model-level errors have no location line
            lines.append(loc)
        lines.append(f"  {msg} [type={kind}, input_value={_input_repr(value)}, input_type={type(value).__name__}]")
        lines.append(f"    For further information visit {PYDANTIC_DOCS}{kind}")
    return "\n".join(lines)


def _pydantic(loc: str, msg: str, kind: str, value: Any) -> str:
    return _pydantic_text([(loc, msg, kind, value)])


def _import_path_error(path: str) -> str | None:
    """``ServeApplicationSchema.import_path_format_valid``."""
    bad = f'Got invalid import path "{path}". An import path '
    if ":" in path:
        if path.count(":") > 1:
            return bad + "may have at most one colon."
        if path.rfind(":") in (0, len(path) - 1):
            return bad + "may not start or end with a colon."
        return None
    if path.count(".") < 1:
        return (
            bad + "must contain at least on dot or colon separating the module (and potentially submodules) "
            'from the deployment graph. E.g.: "module.deployment_graph".'
        )
    if path.rfind(".") in (0, len(path) - 1):
        return bad + "may not start or end with a dot."
    return None


def _route_prefix_error(prefix: Any) -> str | None:
    """``validate_route_prefix``: run when the app is built, not by the PUT's schema."""
    if prefix is None or not isinstance(prefix, str):
        return None
    if not prefix.startswith("/"):
        return f'Got "{prefix}" for route_prefix. Route prefix must start with "/".'
    if len(prefix) > 1 and prefix.endswith("/"):
        return (
            f'Got "{prefix}" for route_prefix. Route prefix cannot end with "/" unless the entire prefix is just "/".'
        )
    if "{" in prefix or "}" in prefix:
        return (
            f'Got "{prefix}" for route_prefix. Route prefix cannot contain wildcards, so it cannot contain '
            '"{" or "}".'
        )
    return None


def _app_errors(i: int, app: Any) -> list[_Error]:
    loc = f"applications.{i}"
    if not isinstance(app, dict):
        return [(loc, "Input should be a valid dictionary or instance of ServeApplicationSchema", "model_type", app)]
    errors: list[_Error] = []
    if "import_path" not in app:
        errors.append((f"{loc}.import_path", "Field required", "missing", app))
    elif isinstance(app["import_path"], str) and (msg := _import_path_error(app["import_path"])):
        errors.append((f"{loc}.import_path", f"Value error, {msg}", "value_error", app["import_path"]))
    env = app.get("runtime_env")
    if isinstance(env, dict):
        uris = [*(env.get("py_modules") or []), *([env["working_dir"]] if "working_dir" in env else [])]
        for uri in uris:
            if isinstance(uri, str) and "://" not in uri:
                errors.append(
                    (
                        f"{loc}.runtime_env",
                        "Value error, runtime_envs in the Serve config support only remote URIs in working_dir and "
                        'py_modules, or "local://" URIs for directories that already exist on every node. Got error '
                        f"when parsing URI: Expected URI but received path {uri}",
                        "value_error",
                        env,
                    )
                )
                break
    for j, dep in enumerate(app.get("deployments") or ()):
        dloc = f"{loc}.deployments.{j}"
        if not isinstance(dep, dict):
            continue
        n = dep.get("num_replicas")
        # DeploymentSchema's "before" validator, then PositiveInt | str.
        if n is not None and n != "auto" and not isinstance(n, int):
            msg = f'Value error, `num_replicas` must be an int or "auto", but got: {n}'
            errors.append((dloc, msg, "value_error", dep))
            continue
        if "name" not in dep:
            errors.append((f"{dloc}.name", "Field required", "missing", dep))
        if isinstance(n, int) and not isinstance(n, bool) and n <= 0:
            errors.append((f"{dloc}.num_replicas.constrained-int", "Input should be greater than 0", "greater_than", n))
            errors.append((f"{dloc}.num_replicas.str", "Input should be a valid string", "string_type", n))
    return errors


def _applications_check(apps: list[dict[str, Any]]) -> str | None:
    """``ServeDeploySchema``'s field validators of ``applications``, in their order."""
    names = [str(a.get("name", "default")) for a in apps]
    dups = sorted({f'"{n}"' for n in names if names.count(n) > 1})
    if dups:
        which = ("application " if len(dups) == 1 else "applications ") + ", ".join(dups)
        return f"Found multiple configs for {which}. Please remove all duplicates."
    routes = [a.get("route_prefix", "/") for a in apps if a.get("route_prefix", "/") is not None]
    dup_routes = sorted({f'"{r}"' for r in routes if routes.count(r) > 1})
    if dup_routes:
        which = ("route prefix " if len(dup_routes) == 1 else "route prefixes ") + ", ".join(dup_routes)
        return f"Found duplicate applications for {which}. Please ensure each application's route_prefix is unique."
    if any(n == "" for n in names):
        return "Application names must be nonempty."
    return None


def validate(config: Any) -> None:
    """The checks of ``ServeDeploySchema`` that a RayService's ``serveConfigV2`` can fail (§8.2), with
    pydantic's text: every field error is reported, model validators run only when the fields are valid."""
    if not isinstance(config, dict):
        msg = "Input should be a valid dictionary or instance of ServeDeploySchema"
        raise ServeValidationError(_pydantic("", msg, "model_type", config))
    errors: list[_Error] = []
    apps = config.get("applications")
    if "applications" not in config:
        errors.append(("applications", "Field required", "missing", config))
    elif not isinstance(apps, list):
        errors.append(("applications", "Input should be a valid list", "list_type", apps))
    else:
        app_errors = [e for i, app in enumerate(apps) for e in _app_errors(i, app)]
        errors += app_errors
        if not app_errors and (problem := _applications_check(apps)):
            errors.append(("applications", f"Value error, {problem}", "value_error", apps))
    tc = config.get("target_capacity")
    if isinstance(tc, str):
        try:
            tc = float(tc)
        except ValueError:
            msg = "Input should be a valid number, unable to parse string as a number"
            errors.append(("target_capacity", msg, "float_parsing", tc))
            tc = None
    if tc is not None and (not isinstance(tc, int | float) or isinstance(tc, bool)):
        errors.append(("target_capacity", "Input should be a valid number", "float_type", tc))
    elif tc is not None and tc > 100:
        errors.append(("target_capacity", "Input should be less than or equal to 100", "less_than_equal", tc))
    elif tc is not None and tc < 0:
        errors.append(("target_capacity", "Input should be greater than or equal to 0", "greater_than_equal", tc))
    if errors:
        raise ServeValidationError(_pydantic_text(errors))
    assert isinstance(apps, list)
    for app in apps:  # the "after" model validator: only once every field is valid
        name = app.get("name", "default")
        if "host" in app:
            msg = (
                f'Value error, Host "{app["host"]}" is set in the config for application `{name}`. Please remove it '
                "and set host in the top level deploy config only."
            )
            raise ServeValidationError(_pydantic("", msg, "value_error", config))
        if "port" in app:
            msg = (
                f"Value error, Port {app['port']} is set in the config for application `{name}`. Please remove it "
                "and set port in the top level deploy config only."
            )
            raise ServeValidationError(_pydantic("", msg, "value_error", config))


def _deployment_names(app: dict[str, Any]) -> list[str]:
    names = [str(d["name"]) for d in app.get("deployments") or () if isinstance(d, dict) and d.get("name")]
    if names:
        return names
    path = str(app.get("import_path", ""))
    attr = path.rsplit(":", 1)[-1] if ":" in path else path.rsplit(".", 1)[-1]
    return [attr[:1].upper() + attr[1:] or "Deployment"]


def _code_version(app: dict[str, Any]) -> str:
    """What Ray's ``get_app_code_version`` hashes (the parts a serveConfigV2 sets)."""
    return json.dumps([app.get("import_path"), app.get("runtime_env", {}), app.get("args", {})], sort_keys=True)


def _hex(*parts: object, n: int = 32) -> str:
    """Stable ids (actor, worker, replica) derived from what they name."""
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:n]


def _actor(name: str, *key: object) -> dict[str, Any]:
    return {
        "node_id": NODE_ID,
        "node_ip": "127.0.0.1",
        "node_instance_id": "",
        "actor_id": _hex("actor", *key),
        "actor_name": name,
        "worker_id": _hex("worker", *key, n=56),
        "log_file_path": "",
    }


def _stats(x: float) -> dict[str, float]:
    return {"max": x, "mean": x, "min": x, "std": 0.0}


class ServeModel:
    """One head's Serve state; every read is computed from the clock (no background task)."""

    def __init__(self) -> None:
        self.timing = ServeTiming()
        self.running = False
        self.draining = False
        self.apps: dict[str, _App] = {}
        self.failing_imports: dict[str, str] = {}
        # deployment name -> the constructor's last traceback line (e.g. ``RuntimeError: cannot start``)
        self.failing_constructors: dict[str, str] = {}
        self.target_capacity: float | None = None
        self.http_options: dict[str, Any] = dict(HTTP_DEFAULTS)
        self.grpc_options: dict[str, Any] = copy.deepcopy(GRPC_DEFAULTS)
        self.proxy_location = "EveryNode"
        self._started = time.time()

    # ---- controls ----------------------------------------------------------------------------------------

    def restart(self) -> None:
        """A head restart without GCS fault tolerance: Serve and every application are gone."""
        self.running = False
        self.apps.clear()
        self.target_capacity = None

    def set_deployment_status(self, app: str, deployment: str, status: str, message: str = "") -> None:
        """Script one deployment until its application's config changes (e.g. ``UNHEALTHY``)."""
        assert status in DEPLOYMENT_STATUSES, status
        self.apps[app].overrides[deployment] = (status, message)

    def clear_deployment_status(self, app: str) -> None:
        self.apps[app].overrides.clear()

    def app_status(self, app: str) -> str:
        return str(self.details()["applications"].get(app, {}).get("status", ""))

    # ---- the API ------------------------------------------------------------------------------------------

    def put(self, config: Any) -> None:
        """Apply a config (raises :class:`ServeValidationError` for a 400)."""
        validate(config)
        now = time.monotonic()
        if not self.running:  # http/grpc options apply only when Serve starts (ignored with a warning after)
            self.http_options = {**HTTP_DEFAULTS, **(config.get("http_options") or {})}
            self.grpc_options = {**copy.deepcopy(GRPC_DEFAULTS), **(config.get("grpc_options") or {})}
            self._started = time.time()
        self.running = True
        tc = config.get("target_capacity")
        self.target_capacity = float(tc) if tc is not None else None
        self.proxy_location = config.get("proxy_location", self.proxy_location)
        wanted: dict[str, dict[str, Any]] = {str(a.get("name", "default")): a for a in config["applications"]}
        for name, app_config in wanted.items():
            old = self.apps.get(name)
            failure = self.failing_imports.get(str(app_config["import_path"]))
            fresh = _App(name, copy.deepcopy(app_config), now, self.timing.deploy, failure)
            fresh.failing_constructors = dict(self.failing_constructors)
            if old is not None and old.deleting_until is None:
                fresh.old_prefix = self._prefix_of(old, now)
                # A failed or unfinished build left no code version: Ray builds again (from scratch).
                if self._built(old, now) and _code_version(old.config) == _code_version(app_config):
                    # Same code: Ray overrides the built app's options, no rebuild.
                    fresh.needs_build = False
                    fresh.failing_constructors = old.failing_constructors
                    fresh.failure = None
                    if old.config == app_config:
                        fresh.settle = self.timing.redeploy
            self.apps[name] = fresh
        for name, app in self.apps.items():
            if name not in wanted and app.deleting_until is None:
                app.old_prefix = self._prefix_of(app, now)  # Ray keeps the prefix while deleting
                app.deleting_until = now + self.timing.delete

    def delete(self) -> None:
        """``DELETE /api/serve/applications/``: ``serve.shutdown()``."""
        self.restart()

    def details(self) -> dict[str, Any]:
        """``GET /api/serve/applications/`` (``ServeInstanceDetails``)."""
        if not self.running:
            return copy.deepcopy(NEVER_STARTED)
        now = time.monotonic()
        for name in [n for n, a in self.apps.items() if a.deleting_until is not None and now >= a.deleting_until]:
            del self.apps[name]
        proxy = {**_actor(PROXY_NAME, "proxy"), "log_file_path": "/serve/proxy_127.0.0.1.log", "status": "HEALTHY"}
        groups = [("HTTP", self.http_options["port"])]
        if self.grpc_options.get("grpc_servicer_functions"):  # Ray's is_grpc_enabled
            groups.append(("gRPC", self.grpc_options["port"]))
        return {
            "controller_info": {
                **_actor("SERVE_CONTROLLER_ACTOR", "controller"),
                "log_file_path": "/serve/controller_1.log",
            },
            "proxy_location": self.proxy_location,
            "http_options": dict(self.http_options),
            "grpc_options": copy.deepcopy(self.grpc_options),
            "proxies": {NODE_ID: proxy},
            "applications": {name: self._app_details(app, now) for name, app in self.apps.items()},
            "target_capacity": self.target_capacity,
            # The proxies' target groups (no direct ingress): one per enabled protocol, even with zero apps.
            "target_groups": [
                {
                    "targets": [{"ip": "127.0.0.1", "port": port, "instance_id": "", "name": PROXY_NAME}],
                    "route_prefix": "/",
                    "protocol": protocol,
                    "app_name": "",
                    "ingress_request_router_targets": [],
                    "ingress_deployment_name": "",
                }
                for protocol, port in groups
            ],
            "controller_health_metrics": self._health_metrics(),
            "restores_unset_config_options": True,
        }

    def healthz(self) -> tuple[int, str] | None:
        """The head proxy's ``/-/healthz``: None when no proxy listens (Serve not running)."""
        if not self.running:
            return None
        if self.draining:
            return 503, "This node is being drained."
        return 200, "success"

    # ---- derivation -----------------------------------------------------------------------------------

    def _health_metrics(self) -> dict[str, Any]:
        """The controller's self-report: same keys as Ray 2.60, values of a loop at 10/s (not measured)."""
        now = time.time()
        uptime = max(now - self._started, 0.0)
        return {
            "timestamp": now,
            "controller_start_time": self._started,
            "uptime_s": uptime,
            "num_control_loops": int(uptime * 10),
            "loops_per_second": 10.0,
            "last_control_loop_time": now,
            "loop_duration_s": _stats(0.003),
            "last_sleep_duration_s": 0.1,
            "expected_sleep_duration_s": 0.1,
            "event_loop_delay_s": 0.0,
            "num_asyncio_tasks": 5,
            "deployment_state_update_duration_s": _stats(0.0001),
            "application_state_update_duration_s": _stats(0.0001),
            "proxy_state_update_duration_s": _stats(0.0001),
            "node_update_duration_s": _stats(0.0001),
            "handle_metrics_delay_ms": {},
            "replica_metrics_delay_ms": {},
            "process_memory_mb": 140.0,
            "handle_reports_received": 0,
            "replica_reports_received": 0,
            "ingest_reports_received": 0,
            "handle_ingest_duration_ms": {},
            "replica_ingest_duration_ms": {},
            "columnar_decode_duration_ms": {},
            "metrics_decompress_duration_ms": {},
            "ingest_cpu_fraction": 0.0,
        }

    def _build_error(self, app: _App) -> str | None:
        if app.failure is not None:
            return f"Deploying app '{app.name}' failed with exception:\n{app.failure}"
        msg = _route_prefix_error(app.config.get("route_prefix", "/"))
        if msg is None:
            return None
        return (  # override_deployment_info's ValueError, as traceback.format_exc()
            "Traceback (most recent call last):\n"
            '  File "/ray/serve/_private/application_state.py", line 1001, in _reconcile_build_app_task\n'
            "    overrided_infos = override_deployment_info(\n"
            '  File "/ray/serve/schema.py", line 80, in validate_route_prefix\n'
            "    raise ValueError(\n"
            f"ValueError: {msg}\n"
        )

    def _built(self, app: _App, now: float) -> bool:
        """Serve has imported the app and knows its deployments."""
        if app.deleting_until is not None:
            return False
        if not app.needs_build:
            return True
        return self._build_error(app) is None and now - app.since >= app.settle * 0.3

    def _prefix_of(self, app: _App, now: float) -> str | None:
        if self._built(app, now):
            prefix = app.config.get("route_prefix", "/")
            return prefix if isinstance(prefix, str) or prefix is None else None
        return app.old_prefix

    def _app_details(self, app: _App, now: float) -> dict[str, Any]:
        elapsed = now - app.since
        deployments: dict[str, dict[str, Any]] = {}
        message = ""
        build_error = self._build_error(app) if app.needs_build else None
        topology: dict[str, Any] | None = None
        if app.deleting_until is not None:
            status = "DELETING"
        elif build_error is not None and elapsed >= app.settle:
            status, message = "DEPLOY_FAILED", build_error
        elif not self._built(app, now):
            status = "DEPLOYING"  # the controller has not built the deployments yet
        else:
            settled = elapsed >= app.settle
            names = _deployment_names(app.config)
            for dep in names:
                deployments[dep] = self._deployment(app, dep, settled)
            status, message = _derive(deployments)
            ingress = names[-1]  # an app's ingress is bound last (``app = Ingress.bind(A.bind(), ...)``)
            topology = {
                "app_name": app.name,
                "ingress_deployment": ingress,
                "nodes": {
                    d: {"name": d, "app_name": app.name, "outbound_deployments": [], "is_ingress": d == ingress}
                    for d in names
                },
            }
        return {
            "name": app.name,
            "route_prefix": self._prefix_of(app, now),
            "docs_path": None,
            "status": status,
            "message": message,
            "last_deployed_time_s": app.deployed_at,
            # From the config checkpoint: an app being deleted is no longer in it.
            "deployed_app_config": None if app.deleting_until is not None else app.config,
            "source": "declarative",
            "deployments": deployments,
            "external_scaler_enabled": bool(app.config.get("external_scaler_enabled", False)),
            "deployment_topology": topology,
        }

    def _deployment(self, app: _App, name: str, settled: bool) -> dict[str, Any]:
        conf = next(
            (d for d in app.config.get("deployments") or () if isinstance(d, dict) and d.get("name") == name), {}
        )
        n = conf.get("num_replicas", 1)
        configured = n if isinstance(n, int) else 1
        target = _capacity_adjusted(configured, self.target_capacity)
        status, trigger, message = ("UPDATING", "CONFIG_UPDATE_STARTED", "")
        if settled:
            status, trigger = "HEALTHY", "CONFIG_UPDATE_COMPLETED"
        crash = app.failing_constructors.get(name)
        if settled and crash is not None:
            status, trigger = "DEPLOY_FAILED", "REPLICA_STARTUP_FAILED"
        if settled and name in app.overrides:
            status, message = app.overrides[name]
            trigger = {"UNHEALTHY": "HEALTH_CHECK_FAILED", "DEPLOY_FAILED": "REPLICA_STARTUP_FAILED"}.get(
                status, "CONFIG_UPDATE_COMPLETED"
            )
        dead: list[dict[str, Any]] = []
        if trigger == "REPLICA_STARTUP_FAILED":
            # Every start attempt died: none left, the last ones listed as stopped.
            attempts = min(MAX_CONSTRUCTOR_RETRIES, max(target, 1) * RETRIES_PER_REPLICA)
            dead = [self._replica(app, name, f"dead{i}", "STOPPED") for i in range(attempts)]
            replicas: list[dict[str, Any]] = []
            if not message:
                error = crash or "RuntimeError: the replica's constructor raised"
                message = (
                    f"The deployment failed to start {attempts} times in a row. This may be due to a problem "
                    "with its constructor or initial health check failing. See controller logs for details. "
                    f"Error:\nray::ServeReplica:{app.name}:{name}.initialize_and_get_metadata() "
                    f"(pid={4000 + attempts}, ip=127.0.0.1)\n{error}"
                )
        else:
            state = "RUNNING" if status in ("HEALTHY", "UNHEALTHY") else "STARTING"
            replicas = [self._replica(app, name, str(i), state) for i in range(target)]
        options = dict(conf.get("ray_actor_options") or {"num_cpus": 0.1})
        if app.config.get("runtime_env") and "runtime_env" not in options:
            options["runtime_env"] = app.config["runtime_env"]
        return {
            "name": name,
            "status": status,
            "status_trigger": trigger,
            "message": message,
            "deployment_config": {
                "name": name,
                "num_replicas": configured,
                "max_ongoing_requests": conf.get("max_ongoing_requests", 5),
                "max_queued_requests": conf.get("max_queued_requests", -1),
                "user_config": conf.get("user_config"),
                "graceful_shutdown_wait_loop_s": conf.get("graceful_shutdown_wait_loop_s", 2.0),
                "graceful_shutdown_timeout_s": conf.get("graceful_shutdown_timeout_s", 20.0),
                "health_check_period_s": conf.get("health_check_period_s", 10.0),
                "health_check_timeout_s": conf.get("health_check_timeout_s", 30.0),
                "ray_actor_options": options,
                "request_router_config": {
                    "request_router_class": "ray.serve._private.request_router:PowerOfTwoChoicesRequestRouter",
                    "request_router_kwargs": {},
                    "request_routing_stats_period_s": 10.0,
                    "request_routing_stats_timeout_s": 30.0,
                    "initial_backoff_s": 0.025,
                    "backoff_multiplier": 2.0,
                    "max_backoff_s": 0.5,
                },
                "backpressure_config": {"status_code": 503, "retry_after_s": None},
                "rolling_update_percentage": 0.2,
                "max_surge_percent": 0,
            },
            "target_num_replicas": target,
            "required_resources": {"CPU": float(options.get("num_cpus", 0.1))},
            "replicas": replicas,
            "recent_dead_replicas": dead,
        }

    def _replica(self, app: _App, deployment: str, key: str, state: str) -> dict[str, Any]:
        rid = _hex("replica", app.name, deployment, app.since, key, n=8)
        return {
            **_actor(f"SERVE_REPLICA::{app.name}#{deployment}#{rid}", app.name, deployment, rid),
            "log_file_path": f"/serve/replica_{app.name}_{deployment}_{rid}.log",
            "replica_id": rid,
            "state": state,
            "pid": 4000 + int(rid, 16) % 60000,
            "start_time_s": app.deployed_at,
        }


def _capacity_adjusted(n: int, capacity: float | None) -> int:
    """Ray's ``get_capacity_adjusted_num_replicas``: half up, never 0 unless the capacity or n is."""
    if capacity is None or capacity == 100:
        return n
    if capacity == 0 or n == 0:
        return 0
    return max(1, int((Decimal(n * capacity) / Decimal(100)).to_integral_value(rounding=ROUND_HALF_UP)))


def _derive(deployments: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """Serve's application status from its deployments (highest priority first)."""
    by = {s: [n for n, d in deployments.items() if d["status"] == s] for s in DEPLOYMENT_STATUSES}
    if by["DEPLOY_FAILED"]:
        return "DEPLOY_FAILED", f"Failed to update the deployments {by['DEPLOY_FAILED']}."
    if by["UNHEALTHY"]:
        return "UNHEALTHY", f"The deployments {by['UNHEALTHY']} are UNHEALTHY."
    if by["UPDATING"] or any(d["status_trigger"] == "CONFIG_UPDATE_STARTED" for d in deployments.values()):
        return "DEPLOYING", ""
    return "RUNNING", ""
