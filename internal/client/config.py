"""Connection set-up, as client-go's clientcmd and rest.InClusterConfig: a kubeconfig (the flag, each
file of $KUBECONFIG merged, or ~/.kube/config) or the in-cluster ServiceAccount.

Read directly rather than through kubernetes-asyncio, whose client package imports every generated
model and API class (about 38 MiB of a process that uses none of them). Only a user that
authenticates with an ``exec`` or ``auth-provider`` plugin is handed to kubernetes-asyncio's loader,
imported then, for its credentials."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from internal.client import fence

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: client-go re-reads a bearer token file at most once a minute (rest.cachingTokenSource).
TOKEN_RELOAD_SECONDS = 60.0


class ConfigError(ValueError):
    """The kubeconfig or the in-cluster environment cannot be used."""


@dataclass
class RestConfig:
    """Where the API server is and how to authenticate to it (client-go's rest.Config, in part)."""

    host: str
    ca_data: str | None = None  # PEM
    ca_file: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    proxy_url: str | None = None
    cert_data: bytes | None = None
    cert_file: str | None = None
    key_data: bytes | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    username: str | None = None
    password: str | None = None
    #: kubernetes-asyncio's Configuration when an exec/auth-provider plugin supplies the credentials
    plugin: Any = None
    _token_read: float = field(default=-1e9, repr=False)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS settings of every connection (None for a plain-HTTP server)."""
        if not self.host.startswith("https://"):
            return None
        ctx = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_data or self.cert_file:
            _load_client_cert(ctx, self)
        return ctx

    async def auth_headers(self) -> dict[str, str]:
        """The Authorization header for the next request; a token file is re-read once a minute (a
        projected ServiceAccount token is rotated by the kubelet)."""
        if self.plugin is not None:
            settings = await self.plugin.auth_settings()
            return {a["key"]: a["value"] for a in settings.values() if a.get("in") == "header" and a.get("value")}
        if self.token_file and time.monotonic() - self._token_read >= TOKEN_RELOAD_SECONDS:
            try:
                # a few hundred bytes of tmpfs once a minute: not worth a thread
                self.token = Path(self.token_file).read_text().strip()  # noqa: ASYNC240
                self._token_read = time.monotonic()
            except OSError:
                if self.token is None:  # keep the last good token while a rotation is in flight
                    raise
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.username is not None:
            pair = f"{self.username}:{self.password or ''}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        return {}


def _load_client_cert(ctx: ssl.SSLContext, cfg: RestConfig) -> None:
    # ssl loads a certificate chain only from files: inline data goes through a private temporary
    # directory that is removed as soon as it is loaded.
    if cfg.cert_file and (cfg.key_file or not cfg.key_data):
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        return
    with tempfile.TemporaryDirectory(prefix="kubeconfig-") as d:
        cert = Path(cfg.cert_file) if cfg.cert_file else Path(d) / "client.crt"
        key = Path(cfg.key_file) if cfg.key_file else Path(d) / "client.key"
        if cfg.cert_data:
            cert.write_bytes(cfg.cert_data)
        if cfg.key_data:
            key.touch(0o600)
            key.write_bytes(cfg.key_data)
        ctx.load_cert_chain(str(cert), str(key))


# ---- kubeconfig ----------------------------------------------------------------------------------------


def _named(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in doc.get(kind) or ():
        if isinstance(item, dict) and item.get("name") is not None:
            out[str(item["name"])] = item
    return out


def _merged(paths: list[Path]) -> tuple[dict[str, Any], dict[str, Path]]:
    """The kubeconfig files merged as kubectl does (the first file to define a name or the current
    context wins), and for each cluster/user name the directory its relative paths are relative to."""
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": None}
    base: dict[str, Path] = {}
    for p in paths:
        doc = yaml.safe_load(p.read_text()) or {}
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {p} is not a mapping")
        for kind in ("clusters", "users", "contexts"):
            for name, item in _named(doc, kind).items():
                if name not in merged[kind]:
                    merged[kind][name] = item
                    base[f"{kind}/{name}"] = p.parent
        if merged["current-context"] is None and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
    return merged, base


def _file(base: Path, value: Any) -> str | None:
    if not value:
        return None
    p = Path(str(value)).expanduser()
    return str(p if p.is_absolute() else base / p)


def _b64(value: Any, what: str) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError as e:
        raise ConfigError(f"{what} is not valid base64") from e


def kubeconfig_paths(kubeconfig: str | None) -> list[Path]:
    if kubeconfig:
        return [Path(kubeconfig)]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p and Path(p).exists()]
    default = Path.home() / ".kube" / "config"
    return [default] if default.exists() else []


async def from_kubeconfig(paths: list[Path], context: str | None = None) -> RestConfig:
    merged, base = _merged(paths)
    ctx_name = context or merged["current-context"]
    if not ctx_name:
        if len(merged["contexts"]) != 1:
            raise ConfigError("kubeconfig has no current-context")
        ctx_name = next(iter(merged["contexts"]))
    ctx = (merged["contexts"].get(ctx_name) or {}).get("context")
    if not isinstance(ctx, dict):
        raise ConfigError(f"context {ctx_name!r} is not in the kubeconfig")
    cname, uname = ctx.get("cluster"), ctx.get("user")
    cluster = (merged["clusters"].get(cname) or {}).get("cluster")
    if not isinstance(cluster, dict) or not cluster.get("server"):
        raise ConfigError(f"cluster {cname!r} of context {ctx_name!r} is not in the kubeconfig or has no server")
    user = ((merged["users"].get(uname) or {}).get("user") or {}) if uname else {}
    cbase, ubase = base.get(f"clusters/{cname}", Path.cwd()), base.get(f"users/{uname}", Path.cwd())
    ca = _b64(cluster.get("certificate-authority-data"), f"cluster {cname!r} certificate-authority-data")
    cfg = RestConfig(
        host=str(cluster["server"]).rstrip("/"),
        ca_data=ca.decode() if ca else None,
        ca_file=None if ca else _file(cbase, cluster.get("certificate-authority")),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name") or None,
        proxy_url=cluster.get("proxy-url") or None,
        cert_data=_b64(user.get("client-certificate-data"), f"user {uname!r} client-certificate-data"),
        cert_file=_file(ubase, user.get("client-certificate")),
        key_data=_b64(user.get("client-key-data"), f"user {uname!r} client-key-data"),
        key_file=_file(ubase, user.get("client-key")),
        token=user.get("token") or None,
        token_file=_file(ubase, user.get("tokenFile")),
        username=user.get("username"),
        password=user.get("password"),
    )
    if user.get("exec") or user.get("auth-provider"):
        cfg.plugin = await _plugin_configuration(paths, ctx_name)
    return cfg


async def _plugin_configuration(paths: list[Path], context: str) -> Any:
    """Credentials from an exec or auth-provider plugin, through kubernetes-asyncio's loader (only
    these users import it)."""
    from kubernetes_asyncio import config as ka_config
    from kubernetes_asyncio.client import Configuration

    cfg = Configuration()
    await ka_config.load_kube_config(
        config_file=os.pathsep.join(str(p) for p in paths), context=context, client_configuration=cfg
    )
    return cfg


def in_cluster(sa_dir: Path = SA_DIR) -> RestConfig:
    """rest.InClusterConfig: the ``kubernetes`` Service's address from the kubelet's variables, the
    ServiceAccount's token (re-read as it rotates) and CA."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
    token = sa_dir / "token"
    if not token.exists():
        raise ConfigError(f"not in a cluster: no ServiceAccount token at {token}")
    if ":" in host:
        host = f"[{host}]"
    ca = sa_dir / "ca.crt"
    return RestConfig(host=f"https://{host}:{port}", ca_file=str(ca) if ca.exists() else None, token_file=str(token))


