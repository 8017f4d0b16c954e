"""A small synchronous HTTPS client built from a kubeconfig, for bootstrapping a control plane
(readiness, CRD installation, fake nodes). Operator code uses internal.client instead."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

DEFAULT_TIMEOUT = 10.0
CRD_BASE = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


class RestError(RuntimeError):
    pass


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class KubeRest:
    def __init__(self, server: str, ssl_context: ssl.SSLContext, timeout: float = DEFAULT_TIMEOUT) -> None:
        u = urlsplit(server)
        self.server = server
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 443
        self.ssl = ssl_context
        self.timeout = timeout

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeRest:
        cfg = yaml.safe_load(path.read_text())
        ctx_name = cfg["current-context"]
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        tmp = Path(tempfile.mkdtemp(prefix="kuberest-"))

        def material(data_key: str, file_key: str, src: dict[str, Any], name: str) -> str | None:
            if src.get(file_key):
                return str(src[file_key])
            if src.get(data_key):
                p = tmp / name
                p.write_bytes(base64.b64decode(src[data_key]))
                p.chmod(0o600)
                return str(p)
            return None

        ca = material("certificate-authority-data", "certificate-authority", cluster, "ca.crt")
        ssl_ctx = ssl.create_default_context(cafile=ca)
        crt = material("client-certificate-data", "client-certificate", user, "client.crt")
        key = material("client-key-data", "client-key", user, "client.key")
        if crt and key:
            ssl_ctx.load_cert_chain(crt, key)
        return cls(cluster["server"], ssl_ctx)

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Response:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=self.timeout)
        try:
            payload = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            headers = {"Accept": "application/json"}
            if payload is not None:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            return Response(resp.status, resp.read())
        finally:
            conn.close()

    def wait(self, cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                if cond():
                    return
            if time.monotonic() > deadline:
                raise RestError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)

    def install_crds(self, paths: list[Path], timeout: float = 30.0) -> list[str]:
        """Create or replace each CRD, never client-side apply (KubeRay's CRDs exceed the
        last-applied annotation's size limit), then wait until each is Established and its plural is
        listed by discovery for every served version."""
        names: list[str] = []
        served: list[tuple[str, str, str]] = []
        for path in paths:
            for crd in yaml.safe_load_all(path.read_text()):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                name = crd["metadata"]["name"]
                r = self.request("POST", CRD_BASE, crd)
                if r.status == 409:
                    cur = self.request("GET", f"{CRD_BASE}/{name}").json()
                    crd["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
                    r = self.request("PUT", f"{CRD_BASE}/{name}", crd)
                if r.status not in (200, 201):
                    raise RestError(f"installing CRD {name} from {path}: HTTP {r.status} {r.body[:500]!r}")
                names.append(name)
                group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
                served += [(group, v["name"], plural) for v in crd["spec"]["versions"] if v.get("served")]

        def ready() -> bool:
            for name in names:
                crd = self.request("GET", f"{CRD_BASE}/{name}").json()
                conds = {c["type"]: c["status"] for c in crd.get("status", {}).get("conditions", [])}
                if conds.get("Established") != "True":
                    return False
            for group, version, plural in served:
                r = self.request("GET", f"/apis/{group}/{version}")
                if r.status != 200 or plural not in {res["name"] for res in r.json()["resources"]}:
                    return False
            return True

        self.wait(ready, timeout, f"CRDs {names} established and served")
        return names
