"""A real local Kubernetes control plane (etcd, kube-apiserver, and optionally kube-controller-manager,
kube-scheduler and kwok) on loopback, for tests and for `make run`."""

from internal.controlplane.plane import ControlPlane, build_binaries, default_bin_dir, missing_binaries
from internal.controlplane.process import PlaneError
from internal.controlplane.rest import KubeRest, Response

__all__ = [
    "ControlPlane",
    "KubeRest",
    "PlaneError",
    "Response",
    "build_binaries",
    "default_bin_dir",
    "missing_binaries",
]
