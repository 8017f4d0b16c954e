"""This operator side by side with upstream KubeRay's (make bench-vs-upstream).

One private T2 plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok with one fake
node). For every workload, each operator runs alone in turn, as a process of its own watching a fresh
namespace with the same flags (``--watch-namespace``, ``--reconcile-concurrency``, leader election
off, default QPS/burst, JSON logs): upstream's v1.6.1 binary (``make oracle``) with the plane's admin
kubeconfig, this project's installed ``kuberay-operator`` with the ServiceAccount token and RBAC it
ships. Both run in a private mount namespace whose /etc/resolv.conf points at a DNS responder of the
bench (test/support/isolation.py): it answers ``<cluster>-head-svc.<ns>.svc.cluster.local`` with the
head pod's loopback IP, where a fake Ray dashboard (test/support/fake_dashboard.py) listens, and
refuses every other name.

Workloads (same inputs for both operators):
  clusters-N-cK   N RayClusters of 1 head + 3 workers (100m CPU each) created at once with
                  ``--reconcile-concurrency K``; time until every one reports ``status.state: ready``;
  scale-S         one RayCluster ready with 0 workers, then its group set to S replicas; time until
                  ``status.readyWorkerReplicas == S``;
  rayjobs-J       J HTTPMode RayJobs with a head-only cluster; each fake Ray job runs 1 s then
                  SUCCEEDED; time from the first create until every RayJob is ``Complete``;
  blackhole-M     M such RayJobs of which every tenth gets a black-holed dashboard (connections
                  accepted, nothing answered); create→Complete time of the healthy ones (p50/p99) and
                  the operator's own RayJob reconcile time (p99, from its
                  controller_runtime_reconcile_time_seconds histogram).
For each run: the operator's CPU seconds (utime + stime from /proc/<pid>/stat) over the workload, and
its RSS at start (idle, synced), peak (VmHWM) and end. Progress is followed with an informer in the
bench (event-driven: no polling of the API server). Prints one Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))  # fake dashboard, isolation, RBAC install live with the tests
sys.path.insert(0, str(REPO / "test" / "parity"))  # the oracle binary's location

from oracle import oracle_binary  # noqa: E402
from support.fake_dashboard import FakeDashboard  # noqa: E402
from support.isolation import HOSTS, NameServer, popen_isolated, resolv_conf  # noqa: E402
from support.rbac_audit import install_operator_identity  # noqa: E402

from internal.client import Client, NotFound, api_client, load_configuration  # noqa: E402
from internal.client.resources import EVENTS, NAMESPACES, PODS, RAYCLUSTERS, RAYJOBS, Resource  # noqa: E402
from internal.controlplane import ControlPlane, build_binaries  # noqa: E402
from internal.controlplane.plane import free_port  # noqa: E402
from internal.informer import HandlerFuncs, Informer  # noqa: E402

CRD_DIR = REPO / "config" / "crd" / "bases"
OPERATORS = ("upstream", "ours")
Obj = dict[str, Any]
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---- the operator processes ---------------------------------------------------------------------------


class OperatorProcess:
    """One operator (upstream's or ours) as a process in a private mount namespace."""

    def __init__(self, which: str, argv0: list[str], kubeconfig: Path, work: Path, dns: str) -> None:
        self.which, self.argv0, self.kubeconfig, self.work, self.dns = which, argv0, kubeconfig, work, dns
        self.proc: Any = None
        self.metrics_port = self.probe_port = 0
        self.log = work / f"{which}.log"

    def start(self, namespace: str, concurrency: int, timeout: float = 90.0) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        hosts, resolv = self.work / "hosts", self.work / "resolv.conf"
        hosts.write_text(HOSTS)
        resolv.write_text(resolv_conf(self.dns))
        self.metrics_port, self.probe_port = free_port(), free_port()
        argv = [
            *self.argv0,
            f"--metrics-addr=127.0.0.1:{self.metrics_port}",
            f"--health-probe-bind-address=127.0.0.1:{self.probe_port}",
            "--enable-leader-election=false",
            f"--watch-namespace={namespace}",
            f"--reconcile-concurrency={concurrency}",
            f"--kubeconfig={self.kubeconfig}",
            "--log-stdout-encoder=json",
        ]
        env = {"OTEL_TRACES_EXPORTER": "none", **os.environ, "GODEBUG": "netdns=go"}
        env.pop("KUBECONFIG", None)
        self.log = self.work / f"{namespace}.log"
        self.proc = popen_isolated(argv, hosts=hosts, resolv=resolv, log=self.log, env=env)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.which} operator exited ({self.proc.returncode}): {self.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.which} operator not ready within {timeout:.0f}s: {self.tail()}")
            time.sleep(0.1)  # polling its readiness probe, with a deadline

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.probe_port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime

    def rss_mib(self, key: str = "VmRSS") -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return math.nan

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return str(r.read().decode())

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(30)
        except Exception:
            p.kill()
            p.wait(10)


