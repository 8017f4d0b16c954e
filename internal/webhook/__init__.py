"""Validating admission webhooks (controller-runtime's ``webhook.Server`` with ``CustomValidator``s):
HTTPS, ``admission.k8s.io/v1`` AdmissionReviews in and out, serving certificates read from a directory
and reloaded when they change (cert-manager rotates them in place). It knows nothing of Ray: callers
register a :class:`ValidatingWebhook` per path, with a validator returning Kubernetes field errors.

Responses are what controller-runtime sends for a validator's ``apierrors.NewInvalid``: ``allowed:
false`` with a 422 ``Invalid`` Status whose message is ``<Kind>.<group> "<name>" is invalid: <errors>``;
the API server shows it as ``admission webhook "<webhook name>" denied the request: <message>``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

log = logging.getLogger("kuberay.webhook")

#: controller-runtime's default webhook port
DEFAULT_PORT = 9443
CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
#: how often the certificate files are checked for a change
RELOAD_INTERVAL = 10.0


def default_cert_dir() -> Path:
    """``<os.TempDir()>/k8s-webhook-server/serving-certs``: TMPDIR decides, as for Go's os.TempDir."""
    return Path(tempfile.gettempdir()) / "k8s-webhook-server" / "serving-certs"


class CertificateError(Exception):
    """The serving certificate or key is missing or unusable."""


@dataclass(frozen=True)
class JSONValue:
    """A bad value already rendered as JSON (a struct, as Go's encoding/json writes it)."""

    text: str


@dataclass(frozen=True)
class FieldError:
    """``field.Invalid(path, value, detail)`` of k8s.io/apimachinery."""

    field: str
    value: Any
    detail: str

    def body(self) -> str:
        v = self.value
        if isinstance(v, JSONValue):
            shown = v.text
        elif isinstance(v, str):
            # Go's %q; names reaching a webhook passed the API server's own checks (ASCII)
            shown = json.dumps(v, ensure_ascii=False)
        elif isinstance(v, bool):
            shown = "true" if v else "false"
        elif v is None:
            shown = "null"
        else:
            shown = str(v)
        return f"Invalid value: {shown}: {self.detail}" if self.detail else f"Invalid value: {shown}"

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


#: obj (the object as admitted, already defaulted by the API server) -> its field errors
Validator = Callable[[Mapping[str, Any]], list[FieldError]]


@dataclass(frozen=True)
class ValidatingWebhook:
    """One validating webhook: served at ``path``, for ``kind`` objects of ``group``/``version``."""

    name: str  # as in the ValidatingWebhookConfiguration, e.g. vrayservice.kb.io
    path: str
    group: str
    version: str
    kind: str
    plural: str
    validate: Validator


def invalid_status(group: str, kind: str, name: str, errors: list[FieldError]) -> dict[str, Any]:
    """The Status of ``apierrors.NewInvalid(GroupKind{group, kind}, name, errors)``."""
    texts: list[str] = []
    for e in errors:  # ToAggregate drops repeated messages
        if str(e) not in texts:
            texts.append(str(e))
    agg = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return {
        "status": "Failure",
        "message": f'{kind}.{group} "{name}" is invalid: {agg}',
        "reason": "Invalid",
        "details": {
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": e.body(), "field": e.field} for e in errors],
        },
        "code": 422,
    }


