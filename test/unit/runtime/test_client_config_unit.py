"""Connecting as kubeconfigs and the in-cluster account describe (internal/client/config.py), checked
against a loopback HTTPS server that requires a client certificate and records who called."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from internal.client import Client, ConnectionFailed, api_client, load_configuration
from internal.client import config as kc
from internal.client.resources import NAMESPACES
from internal.controlplane import certs


class Server:
    def __init__(self, pki: certs.PlaneCerts) -> None:
        self.pki = pki
        self.seen: list[tuple[str | None, str | None]] = []  # (client certificate CN, Authorization)
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        cn = None
        for rdn in (peer or {}).get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    cn = v
        self.seen.append((cn, request.headers.get("Authorization")))
        return web.json_response({"kind": "Namespace", "metadata": {"name": "default"}})


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    pki = certs.generate(tmp_path / "pki")
    srv = Server(pki)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_crt))
    ctx.load_cert_chain(str(pki.serving_crt), str(pki.serving_key))
    ctx.verify_mode = ssl.CERT_OPTIONAL  # token users come without a certificate
    app = web.Application()
    app.router.add_get("/{tail:.*}", srv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    srv.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield srv
    await runner.cleanup()


def write(path: Path, clusters: list[Any], users: list[Any], contexts: list[Any], current: str | None) -> Path:
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": clusters, "users": users}
    doc["contexts"] = contexts
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


def ctx(name: str, cluster: str, user: str) -> dict[str, Any]:
    return {"name": name, "context": {"cluster": cluster, "user": user}}


async def call(cfg: kc.RestConfig) -> None:
    c = Client(api_client(cfg, 2), qps=0)
    try:
        await c.get(NAMESPACES, "default")
    finally:
        await c.close()


def b64(p: Path) -> str:
    return base64.b64encode(p.read_bytes()).decode()


async def test_relative_files_and_inline_data_both_authenticate_with_the_client_certificate(
    server: Server, tmp_path: Path
) -> None:
    pki = server.pki
    url = f"https://127.0.0.1:{server.port}"
    # Paths relative to the kubeconfig's directory, as kubectl resolves them.
    (tmp_path / "pki" / "sub").mkdir()
    rel = write(
        tmp_path / "pki" / "sub" / "config",
        [{"name": "c", "cluster": {"server": url, "certificate-authority": "../ca.crt"}}],
        [{"name": "u", "user": {"client-certificate": "../admin.crt", "client-key": "../admin.key"}}],
        [ctx("x", "c", "u")],
        "x",
    )
    assert Path(pki.admin_crt).name == "admin.crt" and Path(pki.ca_crt).name == "ca.crt"
    await call(await load_configuration(str(rel)))
    inline = write(
        tmp_path / "inline",
        [{"name": "c", "cluster": {"server": url, "certificate-authority-data": b64(pki.ca_crt)}}],
        [{"name": "u", "user": {"client-certificate-data": b64(pki.admin_crt), "client-key-data": b64(pki.admin_key)}}],
        [ctx("x", "c", "u")],
        "x",
    )
    await call(await load_configuration(str(inline)))
    assert server.seen == [("admin", None), ("admin", None)]


async def test_a_server_signed_by_another_ca_is_refused(server: Server, tmp_path: Path) -> None:
    other = certs.generate(tmp_path / "other")
    cfg = write(
        tmp_path / "config",
        [
            {
                "name": "c",
                "cluster": {"server": f"https://127.0.0.1:{server.port}", "certificate-authority": str(other.ca_crt)},
            }
        ],
        [{"name": "u", "user": {"token": "t"}}],
        [ctx("x", "c", "u")],
        "x",
    )
    with pytest.raises(ConnectionFailed, match="certificate"):
        await call(await load_configuration(str(cfg)))
    assert not server.seen


async def test_kubeconfig_list_merges_and_a_token_file_is_reread_as_it_rotates(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    a = write(
        tmp_path / "a",
        [
            {
                "name": "c",
                "cluster": {
                    "server": f"https://127.0.0.1:{server.port}",
                    "certificate-authority": str(server.pki.ca_crt),
                },
            }
        ],
        [],
        [ctx("x", "c", "u"), ctx("y", "missing", "u")],
        "x",
    )
    b = write(tmp_path / "b", [], [{"name": "u", "user": {"tokenFile": "token"}}], [ctx("x", "nope", "nope")], "y")
    monkeypatch.setenv("KUBECONFIG", f"{a}:{tmp_path / 'absent'}:{b}")
    cfg = await load_configuration()  # a's current context and its cluster, b's user; missing files skipped
    c = Client(api_client(cfg, 2), qps=0)
    try:
        await c.get(NAMESPACES, "default")
        token.write_text("second\n")
        await c.get(NAMESPACES, "default")  # within the minute: the token read before
        monkeypatch.setattr(kc, "TOKEN_RELOAD_SECONDS", 0.0)
        await c.get(NAMESPACES, "default")
    finally:
        await c.close()
    assert [auth for _, auth in server.seen] == ["Bearer first", "Bearer first", "Bearer second"]


async def test_an_exec_plugin_supplies_the_token(server: Server, tmp_path: Path) -> None:
    cred = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": {"token": "from-exec"}}
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": ["-c", f"print({json.dumps(json.dumps(cred))})"],
            "interactiveMode": "Never",
        }
    }
    cfg = write(
        tmp_path / "config",
        [
            {
                "name": "c",
                "cluster": {
                    "server": f"https://127.0.0.1:{server.port}",
                    "certificate-authority": str(server.pki.ca_crt),
                },
            }
        ],
        [{"name": "u", "user": user}],
        [ctx("x", "c", "u")],
        "x",
    )
    await call(await load_configuration(str(cfg)))
    assert server.seen[-1][1] == "Bearer from-exec"


async def test_in_cluster_reads_the_service_account_and_the_kubelet_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    cfg = kc.in_cluster(tmp_path)
    assert cfg.host == "https://[fd00::1]:443" and cfg.ca_file == str(tmp_path / "ca.crt")
    assert await cfg.auth_headers() == {"Authorization": "Bearer sa-token"}
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(kc.ConfigError, match="KUBERNETES_SERVICE_HOST"):
        kc.in_cluster(tmp_path)


async def test_bad_kubeconfigs_say_what_is_wrong(tmp_path: Path) -> None:
    no_ctx = write(
        tmp_path / "a",
        [{"name": "c", "cluster": {"server": "https://x"}}],
        [],
        [ctx("x", "c", "u"), ctx("y", "c", "u")],
        None,
    )
    with pytest.raises(kc.ConfigError, match="no current-context"):
        await load_configuration(str(no_ctx))
    with pytest.raises(kc.ConfigError, match="context 'z' is not in the kubeconfig"):
        await load_configuration(str(no_ctx), context="z")
    bad = write(
        tmp_path / "b",
        [{"name": "c", "cluster": {"server": "https://x", "certificate-authority-data": "%%"}}],
        [],
        [ctx("x", "c", "u")],
        "x",
    )
    with pytest.raises(kc.ConfigError, match="certificate-authority-data is not valid base64"):
        await load_configuration(str(bad))


async def test_tls_server_name_and_proxy_url_are_honoured(server: Server, tmp_path: Path) -> None:
    tunnels: list[str] = []

    async def connect_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split()[1].decode()
        tunnels.append(target)
        host, port = target.rsplit(":", 1)
        up_r, up_w = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    proxy = await asyncio.start_server(connect_proxy, "127.0.0.1", 0)
    proxy_port = proxy.sockets[0].getsockname()[1]

    def config(name: str, **cluster: Any) -> Path:
        c = {"server": f"https://127.0.0.1:{server.port}", "certificate-authority": str(server.pki.ca_crt), **cluster}
        return write(
            tmp_path / name,
            [{"name": "c", "cluster": c}],
            [{"name": "u", "user": {"token": "t"}}],
            [ctx("x", "c", "u")],
            "x",
        )

    try:
        # The serving certificate names kubernetes.default.svc but not "elsewhere".
        await call(await load_configuration(str(config("good", **{"tls-server-name": "kubernetes.default.svc"}))))
        with pytest.raises(ConnectionFailed, match=r"certificate|hostname"):
            await call(await load_configuration(str(config("bad", **{"tls-server-name": "elsewhere"}))))
        await call(await load_configuration(str(config("proxied", **{"proxy-url": f"http://127.0.0.1:{proxy_port}"}))))
        assert tunnels == [f"127.0.0.1:{server.port}"]
    finally:
        proxy.close()
    assert len(server.seen) == 2
