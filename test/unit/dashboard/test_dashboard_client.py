"""The Ray dashboard client (spec §6) against the fake dashboard (§15) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from support.fake_dashboard import FakeCluster, FakeDashboard, Step
from support.wait import eventually

from controllers.ray.utils.dashboard import (
    AUTH_HEADER,
    BODY_EXCERPT_CHARS,
    DIRECT_TIMEOUT_SECONDS,
    PROXY_TIMEOUT_SECONDS,
    DashboardAddressError,
    DashboardClientFactory,
    DashboardError,
    DashboardTimeout,
    DashboardUnavailable,
    FixedAddress,
    JobAlreadySubmitted,
    JobNotFound,
    JobStopFailed,
    KubernetesProxy,
    Loopback,
    RayDashboardClient,
    RayJobRequest,
    ServiceDNS,
    fetch_head_service_url,
    read_auth_token,
)


def raycluster(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def client_for(factory: DashboardClientFactory, name: str, token: str | None = None) -> RayDashboardClient:
    return factory.for_cluster(raycluster(name), "", token)


def last_body(cluster: FakeCluster, endpoint: str) -> Any:
    seen = [r for r in cluster.requests if r.endpoint == endpoint]
    return orjson.loads(seen[-1].body)


# ---- jobs ----------------------------------------------------------------------------------------------


async def test_submit_sends_upstream_fields_and_omits_empty_ones(
    fake: FakeDashboard, factory: DashboardClientFactory
) -> None:
    client = client_for(factory, "rc")
    req = RayJobRequest(
        entrypoint="python train.py",
        submission_id="rayjob-abc",
        runtime_env={"env_vars": {"A": "1"}, "pip": ["requests"]},
        metadata={"team": "ml"},
        entrypoint_num_cpus=1.5,
        entrypoint_num_gpus=0,
        entrypoint_resources={"custom": 2.0},
    )
    assert await client.submit_job(req) == "rayjob-abc"
    cluster = fake.cluster("rc")
    assert last_body(cluster, "submit") == {
        "runtime_env": {"env_vars": {"A": "1"}, "pip": ["requests"]},
        "metadata": {"team": "ml"},
        "entrypoint_resources": {"custom": 2.0},
        "entrypoint": "python train.py",
        "submission_id": "rayjob-abc",
        "entrypoint_num_cpus": 1.5,
    }
    seen = next(r for r in cluster.requests if r.endpoint == "submit")
    assert seen.method == "POST" and seen.path == "/c/rc/api/jobs/"
    assert seen.headers["Content-Type"] == "application/json"

    # Only the entrypoint is always sent; the server then makes up an id.
    job_id = await client.submit_job(RayJobRequest(entrypoint="echo hi"))
    assert last_body(cluster, "submit") == {"entrypoint": "echo hi"}
    assert job_id.startswith("raysubmit_") and len(job_id) == len("raysubmit_") + 16


async def test_get_job_info_decodes_known_fields_and_tolerates_unknown_ones(
    fake: FakeDashboard, factory: DashboardClientFactory
) -> None:
    cluster = fake.cluster("rc")
    cluster.extra_job_fields = {"attempt_number": 0, "retry_policy": {"max_retries": 3}, "some_future_field": [1, 2]}
    client = client_for(factory, "rc")
    await client.submit_job(RayJobRequest("python -c pass", "job-1", runtime_env={"pip": ["x"]}, metadata={"k": "v"}))
    info = await client.get_job_info("job-1")
    assert info.status == "RUNNING"
    assert info.submission_id == "job-1"
    assert info.entrypoint == "python -c pass"
    assert info.metadata == {"k": "v"}
    assert info.runtime_env == {"pip": ["x"]}
    assert info.message == "Job is currently running."
    assert info.error_type is None
    assert info.job_id  # the Ray core id once the driver runs
    assert info.start_time > 0 and info.end_time == 0
    assert not info.is_terminal


async def test_get_job_info_404_is_job_not_found_with_upstream_message(
    fake: FakeDashboard, factory: DashboardClientFactory
) -> None:
    client = client_for(factory, "rc")
    with pytest.raises(JobNotFound) as exc:
        await client.get_job_info("missing-id")
    assert str(exc.value) == "Job missing-id does not exist on the cluster"
    assert exc.value.job_id == "missing-id"
    assert exc.value.status == 404
    assert exc.value.body == "Job missing-id does not exist"


async def test_forgotten_jobs_are_not_found_after_a_head_restart(
    fake: FakeDashboard, factory: DashboardClientFactory
) -> None:
    client = client_for(factory, "rc")
    await client.submit_job(RayJobRequest("sleep 1", "job-1"))
    assert (await client.get_job_info("job-1")).status == "RUNNING"
    fake.cluster("rc").forget_jobs()
    with pytest.raises(JobNotFound, match="Job job-1 does not exist on the cluster"):
        await client.get_job_info("job-1")
    assert await client.get_job_log("job-1") is None
    # ... and the id can be submitted again (what the RayJob controller does in HTTPMode).
    assert await client.submit_job(RayJobRequest("sleep 1", "job-1")) == "job-1"


async def test_get_job_info_other_errors_are_typed_with_a_bounded_body(
    fake: FakeDashboard, factory: DashboardClientFactory
) -> None:
    client = client_for(factory, "rc")
    fake.cluster("rc").fail_next("get", 503, "x" * 100_000)
    with pytest.raises(DashboardError) as exc:
        await client.get_job_info("any")
    assert not isinstance(exc.value, JobNotFound)
    assert exc.value.status == 503
    assert str(exc.value).startswith("GetJobInfo fail: 503 Service Unavailable xxx")
    assert len(exc.value.body) < BODY_EXCERPT_CHARS + 100
    assert len(str(exc.value)) < BODY_EXCERPT_CHARS + 200

    # The excerpt keeps both ends: a traceback names its error on the last line.
    fake.cluster("rc").fail_next("get", 500, "HEAD" + "x" * 5000 + "ValueError: the cause")
    with pytest.raises(DashboardError) as exc:
        await client.get_job_info("any")
    assert exc.value.body.startswith("HEAD") and exc.value.body.endswith("ValueError: the cause")
    assert "characters cut" in exc.value.body

    fake.cluster("rc").fail_next("get", 200, "<html>not json</html>")
    with pytest.raises(DashboardError, match=r"^GetJobInfo fail: <html>not json</html>$"):
        await client.get_job_info("any")


async def test_duplicate_submission_is_job_already_submitted(
    fake: FakeDashboard, factory: DashboardClientFactory
) -> None:
    client = client_for(factory, "rc")
    await client.submit_job(RayJobRequest("echo 1", "dup-id"))
    with pytest.raises(JobAlreadySubmitted) as exc:
        await client.submit_job(RayJobRequest("echo 1", "dup-id"))
    assert exc.value.submission_id == "dup-id"
    assert exc.value.status == 500
    assert str(exc.value) == "submission ID 'dup-id' already used, Please use a different submission_id"
    assert len(exc.value.body) <= BODY_EXCERPT_CHARS + 50  # a long traceback, cut in the middle
    assert exc.value.body.rstrip().endswith("Please use a different submission_id.\n.")
    assert fake.cluster("rc").calls["submit"] == 2


async def test_other_submit_errors_are_not_mistaken_for_duplicates(
    fake: FakeDashboard, factory: DashboardClientFactory
) -> None:
    client = client_for(factory, "rc")
    fake.cluster("rc").no_agent = True
    with pytest.raises(DashboardError) as exc:
        await client.submit_job(RayJobRequest("echo 1", "id-1"))
    assert not isinstance(exc.value, JobAlreadySubmitted)
    assert str(exc.value) == (
        "SubmitJob fail: 500 Internal Server Error No available agent to submit job, please try again later."
    )
    fake.cluster("rc").no_agent = False

    # The duplicate text on a status other than 500 is not the duplicate rule either.
    fake.cluster("rc").fail_next("submit", 400, "ValueError: Please use a different submission_id")
    with pytest.raises(DashboardError) as exc:
        await client.submit_job(RayJobRequest("echo 1", "id-1"))
    assert not isinstance(exc.value, JobAlreadySubmitted) and exc.value.status == 400

    bad = RayJobRequest("echo 1", "id-2", metadata={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(DashboardError, match="SubmitJob fail: 400 Bad Request Traceback") as exc:
        await client.submit_job(bad)
    assert exc.value.status == 400


async def test_submit_rayjob_converts_the_spec(fake: FakeDashboard, factory: DashboardClientFactory) -> None:
    rayjob = {
        "metadata": {"name": "rj", "namespace": "default"},
        "spec": {
            "entrypoint": "python main.py",
            "runtimeEnvYAML": "pip:\n  - numpy\nenv_vars:\n  X: 'y'\n",
            "metadata": {"owner": "me"},
            "entrypointNumCpus": 1,
            "entrypointNumGpus": 0.5,
            "entrypointResources": '{"r1": 1, "r2": 2.5}',
        },
        "status": {"jobId": "rj-xyz"},
    }
    client = client_for(factory, "rc")
    assert await client.submit_rayjob(rayjob) == "rj-xyz"
    assert last_body(fake.cluster("rc"), "submit") == {
        "runtime_env": {"pip": ["numpy"], "env_vars": {"X": "y"}},
        "metadata": {"owner": "me"},
        "entrypoint_resources": {"r1": 1.0, "r2": 2.5},
        "entrypoint": "python main.py",
        "submission_id": "rj-xyz",
        "entrypoint_num_cpus": 1.0,
        "entrypoint_num_gpus": 0.5,
    }


async def test_list_jobs_and_its_404_rule(fake: FakeDashboard, factory: DashboardClientFactory) -> None:
    cluster = fake.cluster("rc")
    cluster.add_job("drv", type="DRIVER", status="SUCCEEDED")
    client = client_for(factory, "rc")
    await client.submit_job(RayJobRequest("echo a", "a"))
    await client.submit_job(RayJobRequest("echo b", "b"))
    jobs = await client.list_jobs()
    assert [j.submission_id for j in jobs] == ["a", "b", ""]  # submissions first; a DRIVER has no submission id
    assert jobs[2].status == "SUCCEEDED"
    cluster.fail_next("list", 404, "Not Found")
    assert await client.list_jobs() == []
    cluster.fail_next("list", 500, "boom")
    with pytest.raises(DashboardError, match="ListJobs fail: 500"):
        await client.list_jobs()


async def test_get_job_log(fake: FakeDashboard, factory: DashboardClientFactory) -> None:
    cluster = fake.cluster("rc")
    cluster.set_default_script("PENDING")  # the driver is not placed yet: logs are ""
    client = client_for(factory, "rc")
    await client.submit_job(RayJobRequest("echo hello", "j"))
    assert await client.get_job_log("j") == ""
    cluster.job("j").log_text = "hello\nworld\n"
    cluster.set_status("j", "RUNNING")
    assert await client.get_job_log("j") == "hello\nworld\n"
    assert await client.get_job_log("unknown") is None  # 404 -> None
    cluster.add_job("drv", type="DRIVER")
    with pytest.raises(DashboardError, match="Can only get logs of submission type jobs") as exc:
        await client.get_job_log("drv")
    assert exc.value.status == 400


async def test_stop_job_rules(fake: FakeDashboard, factory: DashboardClientFactory) -> None:
    cluster = fake.cluster("rc")
    client = client_for(factory, "rc")
    await client.submit_job(RayJobRequest("sleep 100", "run"))

    await client.stop_job("run")  # stopped: true
    assert cluster.status("run") == "STOPPED"
    assert [r.headers.get("Content-Type") for r in cluster.requests if r.endpoint == "stop"] == ["application/json"]

    # stopped: false on a terminal job -> GET -> fine.
    await client.stop_job("run")
    assert cluster.calls["stop"] == 2 and cluster.calls["get"] == 1

    cluster.add_job("done", status="SUCCEEDED")
    await client.stop_job("done")

    # stopped: false while the job still runs -> an error carrying the job info.
    cluster.stop_noop = True
    await client.submit_job(RayJobRequest("sleep 100", "stubborn"))
    with pytest.raises(JobStopFailed) as exc:
        await client.stop_job("stubborn")
    assert exc.value.info.status == "RUNNING"
    assert str(exc.value).startswith("failed to stop job: ")

    # stopped: false and the job vanished in between -> the GET's 404.
    cluster.fail_next("stop", 200, '{"stopped": false}')
    with pytest.raises(JobNotFound):
        await client.stop_job("gone")

    # Unknown job: the dashboard's 404.
    with pytest.raises(DashboardError) as exc2:
        await client.stop_job("nope")
    assert exc2.value.status == 404


async def test_delete_job_ignores_the_answer(fake: FakeDashboard, factory: DashboardClientFactory) -> None:
    cluster = fake.cluster("rc")
    client = client_for(factory, "rc")
    await client.submit_job(RayJobRequest("sleep 100", "j"))
    await client.delete_job("j")  # 500: not terminal; upstream ignores the answer
    assert "j" in cluster.jobs
    cluster.finish("j", "FAILED")
    await client.delete_job("j")
    assert "j" not in cluster.jobs
    await client.delete_job("j")  # 404, ignored too
    assert cluster.calls["delete"] == 3


async def test_scripted_lifecycle_is_followed_to_success(fake: FakeDashboard, factory: DashboardClientFactory) -> None:
    cluster = fake.cluster("rc")
    cluster.script("timed", "PENDING", ("RUNNING", 0.1), ("SUCCEEDED", 0.2))
    cluster.script("manual", Step("RUNNING"), Step("FAILED", None, message="Job failed.", error_type="X"))
    client = client_for(factory, "rc")
    await client.submit_job(RayJobRequest("python a.py", "timed"))
    await client.submit_job(RayJobRequest("python b.py", "manual"))

    seen: list[str] = []

    async def succeeded() -> bool:
        status = (await client.get_job_info("timed")).status
        if not seen or seen[-1] != status:
            seen.append(status)
        return status == "SUCCEEDED"

    await eventually(succeeded, timeout=10, what="the timed job to succeed", interval=0.02)
    assert seen[0] in ("PENDING", "RUNNING") and seen[-1] == "SUCCEEDED"
    info = await client.get_job_info("timed")
    assert info.is_terminal and info.end_time >= info.start_time

    # "manual" waits for a command.
    assert (await client.get_job_info("manual")).status == "RUNNING"
    cluster.advance("manual")
    info = await client.get_job_info("manual")
    assert (info.status, info.error_type) == ("FAILED", "X")
    with pytest.raises(AssertionError, match="terminal status never changes"):
        cluster.set_status("manual", "RUNNING")


# ---- serve ---------------------------------------------------------------------------------------------


async def test_serve_details_and_update_deployments(fake: FakeDashboard, factory: DashboardClientFactory) -> None:
    cluster = fake.cluster("rc")
    client = client_for(factory, "rc")
    assert (await client.get_serve_details()).applications == {}
    config = {
        "applications": [{"name": "app1", "route_prefix": "/", "import_path": "m:a", "deployments": [{"name": "D"}]}]
    }
    await client.update_deployments(orjson.dumps(config))
    assert cluster.serve_configs == [config]
    put = next(r for r in cluster.requests if r.endpoint == "serve_put")
    assert put.method == "PUT" and put.headers["Content-Type"] == "application/json"

    details = await client.get_serve_details()
    get = [r for r in cluster.requests if r.endpoint == "serve_get"][-1]
    assert get.path == "/c/rc/api/serve/applications/?api_type=declarative"
    assert details.deploy_mode == ""  # Ray 2.60 no longer sends it (recorded from a real head)
    app = details.applications["app1"]
    assert (app.name, app.status, app.route_prefix) == ("app1", "RUNNING", "/")
    assert app.deployments["D"].status == "HEALTHY"

    statuses = await client.get_multi_application_status()
    assert statuses["app1"].status == "RUNNING"
    assert statuses["app1"].deployments["D"].name == "D"

    with pytest.raises(DashboardError, match="UpdateDeployments fail: 400 Bad Request") as exc:
        await client.update_deployments({"not": "a serve config"})
    assert exc.value.status == 400
    cluster.fail_next("serve_get", 503, "The GCS may be down")
    with pytest.raises(DashboardError, match="GetServeDetails fail: 503 Service Unavailable The GCS may be down"):
        await client.get_serve_details()


# ---- auth ----------------------------------------------------------------------------------------------


async def test_auth_header_is_sent_when_a_token_is_configured(
    fake: FakeDashboard, factory: DashboardClientFactory
) -> None:
    cluster = fake.cluster("rc")
    cluster.required_token = "s3cret"
    with_token = client_for(factory, "rc", token="s3cret")
    await with_token.submit_job(RayJobRequest("echo", "j"))
    await with_token.get_job_info("j")
    await with_token.get_job_log("j")
    await with_token.stop_job("j")
    await with_token.delete_job("j")
    await with_token.get_serve_details()
    await with_token.update_deployments({"applications": []})
    assert len(cluster.requests) == 7
    assert {r.headers.get(AUTH_HEADER) for r in cluster.requests} == {"Bearer s3cret"}

    without = client_for(factory, "rc")
    with pytest.raises(DashboardError) as exc:
        await without.list_jobs()
    assert exc.value.status == 401
    assert AUTH_HEADER not in cluster.requests[-1].headers


# ---- timeouts and failures -----------------------------------------------------------------------------


async def test_a_hanging_dashboard_times_out_after_two_seconds(
    fake: FakeDashboard, factory: DashboardClientFactory
) -> None:
    client = client_for(factory, "rc")
    assert client.timeout == DIRECT_TIMEOUT_SECONDS == 2.0
    fake.cluster("rc").hang()
    with pytest.raises(DashboardTimeout) as exc:
        await asyncio.wait_for(client.get_job_info("any"), timeout=3.0)
    assert isinstance(exc.value, TimeoutError)
    assert exc.value.status is None
    assert fake.cluster("rc").calls["get"] == 1  # the request did arrive; it was never answered


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_job_info("j"),
        lambda c: c.list_jobs(),
        lambda c: c.submit_job(RayJobRequest("echo", "j")),
        lambda c: c.get_job_log("j"),
        lambda c: c.stop_job("j"),
        lambda c: c.delete_job("j"),
        lambda c: c.get_serve_details(),
        lambda c: c.update_deployments({"applications": []}),
        lambda c: c.get_version(),
    ],
    ids=["get", "list", "submit", "logs", "stop", "delete", "serve_get", "serve_put", "version"],
)
async def test_every_call_is_bounded_by_the_timeout(fake: FakeDashboard, call: Any) -> None:
    cluster = fake.cluster("rc")
    cluster.hang()
    async with aiohttp.ClientSession() as session:
        client = RayDashboardClient(cluster.base_url, session, timeout=0.3)
        with pytest.raises(DashboardTimeout):
            await asyncio.wait_for(call(client), timeout=2.0)


async def test_stop_job_follow_up_get_shares_the_deadline(fake: FakeDashboard) -> None:
    cluster = fake.cluster("rc")
    cluster.add_job("j", status="SUCCEEDED")
    cluster.delay = 0.3  # each answer takes 0.3 s: stop + get = 0.6 s > the 0.5 s budget
    async with aiohttp.ClientSession() as session:
        client = RayDashboardClient(cluster.base_url, session, timeout=0.5)
        with pytest.raises(DashboardTimeout):
            await asyncio.wait_for(client.stop_job("j"), timeout=2.0)
        assert cluster.calls["stop"] == 1 and cluster.calls["get"] == 1


async def test_500_everything(fake: FakeDashboard, factory: DashboardClientFactory) -> None:
    cluster = fake.cluster("rc")
    cluster.fail_all()
    client = client_for(factory, "rc")
    for call in (
        client.get_job_info("j"),
        client.list_jobs(),
        client.submit_job(RayJobRequest("echo", "j")),
        client.get_job_log("j"),
        client.stop_job("j"),
        client.get_serve_details(),
        client.update_deployments({"applications": []}),
    ):
        with pytest.raises(DashboardError) as exc:
            await call
        assert exc.value.status == 500
        assert type(exc.value) is DashboardError
    await client.delete_job("j")  # the answer is ignored
    cluster.heal()
    assert await client.list_jobs() == []


async def test_connection_refused_is_dashboard_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again on exit: nothing listens there
    async with DashboardClientFactory(Loopback({"default/rc": f"127.0.0.1:{port}"})) as factory:
        client = client_for(factory, "rc")
        with pytest.raises(DashboardUnavailable) as exc:
            await client.get_job_info("j")
        assert exc.value.status is None


async def test_healthy_heads_are_not_delayed_by_a_black_holed_one(fake: FakeDashboard) -> None:
    healthy = await fake.cluster_on_own_port("healthy")
    hanging = await fake.cluster_on_own_port("hanging")
    healthy.add_job("j")
    hanging.hang()
    addresses = {"default/healthy": healthy.base_url, "default/hanging": hanging.base_url}
    async with DashboardClientFactory(Loopback(addresses)) as factory:
        bad = client_for(factory, "hanging")
        good = client_for(factory, "healthy")
        stuck = [asyncio.create_task(bad.get_job_info("j")) for _ in range(50)]  # they run first (FIFO)
        results = await asyncio.wait_for(asyncio.gather(*(good.get_job_info("j") for _ in range(50))), timeout=3.0)
        assert [r.status for r in results] == ["RUNNING"] * 50
        assert not any(t.done() for t in stuck), "the healthy calls must finish before the hanging ones time out"
        # The per-host limit keeps the black hole to a few sockets; the other calls queue on its own slots.
        assert hanging.calls["get"] <= factory.limit_per_host

        outcomes = await asyncio.wait_for(asyncio.gather(*stuck, return_exceptions=True), timeout=5.0)
        assert all(isinstance(o, DashboardTimeout) for o in outcomes)
        assert healthy.calls["get"] == 50


async def test_hundreds_of_virtual_clusters(fake: FakeDashboard, factory: DashboardClientFactory) -> None:
    names = [f"rc-{i}" for i in range(300)]
    for n in names:
        fake.cluster(n).add_job(f"job-{n}", status="SUCCEEDED")
    infos = await asyncio.wait_for(
        asyncio.gather(*(client_for(factory, n).get_job_info(f"job-{n}") for n in names)), timeout=30
    )
    assert [i.submission_id for i in infos] == [f"job-{n}" for n in names]
    assert all(fake.cluster(n).calls["get"] == 1 for n in names)
    assert fake.total_calls()["get"] == 300


async def test_the_factory_shares_one_session(factory: DashboardClientFactory, fake: FakeDashboard) -> None:
    a, b = client_for(factory, "a"), client_for(factory, "b")
    await a.list_jobs()
    await b.list_jobs()
    assert a._get_session() is b._get_session() is factory.session()
    connector = factory.session().connector
    assert connector is not None
    assert (connector.limit, connector.limit_per_host) == (1024, 8)
    await factory.close()
    assert await client_for(factory, "a").list_jobs() == []  # a fresh session after close


# ---- address resolution (pure: nothing here dials a non-loopback address) ------------------------------


def test_service_dns_uses_the_dashboard_url() -> None:
    cluster = raycluster("rc", "ns1")
    assert ServiceDNS().base_url(cluster, "rc-head-svc.ns1.svc.cluster.local:8265") == (
        "http://rc-head-svc.ns1.svc.cluster.local:8265"
    )
    endpoint = ServiceDNS().resolve(cluster, "rc-head-svc.ns1.svc.cluster.local:8265")
    assert endpoint.timeout == 2.0 and endpoint.session is None and endpoint.headers is None


def test_service_dns_computes_the_address_from_the_cluster() -> None:
    plain = raycluster("rc", "ns1")
    assert ServiceDNS(env={}).base_url(plain) == "http://rc-head-svc.ns1.svc.cluster.local:8265"
    assert ServiceDNS(env={"CLUSTER_DOMAIN": "corp.example"}).base_url(plain) == (
        "http://rc-head-svc.ns1.svc.corp.example:8265"
    )
    custom = raycluster(
        "rc",
        "ns1",
        headGroupSpec={
            "headService": {"metadata": {"name": "my-head"}},
            "template": {
                "spec": {"containers": [{"name": "ray-head", "ports": [{"name": "dashboard", "containerPort": 9999}]}]}
            },
        },
    )
    assert ServiceDNS(env={}).base_url(custom) == "http://my-head.ns1.svc.cluster.local:9999"


class StubKube:
    """The parts of internal.client.Client the proxy strategy uses, plus get() for the helpers."""

    def __init__(self, host: str, session: aiohttp.ClientSession | None = None, objects: dict[Any, Any] | None = None):
        self.host = host
        self.session = session
        self.objects = objects or {}

    def _session(self) -> aiohttp.ClientSession:
        assert self.session is not None
        return self.session

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": "test", "Authorization": "Bearer k8s-token"}

    async def get(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        from internal.client import NotFound

        try:
            return self.objects[(res.plural, namespace, name)]  # type: ignore[no-any-return]
        except KeyError:
            raise NotFound(f'{res.plural} "{name}" not found') from None


def test_kubernetes_proxy_url() -> None:
    kube = StubKube("https://10.96.0.1:443")
    proxy = KubernetesProxy(kube)  # type: ignore[arg-type]
    cluster = raycluster("rc", "ns1")
    assert proxy.base_url(cluster) == "https://10.96.0.1:443/api/v1/namespaces/ns1/services/rc-head-svc:dashboard/proxy"
    cluster["status"] = {"head": {"serviceName": "from-status"}}
    assert proxy.base_url(cluster, "ignored:8265") == (
        "https://10.96.0.1:443/api/v1/namespaces/ns1/services/from-status:dashboard/proxy"
    )
    assert proxy.resolve(cluster, "").timeout == PROXY_TIMEOUT_SECONDS == 10.0


@pytest.fixture
async def apiserver() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A loopback stand-in for the API server's service proxy that answers a job's details."""
    seen: list[web.Request] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"status": "SUCCEEDED", "submission_id": "j", "unknown": {"x": 1}})

    app = web.Application()
    app.router.add_route("*", "/api/v1/namespaces/{ns}/services/{svc}/proxy/{tail:.*}", proxy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_kubernetes_proxy_uses_the_kube_session_and_credentials(
    apiserver: tuple[str, list[web.Request]],
) -> None:
    host, seen = apiserver
    async with aiohttp.ClientSession() as kube_session:
        kube = StubKube(host, kube_session)
        async with DashboardClientFactory(KubernetesProxy(kube)) as factory:  # type: ignore[arg-type]
            client = factory.for_cluster(raycluster("rc", "ns1"), "rc-head-svc.ns1.svc.cluster.local:8265", "tok")
            assert client.timeout == 10.0
            assert client._get_session() is kube_session
            info = await client.get_job_info("j")
    assert info.status == "SUCCEEDED"
    assert seen[0].path == "/api/v1/namespaces/ns1/services/rc-head-svc:dashboard/proxy/api/jobs/j"
    assert seen[0].headers["Authorization"] == "Bearer k8s-token"
    assert seen[0].headers[AUTH_HEADER] == "Bearer tok"


def test_fixed_and_loopback_addresses() -> None:
    table = {"ns1/rc": "127.0.0.1:8265", "other": "http://localhost:9000/"}
    loop = Loopback(table)
    assert loop.base_url(raycluster("rc", "ns1")) == "http://127.0.0.1:8265"
    assert loop.base_url(raycluster("other", "any")) == "http://localhost:9000"
    with pytest.raises(DashboardAddressError, match="no dashboard address configured for RayCluster ns2/rc"):
        loop.base_url(raycluster("rc", "ns2"))
    assert Loopback(lambda c: f"http://[::1]:{len(c['metadata']['name'])}").base_url(raycluster("abc")) == (
        "http://[::1]:3"
    )
    with pytest.raises(DashboardAddressError, match="not a loopback address"):
        Loopback({"rc": "http://10.1.2.3:8265"}).base_url(raycluster("rc"))
    # FixedAddress does not judge the address (computing it dials nothing).
    assert FixedAddress({"rc": "http://10.1.2.3:8265"}).base_url(raycluster("rc")) == "http://10.1.2.3:8265"


async def test_for_cluster_dials_nothing_and_the_guard_blocks_cluster_dns(loopback_guard: Any) -> None:
    async with DashboardClientFactory() as factory:  # ServiceDNS, the in-cluster default
        client = factory.for_cluster(raycluster("rc"), "rc-head-svc.default.svc.cluster.local:8265")
        assert client.base_url == "http://rc-head-svc.default.svc.cluster.local:8265"
        assert loopback_guard.violations == []  # building the client connected to nothing
        with pytest.raises(DashboardUnavailable):
            await client.get_job_info("j")
    assert any("rc-head-svc.default.svc.cluster.local" in v for v in loopback_guard.violations)
    loopback_guard.violations.clear()  # expected here; any other test would fail on it


# ---- Kubernetes-side helpers ---------------------------------------------------------------------------


async def test_fetch_head_service_url() -> None:
    svc = {
        "metadata": {"name": "rc-head-svc", "namespace": "ns1"},
        "spec": {"ports": [{"name": "gcs-server", "port": 6379}, {"name": "dashboard", "port": 8265}]},
    }
    kube = StubKube("https://k8s", objects={("services", "ns1", "rc-head-svc"): svc})
    url = await fetch_head_service_url(kube, raycluster("rc", "ns1"), env={})  # type: ignore[arg-type]
    assert url == "rc-head-svc.ns1.svc.cluster.local:8265"
    svc["spec"]["ports"] = [{"name": "gcs-server", "port": 6379}]
    with pytest.raises(ValueError, match=r"^dashboard port is not found$"):
        await fetch_head_service_url(kube, raycluster("rc", "ns1"))  # type: ignore[arg-type]


async def test_read_auth_token() -> None:
    from internal.client import NotFound

    token_secret = {"data": {"auth_token": base64.b64encode(b"tok-123").decode()}}
    kube = StubKube("https://k8s", objects={("secrets", "ns1", "rc"): token_secret, ("secrets", "ns1", "mine"): {}})
    assert await read_auth_token(kube, raycluster("rc", "ns1")) is None  # type: ignore[arg-type]
    auth = raycluster("rc", "ns1", authOptions={"mode": "token"})
    assert await read_auth_token(kube, auth) == "tok-123"  # type: ignore[arg-type]
    custom = raycluster("rc", "ns1", authOptions={"mode": "token", "secretName": "mine"})
    with pytest.raises(DashboardError, match="has no auth_token key"):
        await read_auth_token(kube, custom)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        await read_auth_token(kube, raycluster("other", "ns1", authOptions={"mode": "token"}))  # type: ignore[arg-type]
