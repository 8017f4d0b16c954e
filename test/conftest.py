"""Session fixtures: a real control plane (local binaries by default, k3s on Docker hosts), CRDs from
config/crd, a namespace per test, an async API client, and two guards that fail any test whose traffic
leaves loopback: one in this process (connects and name lookups, refused before a packet is sent) and
one over every process the run started (Ray heads, submitters, the control plane: their sockets, read
from /proc, see support/proc_guard.py).

Environment:
  K8S_TEST_REQUIRE=0   skip (instead of fail) tests that need a control plane when it cannot start
  K8S_TEST_BUILD=1     build missing control-plane binaries from Go modules (minutes on a first run)
  K8S_TEST_CACHE_DIR   where the binaries live (default ~/.cache/kuberay-py/k8s-…)
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # test/support helpers

from support.proc_guard import MARKER_ENV, ProcessTreeGuard  # noqa: E402  (needs the path above)
from support.rbac_audit import OPERATOR_USER, AuditLog, install_operator_identity  # noqa: E402

CRD_DIR = REPO / "config" / "crd" / "bases"
ARTIFACTS = REPO / "test-artifacts"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=("local", "k3s"),
        default=os.environ.get("K8S_TEST_BACKEND", "local"),
        help="control plane for integration tests: local binaries (default) or a k3s container",
    )


# ---- loopback guard ------------------------------------------------------------------------------


@dataclass
class LoopbackGuard:
    """Refuses, before any packet leaves, connects and name lookups that are not loopback."""

    violations: list[str] = field(default_factory=list)

    @staticmethod
    def allowed_host(host: Any) -> bool:
        if isinstance(host, bytes):
            host = host.decode()
        if not isinstance(host, str):
            return False
        if host in ("localhost", "localhost.", ""):
            return True
        try:
            return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
        except ValueError:
            return False

    def check(self, what: str, host: Any) -> None:
        if not self.allowed_host(host):
            msg = f"{what} to non-loopback address {host!r} blocked by the test loopback guard"
            self.violations.append(msg)
            raise PermissionError(msg)


_GUARD = LoopbackGuard()
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _GUARD.check("connect", address[0])
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _GUARD.check("connect", address[0])
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None:
        _GUARD.check("name lookup", host)
    return _real_getaddrinfo(host, *args, **kwargs)


# Every process this run starts inherits the marker, so a daemonised child is still found.
_TREE_GUARD = ProcessTreeGuard(marker=os.environ.setdefault(MARKER_ENV, uuid.uuid4().hex))


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo
    config.stash[_failed_key] = False
    _TREE_GUARD.start()


@pytest.fixture(scope="session")
def process_guard() -> ProcessTreeGuard:
    """The run's process-tree socket guard (``allow()`` a network the test created; ``scan()`` now)."""
    return _TREE_GUARD


