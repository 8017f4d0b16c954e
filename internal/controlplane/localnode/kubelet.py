"""A small kubelet for the local control plane: the pods bound to one Node run as host processes.

Each pod gets a sandbox (sandbox.py): its own network namespace with an address from the node's pod
network, a private mount namespace with its volumes at their mount paths, and an /etc/hosts that maps
the cluster's Service names (``<svc>.<ns>.svc.cluster.local``) to the pods behind them, since there is
no cluster DNS. Each container's command and args run in that sandbox with the host's programs: the
image is never pulled (the pod says so in an event), so ``ray`` is the Ray installed next to this
operator. The node reports its real CPU and memory; CPU is time-shared between pods, and a pod whose
memory requests do not fit what is left of the machine's memory is refused (``OutOfmemory``), as a
kubelet refuses it.

What a pod gets, as a kubelet gives it: env with values, fieldRefs (pod IP, name, namespace, node
name, labels/annotations), resourceFieldRefs, configMap/secret key refs; volumes configMap, secret,
emptyDir (``medium: Memory`` → tmpfs), downwardAPI and projected (incl. serviceAccountToken, from a
TokenRequest bound to the pod); init containers run to completion
in order; restartPolicy with back-off; readiness and liveness probes (exec and HTTP, in the pod's
network); deletion with the grace period (SIGTERM to the container's process group, SIGKILL after
it), then the pod is removed. Status (phase, podIP, conditions, container states, exit codes,
restart counts) is written as a kubelet writes it.

With ``api_server`` set, pods reach kube-apiserver as on a cluster: the ``kubernetes`` Service's names
and the ``KUBERNETES_SERVICE_*`` variables point at the node's gateway, where the node forwards TCP to
kube-apiserver on loopback (its serving certificate carries those names and the gateway address).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime as dt
import ipaddress
import logging
import os
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from internal.client import ApiError, Client, Conflict, NotFound
from internal.client import resources as r
from internal.controlplane.certs import IN_CLUSTER_NAMES
from internal.controlplane.localnode.sandbox import (
    GATEWAY,
    Mount,
    PodNetwork,
    PodSandbox,
    SandboxError,
    environment_mounts,
)
from internal.informer import HandlerFuncs, Informer

log = logging.getLogger("kuberay.localnode")

Obj = dict[str, Any]

NODE_LABEL = "kuberay-py.io/local-node"
CLUSTER_DOMAIN = "cluster.local"
HEARTBEAT_SECONDS = 10.0
BACKOFF_START, BACKOFF_MAX = 2.0, 60.0
PROBE_HTTP_TIMEOUT_CAP = 10.0
# Set in every container, over the pod's own values: Ray's usage statistics would probe cloud metadata
# addresses and phone home, and nothing on the local node may try to leave the machine.
NODE_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
API_PORT = 443  # the ``kubernetes`` Service's port, which pods dial at the gateway
DEFAULT_TOKEN_SECONDS = 3600  # a projected serviceAccountToken's default expirationSeconds
CONTAINER_ID_SCHEME = "host-process://"
POD_HOME = "/home/ray"  # HOME in every container, as in Ray's images; a directory of the pod's own
# What the node may run: the host's own programs. A command that is not on the host is refused.
NOT_PULLED = (
    "image {image} is not pulled: the local node runs the container's command on the host, with "
    "the Ray installed next to the operator ({ray})"
)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_quantity(q: str | int | float) -> float:
    """A Kubernetes quantity as a float in base units (cores, bytes)."""
    s = str(q).strip()
    suffixes = {
        "Ki": 1024,
        "Mi": 1024**2,
        "Gi": 1024**3,
        "Ti": 1024**4,
        "Pi": 1024**5,
        "Ei": 1024**6,
        "n": 1e-9,
        "u": 1e-6,
        "m": 1e-3,
        "k": 1e3,
        "K": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "P": 1e15,
        "E": 1e18,
    }
    for suf in sorted(suffixes, key=len, reverse=True):
        if s.endswith(suf):
            return float(s[: -len(suf)]) * suffixes[suf]
    return float(s)


def machine_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


async def exited(proc: subprocess.Popen[bytes], timeout: float | None) -> bool:
    """Wait for ``proc`` to exit (and reap it) without holding a thread: a pidfd becomes readable when
    the process ends. False if it still runs after ``timeout`` seconds."""
    if proc.poll() is not None:
        return True
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        proc.wait()
        return True
    done: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await asyncio.wait_for(asyncio.shield(done), timeout)
    except TimeoutError:
        return proc.poll() is not None
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    proc.wait()
    return True


def pod_key(pod: Mapping[str, Any]) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


# ---- the pieces a kubelet derives from a pod spec (pure) -------------------------------------------


def container_env(pod: Obj, container: Obj, data: Mapping[tuple[str, str, str], dict[str, str]]) -> dict[str, str]:
    """The container's environment: ``env`` entries in order ($(VAR) expansion of earlier ones) and
    ``envFrom``; ``data`` holds the ConfigMaps and Secrets read for the pod, by (kind, ns, name)."""
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for src in container.get("envFrom") or ():
        prefix = src.get("prefix", "")
        if "configMapRef" in src:
            env.update({prefix + k: v for k, v in data.get(("cm", ns, src["configMapRef"]["name"]), {}).items()})
        if "secretRef" in src:
            env.update({prefix + k: v for k, v in data.get(("secret", ns, src["secretRef"]["name"]), {}).items()})
    for e in container.get("env") or ():
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
            continue
        ref = e.get("valueFrom") or {}
        if "fieldRef" in ref:
            env[e["name"]] = field_ref(pod, ref["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in ref:
            env[e["name"]] = resource_field_ref(pod, container, ref["resourceFieldRef"])
        elif "configMapKeyRef" in ref:
            key = ref["configMapKeyRef"]
            value = data.get(("cm", ns, key["name"]), {}).get(key["key"])
            if value is not None:
                env[e["name"]] = value
        elif "secretKeyRef" in ref:
            key = ref["secretKeyRef"]
            value = data.get(("secret", ns, key["name"]), {}).get(key["key"])
            if value is not None:
                env[e["name"]] = value
    return env


def expand(value: str, env: Mapping[str, str]) -> str:
    """A kubelet's ``$(VAR)`` expansion: defined names are replaced, ``$$`` escapes, others stay."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and (end := value.find(")", i)) > 0:
            name = value[i + 2 : end]
            out.append(env.get(name, value[i : end + 1]))
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def field_ref(pod: Obj, path: str) -> str:
    meta, status = pod["metadata"], pod.get("status") or {}
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": status.get("podIP", ""),
        "status.hostIP": status.get("hostIP", ""),
    }
    if path in simple:
        return str(simple[path])
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path == prefix:
            return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get(source) or {}).items()))
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str((meta.get(source) or {}).get(path[len(prefix) + 2 : -2], ""))
    return ""