def reconcile_p99(metrics_text: str, controller: str) -> float:
    """p99 of controller_runtime_reconcile_time_seconds for ``controller``, interpolated in its bucket
    as Prometheus' histogram_quantile does."""
    buckets: list[tuple[float, float]] = []
    pat = re.compile(r"^controller_runtime_reconcile_time_seconds_bucket\{(.*)\} ([0-9.e+-]+)$")
    for line in metrics_text.splitlines():
        m = pat.match(line)
        if not m or f'controller="{controller}"' not in m.group(1):
            continue
        bound = re.search(r'le="([^"]+)"', m.group(1))
        if bound:
            buckets.append((math.inf if bound.group(1) == "+Inf" else float(bound.group(1)), float(m.group(2))))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return math.nan
    rank = 0.99 * buckets[-1][1]
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_n) / max(n - prev_n, 1e-9)
        prev_le, prev_n = le, n
    return math.nan


def metric_total(metrics_text: str, name: str, **labels: str) -> float:
    """The sum of every series of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in metrics_text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        series, _, rest = head.partition("{")
        if series != name or any(f'{k}="{v}"' not in rest for k, v in labels.items()):
            continue
        total += float(value)
    return total


def work_figures(metrics_text: str, controller: str) -> dict[str, float]:
    """How the run spent its time, from the operator's own metrics: reconciles and their mean
    duration, API requests and their mean latency."""
    n = metric_total(metrics_text, "controller_runtime_reconcile_time_seconds_count", controller=controller)
    t = metric_total(metrics_text, "controller_runtime_reconcile_time_seconds_sum", controller=controller)
    # controller-runtime registers only rest_client_requests_total of client-go's metrics
    calls = metric_total(metrics_text, "rest_client_requests_total")
    timed = metric_total(metrics_text, "rest_client_request_duration_seconds_count")
    latency = metric_total(metrics_text, "rest_client_request_duration_seconds_sum")
    throttled = metric_total(metrics_text, "rest_client_rate_limiter_duration_seconds_sum")
    return {
        "reconciles": n,
        "mean reconcile ms": 1000 * t / n if n else math.nan,
        "API requests": calls,
        "mean API request ms": 1000 * latency / timed if timed else math.nan,
        "client-side throttling s": throttled,
    }


# ---- inputs -------------------------------------------------------------------------------------------


def container(name: str) -> Obj:
    r = {"cpu": "100m", "memory": "128Mi"}
    return {"name": name, "image": "rayproject/ray:2.52.0", "resources": {"requests": r, "limits": r}}


def cluster_spec(workers: int, max_workers: int) -> Obj:
    spec: Obj = {
        "rayVersion": "2.52.0",
        "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [container("ray-head")]}}},
    }
    if max_workers:
        spec["workerGroupSpecs"] = [
            {
                "groupName": "workers",
                "replicas": workers,
                "minReplicas": 0,
                "maxReplicas": max_workers,
                "rayStartParams": {},
                "template": {"spec": {"containers": [container("ray-worker")]}},
            }
        ]
    return spec


def ray_cluster(name: str, ns: str, workers: int, max_workers: int) -> Obj:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name, "namespace": ns},
        "spec": cluster_spec(workers, max_workers),
    }


def ray_job(name: str, ns: str) -> Obj:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "entrypoint": "python -c 'print(1)'",
            "submissionMode": "HTTPMode",
            "rayClusterSpec": cluster_spec(0, 0),
        },
    }


# ---- following progress -------------------------------------------------------------------------------


@dataclass
class Follow:
    """An informer in the bench on one resource of one namespace; ``done(obj)`` marks an object done
    and its time (seconds since ``t0``) is kept."""

    client: Client
    res: Resource
    namespace: str
    is_done: Callable[[Obj], bool]
    t0: float = field(default_factory=time.monotonic)
    done_at: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _seen(self, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if name not in self.done_at and self.is_done(obj):
            self.done_at[name] = time.monotonic() - self.t0
            self.changed.set()

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        inf = Informer(self.client, self.res, namespace=self.namespace, resync_period=None)
        inf.add_event_handler(
            HandlerFuncs(add=lambda o, _i: self._seen(o), update=lambda _o, n: self._seen(n), delete=None)
        )
        task = asyncio.create_task(inf.run())
        try:
            await inf.wait_for_sync(60)
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def until(self, n: int, timeout: float, what: str) -> float:
        deadline = time.monotonic() + timeout
        while len(self.done_at) < n:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what}: {len(self.done_at)}/{n} after {timeout:.0f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return max(self.done_at.values(), default=0.0)


def cluster_ready(obj: Obj) -> bool:
    return (obj.get("status") or {}).get("state") == "ready"


def job_complete(obj: Obj) -> bool:
    return (obj.get("status") or {}).get("jobDeploymentStatus") == "Complete"


class Heads:
    """Plays Ray for RayJob clusters: when a head pod gets its IP, a fake dashboard head listens on
    ip:8265 and the DNS table maps the head Service's name to it. Black-holed clusters hang."""

    def __init__(self, client: Client, ns: str, dns: NameServer, fake: FakeDashboard, holes: set[str]) -> None:
        self.client, self.ns, self.dns, self.fake, self.holes = client, ns, dns, fake, holes
        self.pending: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.started: set[str] = set()
        self.hung: set[str] = set()

    def _pod(self, pod: Obj) -> None:
        ip = (pod.get("status") or {}).get("podIP")
        cluster = (pod["metadata"].get("labels") or {}).get("ray.io/cluster")
        if ip and cluster and cluster not in self.started:
            self.started.add(cluster)
            self.pending.put_nowait((cluster, ip))

    async def _serve(self) -> None:
        while True:
            cluster, ip = await self.pending.get()
            head = self.fake.cluster(cluster)
            head.set_default_script("RUNNING", ("SUCCEEDED", 1.0))
            if any(cluster.startswith(j + "-") for j in self.holes):
                head.hang()
                self.hung.add(cluster)
            await self.fake.cluster_on_address(cluster, ip, 8265)
            self.dns.table[f"{cluster}-head-svc.{self.ns}.svc.cluster.local"] = ip

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        inf = Informer(self.client, PODS, namespace=self.ns, label_selector="ray.io/node-type=head", resync_period=None)
        inf.add_event_handler(HandlerFuncs(add=lambda o, _i: self._pod(o), update=lambda _o, n: self._pod(n)))
        tasks = [asyncio.create_task(inf.run()), asyncio.create_task(self._serve())]
        try:
            await inf.wait_for_sync(60)
            yield self
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t


