"""The fake dashboard itself: routing of virtual clusters, Ray's error texts, the WebSocket log tail."""

from __future__ import annotations

import aiohttp
from support.fake_dashboard import FakeDashboard


async def test_error_texts_and_codes(fake: FakeDashboard) -> None:
    c = fake.cluster("rc")
    c.add_job("drv", type="DRIVER")
    c.add_job("run")
    async with aiohttp.ClientSession() as s:
        for method, path, status, text in [
            ("GET", "/api/jobs/nope", 404, "Job nope does not exist"),
            ("POST", "/api/jobs/nope/stop", 404, "Job nope does not exist"),
            ("DELETE", "/api/jobs/nope", 404, "Job nope does not exist"),
            ("GET", "/api/jobs/nope/logs", 404, "Job nope does not exist"),
            ("POST", "/api/jobs/drv/stop", 400, "Can only stop submission type jobs"),
            ("DELETE", "/api/jobs/drv", 400, "Can only delete submission type jobs"),
            ("GET", "/api/jobs/drv/logs", 400, "Can only get logs of submission type jobs"),
            ("GET", "/api/gcs_healthz", 200, "success"),
            ("GET", "/api/jobs", 404, "404: Not Found"),  # the trailing slash is required
        ]:
            async with s.request(method, c.base_url + path) as r:
                assert (r.status, await r.text()) == (status, text), path
        async with s.delete(c.base_url + "/api/jobs/run") as r:
            body = await r.text()
            assert r.status == 500
            assert "Attempted to delete job 'run', but it is in a non-terminal state RUNNING." in body
        async with s.post(c.base_url + "/api/jobs/", data=b"{not json") as r:
            assert r.status == 400 and (await r.text()).startswith("Traceback")
        async with s.post(c.base_url + "/api/jobs/", json={"entrypoint": 5}) as r:
            assert r.status == 400
        async with s.get(fake.base_url + "/c/unknown/api/version") as r:
            assert r.status == 502
        async with s.get(fake.base_url + "/api/version") as r:  # the default cluster at the root
            assert (await r.json())["ray_version"] == "2.60.0"
        assert fake.default.calls["version"] == 1
        c.gcs_healthy = False
        async with s.get(c.base_url + "/api/gcs_healthz") as r:
            assert r.status == 503
    assert c.calls["get"] == 1 and c.calls["delete"] == 3 and c.calls["submit"] == 2


async def test_own_port_clusters_are_routed_by_port_and_can_be_removed(fake: FakeDashboard) -> None:
    a = await fake.cluster_on_own_port("a")
    b = await fake.cluster_on_own_port("b")
    assert a.port != b.port != fake.port
    a.add_job("only-in-a")
    async with aiohttp.ClientSession() as s:
        async with s.get(a.base_url + "/api/jobs/only-in-a") as r:
            assert r.status == 200
        async with s.get(b.base_url + "/api/jobs/only-in-a") as r:
            assert r.status == 404
        async with s.get(f"{fake.base_url}/c/a/api/jobs/only-in-a") as r:  # the prefix works too
            assert r.status == 200
        await fake.remove_cluster("a")
        try:
            async with s.get(a.base_url + "/api/version") as r:
                closed = False
        except aiohttp.ClientConnectionError:
            closed = True
        assert closed
    assert fake.url_table() == {"default/b": b.base_url}


async def test_websocket_log_tail_streams_until_the_job_ends(fake: FakeDashboard) -> None:
    c = fake.cluster("rc")
    c.script("j", "RUNNING", ("SUCCEEDED", None))
    async with aiohttp.ClientSession() as s:
        async with s.post(c.base_url + "/api/jobs/", json={"entrypoint": "echo", "submission_id": "j"}) as r:
            assert r.status == 200
        c.job("j").log_text = "line 1\n"
        chunks: list[str] = []
        async with s.ws_connect(c.base_url + "/api/jobs/j/logs/tail") as ws:
            first = await ws.receive_str(timeout=5)
            chunks.append(first)
            c.job("j").log_text += "line 2\n"
            c.advance("j")  # SUCCEEDED: the server sends what is left and closes
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    chunks.append(msg.data)
        assert "".join(chunks) == "line 1\nline 2\n"