def resource_field_ref(pod: Obj, container: Obj, ref: Mapping[str, Any]) -> str:
    if ref.get("containerName"):
        container = next((c for c in pod["spec"]["containers"] if c["name"] == ref["containerName"]), container)
    kind, _, res_name = ref["resource"].partition(".")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(res_name)
    if value is None and kind == "limits":  # no limit: the node's allocatable, as a kubelet reports it
        value = str(os.cpu_count() or 1) if res_name == "cpu" else str(machine_memory())
    if value is None:
        return "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    amount = parse_quantity(value) / divisor
    return str(int(-(-amount // 1)))  # rounded up, as the downward API does


def memory_request(pod: Obj) -> float:
    total = 0.0
    for c in pod["spec"]["containers"]:
        res = c.get("resources") or {}
        q = (res.get("requests") or {}).get("memory") or (res.get("limits") or {}).get("memory")
        total += parse_quantity(q) if q else 0.0
    return total


def probe_argv(action: Mapping[str, Any]) -> list[str]:
    return [str(a) for a in action.get("command") or ()]


def service_hosts(services: Sequence[Obj], pods: Sequence[Obj]) -> dict[str, list[str]]:
    """DNS names of the Services → the IPs of the pods behind them (headless or not: there is no
    kube-proxy, so a ClusterIP Service's name also resolves to its pods)."""
    by_ns: dict[str, list[Obj]] = {}
    for p in pods:
        by_ns.setdefault(p["metadata"]["namespace"], []).append(p)
    out: dict[str, list[str]] = {}
    for svc in services:
        meta, spec = svc["metadata"], svc.get("spec") or {}
        selector = spec.get("selector") or {}
        if not selector:
            continue
        ips = []
        for p in by_ns.get(meta["namespace"], ()):
            labels = p["metadata"].get("labels") or {}
            ip = (p.get("status") or {}).get("podIP")
            if not ip or p["metadata"].get("deletionTimestamp"):
                continue
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            if not spec.get("publishNotReadyAddresses") and not _ready(p):
                continue
            ips.append(ip)
        if ips:
            name, ns = meta["name"], meta["namespace"]
            for host in (f"{name}.{ns}.svc.{CLUSTER_DOMAIN}", f"{name}.{ns}.svc", f"{name}.{ns}"):
                out[host] = sorted(ips)
    return out


def pod_hostname(pod: Obj) -> str:
    """A kubelet's pod host name: ``spec.hostname`` or the pod's name, cut to 63 characters (one DNS
    label) without a trailing ``-`` or ``.``. Longer names break programs that check host names, e.g.
    Python's ``socket.getfqdn`` in Ray's metrics exporter."""
    name = str(pod["spec"].get("hostname") or pod["metadata"]["name"])
    return name[:63].rstrip("-.")


def _ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or ()
    )


# ---- one container ---------------------------------------------------------------------------------


@dataclass
class ContainerRun:
    spec: Obj
    init: bool = False
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: str = ""
    ready: bool = False
    last_state: Obj = field(default_factory=dict)
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    backoff_until: float = 0.0
    log: Path | None = None
    probe_failures: int = 0
    probe_successes: int = 0
    next_probe: float = 0.0
    next_liveness: float = 0.0
    container_id: str = ""  # host-process://<pid> of the current (or last) run: `exec` enters its namespaces

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self, image_ref: str) -> Obj:
        st: Obj = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": image_ref,
            "ready": self.ready,
            "restartCount": self.restarts,
            "started": self.running(),
            "state": self.state,
        }
        if self.container_id:
            st["containerID"] = self.container_id
        if self.last_state:
            st["lastState"] = self.last_state
        return st


# ---- the node ---------------------------------------------------------------------------------------