# ---- workloads ----------------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float = math.nan
    cpu: float = math.nan
    rss_start: float = math.nan
    rss_peak: float = math.nan
    rss_end: float = math.nan
    extra: dict[str, float] = field(default_factory=dict)
    error: str = ""


async def create_all(c: Client, res: Resource, objs: list[Obj], parallel: int = 32) -> None:
    sem = asyncio.Semaphore(parallel)

    async def one(o: Obj) -> None:
        async with sem:
            await c.create(res, o, o["metadata"]["namespace"])

    await asyncio.gather(*(one(o) for o in objs))


async def clusters(c: Client, ns: str, n: int, timeout: float) -> dict[str, float]:
    f = Follow(c, RAYCLUSTERS, ns, cluster_ready)
    async with f.running():
        f.t0 = time.monotonic()
        await create_all(c, RAYCLUSTERS, [ray_cluster(f"rc-{i:04d}", ns, 3, 3) for i in range(n)])
        return {"seconds": await f.until(n, timeout, f"{n} RayClusters ready")}


async def scale(c: Client, ns: str, s: int, timeout: float) -> dict[str, float]:
    await c.create(RAYCLUSTERS, ray_cluster("big", ns, 0, max(s, 1)), ns)
    head_ready = Follow(c, RAYCLUSTERS, ns, cluster_ready)
    async with head_ready.running():
        await head_ready.until(1, 120, "the 0-worker RayCluster ready")

    def scaled(obj: Obj) -> bool:
        st = obj.get("status") or {}
        return bool(st.get("readyWorkerReplicas") == s and st.get("state") == "ready")

    f = Follow(c, RAYCLUSTERS, ns, scaled)
    async with f.running():
        groups = (await c.get(RAYCLUSTERS, "big", ns))["spec"]["workerGroupSpecs"]
        groups[0]["replicas"] = s
        f.t0 = time.monotonic()
        await c.patch(RAYCLUSTERS, "big", {"spec": {"workerGroupSpecs": groups}}, ns)
        return {"seconds": await f.until(1, timeout, f"{s} ready workers")}


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return math.nan
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]


