"""Connection set-up: kubeconfig (flag, $KUBECONFIG, ~/.kube/config) or in-cluster service account."""

from __future__ import annotations

import copy
import os
from pathlib import Path

from kubernetes_asyncio import config as ka_config
from kubernetes_asyncio.client import ApiClient, Configuration


async def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> Configuration:
    cfg = Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    default = Path.home() / ".kube" / "config"
    if path or default.exists():
        await ka_config.load_kube_config(config_file=path or str(default), context=context, client_configuration=cfg)
    else:
        ka_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return cfg


def api_client(cfg: Configuration, pool_size: int) -> ApiClient:
    """An ApiClient with its own connection pool (call inside the event loop that will use it)."""
    own = copy.copy(cfg)
    own.connection_pool_maxsize = pool_size
    return ApiClient(own)