@dataclass
class NodeOptions:
    name: str = "local-node-0"
    work_dir: Path = Path("/tmp/kuberay-local-node")
    bin_dir: Path = Path()  # prepended to every container's PATH (the venv with ray)
    memory_reserve: float = 0.2  # of the machine's memory, kept for the control plane and the operator
    kubelet_port: int = 10250  # the containerLogs endpoint on the node's address
    api_server: str = ""  # host:port of kube-apiserver on loopback, offered to pods at GATEWAY:API_PORT


class LocalNode:
    def __init__(self, client: Client, network: PodNetwork, opts: NodeOptions) -> None:
        self.client = client
        self.network = network
        self.opts = opts
        self.pods: dict[str, PodWorker] = {}  # by uid
        self.api_hosts = {n: [GATEWAY] for n in IN_CLUSTER_NAMES} if opts.api_server else {}
        self.hosts: dict[str, list[str]] = dict(self.api_hosts)
        self._hosts_changed = asyncio.Event()
        self._pod_events = asyncio.Event()
        self._all_pods = Informer(client, r.PODS)
        self._services = Informer(client, r.SERVICES)
        self._mine = Informer(client, r.PODS, field_selector=f"spec.nodeName={opts.name}")
        self.capacity_memory = machine_memory()
        self.host_mounts = environment_mounts(opts.bin_dir)
        self.logs = LogServer(self, GATEWAY, opts.kubelet_port)
        self.api_forwarder = TcpForwarder(GATEWAY, API_PORT, opts.api_server) if opts.api_server else None

    # -- lifecycle --

    async def run(self) -> None:
        await asyncio.to_thread(self.network.setup)
        try:
            await self._register()
            touch = HandlerFuncs(
                add=lambda o, initial: self._hosts_changed.set(),
                update=lambda a, b: self._hosts_changed.set(),
                delete=lambda o: self._hosts_changed.set(),
            )
            self._all_pods.add_event_handler(touch)
            self._services.add_event_handler(touch)
            wake = HandlerFuncs(
                add=lambda o, initial: self._pod_events.set(),
                update=lambda a, b: self._pod_events.set(),
                delete=lambda o: self._pod_events.set(),
            )
            self._mine.add_event_handler(wake)
            await self.logs.start()
            if self.api_forwarder is not None:
                await self.api_forwarder.start()
            async with asyncio.TaskGroup() as tg:
                for inf in (self._all_pods, self._services, self._mine):
                    tg.create_task(inf.run())
                tg.create_task(self._heartbeat())
                tg.create_task(self._hosts_loop())
                tg.create_task(self._pods_loop())
        finally:
            await asyncio.gather(*(w.stop(grace=5) for w in list(self.pods.values())), return_exceptions=True)
            await self.logs.stop()
            if self.api_forwarder is not None:
                await self.api_forwarder.stop()
            with contextlib.suppress(Exception):
                await self.client.delete(r.NODES, self.opts.name)
            await asyncio.to_thread(self.network.teardown)

    async def _register(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.opts.name,
                "labels": {
                    "kubernetes.io/hostname": self.opts.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    NODE_LABEL: "true",
                },
            },
        }
        with contextlib.suppress(Conflict):
            await self.client.create(r.NODES, node)
        # The NodeTaint admission plugin adds not-ready:NoSchedule at creation; this node is ready.
        await self.client.patch(r.NODES, self.opts.name, {"spec": {"taints": None}})
        await self._write_node_status()

    async def _write_node_status(self) -> None:
        cpu = str(os.cpu_count() or 1)
        mem = f"{self.capacity_memory // 1024}Ki"
        ts = now()
        status = {
            "capacity": {"cpu": cpu, "memory": mem, "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
            # Only the address: kube-apiserver prefers a Hostname address and would ask the machine's DNS.
            "addresses": [{"type": "InternalIP", "address": GATEWAY}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.opts.kubelet_port}},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "local node: pods run as host processes",
                    "lastHeartbeatTime": ts,
                    "lastTransitionTime": ts,
                }
            ],
            "nodeInfo": {
                "kubeletVersion": "v0.0.0-kuberay-py-local",
                "containerRuntimeVersion": "host-process://",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "host",
                "kernelVersion": os.uname().release,
                "kubeProxyVersion": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
        await self.client.patch(r.NODES, self.opts.name, {"status": status}, subresource="status")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._write_node_status()
            except ApiError as e:
                log.warning("node heartbeat failed: %s", e)

    # -- DNS --

    async def _hosts_loop(self) -> None:
        while True:
            await self._hosts_changed.wait()
            self._hosts_changed.clear()
            hosts = {**service_hosts(self._services.list(), self._all_pods.list()), **self.api_hosts}
            if hosts != self.hosts:
                self.hosts = hosts
                for w in list(self.pods.values()):
                    await w.set_hosts(hosts)
            await asyncio.sleep(0.2)  # coalesce bursts of pod updates

    # -- pods --

    async def _pods_loop(self) -> None:
        while True:
            await self._pod_events.wait()
            self._pod_events.clear()
            live = {p["metadata"]["uid"]: p for p in self._mine.list()}
            for uid, pod in live.items():
                worker = self.pods.get(uid)
                if worker is None:
                    finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                    worker = self.pods[uid] = PodWorker(self, pod, finished=finished)
                    worker.task = asyncio.create_task(worker.run(), name=f"pod {pod_key(pod)}")
                worker.update(pod)
            for uid in [u for u in self.pods if u not in live]:
                worker = self.pods.pop(uid)
                try:
                    await worker.stop(grace=0)
                except Exception as e:  # one pod's clean-up must not stop the node
                    log.exception("pod %s: stopping: %s", worker.key, e)

    def api_env(self) -> dict[str, str]:
        """The ``kubernetes`` Service's variables, which a kubelet gives every container."""
        if not self.opts.api_server:
            return {}
        addr = f"tcp://{GATEWAY}:{API_PORT}"
        return {
            "KUBERNETES_SERVICE_HOST": GATEWAY,
            "KUBERNETES_SERVICE_PORT": str(API_PORT),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(API_PORT),
            "KUBERNETES_PORT": addr,
            f"KUBERNETES_PORT_{API_PORT}_TCP": addr,
            f"KUBERNETES_PORT_{API_PORT}_TCP_PROTO": "tcp",
            f"KUBERNETES_PORT_{API_PORT}_TCP_PORT": str(API_PORT),
            f"KUBERNETES_PORT_{API_PORT}_TCP_ADDR": GATEWAY,
        }

    def memory_in_use(self, excluding: str) -> float:
        # As a kubelet counts: pods that ended hold no memory.
        running = (w for uid, w in self.pods.items() if uid != excluding and w.admitted)
        return sum(memory_request(w.pod) for w in running if w.phase not in ("Succeeded", "Failed"))


class PodWorker:
    """Runs one pod: sandbox, volumes, init containers, containers, probes, status, deletion."""

    def __init__(self, node: LocalNode, pod: Obj, finished: bool = False) -> None:
        self.node = node
        self.pod = pod
        self.finished = finished  # ended before this node started: nothing to run, only its deletion
        self.uid = pod["metadata"]["uid"]
        self.key = pod_key(pod)
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.sandbox: PodSandbox | None = None
        self.root: Path = node.opts.work_dir / "pods" / str(self.uid)
        self.inits = [ContainerRun(c, init=True) for c in pod["spec"].get("initContainers") or ()]
        self.containers = [ContainerRun(c) for c in pod["spec"]["containers"]]
        self.admitted = False
        self.phase = "Pending"
        self.reason = ""
        self.message = ""
        self.started = ""
        self.ip = ""
        self._last_status: Obj | None = None
        self._stopping = asyncio.Lock()
        # Volumes are materialised once per pod, so that a container starting later (or restarting)
        # never replaces a directory another container has mounted.
        self._volumes: dict[str, Path | None] = {}
        self._tokens: list[ProjectedToken] = []

    def update(self, pod: Obj) -> None:
        self.pod = pod
        self.changed.set()

    async def set_hosts(self, hosts: Mapping[str, list[str]]) -> None:
        if self.sandbox is not None:
            with contextlib.suppress(SandboxError, OSError):
                await asyncio.to_thread(self.sandbox.set_hosts, _flatten(hosts))

    # -- main loop --

    async def run(self) -> None:
        try:
            if self.finished or not await self._admit():
                await self._until_deleted()
            else:
                await self._start_sandbox()
                while not self._deleting():
                    await self._step()
                    await self._write_status()
                    await self._refresh_tokens()
                    await self._next_change(0.5)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a broken pod must not take the node down
            log.exception("pod %s: %s", self.key, e)
            self.phase, self.reason, self.message = "Failed", "NodeError", f"the local node failed to run the pod: {e}"
            with contextlib.suppress(Exception):
                await self._write_status()
            await self._until_deleted()
        grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        await self.stop(grace=30 if grace is None else float(grace))
        with contextlib.suppress(NotFound):
            meta = self.pod["metadata"]
            await self.node.client.delete(r.PODS, meta["name"], meta["namespace"], grace_period_seconds=0)

    def _deleting(self) -> bool:
        return bool(self.pod["metadata"].get("deletionTimestamp"))

    async def _next_change(self, timeout: float | None) -> None:
        self.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout)

    async def _until_deleted(self) -> None:
        """A pod that does not run (refused, finished before a restart, broken) waits for its deletion,
        which the node still has to complete."""
        while not self._deleting():
            await self._next_change(None)

    async def _admit(self) -> bool:
        need = memory_request(self.pod)
        cap = self.node.capacity_memory * (1 - self.node.opts.memory_reserve)
        in_use = self.node.memory_in_use(self.uid)
        if need and in_use + need > cap:
            self.phase, self.reason = "Failed", "OutOfmemory"
            self.message = (
                f"Pod requests {need / 2**30:.1f} GiB of memory; the local node has {max(cap - in_use, 0) / 2**30:.1f} "
                "GiB left of this machine's memory"
            )
            await self._event("Warning", "OutOfmemory", self.message)
            await self._write_status()
            return False
        self.admitted = True
        return True

    async def _start_sandbox(self) -> None:
        self.ip = await asyncio.to_thread(self.node.network.allocate)
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"{self.pod['metadata']['namespace']}-{self.pod['metadata']['name']}"
        self.sandbox = PodSandbox(self.node.network, name, self.ip, self.root, hostname=pod_hostname(self.pod))
        await asyncio.to_thread(self.sandbox.create, _flatten(self.node.hosts))
        self.started = now()
        self.pod.setdefault("status", {})["podIP"] = self.ip
        self.pod["status"]["hostIP"] = GATEWAY
        images = sorted({str(c.spec.get("image", "")) for c in (*self.inits, *self.containers)})
        ray = shutil.which("ray", path=self._path()) or "ray (not found)"
        for image in images:
            await self._event("Normal", "Pulled", NOT_PULLED.format(image=image, ray=ray))

    async def _step(self) -> None:
        for init in self.inits:
            if init.state.get("terminated", {}).get("exitCode") == 0:
                continue
            await self._drive(init, restart_policy="OnFailure" if self._policy() != "Never" else "Never")
            if init.state.get("terminated", {}).get("exitCode") != 0:
                if self._policy() == "Never" and "terminated" in init.state:
                    self.phase, self.reason = "Failed", "InitContainerFailed"
                else:
                    self.phase = "Pending"
                return
        for c in self.containers:
            await self._drive(c, self._policy())
            await self._probe(c)
        self.phase = self._phase()

    def _policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy") or "Always")

    def _phase(self) -> str:
        states = [c.state for c in self.containers]
        if any("running" in s or "waiting" in s for s in states):
            running = any("running" in s for s in states)
            return "Running" if running or self.phase == "Running" else "Pending"
        codes = [s["terminated"].get("exitCode", 1) for s in states]
        if all(code == 0 for code in codes):
            return "Succeeded"
        return "Failed"

    async def _drive(self, c: ContainerRun, restart_policy: str) -> None:
        """Start the container if it should run, and record its exit."""
        if c.running():
            return
        if c.proc is not None:  # it exited
            code = c.proc.returncode
            c.last_state = {}
            c.state = {
                "terminated": {
                    "exitCode": code if code >= 0 else 128 - code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": c.started_at,
                    "finishedAt": now(),
                    "message": _tail(c.log),
                    "containerID": c.container_id,
                }
            }
            c.proc, c.ready = None, False
            again = restart_policy == "Always" or (restart_policy == "OnFailure" and code != 0)
            if not again:
                return
            c.last_state, c.restarts = c.state, c.restarts + 1
            delay = min(BACKOFF_START * 2 ** (c.restarts - 1), BACKOFF_MAX)
            c.backoff_until = time.monotonic() + delay
            message = f"back-off {delay:.0f}s restarting failed container"
            c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
            return
        if "terminated" in c.state or time.monotonic() < c.backoff_until:
            return
        await self._start(c)

    async def _start(self, c: ContainerRun) -> None:
        assert self.sandbox is not None
        argv = [*(c.spec.get("command") or ()), *(c.spec.get("args") or ())]
        if not c.spec.get("command"):
            image = c.spec.get("image")
            await self._cannot_run(c, f"the pod sets no command: the local node cannot run image {image}'s entrypoint")
            return
        data = await self._referenced_data()
        env = container_env(self.pod, c.spec, data)
        argv = [expand(a, env) for a in argv]
        path = self._path()
        if shutil.which(argv[0], path=path) is None:
            await self._cannot_run(
                c,
                f"{argv[0]!r} is not a program on this host: the local node runs containers' commands with the "
                "host's programs (ray, python, bash, ...)",
            )
            return
        base = {"PATH": path, "HOME": POD_HOME, "HOSTNAME": self.pod["metadata"]["name"], **self.node.api_env()}
        env = {**base, **env, **NODE_ENV}
        home = await asyncio.to_thread(self._home)
        try:
            volumes = await self._mounts(c.spec, data)
        except ApiError as e:  # e.g. a TokenRequest refused: retried after the back-off, as a kubelet does
            await self._cannot_run(c, f"MountVolume.SetUp failed: {e}")
            return
        mounts = [*self.node.host_mounts, Mount(target=POD_HOME, source=home), *volumes]
        c.log = self.root / f"{c.name}.log"
        try:
            c.proc = await asyncio.to_thread(self.sandbox.spawn, argv, env, c.spec.get("workingDir"), mounts, c.log)
        except (SandboxError, OSError) as e:
            await self._cannot_run(c, str(e))
            return
        c.started_at = now()
        c.container_id = f"{CONTAINER_ID_SCHEME}{c.proc.pid}"
        c.state = {"running": {"startedAt": c.started_at}}
        c.ready = not c.spec.get("readinessProbe") and not c.init
        c.next_probe = time.monotonic() + float((c.spec.get("readinessProbe") or {}).get("initialDelaySeconds", 0))
        c.next_liveness = time.monotonic() + float((c.spec.get("livenessProbe") or {}).get("initialDelaySeconds", 0))
        c.probe_failures = c.probe_successes = 0
        log.info("pod %s: started container %s (pid %d)", self.key, c.name, c.proc.pid)

    async def _cannot_run(self, c: ContainerRun, message: str) -> None:
        if c.state.get("waiting", {}).get("message") != message:
            await self._event("Warning", "Failed", f"container {c.name}: {message}")
        c.state = {"waiting": {"reason": "CreateContainerError", "message": message}}
        c.backoff_until = time.monotonic() + BACKOFF_MAX

    def _path(self) -> str:
        bin_dir = str(self.node.opts.bin_dir) if str(self.node.opts.bin_dir) not in ("", ".") else ""
        rest = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        return f"{bin_dir}:{rest}" if bin_dir else rest

    # -- probes --

    async def _probe(self, c: ContainerRun) -> None:
        if not c.running():
            return
        now_m = time.monotonic()
        ready_probe = c.spec.get("readinessProbe")
        if ready_probe and now_m >= c.next_probe:
            c.next_probe = now_m + float(ready_probe.get("periodSeconds", 10))
            ok = await self._run_probe(ready_probe)
            c.probe_successes = c.probe_successes + 1 if ok else 0
            c.probe_failures = 0 if ok else c.probe_failures + 1
            if ok and c.probe_successes >= int(ready_probe.get("successThreshold", 1)):
                c.ready = True
            elif not ok and c.probe_failures >= int(ready_probe.get("failureThreshold", 3)):
                c.ready = False
        live_probe = c.spec.get("livenessProbe")
        if live_probe and now_m >= c.next_liveness:
            c.next_liveness = now_m + float(live_probe.get("periodSeconds", 10))
            if not await self._run_probe(live_probe):
                c.probe_failures += 1
                if c.probe_failures >= int(live_probe.get("failureThreshold", 3)):
                    message = f"Liveness probe failed: container {c.name} will be restarted"
                    await self._event("Warning", "Unhealthy", message)
                    await self._kill(c, grace=float(self.pod["spec"].get("terminationGracePeriodSeconds", 30)))

    async def _run_probe(self, probe: Mapping[str, Any]) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        sandbox = self.sandbox
        if sandbox is None:  # being stopped
            return False
        if "exec" in probe:
            argv = probe_argv(probe["exec"])
            env = {"PATH": self._path()}
            try:
                proc = await asyncio.to_thread(sandbox.spawn, argv, env, None, [], self.root / "probes.log")
            except (SandboxError, OSError):
                return False
            if not await exited(proc, timeout + 1):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await exited(proc, None)
                return False
            return proc.returncode == 0
        if "httpGet" in probe:
            h = probe["httpGet"]
            port = h.get("port")
            if isinstance(port, str) and not port.isdigit():
                named = {
                    p.get("name"): p["containerPort"]
                    for c in self.pod["spec"]["containers"]
                    for p in c.get("ports") or ()
                }
                port = named.get(port)
            url = f"http://{self.ip}:{port}{h.get('path', '/')}"
            try:
                async with (
                    aiohttp.ClientSession() as s,
                    s.get(url, timeout=aiohttp.ClientTimeout(total=min(timeout, PROBE_HTTP_TIMEOUT_CAP))) as resp,
                ):
                    return 200 <= resp.status < 400
            except (aiohttp.ClientError, TimeoutError, OSError):
                return False
        if "tcpSocket" in probe:
            try:
                port = int(probe["tcpSocket"]["port"])
                _, w = await asyncio.wait_for(asyncio.open_connection(self.ip, port), timeout)
                w.close()
                return True
            except (OSError, TimeoutError):
                return False
        return True

    # -- volumes and data --

    async def _referenced_data(self) -> dict[tuple[str, str, str], dict[str, str]]:
        """The ConfigMaps and Secrets the pod's env and volumes refer to (missing ones are empty)."""
        ns = self.pod["metadata"]["namespace"]
        wanted: set[tuple[str, str]] = set()
        for c in (*(self.pod["spec"].get("initContainers") or ()), *self.pod["spec"]["containers"]):
            for src in c.get("envFrom") or ():
                if "configMapRef" in src:
                    wanted.add(("cm", src["configMapRef"]["name"]))
                if "secretRef" in src:
                    wanted.add(("secret", src["secretRef"]["name"]))
            for e in c.get("env") or ():
                ref = e.get("valueFrom") or {}
                if "configMapKeyRef" in ref:
                    wanted.add(("cm", ref["configMapKeyRef"]["name"]))
                if "secretKeyRef" in ref:
                    wanted.add(("secret", ref["secretKeyRef"]["name"]))
        for v in self.pod["spec"].get("volumes") or ():
            sources = [v] + [s for s in (v.get("projected") or {}).get("sources") or ()]
            for s in sources:
                if "configMap" in s:
                    wanted.add(("cm", s["configMap"]["name"]))
                if "secret" in s:
                    wanted.add(("secret", s["secret"].get("secretName") or s["secret"].get("name")))
        out: dict[tuple[str, str, str], dict[str, str]] = {}
        for kind, name in wanted:
            try:
                obj = await self.node.client.get(r.CONFIGMAPS if kind == "cm" else r.SECRETS, name, ns)
            except NotFound:
                continue
            if kind == "cm":
                out[(kind, ns, name)] = dict(obj.get("data") or {})
            else:
                raw = obj.get("data") or {}
                out[(kind, ns, name)] = {k: base64.b64decode(v).decode(errors="replace") for k, v in raw.items()}
        return out

    async def _mounts(self, container: Obj, data: Mapping[tuple[str, str, str], dict[str, str]]) -> list[Mount]:
        ns = self.pod["metadata"]["namespace"]
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes") or ()}
        mounts: list[Mount] = []
        for vm in container.get("volumeMounts") or ():
            v = volumes.get(vm["name"])
            if v is None:
                continue
            if v["name"] not in self._volumes:
                tokens = await self._request_tokens(v)
                self._volumes[v["name"]] = await asyncio.to_thread(self._materialise, v, ns, data, tokens)
            src = self._volumes[v["name"]]
            projected = any(k in v for k in ("configMap", "secret", "downwardAPI", "projected"))
            read_only = bool(vm.get("readOnly")) or projected
            if src is None:  # emptyDir with medium Memory
                size = (v.get("emptyDir") or {}).get("sizeLimit")
                mounts.append(Mount(target=vm["mountPath"], tmpfs=True, size=_tmpfs_size(size)))
                continue
            if vm.get("subPath"):
                src = src / vm["subPath"]
            mounts.append(Mount(target=vm["mountPath"], source=src, read_only=read_only))
        return mounts

    def _materialise(
        self, v: Obj, ns: str, data: Mapping[tuple[str, str, str], dict[str, str]], tokens: Mapping[str, str]
    ) -> Path | None:
        base: Path = self.root / "volumes" / str(v["name"])
        if "emptyDir" in v:
            if (v["emptyDir"] or {}).get("medium") == "Memory":
                return None
            base.mkdir(parents=True, exist_ok=True)
            return base
        files: dict[str, str] = {}
        sources = (v.get("projected") or {}).get("sources") if "projected" in v else [v]
        for s in sources or ():
            if "configMap" in s:
                files.update(_items(data.get(("cm", ns, s["configMap"]["name"]), {}), s["configMap"].get("items")))
            elif "secret" in s:
                name = s["secret"].get("secretName") or s["secret"].get("name")
                files.update(_items(data.get(("secret", ns, name), {}), s["secret"].get("items")))
            elif "downwardAPI" in s:
                for item in s["downwardAPI"].get("items") or ():
                    if "fieldRef" in item:
                        files[item["path"]] = field_ref(self.pod, item["fieldRef"]["fieldPath"])
            elif "serviceAccountToken" in s:
                files[s["serviceAccountToken"]["path"]] = tokens[s["serviceAccountToken"]["path"]]
        if "hostPath" in v:
            return Path(str(v["hostPath"]["path"]))
        if base.exists():
            shutil.rmtree(base)
        base.mkdir(parents=True)
        for rel, content in files.items():
            target = base / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        return base

    async def _request_tokens(self, v: Obj) -> dict[str, str]:
        """Tokens for the volume's serviceAccountToken sources (by path), from TokenRequests bound to
        the pod, as a kubelet gets them; each is remembered for its refresh."""
        out: dict[str, str] = {}
        for s in (v.get("projected") or {}).get("sources") or ():
            if "serviceAccountToken" in s:
                token = ProjectedToken(self.root / "volumes" / str(v["name"]), s["serviceAccountToken"])
                out[token.path] = await token.request(self.node.client, self.pod)
                self._tokens.append(token)
        return out

    async def _refresh_tokens(self) -> None:
        """Replace a token once 80 % of its lifetime has passed (a kubelet's rule), in place in the
        mounted directory so that every container sees the new one."""
        for token in self._tokens:
            if time.time() >= token.refresh_at:
                try:
                    value = await token.request(self.node.client, self.pod)
                    await asyncio.to_thread(token.write, value)
                except (ApiError, OSError) as e:
                    log.warning("pod %s: refreshing its token %s: %s", self.key, token.path, e)

    def _home(self) -> Path:
        # Ray's dashboard asks cloud metadata services which cloud it runs on unless this file exists.
        home = self.root / "home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "ray_bootstrap_config.yaml").write_text("{}\n")
        return home

    # -- stopping --

    async def _kill(self, c: ContainerRun, grace: float) -> None:
        """SIGTERM to the container's process group, SIGKILL after ``grace`` seconds."""
        proc = c.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        if not await exited(proc, grace):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await exited(proc, None)

    async def stop(self, grace: float) -> None:
        """Stop the containers and remove the sandbox; safe to call again or concurrently."""
        async with self._stopping:
            await asyncio.gather(*(self._kill(c, grace) for c in (*self.inits, *self.containers)))
            if self.task is not None and self.task is not asyncio.current_task():
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.task
            sandbox, self.sandbox = self.sandbox, None
            if sandbox is not None:
                try:
                    await asyncio.to_thread(sandbox.destroy)
                except (SandboxError, OSError) as e:
                    log.warning("pod %s: removing its sandbox: %s", self.key, e)
            shutil.rmtree(self.root, ignore_errors=True)

    # -- status and events --

    async def _write_status(self) -> None:
        ready = self.phase == "Running" and all(c.ready for c in self.containers)
        inits_done = all(i.state.get("terminated", {}).get("exitCode") == 0 for i in self.inits)
        conds = [
            ("PodScheduled", True),
            ("Initialized", inits_done),
            ("ContainersReady", ready),
            ("Ready", ready),
        ]
        status: Obj = {
            "phase": self.phase,
            "hostIP": GATEWAY,
            "hostIPs": [{"ip": GATEWAY}],
            "conditions": [{"type": t, "status": "True" if ok else "False"} for t, ok in conds],
            "containerStatuses": [c.status("host-process://") for c in self.containers],
        }
        if self.ip:
            status.update(podIP=self.ip, podIPs=[{"ip": self.ip}])
        if self.started:
            status["startTime"] = self.started
        if self.inits:
            status["initContainerStatuses"] = [c.status("host-process://") for c in self.inits]
        if self.reason:
            status.update(reason=self.reason, message=self.message)
        if status == self._last_status:  # compared before the transition times are added
            return
        unstamped, status = status, copy.deepcopy(status)
        # Transition times change only when a condition's status does.
        old = {c["type"]: c for c in (self.pod.get("status") or {}).get("conditions") or ()}
        for c in status["conditions"]:
            prev = old.get(c["type"]) or {}
            same = prev.get("status") == c["status"] and prev.get("lastTransitionTime")
            c["lastTransitionTime"] = prev["lastTransitionTime"] if same else now()
        try:
            meta = self.pod["metadata"]
            body = {"status": status}
            await self.node.client.patch(r.PODS, meta["name"], body, meta["namespace"], subresource="status")
            self._last_status = unstamped
        except NotFound:
            pass

    async def _event(self, type_: str, reason: str, message: str) -> None:
        meta = self.pod["metadata"]
        ev = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": "kubelet", "host": self.node.opts.name},
            "firstTimestamp": now(),
            "lastTimestamp": now(),
            "count": 1,
        }
        with contextlib.suppress(ApiError):
            await self.node.client.create(r.CORE_EVENTS, ev, meta["namespace"])


