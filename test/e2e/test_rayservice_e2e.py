"""RayService's Serve path on a real Ray 2.60 head (``ray[serve]``, the ``ray_head`` fixture on 127.0.0.1).

Everything the operator does to Serve goes through its own dashboard client
(``RayDashboardClient.update_deployments`` / ``get_serve_details``, with the operator's 2 s timeout and
its retry-on-the-next-pass behaviour): a ``serveConfigV2`` written as a user writes it (YAML) is
applied, the application from ``test/data/serve_apps/hello.py`` reaches RUNNING, and the Serve proxy
on loopback answers; a changed ``user_config`` answers with the new greeting; a multi-application
config with failing releases (a constructor error, an import error) reports DEPLOY_FAILED with Ray's
messages without touching the healthy app; an invalid config is refused with Ray's own 400 text; an
empty config leaves zero applications (the state in which the operator re-submits); and the
``serveConfigV2`` of both RayService samples in config/samples, with the code from their ConfigMaps,
serves on real Ray with the answers their comments promise. The real ``GET /api/serve/applications/``
answers and 400 texts recorded in ``test/data/ray_serve_applications.json`` are checked against what
the head returns, so the fixture the fake dashboard is compared with stays true.

Set ``KUBERAY_PY_RECORD_SERVE=1`` to rewrite that fixture from this run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from support.wait import eventually

from controllers.ray.utils.dashboard import (
    DashboardClientFactory,
    DashboardError,
    DashboardTimeout,
    DashboardUnavailable,
    Loopback,
    RayDashboardClient,
    ServeApplicationDetails,
)

pytestmark = [
    pytest.mark.e2e,
    # Like conftest.py's checks for ray[default]: without Serve's extra the head answers 501 to every call.
    pytest.mark.skipif(
        importlib.util.find_spec("starlette") is None,
        reason="ray is installed without the [serve] extra: pip install 'ray[default,serve]==2.60.0'",
    ),
]

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "test" / "data"
APPS_DIR = DATA / "serve_apps"
FIXTURE = DATA / "ray_serve_applications.json"
RECORD = os.environ.get("KUBERAY_PY_RECORD_SERVE") == "1"
CLUSTER = {"metadata": {"name": "serve-e2e", "namespace": "default"}, "spec": {}}
DEPLOY_DEADLINE = 120.0  # first deploy starts the Serve controller and proxy: ~20 s on 2 idle cores
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=5)
# Ray runs the function named here at the start of each worker of the app (replicas): the per-actor
# form of runtime_env's job-level ``worker_process_setup_hook``. See serve_apps/serve_loopback.py.
SETUP_HOOK_ENV = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def serve_port() -> int:
    # http_options apply only when Serve first starts on the head: one port for the whole module.
    return _free_port()


@pytest.fixture
async def client(ray_head: Any) -> AsyncIterator[RayDashboardClient]:
    async with DashboardClientFactory(Loopback({"default/serve-e2e": ray_head.dashboard_url})) as factory:
        yield factory.for_cluster(CLUSTER, "")


def serve_config_v2(port: int, apps: str) -> str:
    """A ``serveConfigV2`` as a user writes it in a RayService; ``apps`` is the YAML list of applications.
    The proxy binds loopback (its default is 0.0.0.0); the module is found through a ``local://``
    working_dir (local paths are refused by Serve's schema, and no URL may leave the machine)."""
    return f"""\
http_options:
  host: 127.0.0.1
  port: {port}
applications:
{apps}"""


def hello_app(greeting: str, name: str = "hello", route: str = "/") -> str:
    return f"""\
  - name: {name}
    route_prefix: {route}
    import_path: hello:app
    runtime_env:
      working_dir: local://{APPS_DIR}
      env_vars:
        {SETUP_HOOK_ENV}: serve_loopback.bind_loopback
    deployments:
      - name: Hello
        num_replicas: 1
        user_config:
          greeting: {greeting}
"""


BROKEN_APP = f"""\
  - name: broken
    route_prefix: /broken
    import_path: hello:broken
    runtime_env:
      working_dir: local://{APPS_DIR}
      env_vars:
        {SETUP_HOOK_ENV}: serve_loopback.bind_loopback
"""


# A release whose code lacks the object the import path names (an import error, not a constructor error).
MISSING_APP = (
    BROKEN_APP.replace("name: broken", "name: missing")
    .replace("/broken", "/missing")
    .replace("hello:broken", "hello:no_such_app")
)


async def apply(client: RayDashboardClient, serve_config_yaml: str) -> None:
    """What the controller does with ``serveConfigV2``: YAML to JSON, PUT. A PUT that misses the 2 s
    budget (the first one starts Serve: 1.7-1.9 s on an idle host) is retried as the next reconcile
    would retry it; the PUT is idempotent."""
    config = yaml.safe_load(serve_config_yaml)
    deadline = time.monotonic() + DEPLOY_DEADLINE
    while True:
        try:
            await client.update_deployments(config)
            return
        except (DashboardTimeout, DashboardUnavailable):
            if time.monotonic() > deadline:
                raise


async def applications(client: RayDashboardClient) -> dict[str, ServeApplicationDetails]:
    """``get_serve_details`` as the operator's next pass would retry it after a 2 s timeout."""

    async def get() -> tuple[dict[str, ServeApplicationDetails]] | None:
        try:
            return ((await client.get_serve_details()).applications,)  # truthy even when empty
        except DashboardTimeout:
            return None

    got: tuple[dict[str, ServeApplicationDetails]] = await eventually(
        get, timeout=60, what="Serve's applications", interval=0.5
    )
    return got[0]


async def wait_apps(
    client: RayDashboardClient, want: Mapping[str, str], *, only: bool = False
) -> dict[str, ServeApplicationDetails]:
    """Poll as the controller does until every app in ``want`` has its status (``only``: and no other app
    is listed, e.g. one still DELETING after a config dropped it); a RUNNING wait fails at once on
    DEPLOY_FAILED with Ray's message."""

    async def reached() -> dict[str, ServeApplicationDetails] | None:
        try:
            apps = (await client.get_serve_details()).applications
        except DashboardTimeout:  # a busy 2-CPU head may miss the 2 s budget now and then
            return None
        for name, status in want.items():
            app = apps.get(name)
            if app is not None and status == "RUNNING":
                assert app.status != "DEPLOY_FAILED", f"{name} failed to deploy: {app.message}"
        if only and set(apps) != set(want):
            return None
        if all(name in apps and apps[name].status == status for name, status in want.items()):
            return apps
        return None

    got: dict[str, ServeApplicationDetails] = await eventually(
        reached, timeout=DEPLOY_DEADLINE, what=f"Serve applications {dict(want)}", interval=0.5
    )
    return got


async def get_text(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url, timeout=HTTP_TIMEOUT) as r:
        return r.status, await r.text()


async def answers(url: str, want: str) -> None:
    async def ok() -> bool:
        try:
            status, body = await get_text(url)
        except (aiohttp.ClientError, TimeoutError):
            return False
        return status == 200 and body == want

    await eventually(ok, timeout=60, what=f"{url} to answer {want!r}", interval=0.5)


async def raw_applications(ray_head: Any) -> dict[str, Any]:
    """The raw ``GET /api/serve/applications/?api_type=declarative`` document (the dashboard client
    decodes only what the operator reads). The first call on a fresh head imports Serve in the dashboard
    and can take seconds: retried within a deadline."""
    url = ray_head.dashboard_url + "/api/serve/applications/?api_type=declarative"

    async def fetch() -> dict[str, Any] | None:
        try:
            status, body = await get_text(url)
        except (aiohttp.ClientError, TimeoutError):
            return None
        assert status == 200, body
        doc: dict[str, Any] = json.loads(body)
        return doc

    got: dict[str, Any] = await eventually(fetch, timeout=60, what="Serve's applications document", interval=0.5)
    return got


def key_sets(doc: Mapping[str, Any]) -> dict[str, set[str]]:
    """The field names of each kind of object in Serve's answer (the maps are keyed by application,
    deployment and node names, which differ between runs); values and internal metrics are not compared."""
    out: dict[str, set[str]] = {"document": set(doc)}

    def add(kind: str, items: Any) -> None:
        for item in items:
            out.setdefault(kind, set()).update(item)

    add("proxy", (doc.get("proxies") or {}).values())
    add("controller_info", [doc["controller_info"]] if doc.get("controller_info") else [])
    add("target_group", doc.get("target_groups") or [])
    for app in (doc.get("applications") or {}).values():
        add("application", [app])
        for dep in (app.get("deployments") or {}).values():
            add("deployment", [dep])
            add("replica", [*dep.get("replicas", []), *dep.get("recent_dead_replicas", [])])
    return out


def check_or_record(label: str, doc: dict[str, Any], *, partial: bool = False) -> None:
    """Check that ``doc`` has the fields recorded under ``label`` in the fixture (or record it there).
    ``partial``: kinds of object present in only one of the two are not compared (a DEPLOYING answer
    lists its deployments or not depending on timing), and an object may have fewer fields than
    recorded, never others (a proxy actor still starting has no ``worker_id`` nor ``log_file_path``)."""
    if RECORD:
        payload = json.loads(FIXTURE.read_text()) if FIXTURE.exists() else {}
        # Paths of this checkout (in tracebacks and working_dir) would only be noise in the fixture.
        text = json.dumps(doc).replace(str(REPO), "<repo>")
        payload.setdefault("answers", {})[label] = json.loads(text)
        payload["ray_version"] = "2.60.0"
        payload["request"] = "GET /api/serve/applications/?api_type=declarative"
        FIXTURE.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        return
    want = key_sets(json.loads(FIXTURE.read_text())["answers"][label])
    got = key_sets(doc)
    if partial:
        want = {k: v for k, v in want.items() if k in got}
        got = {k: v for k, v in got.items() if k in want}
        unknown = {k: v - want[k] for k, v in got.items() if v - want[k]}
        assert not unknown, f"Ray's {label} answer has fields not recorded in {FIXTURE.name}: {unknown}"
        return
    assert got == want, f"Ray's {label} answer no longer has the fields recorded in {FIXTURE.name}"


def check_or_record_error(label: str, body: str) -> None:
    """Serve's 400 texts are deterministic: equal to the recorded ones (or recorded)."""
    if RECORD:
        payload = json.loads(FIXTURE.read_text()) if FIXTURE.exists() else {}
        payload.setdefault("put_errors", {})[label] = body
        FIXTURE.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        return
    assert body == json.loads(FIXTURE.read_text())["put_errors"][label]


async def test_serve_never_started_has_no_applications(client: RayDashboardClient, ray_head: Any) -> None:
    # First test in the module: the head is fresh. An operator seeing this re-submits the config.
    doc = await raw_applications(ray_head)
    assert doc == {"controller_info": {}, "proxies": {}, "applications": {}, "target_capacity": None}
    check_or_record("serve_not_started", doc)
    assert await applications(client) == {}


async def test_deploy_answer_and_update_user_config(client: RayDashboardClient, ray_head: Any, serve_port: int) -> None:
    await apply(client, serve_config_v2(serve_port, hello_app("hi")))
    first = await raw_applications(ray_head)  # right after the PUT: DEPLOYING (or already further)
    assert first["applications"]["hello"]["status"] in {"DEPLOYING", "RUNNING"}
    if first["applications"]["hello"]["status"] == "DEPLOYING":
        check_or_record("deploying", first, partial=True)

    apps = await wait_apps(client, {"hello": "RUNNING"})
    assert apps["hello"].route_prefix == "/"
    assert apps["hello"].deployments["Hello"].status == "HEALTHY"
    base = f"http://127.0.0.1:{serve_port}"
    await answers(base + "/", "hi")
    assert await get_text(base + "/-/healthz") == (200, "success")
    check_or_record("running", await raw_applications(ray_head))

    # A new release of the config: the same replica is reconfigured and the new greeting answers.
    await apply(client, serve_config_v2(serve_port, hello_app("bonjour")))
    await wait_apps(client, {"hello": "RUNNING"})
    await answers(base + "/", "bonjour")
    doc = await raw_applications(ray_head)
    assert doc["applications"]["hello"]["deployed_app_config"]["deployments"][0]["user_config"] == {
        "greeting": "bonjour"
    }


async def test_failing_release_beside_a_healthy_app(client: RayDashboardClient, ray_head: Any, serve_port: int) -> None:
    await apply(client, serve_config_v2(serve_port, hello_app("hi") + BROKEN_APP + MISSING_APP))
    apps = await wait_apps(client, {"hello": "RUNNING", "broken": "DEPLOY_FAILED", "missing": "DEPLOY_FAILED"})
    # The operator copies these into status.*ServiceStatus.applicationStatuses.
    broken = apps["broken"]
    assert broken.message == "Failed to update the deployments ['Broken'].", broken.message
    assert broken.deployments["Broken"].status == "DEPLOY_FAILED"
    assert "this release cannot start" in broken.deployments["Broken"].message
    missing = apps["missing"]  # fails while building the app: no deployment exists
    assert missing.message.startswith("Deploying app 'missing' failed with exception:\n"), missing.message
    assert "no_such_app" in missing.message
    assert missing.deployments == {}
    base = f"http://127.0.0.1:{serve_port}"
    await answers(base + "/", "hi")  # the healthy app keeps serving
    status, _ = await get_text(base + "/broken")
    assert status != 200
    check_or_record("deploy_failed", await raw_applications(ray_head))


async def refusal(client: RayDashboardClient, config: Mapping[str, Any]) -> DashboardError:
    """The error a PUT of ``config`` ends with; a timed-out or dropped attempt is retried, as the
    operator's next pass would."""
    deadline = time.monotonic() + DEPLOY_DEADLINE
    while True:
        try:
            await client.update_deployments(config)
        except (DashboardTimeout, DashboardUnavailable):
            if time.monotonic() > deadline:
                raise
            continue
        except DashboardError as e:
            return e
        pytest.fail(f"Serve accepted {config}")


async def test_invalid_config_is_refused_with_rays_message(client: RayDashboardClient, serve_port: int) -> None:
    await apply(client, serve_config_v2(serve_port, hello_app("hi")))
    await wait_apps(client, {"hello": "RUNNING"}, only=True)

    bad = serve_config_v2(serve_port, hello_app("hi").replace("hello:app", "nodots"))
    err = await refusal(client, yaml.safe_load(bad))
    assert err.status == 400
    assert 'Got invalid import path "nodots"' in err.body
    check_or_record_error("bad_import_path", err.body)
    # The message the operator puts in its FailedToUpdateServeApplications event:
    assert str(err).startswith("UpdateDeployments fail: 400 Bad Request ")

    dup = serve_config_v2(serve_port, hello_app("hi") + hello_app("hi", route="/other"))
    err = await refusal(client, yaml.safe_load(dup))
    assert err.status == 400
    assert 'Found multiple configs for application "hello"' in err.body
    check_or_record_error("duplicate_application", err.body)

    err = await refusal(client, {})  # what an empty serveConfigV2 becomes
    assert err.status == 400
    assert "Field required" in err.body
    check_or_record_error("no_applications_field", err.body)

    # Nothing of the refused configs was applied: the running app still answers.
    apps = await applications(client)
    assert set(apps) == {"hello"}
    assert apps["hello"].status == "RUNNING"
    await answers(f"http://127.0.0.1:{serve_port}/", "hi")


async def test_empty_application_list_leaves_zero_applications(
    client: RayDashboardClient, ray_head: Any, serve_port: int
) -> None:
    await apply(client, serve_config_v2(serve_port, hello_app("hi")))
    await wait_apps(client, {"hello": "RUNNING"})
    await apply(client, serve_config_v2(serve_port, "  []\n"))

    async def none_left() -> bool:
        return (await client.get_serve_details()).applications == {}

    await eventually(none_left, timeout=DEPLOY_DEADLINE, what="every application deleted", interval=0.5)
    base = f"http://127.0.0.1:{serve_port}"
    status, _ = await get_text(base + "/")
    assert status == 404  # Serve and its proxy stay up, with no route
    assert await get_text(base + "/-/healthz") == (200, "success")
    check_or_record("no_applications", await raw_applications(ray_head))


SAMPLES = REPO / "config" / "samples"
SAMPLE_APPS_DIR = "local:///home/ray/serve-apps"  # where the samples mount their ConfigMap


def sample_serve_config(path: Path, apps_dir: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The applications of a RayService sample's ``serveConfigV2`` and its ConfigMap's files, with the
    mount path replaced by ``apps_dir`` (the ConfigMap written out, as the kubelet would mount it)."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    service = next(d for d in docs if d["kind"] == "RayService")
    files: dict[str, str] = {}
    for cm in (d for d in docs if d["kind"] == "ConfigMap"):
        files.update(cm["data"])
    text = service["spec"]["serveConfigV2"].replace(SAMPLE_APPS_DIR, f"local://{apps_dir}")
    apps: list[dict[str, Any]] = yaml.safe_load(text)["applications"]
    for app in apps:  # see serve_loopback.py: only the test host needs it
        app["runtime_env"].setdefault("env_vars", {})[SETUP_HOOK_ENV] = "serve_loopback.bind_loopback"
    return apps, files


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(url, timeout=HTTP_TIMEOUT) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_the_rayservice_samples_serve_on_real_ray(
    client: RayDashboardClient, serve_port: int, tmp_path: Path
) -> None:
    apps: list[dict[str, Any]] = []
    for name in ("ray-service.sample.yaml", "ray-service.multi-app.yaml"):
        more, files = sample_serve_config(SAMPLES / name, tmp_path)
        apps += more
        for fname, code in files.items():
            (tmp_path / fname).write_text(code)
    (tmp_path / "serve_loopback.py").write_text((APPS_DIR / "serve_loopback.py").read_text())
    config = {"http_options": {"host": "127.0.0.1", "port": serve_port}, "applications": apps}
    await apply(client, yaml.safe_dump(config))
    await wait_apps(client, {"greeter": "RUNNING", "fruit": "RUNNING", "calc": "RUNNING"})

    base = f"http://127.0.0.1:{serve_port}"
    await answers(base + "/?name=Ray", "Hello, Ray!")
    assert await get_json(base + "/fruit?fruit=mango&amount=2") == {"fruit": "mango", "amount": 2, "total": 6.0}
    assert await get_json(base + "/fruit?fruit=kiwi") == {"fruit": "kiwi", "error": "not sold here"}
    assert await get_json(base + "/calc?op=mul&a=6&b=7") == {"op": "mul", "result": 42.0}
    assert await get_json(base + "/calc?op=add&a=0.123&b=1") == {"op": "add", "result": 1.12}
