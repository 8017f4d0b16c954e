"""``runtime_env.worker_process_setup_hook`` for the Serve apps of the e2e tests: keep every replica's
listener on loopback.

Ray 2.60 Serve replicas start an inter-deployment gRPC server on the wildcard address (``[::]:0``,
hard-coded in ``ray.serve._private.replica``); the test run's process guard (test/support/proc_guard.py)
rightly treats a wildcard listener as reachable from outside the machine. On Kubernetes that listener
is what the pod network expects, so the operator needs nothing of this; on the test host the replica
binds 127.0.0.1 instead, which is also the node address it advertises (the head runs with
``--node-ip-address=127.0.0.1``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WILDCARD_PREFIX = "[::]:"


def bind_loopback() -> None:
    from ray.serve._private import replica

    real: Callable[[Any, str], Any] = getattr(replica, "add_port_to_grpc_server")  # noqa: B009 (not re-exported)
    if getattr(real, "_loopback", False):
        return

    def on_loopback(server: Any, address: str) -> int:
        if address.startswith(WILDCARD_PREFIX):
            address = "127.0.0.1:" + address.removeprefix(WILDCARD_PREFIX)
        return int(real(server, address))

    setattr(on_loopback, "_loopback", True)  # noqa: B010
    setattr(replica, "add_port_to_grpc_server", on_loopback)  # noqa: B010
