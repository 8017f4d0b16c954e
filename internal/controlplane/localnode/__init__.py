"""The local node: pods of the local test cluster run as host processes, each in a network namespace of
its own on a private bridge (see sandbox.py)."""

from internal.controlplane.localnode.sandbox import (
    GATEWAY,
    POD_CIDR,
    Mount,
    PodNetwork,
    PodSandbox,
    SandboxError,
)

__all__ = ["GATEWAY", "POD_CIDR", "Mount", "PodNetwork", "PodSandbox", "SandboxError"]
