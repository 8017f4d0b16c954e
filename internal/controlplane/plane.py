"""A real local Kubernetes control plane on loopback, for tests and `make run`.

Tier T1 is etcd + kube-apiserver (envtest's shape). Tier T2 adds kube-controller-manager (job, garbage
collector, namespace controllers), kube-scheduler and kwok with one fake node whose pods get loopback
IPs. Everything binds 127.0.0.1 and is driven synchronously from the thread that owns the plane (the
children are tied to that thread's life).
"""

from __future__ import annotations

import base64
import functools
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from internal.controlplane import certs as certs_mod
from internal.controlplane.localnode.sandbox import GATEWAY
from internal.controlplane.process import PlaneError, Process
from internal.controlplane.rest import KubeRest, Response, RestError

REPO_ROOT = Path(__file__).resolve().parents[2]
STAGES_FILE = Path(__file__).with_name("kwok-stages.yaml")
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
T2_CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "ttl-after-finished-controller",
)
# Services get endpoints only with the local node: kwok's loopback pod IPs are refused in EndpointSlices.
LOCAL_NODE_CONTROLLERS = ("endpoints-controller", "endpointslice-controller")
POD_IDENTITY_CONTROLLERS = ("serviceaccount-controller", "root-ca-certificate-publisher-controller")
NODE_NAME = "kwok-node-0"
LOCAL_NODE_NAME = "local-node-0"
# With the local node, CPU requests are time-shared and memory is admitted by the node itself against
# the machine's real memory: the scheduler does not filter on resource fit.
_LOCAL_NODE_PROFILES: dict[str, Any] = {
    "profiles": [
        {"schedulerName": "default-scheduler", "plugins": {"filter": {"disabled": [{"name": "NodeResourcesFit"}]}}}
    ]
}
GPU_NODE_NAME = "kwok-gpu-node-0"
# Pod IPs come from a loopback range so that anything dialling a pod IP stays on this machine.
POD_CIDR = "127.1.0.0/16"
NODE_IP = "127.0.0.2"
SERVICE_CIDR = "10.0.0.0/24"  # allocated only, never dialled