def review(hook: ValidatingWebhook, body: bytes) -> dict[str, Any]:
    """The AdmissionReview answering ``body``. CREATE and UPDATE are validated (the new object);
    DELETE and CONNECT are allowed, as controller-runtime's validator with an empty ValidateDelete."""
    out: dict[str, Any] = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
    try:
        doc = orjson.loads(body)
        req = doc["request"]
        uid = str(req["uid"])
        if doc.get("apiVersion"):
            out["apiVersion"] = doc["apiVersion"]
        operation = req.get("operation")
        obj = req.get("object") if operation in ("CREATE", "UPDATE") else None
        if obj is not None and not isinstance(obj, dict):
            raise TypeError("request.object is not an object")
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        out["response"] = {"uid": "", "allowed": False, "status": {"message": str(e), "code": 400}}
        return out
    if obj is None:
        out["response"] = {"uid": uid, "allowed": True, "status": {"code": 200}}
        return out
    name = str((obj.get("metadata") or {}).get("name") or req.get("name") or "")
    try:
        errors = hook.validate(obj)
    except Exception as e:  # a validator's bug denies, visibly, rather than crashing the server
        log.exception("webhook %s: validating %s failed", hook.name, name)
        out["response"] = {"uid": uid, "allowed": False, "status": {"message": str(e), "code": 500}}
        return out
    if errors:
        log.info("webhook %s denied %s %s: %s", hook.name, operation, name, "; ".join(map(str, errors)))
        status = invalid_status(hook.group, hook.kind, name, errors)
        out["response"] = {"uid": uid, "allowed": False, "status": status}
    else:
        out["response"] = {"uid": uid, "allowed": True, "status": {"code": 200}}
    return out


@dataclass
class WebhookServer:
    """HTTPS on ``host:port`` (all interfaces by default, as controller-runtime), certificates
    ``tls.crt``/``tls.key`` in ``cert_dir``, re-read when their modification times change."""

    host: str = ""
    port: int = DEFAULT_PORT
    cert_dir: Path = field(default_factory=default_cert_dir)
    reload_interval: float = RELOAD_INTERVAL
    webhooks: list[ValidatingWebhook] = field(default_factory=list)
    #: the bound port once serving (``port`` 0 picks a free one)
    bound_port: int | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def register(self, hook: ValidatingWebhook) -> None:
        self.webhooks.append(hook)

    def _paths(self) -> tuple[Path, Path]:
        return self.cert_dir / CERT_FILE, self.cert_dir / KEY_FILE

    def check_certs(self) -> None:
        """Raise CertificateError unless both files exist and form a usable pair."""
        self._context()

    def _stamp(self) -> tuple[float, float]:
        crt, key = self._paths()
        try:
            return crt.stat().st_mtime, key.stat().st_mtime
        except OSError:
            return (0.0, 0.0)

    def _context(self) -> ssl.SSLContext:
        crt, key = self._paths()
        for p in (crt, key):
            if not p.is_file():
                raise CertificateError(f"{p} does not exist")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # controller-runtime's minimum
        self._load(ctx)
        return ctx

    def _load(self, ctx: ssl.SSLContext) -> None:
        crt, key = self._paths()
        try:
            ctx.load_cert_chain(crt, key)
        except (OSError, ssl.SSLError) as e:
            raise CertificateError(f"cannot load {crt} and {key}: {e}") from e

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=8 << 20)  # an admission request carries a whole object
        for hook in self.webhooks:

            async def handle(req: web.Request, hook: ValidatingWebhook = hook) -> web.Response:
                if req.content_type != "application/json":
                    return web.Response(status=400, text=f"contentType={req.content_type}, expected application/json")
                answer = review(hook, await req.read())
                return web.Response(body=orjson.dumps(answer), content_type="application/json")

            app.router.add_post(hook.path, handle)
        return app

    async def run(self) -> None:
        """Serve until cancelled (the manager owns this task)."""
        ctx = self._context()
        stamp = self._stamp()
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host or None, self.port, ssl_context=ctx)
            await site.start()
            bound = runner.addresses
            self.bound_port = int(bound[0][1]) if bound else self.port
            log.info(
                "serving webhooks on %s:%d (%s), certificates in %s",
                self.host or "*",
                self.bound_port,
                ", ".join(h.path for h in self.webhooks),
                self.cert_dir,
            )
            self.started.set()
            while True:
                await asyncio.sleep(self.reload_interval)  # a poll of the files, as controller-runtime's watcher
                now = self._stamp()
                if now in (stamp, (0.0, 0.0)):
                    continue
                try:
                    self._load(ctx)  # new handshakes get the new pair; open connections keep theirs
                    stamp = now
                    log.info("reloaded the webhook serving certificate from %s", self.cert_dir)
                except CertificateError as e:  # half-written files: keep serving the old pair, retry
                    log.warning("webhook certificate not reloaded yet: %s", e)
        finally:
            with contextlib.suppress(Exception):
                await runner.cleanup()
