"""A model of one Ray head's Serve REST API and HTTP proxy (Ray 2.60, spec ``rayservice.md`` §8), used
by ``fake_dashboard.FakeCluster.serve``.

What it models, per cluster:

* Serve is not running until the first successful PUT: GET answers the "never started" document and the
  proxy does not listen (the connection is reset). ``restart()`` is a head restart without GCS FT:
  every application is lost and Serve is down again.
* ``PUT /api/serve/applications/`` validates the body as Ray's ``ServeDeploySchema`` does (the 400 texts
  of §8.2 for the cases KubeRay users hit) and applies it declaratively: new or changed applications go
  ``DEPLOYING`` (deployments ``{}``, then ``UPDATING``) and ``RUNNING`` after ``timing.deploy`` seconds;
  an identical re-PUT flips an app to ``DEPLOYING`` for ``timing.redeploy`` seconds; applications
  absent from the config are ``DELETING`` for ``timing.delete`` seconds, then gone.
* Failures: an ``import_path`` in ``failing_imports`` ends ``DEPLOY_FAILED`` with Ray's message;
  ``set_deployment_status(app, dep, status, message)`` scripts a deployment (``UNHEALTHY``,
  ``DEPLOY_FAILED``...) and the application status is derived from its deployments as Serve derives it
  (§8.4), until the application's config changes.
* The head proxy's ``GET /-/healthz``: 200 ``success`` once Serve runs (a head proxy answers even
  before its replicas run), 503 ``This node is being drained.`` while ``draining``.

Transport faults (hang, 500, reset, slow) are the cluster's (``FakeCluster.hang()`` and friends).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
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
    """A 400 from the PUT, with Ray's text."""


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


def _pydantic(loc: str, msg: str, kind: str, value: Any) -> str:
    return (
        f"1 validation error for ServeDeploySchema\n{loc}\n  {msg} [type={kind}, input_value={value!r}, "
        f"input_type={type(value).__name__}]"
    )


def _deployment_names(app: dict[str, Any]) -> list[str]:
    names = [str(d["name"]) for d in app.get("deployments") or () if isinstance(d, dict) and d.get("name")]
    if names:
        return names
    path = str(app.get("import_path", ""))
    attr = path.rsplit(":", 1)[-1] if ":" in path else path.rsplit(".", 1)[-1]
    return [attr[:1].upper() + attr[1:] or "Deployment"]