@dataclass
class ProjectedToken:
    """One projected serviceAccountToken file of a pod: how to request it and when to renew it."""

    volume_dir: Path
    source: Obj  # {path, audience?, expirationSeconds?}
    refresh_at: float = float("inf")

    @property
    def path(self) -> str:
        return str(self.source["path"])

    async def request(self, client: Client, pod: Obj) -> str:
        meta = pod["metadata"]
        sa = pod["spec"].get("serviceAccountName") or "default"
        seconds = int(self.source.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [self.source["audience"]] if self.source.get("audience") else [],
                "expirationSeconds": seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
            },
        }
        path = r.SERVICEACCOUNTS.path(sa, meta["namespace"], "token")
        answer: Obj = await client.request("POST", path, body=body, verb="POST", timeout=10)
        status = answer.get("status") or {}
        expires = status.get("expirationTimestamp")
        lifetime = (
            dt.datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp() - time.time() if expires else seconds
        )
        self.refresh_at = time.time() + 0.8 * max(lifetime, 0)
        return str(status.get("token", ""))

    def write(self, value: str) -> None:
        target = self.volume_dir / self.path
        tmp = target.with_name(f".{target.name}.new")
        tmp.write_text(value)
        tmp.replace(target)


class TcpForwarder:
    """Pods' way to kube-apiserver: a TCP listener on the node's gateway that splices each connection
    to kube-apiserver on loopback (TLS passes through untouched)."""

    def __init__(self, host: str, port: int, target: str) -> None:
        self.host, self.port = host, port
        self.target_host, _, target_port = target.rpartition(":")
        self.target_port = int(target_port)
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(self.target_host, self.target_port), 10
            )
        except (OSError, TimeoutError):
            writer.close()
            self._conns.discard(task)
            return
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_pipe(reader, up_writer))
                tg.create_task(_pipe(up_reader, writer))
        except* (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, up_writer):
                w.close()
            self._conns.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()