@pytest.fixture(autouse=True)
def loopback_guard(request: pytest.FixtureRequest) -> Iterator[LoopbackGuard]:
    """Fails the test if anything in it tried a non-loopback address, even if the error was caught, or if
    any process of the run held a socket bound to or connected to one while it ran."""
    _GUARD.violations.clear()
    yield _GUARD
    if _GUARD.violations:
        found = list(_GUARD.violations)
        _GUARD.violations.clear()
        pytest.fail("non-loopback network access: " + "; ".join(found))
    if request.node.get_closest_marker("e2e"):
        _TREE_GUARD.scan()  # the background sampler may not have looked since Ray's last change
    msg = _TREE_GUARD.failure_message()
    if msg:
        pytest.fail(msg, pytrace=False)
    audit = request.config.stash.get(_audit_key, None)
    if audit is not None:
        forbidden = audit.take_forbidden()
        if forbidden:
            pytest.fail("the operator's ServiceAccount was refused:\n  " + "\n  ".join(forbidden), pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A last look once every fixture (Ray heads, planes) is torn down; anything left fails the run."""
    _TREE_GUARD.scan()
    _TREE_GUARD.stop()
    msg = _TREE_GUARD.failure_message()
    if msg:
        print(f"\n{msg}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    audit = session.config.stash.get(_audit_key, None)
    if audit is not None and _rbac_audit_report(session, audit):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _rbac_audit_report(session: pytest.Session, audit: AuditLog) -> bool:
    """Writes test-artifacts/rbac-audit.txt; True if the run must fail: a 403 not yet reported, or (when
    the whole suite ran) a granted rule that no test used and whose declaration gives no reason."""
    from support.rbac_audit import granted, summary, unused_grants

    from controllers.ray.rbac import unused_reasons

    forbidden = audit.take_forbidden()
    grants, reasons = granted(), unused_reasons()
    ARTIFACTS.mkdir(exist_ok=True)
    report = ARTIFACTS / "rbac-audit.txt"
    report.write_text(summary(audit, grants, reasons))
    opt = session.config.option
    whole_suite = (
        session.config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and not opt.keyword
        and not opt.markexpr
        and not opt.deselect
        and session.testsfailed == 0
    )
    unexplained = [g for g in unused_grants(audit, grants) if g not in reasons] if whole_suite else []
    for line in forbidden:
        print(f"\n{line}", file=sys.stderr)
    if unexplained:
        print(
            f"\nthe generated RBAC grants {len(unexplained)} (group, resource, verb) that no test used and no "
            f"declaration in controllers/ray/rbac.py explains (see {report}):",
            file=sys.stderr,
        )
        for g, r, v in unexplained:
            print(f"  {v} {g or 'core'}/{r}", file=sys.stderr)
    print(f"\nRBAC audit of {audit.user}: {report}", file=sys.stderr)
    return bool(forbidden or unexplained)


# ---- failure tracking (logs are kept when anything failed) ---------------------------------------

_failed_key = pytest.StashKey[bool]()
_audit_key = pytest.StashKey[AuditLog]()
_item_failed_key = pytest.StashKey[bool]()
_audit_key = pytest.StashKey[AuditLog]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        item.config.stash[_failed_key] = True
        item.stash[_item_failed_key] = True


# ---- control plane -------------------------------------------------------------------------------


def _require() -> bool:
    return os.environ.get("K8S_TEST_REQUIRE", "1") != "0"


def _unavailable(reason: str) -> None:
    if _require():
        pytest.fail(f"control plane unavailable: {reason}", pytrace=False)
    pytest.skip(f"control plane unavailable: {reason}")


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--backend"))


@pytest.fixture(scope="session")
def control_plane(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """Tier T1: etcd + kube-apiserver with the project's CRDs installed (or k3s with --backend=k3s)."""
    if backend == "k3s":
        yield from _k3s_plane(tmp_path_factory)
        return

    from internal.controlplane import (
        ControlPlane,
        PlaneError,
        build_binaries,
        default_bin_dir,
        missing_binaries,
    )

    bin_dir = default_bin_dir()
    if missing_binaries(bin_dir):
        if os.environ.get("K8S_TEST_BUILD") == "1":
            try:
                bin_dir = build_binaries()
            except PlaneError as e:
                _unavailable(str(e))
        else:
            _unavailable(
                f"binaries missing in {bin_dir} ({', '.join(missing_binaries(bin_dir))}); "
                "run `make bins` or set K8S_TEST_BUILD=1"
            )
    plane = ControlPlane(bin_dir=bin_dir, work_dir=tmp_path_factory.mktemp("plane"), audit_users=(OPERATOR_USER,))
    try:
        plane.start()
        crds = sorted(CRD_DIR.glob("*.yaml"))
        if crds:
            plane.install_crds(crds)
        # The KubeRay controllers run as the shipped ServiceAccount (support/rbac_audit.py), never admin.
        plane.operator_kubeconfig = install_operator_identity(plane, plane.work_dir)  # type: ignore[attr-defined]
        request.config.stash[_audit_key] = AuditLog(plane.audit_log)
    except PlaneError as e:
        plane.stop()
        _keep_logs(plane, "startup")
        _unavailable(str(e))
    try:
        yield plane
    finally:
        plane.stop()
        if request.config.stash[_failed_key]:
            _keep_logs(plane, "session")


def _keep_logs(plane: Any, label: str) -> None:
    dest = plane.keep_logs(ARTIFACTS / f"plane-{label}")
    print(f"\ncontrol-plane logs kept in {dest}")


def _k3s_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not shutil.which("docker") or not Path("/var/run/docker.sock").exists():
        pytest.skip("--backend=k3s needs a Docker engine, and this host has none")
    from testcontainers.k3s import K3SContainer  # type: ignore[import-untyped]

    from internal.controlplane import KubeRest

    @dataclass
    class K3sPlane:
        kubeconfig: Path
        rest: KubeRest
        sim_running: bool = True
        operator_kubeconfig: Path = Path()

        @property
        def server(self) -> str:
            return self.rest.server

        def request(self, *a: Any, **kw: Any) -> Any:
            return self.rest.request(*a, **kw)

        def install_crds(self, paths: list[Path], timeout: float = 60.0) -> list[str]:
            return self.rest.install_crds(paths, timeout)

        def start_sim(self) -> None:  # k3s has a real kubelet, scheduler and controller manager
            return None

    with K3SContainer(image="rancher/k3s:v1.36.2-k3s1") as k3s:
        kc = tmp_path_factory.mktemp("k3s") / "kubeconfig"
        kc.write_text(k3s.config_yaml())
        plane = K3sPlane(kc, KubeRest.from_kubeconfig(kc))
        crds = sorted(CRD_DIR.glob("*.yaml"))
        if crds:
            plane.install_crds(crds)
        plane.operator_kubeconfig = install_operator_identity(plane, kc.parent)  # no audit log on k3s
        yield plane


@pytest.fixture(scope="session")
def sim_cluster(control_plane: Any) -> Any:
    """Tier T2: the control plane plus kube-controller-manager, kube-scheduler and kwok."""
    from internal.controlplane import PlaneError

    try:
        control_plane.start_sim()
    except PlaneError as e:
        _keep_logs(control_plane, "sim-startup")
        _unavailable(str(e))
    return control_plane


@pytest.fixture
async def kube(control_plane: Any) -> AsyncIterator[Any]:
    """An async kubernetes-asyncio ApiClient for the test's event loop."""
    from kubernetes_asyncio import config

    api = await config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    try:
        yield api
    finally:
        await api.close()


@pytest.fixture
def namespace(control_plane: Any) -> Iterator[str]:
    """A fresh namespace per test, deleted (without waiting) afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    r = control_plane.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert r.status == 201, r.body
    yield name
    control_plane.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture
async def kclient(control_plane: Any) -> AsyncIterator[Any]:
    """The operator's own async client (internal.client.Client) for the shared control plane."""
    from internal.client import Client, ClientMetrics, api_client, load_configuration
    from internal.metrics import new_registry

    cfg = await load_configuration(str(control_plane.kubeconfig))
    c = Client(api_client(cfg, 16), metrics=ClientMetrics.register(new_registry()))
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
def private_plane(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Iterator[Any]:
    """A T1 control plane of the test's own, for tests that restart or break it."""
    if backend != "local":
        pytest.skip("private planes need the local backend")
    from internal.controlplane import ControlPlane, PlaneError, default_bin_dir, missing_binaries

    if missing_binaries(default_bin_dir()):
        _unavailable("binaries missing; run `make bins`")
    plane = ControlPlane(bin_dir=default_bin_dir(), work_dir=tmp_path / "plane")
    try:
        plane.start()
    except PlaneError as e:
        plane.stop()
        _unavailable(str(e))
    try:
        yield plane
    finally:
        plane.stop()
        if request.node.stash.get(_item_failed_key, False):
            _keep_logs(plane, f"private-{request.node.name}")