def validate(config: Any) -> None:
    """The checks of ``ServeDeploySchema`` that a RayService's ``serveConfigV2`` can fail (§8.2)."""
    if not isinstance(config, dict):
        raise ServeValidationError(_pydantic("", "Input should be a valid dictionary", "dict_type", config))
    apps = config.get("applications")
    if "applications" not in config:
        raise ServeValidationError(_pydantic("applications", "Field required", "missing", config))
    if not isinstance(apps, list):
        raise ServeValidationError(_pydantic("applications", "Input should be a valid list", "list_type", apps))
    tc = config.get("target_capacity")
    if tc is not None:
        if not isinstance(tc, int | float) or isinstance(tc, bool):
            raise ServeValidationError(_pydantic("target_capacity", "Input should be a valid number", "float_type", tc))
        if tc > 100:
            raise ServeValidationError(
                _pydantic("target_capacity", "Input should be less than or equal to 100", "less_than_equal", tc)
            )
        if tc < 0:
            raise ServeValidationError(
                _pydantic("target_capacity", "Input should be greater than or equal to 0", "greater_than_equal", tc)
            )
    seen: set[str] = set()
    prefixes: set[str] = set()
    for i, app in enumerate(apps):
        if not isinstance(app, dict):
            msg = "Input should be a valid dictionary"
            raise ServeValidationError(_pydantic(f"applications.{i}", msg, "dict_type", app))
        if "import_path" not in app:
            raise ServeValidationError(_pydantic(f"applications.{i}.import_path", "Field required", "missing", app))
        path = app["import_path"]
        if not isinstance(path, str) or ("." not in path and ":" not in path):
            raise ServeValidationError(
                _pydantic(
                    f"applications.{i}.import_path",
                    f'Value error, Got invalid import path "{path}". An import path must contain at least on dot or '
                    "colon separating the module (and potentially submodules) from the deployment graph. E.g.: "
                    '"module.deployment_graph".',
                    "value_error",
                    path,
                )
            )
        name = app.get("name", "default")
        if name == "":
            raise ServeValidationError("Application names must be nonempty.")
        if name in seen:
            raise ServeValidationError(
                f'Found multiple configs for application "{name}". Please remove all duplicates.'
            )
        seen.add(str(name))
        prefix = app.get("route_prefix", "/")
        if prefix is not None:
            if not isinstance(prefix, str) or not prefix.startswith("/"):
                raise ServeValidationError(
                    _pydantic(
                        f"applications.{i}.route_prefix",
                        f'Value error, The route_prefix must start with a forward slash ("/"). Got: "{prefix}"',
                        "value_error",
                        prefix,
                    )
                )
            if prefix != "/" and prefix.endswith("/"):
                raise ServeValidationError(
                    _pydantic(
                        f"applications.{i}.route_prefix",
                        f'Value error, The route_prefix cannot end with a forward slash ("/"). Got: "{prefix}"',
                        "value_error",
                        prefix,
                    )
                )
            if prefix in prefixes:
                raise ServeValidationError(
                    f'Found duplicate route_prefix "{prefix}" in applications. Please ensure each application\'s '
                    "route_prefix is unique."
                )
            prefixes.add(prefix)
        for key in ("host", "port"):
            if key in app:
                raise ServeValidationError(
                    f"{key.capitalize()} {app[key]} is set in the config for application `{name}`. Please remove it "
                    f"and set {key} in the top level deploy config only."
                )
        env = app.get("runtime_env") or {}
        wd = env.get("working_dir") if isinstance(env, dict) else None
        if isinstance(wd, str) and "://" not in wd:
            raise ServeValidationError(
                "runtime_envs in the Serve config support only remote URIs in working_dir and py_modules, or "
                f'"local://" URIs for directories that already exist on every node. Got error: {wd} is not a valid URI.'
            )
        for j, dep in enumerate(app.get("deployments") or ()):
            n = dep.get("num_replicas") if isinstance(dep, dict) else None
            if n is not None and n != "auto" and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
                raise ServeValidationError(
                    _pydantic(
                        f"applications.{i}.deployments.{j}.num_replicas",
                        "Input should be a valid integer or 'auto'",
                        "int_type",
                        n,
                    )
                )