async def rayjobs(c: Client, ns: str, n: int, timeout: float, dns: NameServer, every_hole: int = 0) -> dict[str, float]:
    names = [f"job-{i:04d}" for i in range(n)]
    holes = {nm for i, nm in enumerate(names) if every_hole and i % every_hole == every_hole - 1}
    healthy = [nm for nm in names if nm not in holes]
    created: dict[str, float] = {}
    f = Follow(c, RAYJOBS, ns, job_complete)
    async with FakeDashboard() as fake, Heads(c, ns, dns, fake, holes).running(), f.running():
        f.t0 = time.monotonic()
        sem = asyncio.Semaphore(32)

        async def one(nm: str) -> None:
            async with sem:
                await c.create(RAYJOBS, ray_job(nm, ns), ns)
                created[nm] = time.monotonic() - f.t0

        await asyncio.gather(*(one(nm) for nm in names))
        deadline = time.monotonic() + timeout
        while not all(nm in f.done_at for nm in healthy):
            f.changed.clear()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sum(nm in f.done_at for nm in healthy)}/{len(healthy)} RayJobs Complete")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(f.changed.wait(), 5)
        lat = [f.done_at[nm] - created[nm] for nm in healthy]
        out = {"seconds": max(f.done_at[nm] for nm in healthy)}
        if holes:
            out.update({"healthy p50": pct(lat, 0.5), "healthy p99": pct(lat, 0.99)})
        return out


# ---- the bench ----------------------------------------------------------------------------------------


async def delete_namespace(c: Client, ns: str, timeout: float = 600) -> None:
    """Deletes the run's namespace once its operator is gone: the ray.io finalizers it would have
    removed are dropped first, or the namespace would stay Terminating forever."""
    for res in (RAYJOBS, RAYCLUSTERS):
        for obj in (await c.list(res, ns))["items"]:
            if obj["metadata"].get("finalizers"):
                with contextlib.suppress(NotFound):
                    await c.patch(res, obj["metadata"]["name"], {"metadata": {"finalizers": None}}, ns)
    with contextlib.suppress(NotFound):
        await c.delete(NAMESPACES, ns)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await c.get(NAMESPACES, ns)
        except NotFound:
            return
        await asyncio.sleep(1)  # namespace deletion has no watchable end short of this poll
    print(f"warning: namespace {ns} still terminating after {timeout:.0f}s", file=sys.stderr)


async def one_run(c: Client, op: OperatorProcess, workload: str, args: argparse.Namespace, dns: NameServer) -> Run:
    kind, n, conc = parse_workload(workload)
    ns = f"vs-{op.which}-{workload}"
    await c.create(NAMESPACES, {"metadata": {"name": ns}})
    run = Run()
    await asyncio.to_thread(op.start, ns, conc)
    try:
        await asyncio.sleep(args.settle)  # the idle operator, synced: its start RSS after the settle
        run.rss_start = op.rss_mib()
        cpu0 = op.cpu_seconds()
        spy = start_profile(op, ns) if args.profile and op.which == "ours" else None
        audit = args.audit_log
        audit_start = audit.stat().st_size if audit and audit.exists() else 0
        if kind == "clusters":
            res = await clusters(c, ns, n, args.timeout)
        elif kind == "scale":
            res = await scale(c, ns, n, args.timeout)
        else:
            res = await rayjobs(c, ns, n, args.timeout, dns, every_hole=10 if kind == "blackhole" else 0)
        text = await asyncio.to_thread(op.metrics)
        if kind == "blackhole":
            res["reconcile p99"] = reconcile_p99(text, "rayjob")
        res.update(work_figures(text, "raycluster" if kind in ("clusters", "scale") else "rayjob"))
        if spy is not None:
            print(stop_profile(spy, op.work / f"{ns}.folded"), file=sys.stderr)
        if audit:
            print(f"{op.which} {workload}: {audit_summary(audit, audit_start)}", file=sys.stderr)
            reasons = Counter(
                f"{e.get('reportingController') or e.get('deprecatedSource', {}).get('component')}:{e['reason']}"
                f"x{e.get('deprecatedCount') or 1}"
                for e in (await c.list(EVENTS, ns))["items"]
            )
            print(f"{op.which} {workload}: events {dict(reasons.most_common(20))}", file=sys.stderr)
        run.seconds = res.pop("seconds")
        run.extra.update(res)
        run.cpu = op.cpu_seconds() - cpu0
        run.rss_peak = op.rss_mib("VmHWM")
        run.rss_end = op.rss_mib()
    except Exception as e:  # one failed run is reported in its row; the others still run
        run.error = f"{type(e).__name__}: {e}"
        print(f"{op.which} {workload}: {run.error}\n{op.tail()}", file=sys.stderr)
    finally:
        await asyncio.to_thread(op.stop)
        dns.table.clear()
        await delete_namespace(c, ns)
    return run