async def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> RestConfig:
    """The flag's kubeconfig, else $KUBECONFIG, else ~/.kube/config, else the in-cluster account."""
    paths = kubeconfig_paths(kubeconfig)
    if paths:
        return await from_kubeconfig(paths, context)
    return in_cluster()


class Connection:
    """One connection pool to the API server with the configuration's TLS and credentials (opened on
    first use, inside the event loop that uses it)."""

    def __init__(self, configuration: RestConfig, pool_size: int) -> None:
        self.configuration = configuration
        self.pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None
        self._closing: set[asyncio.Task[None]] = set()
        #: per-request arguments: the kubeconfig's tls-server-name (the name TLS checks) and proxy-url
        self.request_kwargs: dict[str, Any] = {}
        if configuration.tls_server_name:
            self.request_kwargs["server_hostname"] = configuration.tls_server_name
        if configuration.proxy_url:
            self.request_kwargs["proxy"] = configuration.proxy_url

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ctx = self.configuration.ssl_context()
            connector = aiohttp.TCPConnector(limit=self.pool_size, ssl=ctx if ctx is not None else False)
            self._session = aiohttp.ClientSession(connector=connector, trace_configs=[fence.trace_config()])
        return self._session

    def reset(self) -> None:
        """Drop every pooled connection: one stayed silent for a whole request timeout, so the path to
        the API server has presumably lost them all (a load balancer that forgot its connections, a
        half-open socket). New requests open fresh connections; requests still in flight on the old
        ones fail, and their callers retry. client-go's analogue: HTTP/2 closes its one connection,
        every stream with it, when a ping goes unanswered."""
        old, self._session = self._session, None
        if old is not None and not old.closed:
            task = asyncio.get_running_loop().create_task(old.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def auth_headers(self) -> dict[str, str]:
        return await self.configuration.auth_headers()

    async def close(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None
        for task in list(self._closing):
            with contextlib.suppress(Exception):
                await task


def api_client(cfg: RestConfig, pool_size: int) -> Connection:
    """A Connection with its own pool of ``pool_size`` connections."""
    return Connection(cfg, pool_size)