def _version_env() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (REPO_ROOT / "hack" / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def default_bin_dir() -> Path:
    """Where hack/build-test-bins.sh puts the binaries (K8S_TEST_CACHE_DIR overrides the cache root)."""
    v = _version_env()
    root = os.environ.get("K8S_TEST_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "kuberay-py"
        / f"k8s-{v['K8S_VERSION']}-etcd{v['ETCD_VERSION']}-kwok{v['KWOK_VERSION']}"
    )
    return Path(root) / "bin"


def missing_binaries(bin_dir: Path) -> list[str]:
    return [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]


def build_binaries() -> Path:
    """Run the build script (cached, locked) and return the bin directory."""
    script = REPO_ROOT / "hack" / "build-test-bins.sh"
    res = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    if res.returncode != 0:
        raise PlaneError(f"{script} failed with exit code {res.returncode}")
    return Path(res.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ControlPlane:
    bin_dir: Path
    work_dir: Path
    start_timeout: float = 90.0
    processes: dict[str, Process] = field(default_factory=dict)
    server: str = ""
    kubeconfig: Path = Path()
    certs: certs_mod.PlaneCerts | None = None
    rest: KubeRest | None = None
    # Users whose requests kube-apiserver records at Metadata level in ``audit_log`` (none: no audit).
    audit_users: tuple[str, ...] = ()
    local_bridge: str = "krpy0"  # the local node's bridge (a plane per bridge name)
    # Pods get Kubernetes identities as on a real cluster: the ServiceAccount admission plugin mounts a
    # token, the CA and the namespace into them, and kube-controller-manager creates each namespace's
    # ``default`` ServiceAccount and ``kube-root-ca.crt``. For the local node, whose pods really run (the
    # autoscaler sidecar talks to kube-apiserver); kwok pods never use one, and a plane without
    # kube-controller-manager (T1) could not create pods in a new namespace at all.
    pod_identities: bool = False

    # ---- lifecycle -------------------------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"

    @property
    def audit_log(self) -> Path:
        return self.log_dir / "audit.log"

    @property
    def sim_running(self) -> bool:
        return "kwok" in self.processes or "local-node" in self.processes

    def start(self) -> None:
        """Start T1 (etcd + kube-apiserver); retry with fresh ports when a port was taken meanwhile."""
        missing = missing_binaries(self.bin_dir)
        if missing:
            raise PlaneError(f"missing control-plane binaries in {self.bin_dir}: {', '.join(missing)}")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.certs = certs_mod.generate(self.work_dir / "pki", extra_ips=(GATEWAY,) if self.pod_identities else ())
        for attempt in range(3):
            try:
                self._start_t1(attempt)
                return
            except PlaneError as e:
                self.stop()
                if "address already in use" not in str(e) or attempt == 2:
                    raise

    def _start_t1(self, attempt: int) -> None:
        assert self.certs is not None
        c = self.certs
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        data = self.work_dir / f"etcd-data-{attempt}"
        etcd_args = [
            str(self.bin_dir / "etcd"),
            f"--data-dir={data}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
            "--log-level=warn",
        ]
        if _has_flag(self.bin_dir / "etcd", "--unsafe-no-fsync"):
            etcd_args.append("--unsafe-no-fsync=true")
        etcd = self._spawn("etcd", etcd_args)
        etcd.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{etcd_port}/health"), 30)

        self.server = f"https://127.0.0.1:{api_port}"
        ctx = ssl.create_default_context(cafile=str(c.ca_crt))
        ctx.load_cert_chain(str(c.admin_crt), str(c.admin_key))
        self.rest = KubeRest(self.server, ctx)
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={self.work_dir / 'pki'}",
                f"--tls-cert-file={c.serving_crt}",
                f"--tls-private-key-file={c.serving_key}",
                f"--client-ca-file={c.ca_crt}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer=https://127.0.0.1:{api_port}/",
                f"--service-account-key-file={c.sa_pub}",
                f"--service-account-signing-key-file={c.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                *(() if self.pod_identities else ("--disable-admission-plugins=ServiceAccount",)),
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--v=0",
                *self._audit_flags(),
            ],
        ).wait_ready(lambda: self.request("GET", "/readyz").status == 200, self.start_timeout, 0.2)
        self.kubeconfig = self._write_kubeconfig()
        self._wait(lambda: self.request("GET", "/api/v1/namespaces/default").status == 200, 30, "namespace default")

    def start_sim(self, node: str = "kwok") -> None:
        """Start T2 on top of a running T1. Install CRDs first: the garbage collector only tracks
        owners whose kinds it found in discovery at start.

        ``node="kwok"``: kwok's fake nodes (thousands of pods, nothing runs). ``node="local"``: the
        local node (localnode/), which runs every pod's containers as host processes in network
        namespaces of their own (root only); the scheduler then leaves resource fit to that node, which
        time-shares CPU and admits pods against the machine's real memory."""
        if self.sim_running:
            return
        if node not in ("kwok", "local"):
            raise PlaneError(f"unknown node kind {node!r}: kwok or local")
        kcm_port, sched_port = free_port(), free_port()
        kc = str(self.kubeconfig)
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kc}",
                "--leader-elect=false",
                f"--controllers={','.join(self._kcm_controllers(node))}",
                *((f"--root-ca-file={self.certs.ca_crt}",) if self.pod_identities and self.certs else ()),
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--concurrent-job-syncs=10",
                "--concurrent-gc-syncs=20",
            ],
        )
        sched_cfg = self.work_dir / "scheduler.yaml"
        sched_cfg.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {"kubeconfig": kc, "qps": 500, "burst": 1000},
                    "leaderElection": {"leaderElect": False},
                    **(_LOCAL_NODE_PROFILES if node == "local" else {}),
                }
            )
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--config={sched_cfg}",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
            ],
        )
        if node == "local":
            self._start_local_node(kc)
        else:
            self._spawn(
                "kwok",
                [
                    str(self.bin_dir / "kwok"),
                    f"--kubeconfig={kc}",
                    f"--config={STAGES_FILE}",
                    "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                    f"--cidr={POD_CIDR}",
                    f"--node-ip={NODE_IP}",
                    "--node-lease-duration-seconds=40",
                ],
            )
            self.create_node(NODE_NAME)
            # A GPU node as GPU device plugins label and taint them, for GPU worker groups (seed samples).
            self.create_node(
                GPU_NODE_NAME,
                labels={"nvidia.com/gpu.present": "true"},
                taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
            )
        for name, port in (("kube-controller-manager", kcm_port), ("kube-scheduler", sched_port)):
            self.processes[name].wait_ready(
                functools.partial(_https_insecure_ok, f"https://127.0.0.1:{port}/healthz"), 60, 0.2
            )

    def _kcm_controllers(self, node: str) -> tuple[str, ...]:
        out = T2_CONTROLLERS + (LOCAL_NODE_CONTROLLERS if node == "local" else ())
        return out + (POD_IDENTITY_CONTROLLERS if self.pod_identities else ())

    def _start_local_node(self, kubeconfig: str) -> None:
        if os.geteuid() != 0:
            raise PlaneError("the local node creates network namespaces and mounts: it needs root")
        work = self.work_dir / "local-node"
        work.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "local-node",
            [
                sys.executable,
                "-m",
                "internal.controlplane.localnode",
                f"--kubeconfig={kubeconfig}",
                f"--name={LOCAL_NODE_NAME}",
                f"--work-dir={work}",
                f"--bin-dir={Path(sys.executable).parent}",
                f"--bridge={self.local_bridge}",
                *((f"--api-server={urllib.parse.urlsplit(self.server).netloc}",) if self.pod_identities else ()),
            ],
        )
        self.processes["local-node"].wait_ready(
            lambda: _node_ready(self.request("GET", f"/api/v1/nodes/{LOCAL_NODE_NAME}").json()), 60, 0.2
        )

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again on the same port and etcd (state is kept)."""
        p = self.processes["kube-apiserver"]
        p.stop()
        p.start()
        p.wait_ready(lambda: self.request("GET", "/readyz").status == 200, self.start_timeout, 0.2)

    def create_node(
        self, name: str, labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None
    ) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                    **(labels or {}),
                },
            },
        }
        r = self.request("POST", "/api/v1/nodes", node)
        if r.status not in (201, 409):
            raise PlaneError(f"creating node {name}: HTTP {r.status} {r.body[:300]!r}")
        # The NodeTaint admission plugin adds not-ready:NoSchedule at creation and nothing here would
        # lift it (no node-lifecycle controller), so drop every taint once.
        r = self.request(
            "PATCH", f"/api/v1/nodes/{name}", {"spec": {"taints": taints or None}}, "application/merge-patch+json"
        )
        if r.status != 200:
            raise PlaneError(f"untainting node {name}: HTTP {r.status} {r.body[:300]!r}")
        kwok = self.processes["kwok"]
        kwok.wait_ready(lambda: _node_ready(self.request("GET", f"/api/v1/nodes/{name}").json()), 60, 0.2)

    def stop(self) -> None:
        """Stop every process this plane started, newest first."""
        for name in reversed(list(self.processes)):
            self.processes[name].stop()
        self.processes.clear()

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def keep_logs(self, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.log_dir, dest, dirs_exist_ok=True)
        return dest

    def failed_processes(self) -> list[str]:
        return [n for n, p in self.processes.items() if not p.alive()]

    # ---- API access -----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Response:
        assert self.rest is not None, "control plane not started"
        return self.rest.request(method, path, body, content_type)

    def install_crds(self, paths: list[Path], timeout: float = 30.0) -> list[str]:
        assert self.rest is not None, "control plane not started"
        return self.rest.install_crds(paths, timeout)

    # ---- helpers ---------------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> Process:
        p = Process(name, args, self.log_dir)
        p.start()
        self.processes[name] = p
        (self.work_dir / "pids").open("a").write(f"{name} {p.pid}\n")
        return p

    def _audit_flags(self) -> list[str]:
        if not self.audit_users:
            return []
        policy = self.work_dir / "audit-policy.yaml"
        rules = [{"level": "Metadata", "users": list(self.audit_users)}, {"level": "None"}]
        doc = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"], "rules": rules}
        policy.write_text(yaml.safe_dump(doc))
        return [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}", "--audit-log-format=json"]

    def _wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        assert self.rest is not None
        try:
            self.rest.wait(cond, timeout, what)
        except RestError as e:
            raise PlaneError(str(e)) from None

    def _write_kubeconfig(self) -> Path:
        assert self.certs is not None

        def b64(p: Path) -> str:
            return base64.b64encode(p.read_bytes()).decode()

        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.server, "certificate-authority-data": b64(self.certs.ca_crt)},
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate-data": b64(self.certs.admin_crt),
                        "client-key-data": b64(self.certs.admin_key),
                    },
                }
            ],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
            "current-context": "local",
        }
        path = self.work_dir / "admin.kubeconfig"
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        return path


def _has_flag(binary: Path, flag: str) -> bool:
    try:
        out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag in out.stdout + out.stderr


def _http_ok(url: str) -> bool:
    host, rest = url.removeprefix("http://").split("/", 1)
    h, p = host.rsplit(":", 1)
    conn = http.client.HTTPConnection(h, int(p), timeout=2)
    try:
        conn.request("GET", "/" + rest)
        return conn.getresponse().status == 200
    finally:
        conn.close()


def _https_insecure_ok(url: str) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    host, rest = url.removeprefix("https://").split("/", 1)
    h, p = host.rsplit(":", 1)
    conn = http.client.HTTPSConnection(h, int(p), context=ctx, timeout=2)
    try:
        conn.request("GET", "/" + rest)
        return conn.getresponse().status == 200
    finally:
        conn.close()


def _node_ready(node: dict[str, Any]) -> bool:
    conds = node.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
