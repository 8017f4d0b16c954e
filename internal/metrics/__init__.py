"""The operator's Prometheus registry and the HTTP servers for /metrics and the health probes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import generate_latest

log = logging.getLogger("kuberay.metrics")


def new_registry() -> CollectorRegistry:
    """A fresh registry (never the global default) with process, platform and GC collectors, as the
    Go operator exposes process_* and go_* alongside its own metrics."""
    reg = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    return reg


def parse_addr(addr: str) -> tuple[str, int] | None:
    """Go-style bind addresses: ":8080" (all interfaces), "127.0.0.1:0", or "0" to disable."""
    if addr in ("", "0"):
        return None
    host, _, port = addr.rpartition(":")
    return (host or "0.0.0.0", int(port))


Check = Callable[[], str | None]  # None when healthy, else the reason


@dataclass
class HealthChecks:
    """Named checks behind /healthz and /readyz (controller-runtime's healthz handler)."""

    checks: dict[str, Check] = field(default_factory=dict)

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def handler(self) -> Callable[[web.Request], web.Response]:
        def handle(req: web.Request) -> web.Response:
            excluded = set(req.query.getall("exclude", []))
            only = req.match_info.get("check")
            checks = {n: c for n, c in (self.checks or {"ping": lambda: None}).items() if n not in excluded}
            if only:
                if only not in checks:
                    return web.Response(status=404, text=f"no check named {only}\n")
                checks = {only: checks[only]}
            lines, ok = [], True
            for name, check in sorted(checks.items()):
                try:
                    reason = check()
                except Exception as e:
                    reason = str(e)
                if reason is None:
                    lines.append(f"[+]{name} ok")
                else:
                    ok = False
                    lines.append(f"[-]{name} failed: reason withheld")
                    log.info("health check %s failed: %s", name, reason)
            if ok and "verbose" not in req.query:
                return web.Response(text="ok")
            status = "passed" if ok else "failed"
            return web.Response(status=200 if ok else 500, text="\n".join(lines) + f"\nhealthz check {status}\n")

        return handle


async def start_server(app: web.Application, addr: tuple[str, int]) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, addr[0], addr[1])
    await site.start()
    bound = runner.addresses
    port = bound[0][1] if bound else addr[1]
    return runner, int(port)


def metrics_app(registry: CollectorRegistry) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


def probes_app(healthz: HealthChecks, readyz: HealthChecks) -> web.Application:
    app = web.Application()
    for path, checks in (("/healthz", healthz), ("/readyz", readyz)):
        h = checks.handler()

        async def handle(req: web.Request, h: Callable[[web.Request], web.Response] = h) -> web.Response:
            return h(req)

        app.router.add_get(path, handle)
        app.router.add_get(path + "/{check}", handle)
    return app