# ---- the kubelet API kube-apiserver calls for `kubectl logs` ----------------------------------------


class LogServer:
    """``GET /containerLogs/{namespace}/{pod}/{container}`` over HTTPS on the node's address, as a
    kubelet serves it (``tailLines``, ``limitBytes``, ``follow``). kube-apiserver dials the node's
    InternalIP and daemonEndpoints port; without ``--kubelet-certificate-authority`` it does not check
    the certificate, so a self-signed one is enough for the local plane."""

    def __init__(self, node: LocalNode, host: str, port: int) -> None:
        self.node, self.host, self.port = node, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        ctx = await asyncio.to_thread(_self_signed, self.node.opts.work_dir, self.host)
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ctx)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, name, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        worker = next((w for w in self.node.pods.values() if w.key == f"{ns}/{name}"), None)
        run = (
            None
            if worker is None
            else next((c for c in (*worker.containers, *worker.inits) if c.name == container), None)
        )
        if run is None or run.log is None or not run.log.exists():
            raise web.HTTPNotFound(text=f"container {container!r} of pod {ns}/{name} has no log on this node\n")
        data = run.log.read_bytes()
        if "tailLines" in request.query:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(request.query["tailLines"]) :]) if int(request.query["tailLines"]) else b""
        if "limitBytes" in request.query:
            data = data[: int(request.query["limitBytes"])]
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(data)
        if request.query.get("follow") in ("true", "1"):
            offset = run.log.stat().st_size
            while worker is not None and worker.uid in self.node.pods:
                size = run.log.stat().st_size if run.log.exists() else offset
                if size > offset:
                    with run.log.open("rb") as f:
                        f.seek(offset)
                        await resp.write(f.read(size - offset))
                    offset = size
                elif not run.running():
                    break
                await asyncio.sleep(0.5)
        await resp.write_eof()
        return resp


def _self_signed(work: Path, host: str) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local-node")])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    work.mkdir(parents=True, exist_ok=True)
    crt, pem = work / "kubelet.crt", work / "kubelet.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pem.chmod(0o600)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(crt), str(pem))
    return ctx


def _items(data: Mapping[str, str], items: Sequence[Mapping[str, Any]] | None) -> dict[str, str]:
    if not items:
        return dict(data)
    return {i["path"]: data[i["key"]] for i in items if i["key"] in data}


def _flatten(hosts: Mapping[str, list[str]]) -> dict[str, str]:
    """name → one IP (an /etc/hosts line each; the first of several ready pods)."""
    return {name: ips[0] for name, ips in hosts.items() if ips}


def _tmpfs_size(limit: str | None) -> str | None:
    if not limit:
        return None
    return f"{int(parse_quantity(limit) // 1024 // 1024)}m"


def _tail(path: Path | None, limit: int = 1024) -> str:
    if path is None or not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(max(path.stat().st_size - limit, 0))
        return f.read().decode(errors="replace").strip()


__all__ = ["LocalNode", "NodeOptions", "container_env", "expand", "service_hosts"]