BENCH_AGENT = "bench-vs-upstream"


def audit_summary(log: Path, start: int, top: int = 12) -> str:
    """The operator's API requests in the audit log from byte ``start`` on, by verb and resource."""
    import json

    counts: Counter[str] = Counter()
    with log.open("rb") as f:
        f.seek(start)
        for line in f:
            ev = json.loads(line)
            if BENCH_AGENT in ev.get("userAgent", "") or ev.get("stage") != "ResponseComplete":
                continue
            ref = ev.get("objectRef") or {}
            what = "/".join(x for x in (ref.get("resource"), ref.get("subresource")) if x) or ev.get("requestURI", "")
            counts[f"{ev.get('verb')} {what}"] += 1
    total = sum(counts.values())
    return f"{total} requests: " + ", ".join(f"{k} {n}" for k, n in counts.most_common(top))


def start_profile(op: OperatorProcess, ns: str) -> subprocess.Popen[bytes]:
    """py-spy sampling the operator (100 Hz, without pausing it) until stop_profile."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = op.work / f"{ns}.folded"
    return subprocess.Popen(
        [spy, "record", "--format", "raw", "--rate", "100", "--nonblocking", "-p", str(op.proc.pid), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profile(spy: subprocess.Popen[bytes], folded: Path, top: int = 25) -> str:
    """Stops py-spy and summarises its folded stacks: the functions with the most samples on the
    stack (inclusive) and at its top (self), as shares of all samples."""
    spy.send_signal(signal.SIGINT)
    spy.wait(60)
    incl: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = [re.sub(r" \((.*/)?(site-packages/)?", " (", f) for f in stack.split(";")[1:]]  # drop thread
        total += int(n)
        for f in set(frames):
            incl[f] += int(n)
        if frames:
            own[frames[-1]] += int(n)
    lines = [f"profile: {total} samples ({folded})", "inclusive:"]
    lines += [f"  {100 * c / max(total, 1):5.1f}%  {f}" for f, c in incl.most_common(top)]
    lines.append("self:")
    lines += [f"  {100 * c / max(total, 1):5.1f}%  {f}" for f, c in own.most_common(top)]
    return "\n".join(lines)


def parse_workload(w: str) -> tuple[str, int, int]:
    parts = w.split("-")
    kind, n = parts[0], int(parts[1])
    conc = int(parts[2][1:]) if len(parts) > 2 else 10
    if kind not in ("clusters", "scale", "rayjobs", "blackhole"):
        raise ValueError(f"unknown workload {w!r}")
    return kind, n, conc


def fmt(x: float, digits: int = 1) -> str:
    return "—" if math.isnan(x) else f"{x:.{digits}f}"


def figure(key: str, v: float) -> str:
    if key.startswith(("healthy", "reconcile p")):
        return f"{fmt(v, 3)} s"
    return fmt(v, 0 if v > 100 else 1)


def ratio(up: float, ours: float) -> str:
    return "—" if math.isnan(up) or math.isnan(ours) or ours == 0 else f"{up / ours:.2f}x"


def table(results: dict[str, dict[str, Run]]) -> str:
    rows = [
        "| workload | upstream (s) | ours (s) | speed ratio (upstream ÷ ours, ≥ 1 is faster) "
        "| CPU s upstream / ours | RSS MiB upstream start/peak/end | RSS MiB ours start/peak/end |",
        "|---|---|---|---|---|---|---|",
    ]
    for w, r in results.items():
        up, us = r["upstream"], r["ours"]
        rows.append(
            f"| {w} | {fmt(up.seconds)} | {fmt(us.seconds)} | {ratio(up.seconds, us.seconds)} "
            f"| {fmt(up.cpu)} / {fmt(us.cpu)} ({ratio(us.cpu, up.cpu)}) "
            f"| {fmt(up.rss_start, 0)}/{fmt(up.rss_peak, 0)}/{fmt(up.rss_end, 0)} "
            f"| {fmt(us.rss_start, 0)}/{fmt(us.rss_peak, 0)}/{fmt(us.rss_end, 0)} |"
        )
    notes = []
    for w, r in results.items():
        for which in OPERATORS:
            run = r[which]
            if run.extra:
                extra = ", ".join(f"{k} {figure(k, v)}" for k, v in run.extra.items())
                notes.append(f"- {w}, {which}: {extra}")
            if run.error:
                notes.append(f"- {w}, {which}: FAILED: {run.error}")
    return "\n".join(rows + (["", *notes] if notes else []))


async def bench(plane: ControlPlane, args: argparse.Namespace, work: Path) -> dict[str, dict[str, Run]]:
    dns = NameServer(args.dns)
    await dns.start()
    ours_kc = install_operator_identity(plane, work)
    ours = OperatorProcess("ours", [str(Path(sys.executable).parent / "kuberay-operator")], ours_kc, work, args.dns)
    upstream = OperatorProcess("upstream", [str(oracle_binary())], plane.kubeconfig, work, args.dns)
    c = Client(api_client(await load_configuration(str(plane.kubeconfig)), 64), qps=0, user_agent=BENCH_AGENT)
    results: dict[str, dict[str, Run]] = {}
    try:
        for w in args.workloads:
            results[w] = {}
            for op in (upstream, ours):
                if args.only and op.which != args.only:
                    results[w][op.which] = Run(error="not run (--only)")
                    continue
                results[w][op.which] = r = await one_run(c, op, w, args, dns)
                print(
                    f"{w} {op.which}: {fmt(r.seconds)} s, CPU {fmt(r.cpu)} s, RSS {fmt(r.rss_start, 0)}/"
                    f"{fmt(r.rss_peak, 0)}/{fmt(r.rss_end, 0)} MiB {r.extra or ''}{r.error}",
                    file=sys.stderr,
                )
    finally:
        await c.close()
        dns.stop()
    return results


FULL = [
    "clusters-100-c1",
    "clusters-100-c10",
    "clusters-1000-c1",
    "clusters-1000-c10",
    "scale-1000",
    "rayjobs-1000",
    "blackhole-200",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workloads", nargs="*", default=FULL, help=f"default: {' '.join(FULL)}")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds allowed per run (default 1200)")
    ap.add_argument("--settle", type=float, default=3.0, help="idle seconds after start before measuring (3)")
    ap.add_argument("--only", choices=OPERATORS, help="run one operator only (profiling, quick checks)")
    ap.add_argument("--audit", action="store_true", help="count each operator's API requests by verb and resource")
    ap.add_argument("--profile", action="store_true", help="sample this operator with py-spy in every run")
    ap.add_argument("--dns", default="127.0.0.153", help="loopback address of the bench's DNS responder")
    args = ap.parse_args()
    for w in args.workloads:
        parse_workload(w)
    binary = oracle_binary()
    if not binary.exists():
        print(f"bench-vs-upstream: no upstream operator at {binary}: run `make oracle`", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-vs-upstream-"))
    t = time.monotonic()
    audited = ("admin", "system:serviceaccount:kuberay-system:kuberay-operator") if args.audit else ()
    plane = ControlPlane(bin_dir=build_binaries(), work_dir=work / "plane", audit_users=audited)
    args.audit_log = plane.audit_log if args.audit else None
    try:
        plane.start()
        plane.install_crds(sorted(CRD_DIR.glob("*.yaml")), timeout=60)
        plane.start_sim()
        print(f"T2 plane ready in {time.monotonic() - t:.1f} s; work dir {work}", file=sys.stderr)
        results = asyncio.run(bench(plane, args, work))
    finally:
        plane.stop()
    print(table(results))
    print(
        f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, upstream {binary.name}; "
        f'command: make bench-vs-upstream BENCH_ARGS="{" ".join(args.workloads)}"'
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