class ServeModel:
    """One head's Serve state; every read is computed from the clock (no background task)."""

    def __init__(self) -> None:
        self.timing = ServeTiming()
        self.running = False
        self.draining = False
        self.apps: dict[str, _App] = {}
        self.failing_imports: dict[str, str] = {}
        self.target_capacity: float | None = None
        self.http_options: dict[str, Any] = {"host": "0.0.0.0", "port": 8000}
        self.proxy_location = "EveryNode"

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
        self.running = True
        self.target_capacity = config.get("target_capacity")
        if not self.apps:  # http_options apply only when Serve starts
            self.http_options = {**self.http_options, **(config.get("http_options") or {})}
        self.proxy_location = config.get("proxy_location", self.proxy_location)
        wanted: dict[str, dict[str, Any]] = {str(a.get("name", "default")): a for a in config["applications"]}
        for name, app_config in wanted.items():
            old = self.apps.get(name)
            failure = self.failing_imports.get(str(app_config["import_path"]))
            if old is not None and old.deleting_until is None and old.config == app_config:
                old.since, old.settle = now, self.timing.redeploy
                continue
            self.apps[name] = _App(name, copy.deepcopy(app_config), now, self.timing.deploy, failure)
        for name, app in self.apps.items():
            if name not in wanted and app.deleting_until is None:
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
        return {
            "controller_info": {
                "node_id": "f" * 56,
                "node_ip": "127.0.0.1",
                "node_instance_id": "",
                "actor_id": "a" * 32,
                "actor_name": "SERVE_CONTROLLER_ACTOR",
                "worker_id": "b" * 56,
                "log_file_path": "/serve/controller_1.log",
            },
            "proxy_location": self.proxy_location,
            "http_options": self.http_options,
            "grpc_options": {"port": 9000, "grpc_servicer_functions": []},
            "proxies": {"f" * 56: {"node_id": "f" * 56, "node_ip": "127.0.0.1", "status": "HEALTHY"}},
            "applications": {name: self._app_details(app, now) for name, app in self.apps.items()},
            "target_capacity": self.target_capacity,
            "target_groups": [],
        }

    def healthz(self) -> tuple[int, str] | None:
        """The head proxy's ``/-/healthz``: None when no proxy listens (Serve not running)."""
        if not self.running:
            return None
        if self.draining:
            return 503, "This node is being drained."
        return 200, "success"

    # ---- derivation -----------------------------------------------------------------------------------

    def _app_details(self, app: _App, now: float) -> dict[str, Any]:
        elapsed = now - app.since
        deployments: dict[str, dict[str, Any]] = {}
        message = ""
        if app.deleting_until is not None:
            status = "DELETING"
        elif app.failure is not None and elapsed >= app.settle:
            status = "DEPLOY_FAILED"
            message = f"Deploying app '{app.name}' failed with exception:\n{app.failure}"
        elif elapsed < app.settle * 0.3 or app.failure is not None:
            status = "DEPLOYING"  # the controller has not built the deployments yet
        else:
            settled = elapsed >= app.settle
            for dep in _deployment_names(app.config):
                dstatus, trigger, dmessage = (
                    ("HEALTHY", "CONFIG_UPDATE_COMPLETED", "") if settled else ("UPDATING", "CONFIG_UPDATE_STARTED", "")
                )
                if settled and dep in app.overrides:
                    dstatus, dmessage = app.overrides[dep]
                    trigger = {"UNHEALTHY": "HEALTH_CHECK_FAILED", "DEPLOY_FAILED": "REPLICA_STARTUP_FAILED"}.get(
                        dstatus, "CONFIG_UPDATE_COMPLETED"
                    )
                deployments[dep] = self._deployment(dep, dstatus, trigger, dmessage, app.config)
            status, message = _derive(deployments)
        return {
            "name": app.name,
            "route_prefix": app.config.get("route_prefix", "/"),
            "docs_path": None,
            "status": status,
            "message": message,
            "last_deployed_time_s": app.deployed_at,
            "deployed_app_config": app.config,
            "source": "declarative",
            "deployments": deployments,
            "external_scaler_enabled": False,
            "deployment_topology": None,
        }

    @staticmethod
    def _deployment(name: str, status: str, trigger: str, message: str, app: dict[str, Any]) -> dict[str, Any]:
        conf = next((d for d in app.get("deployments") or () if isinstance(d, dict) and d.get("name") == name), {})
        replicas = conf.get("num_replicas", 1)
        running = status in ("HEALTHY", "UNHEALTHY")
        return {
            "name": name,
            "status": status,
            "status_trigger": trigger,
            "message": message,
            "deployment_config": {"name": name, "num_replicas": replicas, "user_config": conf.get("user_config")},
            "target_num_replicas": replicas if isinstance(replicas, int) else 1,
            "required_resources": {"CPU": 0.1},
            "replicas": [
                {"replica_id": f"{name}-{i}", "state": "RUNNING" if running else "STARTING", "pid": 4000 + i}
                for i in range(replicas if isinstance(replicas, int) else 1)
            ],
            "recent_dead_replicas": [],
        }


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
