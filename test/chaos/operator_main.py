"""The operator's real entry point (cmd/main.py: flags, wiring, signals) as a process of its own, with
one change for the chaos tier: Ray dashboards, and the Serve proxies' health checks of RayServices, are
reached at the fake dashboard's path-prefixed URL for each cluster (``$CHAOS_DASHBOARD_URL/c/<cluster>``,
loopback only) instead of the head Service's DNS name or the pod IP, which nothing serves on the
simulated cluster."""

from __future__ import annotations

import os
import sys
from typing import Any

from kuberay_operator import main as entry

from controllers.ray.utils.dashboard import DashboardClientFactory, Loopback, LoopbackProxyAddress

BASE = os.environ["CHAOS_DASHBOARD_URL"].rstrip("/")
_setups = entry.controller_setups


def _with_fake(dashboards: DashboardClientFactory | None = None, facts: entry.ClusterFacts | None = None) -> Any:
    def url(cluster: Any) -> str:
        return f"{BASE}/c/{cluster['metadata']['name']}"

    def proxy(pod: Any, port: int) -> str:
        return f"{BASE}/c/{pod['metadata']['labels']['ray.io/cluster']}"

    # Every fake head shares one host:port here; real heads each have their own connection slots.
    fake = DashboardClientFactory(Loopback(url), proxies=LoopbackProxyAddress(proxy), limit_per_host=256)
    return _setups(dashboards or fake, facts)


entry.controller_setups = _with_fake

if __name__ == "__main__":
    sys.exit(entry.main())
