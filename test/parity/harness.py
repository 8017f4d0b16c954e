"""The differential harness: two namespaces on one T2 plane, ours (this project's operator, in-process,
as its ServiceAccount) and upstream's (the oracle subprocess). The same inputs go to both; once both
have settled, every object in each namespace is normalised and the two sets are diffed.

Normalisation (``normalise``): namespace names, generated name suffixes (``metadata.generateName``, the
RayJob's cluster name and job id), UIDs, resourceVersions, timestamps, pod and cluster IPs and node
ports become placeholders; status written by the simulated kubelet (kwok) and kube-controller-manager
(pods, Services, Jobs) is dropped. Events are compared as a set of (regarding kind/name, reason, type,
action, reporting component, note)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from oracle import UpstreamOperator
from support.fake_dashboard import FakeCluster, FakeDashboard

from controllers.ray.utils import util as U
from internal.client import AlreadyExists, Client, NotFound
from internal.client.resources import (
    CONFIGMAPS,
    CORE_EVENTS,
    ENDPOINTSLICES,
    INGRESSES,
    JOBS,
    PODS,
    PVCS,
    RAYCLUSTERS,
    RAYJOBS,
    RAYSERVICES,
    ROLEBINDINGS,
    ROLES,
    SECRETS,
    SERVICEACCOUNTS,
    SERVICES,
    Resource,
)

HERE = Path(__file__).resolve().parent
ALLOWED_FILE = HERE / "allowed_differences.yaml"

#: What is compared, per kind (events separately).
KINDS: dict[str, Resource] = {
    "RayCluster": RAYCLUSTERS,
    "RayJob": RAYJOBS,
    "RayService": RAYSERVICES,
    "Pod": PODS,
    "Service": SERVICES,
    "Job": JOBS,
    "Secret": SECRETS,
    "ServiceAccount": SERVICEACCOUNTS,
    "Role": ROLES,
    "RoleBinding": ROLEBINDINGS,
    "PersistentVolumeClaim": PVCS,
    "ConfigMap": CONFIGMAPS,
    "Ingress": INGRESSES,
}
#: Status that the simulated node or kube-controller-manager writes, not an operator.
FOREIGN_STATUS = {"Pod", "Service", "Job", "PersistentVolumeClaim", "Ingress"}
#: Event sources that are not an operator.
FOREIGN_EVENT_SOURCES = {
    "default-scheduler",
    "job-controller",
    "kubelet",
    "kwok",
    "ttl-after-finished-controller",
    "garbage-collector-controller",
    "taint-eviction-controller",
    "persistentvolume-controller",
    "ipallocator-repair-controller",
}
SETTLE_WINDOW = 4.0

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?")
_POD_IP = re.compile(r"\b127\.1\.\d{1,3}\.\d{1,3}\b")
_CLUSTER_IP = re.compile(r"\b10\.0\.0\.\d{1,3}\b")
#: kube-apiserver's list of validation errors, whose order varies between calls (map iteration)
_INVALID_LIST = re.compile(r'is invalid: \[((?:[^"\\]|\\.)*)\]')
#: Pod names of pods gone by the time of the snapshot (named in events): head/worker generateName suffixes.
_POD_SUFFIX = re.compile(r"-(head|worker)-[a-z0-9]{5}\b")
_DROP_META = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "selfLink")


# ---- sides -------------------------------------------------------------------------------------------


@dataclass
class Side:
    """One operator's namespace and the fake Ray dashboard its clusters answer from."""

    name: str  # "ours" | "upstream"
    namespace: str
    fake: FakeDashboard
    upstream: UpstreamOperator | None = None
    #: RayJob name -> the final job status its fake dashboard scripts (default SUCCEEDED)
    outcomes: dict[str, str] = field(default_factory=dict)

    def outcome(self, cluster: str) -> str:
        """The scripted final status of jobs on ``cluster`` (by the RayJob whose name prefixes it)."""
        for job, outcome in sorted(self.outcomes.items(), key=lambda kv: -len(kv[0])):
            if cluster == job or cluster.startswith(job + "-"):
                return outcome
        return "SUCCEEDED"

    def cluster(self, name: str) -> FakeCluster:
        """The fake head of RayCluster ``name``, its jobs scripted: RUNNING, the outcome 1 s later."""
        known = name in self.fake.clusters
        c = self.fake.cluster(name)
        if not known:
            c.set_default_script("RUNNING", (self.outcome(name), 1.0))
        return c


@dataclass
class Difference:
    kind: str
    name: str
    path: str
    ours: Any
    upstream: Any
    allowed_by: str = ""

    def line(self) -> str:
        def short(v: Any) -> str:
            s = json.dumps(v, sort_keys=True, default=str) if not isinstance(v, str) else v
            return s if len(s) <= 300 else s[:300] + "…"

        where = f"{self.kind} {self.name} {self.path or '<object>'}"
        return f"{where}: ours={short(self.ours)} upstream={short(self.upstream)}"


@dataclass
class Result:
    label: str
    compared: Counter[str] = field(default_factory=Counter)
    identical: Counter[str] = field(default_factory=Counter)
    only_ours: Counter[str] = field(default_factory=Counter)
    only_upstream: Counter[str] = field(default_factory=Counter)
    #: compared objects whose every difference is an allowed one (set by apply_allowed)
    equivalent: Counter[str] = field(default_factory=Counter)
    differences: list[Difference] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)
    #: recreate-hash checks that failed (recreate_hash_problems; only where the test asks for them)
    hash_problems: list[str] = field(default_factory=list)

    def failures(self) -> list[Difference]:
        return [d for d in self.differences if not d.allowed_by]

    def report(self) -> str:
        lines = [
            f"parity[{self.label}]: per kind compared / identical / equal up to allowed differences "
            "(only ours, only upstream):"
        ]
        for k in sorted(set(self.compared) | set(self.only_ours) | set(self.only_upstream)):
            lines.append(
                f"  {k}: {self.compared[k]} / {self.identical[k]} / {self.equivalent[k]}"
                f" ({self.only_ours[k]}, {self.only_upstream[k]})"
            )
        lines += [f"  not settled: {u}" for u in self.unsettled]
        lines += [f"  recreate hash: {p}" for p in self.hash_problems]
        bad = self.failures()
        lines.append(f"  differences: {len(self.differences)}, not allowed: {len(bad)}")
        lines += ["  " + d.line() for d in bad[:200]]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "compared": dict(self.compared),
            "identical": dict(self.identical),
            "only_ours": dict(self.only_ours),
            "only_upstream": dict(self.only_upstream),
            "unsettled": self.unsettled,
            "hash_problems": self.hash_problems,
            "differences": [d.__dict__ for d in self.differences],
        }


# ---- inputs and the fake dashboards --------------------------------------------------------------------


def for_side(doc: dict[str, Any], ns: str) -> dict[str, Any]:
    d = copy.deepcopy(doc)
    d.setdefault("metadata", {})["namespace"] = ns
    d["metadata"].pop("resourceVersion", None)
    return d


def resource_of(doc: dict[str, Any]) -> Resource:
    return KINDS[doc["kind"]]


async def _get(c: Client, res: Resource, name: str, ns: str) -> dict[str, Any] | None:
    try:
        return await c.get(res, name, ns)
    except NotFound:
        return None


class Driver:
    """Plays the Ray side for both operators alike: each RayJob's cluster gets a fake dashboard (ours by
    a loopback URL table, upstream's on the head pod's IP under the head Service's DNS name), and a
    submitter's job appears in it once the operator started a submitter (K8sJobMode Job or SidecarMode
    container): RUNNING, then the scripted outcome one second later. RayService clusters get a fake head
    (Serve API, and for upstream its proxy on the head pod IP), and the RayService Services EndpointSlices
    (``_endpoint_slices``)."""

    def __init__(self, client: Client, sides: list[Side]) -> None:
        self.client, self.sides = client, sides
        self.errors: list[str] = []
        #: upstream's head Serve proxies: (side, cluster) -> (ip, port, site) listening on the head pod IP
        self._proxies: dict[tuple[str, str], tuple[str, int, web.BaseSite]] = {}

    async def _cluster(self, side: Side, name: str) -> FakeCluster | None:
        if side.upstream is None:
            return side.cluster(name)
        sel = f"ray.io/cluster={name},ray.io/node-type=head"
        pods = await self.client.list(PODS, side.namespace, label_selector=sel)
        ips = [p["status"]["podIP"] for p in pods["items"] if (p.get("status") or {}).get("podIP")]
        c = side.fake.clusters.get(name)
        if not ips:
            return c
        ip = ips[0]
        if c is not None and c.base_url == f"http://{ip}:8265":
            return c
        # A new head pod (new IP), or the IP of a deleted head reused: the old fake heads stop listening.
        owner = side.fake._by_addr.get((ip, 8265))
        if owner is not None:
            await side.fake.remove_cluster(owner.name)
        if c is not None:
            await side.fake.remove_cluster(name)
        side.cluster(name)  # scripted before it can be reached
        c = await side.fake.cluster_on_address(name, ip, 8265)
        side.upstream.map_host(f"{name}-head-svc.{side.namespace}.svc.cluster.local", ip)
        return c

    async def tick(self) -> None:
        for side in self.sides:
            jobs = (await self.client.list(RAYJOBS, side.namespace))["items"]
            for job in jobs:
                try:
                    await self._job(side, job)
                except Exception as e:  # one job's trouble must not starve the others; retried next tick
                    self.errors.append(f"{side.name} {job['metadata']['name']}: {e!r}")
            try:
                await self._service_clusters(side)
                await self._endpoint_slices(side)
            except Exception as e:  # retried next tick
                self.errors.append(f"{side.name} RayService clusters: {e!r}")

    async def _service_clusters(self, side: Side) -> None:
        """The clusters of RayServices: a fake head (Serve API on the dashboard) for each, and, for
        upstream, which dials ``http://<head pod IP>:<serve port>/-/healthz`` (v1.6.1
        updateHeadPodServeLabel), the same fake head also listening on that address. Ours reaches the
        proxy through ``LoopbackProxyAddress`` (test_parity.pair)."""
        for rc in (await self.client.list(RAYCLUSTERS, side.namespace))["items"]:
            owners = rc["metadata"].get("ownerReferences") or ()
            if not any(o.get("kind") == "RayService" for o in owners):
                continue
            name = rc["metadata"]["name"]
            c = await self._cluster(side, name)
            if side.upstream is None or c is None or not c.base_url.endswith(":8265"):
                continue
            ip = c.base_url.removeprefix("http://").rsplit(":", 1)[0]
            head = ((rc["spec"].get("headGroupSpec") or {}).get("template") or {}).get("spec") or {}
            ports = ((head.get("containers") or [{}])[0]).get("ports") or ()
            port = next((int(p["containerPort"]) for p in ports if p.get("name") == "serve"), 8000)
            await self._proxy(side, name, c, ip, port)

    async def _proxy(self, side: Side, name: str, c: FakeCluster, ip: str, port: int) -> None:
        key = (side.name, name)
        known = self._proxies.get(key)
        if known is not None and known[:2] == (ip, port):
            return
        # a new head IP, or a stale proxy of another cluster on this address: stop those first
        for k, (kip, kport, site) in list(self._proxies.items()):
            if k == key or (k[0] == side.name and (kip, kport) == (ip, port)):
                del self._proxies[k]
                await site.stop()
        runner = side.fake._runner
        assert runner is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
        site = web.SockSite(runner, sock)
        await site.start()
        side.fake._by_addr[(ip, port)] = c  # the fake routes by the listening address
        self._proxies[key] = (ip, port, site)

    async def _endpoint_slices(self, side: Side) -> None:
        """Plays the EndpointSlice controller (none runs on T2: kwok's loopback pod IPs are refused) for
        the RayService Services, the same for both sides: one slice per Service with the pods its
        selector matches, ready as their Ready condition. Both operators count the serve Service's
        ready endpoints (numServeEndpoints) from these. Slices are not compared."""
        sel = "ray.io/originated-from-crd=RayService"
        services = (await self.client.list(SERVICES, side.namespace, label_selector=sel))["items"]
        if not services:
            return
        pods = (await self.client.list(PODS, side.namespace))["items"]
        for svc in services:
            selector = (svc.get("spec") or {}).get("selector") or {}
            endpoints = []
            for pod in pods:
                labels = pod["metadata"].get("labels") or {}
                ip = (pod.get("status") or {}).get("podIP") or ""
                if pod["metadata"].get("deletionTimestamp") or not ip:
                    continue
                if any(labels.get(k) != v for k, v in selector.items()):
                    continue
                conds = (pod.get("status") or {}).get("conditions") or ()
                ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
                endpoints.append(
                    {
                        "addresses": ["10." + ".".join(ip.split(".")[1:])],  # loopback addresses are refused
                        "conditions": {"ready": ready},
                        "targetRef": {
                            "kind": "Pod",
                            "name": pod["metadata"]["name"],
                            "namespace": side.namespace,
                            "uid": pod["metadata"]["uid"],
                        },
                    }
                )
            name, uid = svc["metadata"]["name"], svc["metadata"]["uid"]
            ports = svc["spec"].get("ports") or ()
            owner = {"apiVersion": "v1", "kind": "Service", "name": name, "uid": uid, "controller": True}
            body: dict[str, Any] = {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-sim",
                    "namespace": side.namespace,
                    "labels": {"kubernetes.io/service-name": name},
                    "ownerReferences": [owner],
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [{"name": q.get("name"), "port": q["port"], "protocol": "TCP"} for q in ports],
            }
            old = await _get(self.client, ENDPOINTSLICES, f"{name}-sim", side.namespace)
            if old is None:
                with contextlib.suppress(AlreadyExists, NotFound):
                    await self.client.create(ENDPOINTSLICES, body, side.namespace)
            elif old["metadata"]["ownerReferences"][0]["uid"] != uid:
                with contextlib.suppress(NotFound):
                    await self.client.delete(ENDPOINTSLICES, f"{name}-sim", side.namespace)
            elif old.get("endpoints") != endpoints:
                body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
                with contextlib.suppress(NotFound):
                    await self.client.update(ENDPOINTSLICES, body)

    async def _job(self, side: Side, job: dict[str, Any]) -> None:
        st = job.get("status") or {}
        cluster_name, job_id = st.get("rayClusterName"), st.get("jobId")
        if not cluster_name:
            return
        outcome = side.outcomes.get(job["metadata"]["name"], "SUCCEEDED")
        c = await self._cluster(side, cluster_name)
        if c is None or not job_id or job_id in c.jobs:
            return
        # K8sJobMode and SidecarMode: the submitter (a kwok pod that does nothing) would have
        # submitted it; seeded as soon as the job id and the fake head exist, because kwok
        # completes the submitter at once and a finished submitter with no job fails the RayJob.
        mode = job["spec"].get("submissionMode") or "K8sJobMode"
        if mode in ("K8sJobMode", "SidecarMode"):
            c.add_job(job_id, job["spec"].get("entrypoint") or "python -c pass", status="RUNNING")
            c.script(job_id, (outcome, 1.0))

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as e:  # a transient API error: the next tick retries
                self.errors.append(repr(e))
            await asyncio.sleep(0.3)  # polling interval of the simulated Ray side

    async def _watch_jobs(self, side: Side) -> None:
        """Seed a submitter's job as soon as its RayJob names the job id (a watch), not at the next tick.
        A real ``ray job submit`` has created the job before its pod can finish; the simulated submitter
        finishes at once, and on a cluster that is already up (clusterSelector) the operator may see it
        finished within a tick, then fail the RayJob for a job its head does not know. The tick still
        covers anything a broken watch misses."""
        while True:
            try:
                async with contextlib.aclosing(self.client.watch(RAYJOBS, side.namespace, timeout_seconds=60)) as w:
                    async for ev in w:
                        if ev.get("type") in ("ADDED", "MODIFIED"):
                            await self._job(side, ev["object"])
            except Exception as e:  # a transient API error: watch again
                self.errors.append(f"{side.name} RayJob watch: {e!r}")
                await asyncio.sleep(0.3)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Driver]:
        tasks = [asyncio.create_task(self._run())]
        tasks += [asyncio.create_task(self._watch_jobs(side)) for side in self.sides]
        try:
            yield self
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t


# ---- snapshots, settling ---------------------------------------------------------------------------


async def snapshot(c: Client, ns: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for kind, res in KINDS.items():
        out[kind] = list((await c.list(res, ns))["items"])
    out["Event"] = list((await c.list(CORE_EVENTS, ns))["items"])
    return out


def _fingerprint(snap: dict[str, list[dict[str, Any]]]) -> frozenset[tuple[str, str, str]]:
    return frozenset(
        (k, o["metadata"]["name"], o["metadata"].get("resourceVersion", ""))
        for k, objs in snap.items()
        if k != "Event"  # a repeated event bumps its count: settledness is about the objects
        for o in objs
    )


async def settle(
    c: Client,
    namespaces: Iterable[str],
    timeout: float,
    window: float = SETTLE_WINDOW,
    done: Callable[[], Any] | None = None,
) -> list[str]:
    """Waits until no object in any of the namespaces changes for ``window`` seconds (sampled every
    0.5 s) and ``done()`` (if given) is true; returns the namespaces still changing at ``timeout``."""
    nss = list(namespaces)
    deadline = time.monotonic() + timeout
    last: dict[str, frozenset[tuple[str, str, str]]] = {}
    since: dict[str, float] = {}
    while True:
        now = time.monotonic()
        for ns in nss:
            fp = _fingerprint(await snapshot(c, ns))
            if last.get(ns) != fp:
                last[ns], since[ns] = fp, now
        ok = done is None or bool(await _maybe_await(done()))
        moving = [ns for ns in nss if now - since[ns] < window]
        if not moving and ok:
            return []
        if now > deadline:
            return moving or ["(done condition not met)"]
        await asyncio.sleep(0.5)  # sampling interval of the settle window


async def _maybe_await(v: Any) -> Any:
    if asyncio.iscoroutine(v):
        return await v
    return v


# ---- normalisation -------------------------------------------------------------------------------------


def _generated_names(snap: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    names: dict[str, str] = {}
    for objs in snap.values():
        for o in objs:
            m = o["metadata"]
            if m.get("generateName") and m["name"].startswith(m["generateName"]):
                names[m["name"]] = m["generateName"] + "<gen>"
    for job in snap.get("RayJob", []):
        name, st = job["metadata"]["name"], job.get("status") or {}
        cluster = st.get("rayClusterName") or ""
        selector = (job["spec"].get("clusterSelector") or {}).get("ray.io/cluster")
        if cluster and cluster != selector and cluster.startswith(name + "-"):
            names[cluster] = f"{name}-<cluster>"
        if st.get("jobId", "").startswith(name + "-"):
            names[st["jobId"]] = f"{name}-<jobid>"
    for svc in snap.get("RayService", []):  # the active and pending clusters: <rayservice>-<5 random>
        name, st = svc["metadata"]["name"], svc.get("status") or {}
        for which in ("activeServiceStatus", "pendingServiceStatus"):
            cluster = (st.get(which) or {}).get("rayClusterName") or ""
            if cluster.startswith(name + "-"):
                names[cluster] = f"{name}-<cluster>"
    for rc in snap.get("RayCluster", []):  # also a cluster no status names (yet, or any more)
        owners = rc["metadata"].get("ownerReferences") or ()
        for o in owners:
            if o.get("kind") == "RayService" and rc["metadata"]["name"].startswith(o.get("name", "") + "-"):
                names.setdefault(rc["metadata"]["name"], f"{o['name']}-<cluster>")
    for pod in snap.get("Pod", []):  # multi-host replicas: <group>-<5 random>
        replica = (pod["metadata"].get("labels") or {}).get("ray.io/worker-group-replica-name", "")
        if re.fullmatch(r".+-[a-z0-9]{5}", replica):
            names[replica] = replica[:-5] + "<replica>"
    return names


def _leftover_names(text: str, snap: dict[str, list[dict[str, Any]]]) -> str:
    """Names generated from a RayJob's or RayService's name that no object shows any more (the clusters
    and job ids of earlier retries, a RayService's clusters before an upgrade, named in events):
    <name>-<5 random> becomes <name>-<gen5>."""
    names = {o["metadata"]["name"] for o in [*snap.get("RayJob", []), *snap.get("RayService", [])]}
    for e in snap.get("Event", []):  # also of those deleted since
        inv = e.get("involvedObject") or {}
        if inv.get("kind") in ("RayJob", "RayService") and inv.get("name"):
            names.add(inv["name"])
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(name)}-[a-z0-9]{{5}}\b", name + "-<gen5>", text)
    return text


def _node_ports(snap: dict[str, list[dict[str, Any]]]) -> set[str]:
    return {
        str(p["nodePort"])
        for svc in snap.get("Service", [])
        for p in (svc.get("spec") or {}).get("ports") or ()
        if p.get("nodePort")
    }


def _strip(kind: str, o: dict[str, Any]) -> dict[str, Any]:
    o = copy.deepcopy(o)
    m = o.setdefault("metadata", {})
    for k in _DROP_META:
        m.pop(k, None)
    if m.get("generateName") and "name" in m:
        m["name"] = m["generateName"] + "<gen>"
    if kind in FOREIGN_STATUS:
        o.pop("status", None)
    if kind == "Secret" and "auth_token" in (o.get("data") or {}):
        o["data"]["auth_token"] = "<random token>"
    for port in (o.get("spec") or {}).get("ports") or ():
        if isinstance(port, dict) and "nodePort" in port:
            port["nodePort"] = "<nodePort>"
    return o


def _sort_appended_ports(snap: dict[str, list[dict[str, Any]]], stripped: dict[str, list[dict[str, Any]]]) -> None:
    """A custom head Service gets the default ports appended after the user's in Go map iteration
    order (upstream common/service.go BuildServiceForHeadPod: random per call), so that tail is
    compared sorted by name."""
    custom: dict[str, int] = {}
    for rc in snap.get("RayCluster", []):
        head_svc = (rc["spec"].get("headGroupSpec") or {}).get("headService")
        if head_svc:
            name = (head_svc.get("metadata") or {}).get("name") or f"{rc['metadata']['name']}-head-svc"
            custom[name] = len((head_svc.get("spec") or {}).get("ports") or ())
    for svc in stripped.get("Service", []):
        n = custom.get(svc["metadata"]["name"])
        ports = (svc.get("spec") or {}).get("ports")
        if n is not None and ports:
            svc["spec"]["ports"] = ports[:n] + sorted(ports[n:], key=lambda p: str(p.get("name")))


def normalise(snap: dict[str, list[dict[str, Any]]], ns: str) -> dict[str, list[dict[str, Any]]]:
    """Every object as the comparison sees it (see the module docstring)."""
    stripped = {k: [_strip(k, o) for o in objs] for k, objs in snap.items() if k != "Event"}
    _sort_appended_ports(snap, stripped)
    stripped["Event"] = [_event(e) for e in snap.get("Event", []) if _event_source(e) not in FOREIGN_EVENT_SOURCES]
    ports = _node_ports(snap)
    for kind in ("RayCluster", "RayJob"):  # the cluster status lists a NodePort Service's node ports
        for o in stripped.get(kind, []):
            st = o.get("status") or {}
            for holder in (st, st.get("rayClusterStatus") or {}):
                eps = holder.get("endpoints") or {}
                for k, v in eps.items():
                    if v in ports:
                        eps[k] = "<nodePort>"
    text = json.dumps(stripped, sort_keys=True)
    for actual, placeholder in sorted(_generated_names(snap).items(), key=lambda kv: -len(kv[0])):
        text = text.replace(actual, placeholder)
    text = _INVALID_LIST.sub(lambda m: "is invalid: [" + ", ".join(sorted(m[1].split(", "))) + "]", text)
    text = _leftover_names(text, snap)
    text = _POD_SUFFIX.sub(r"-\1-<gen>", text)
    text = text.replace(ns, "<ns>")
    text = _UUID.sub("<uid>", text)
    text = _TIME.sub("<time>", text)
    text = _POD_IP.sub("<podIP>", text)
    text = _CLUSTER_IP.sub("<clusterIP>", text)
    out: dict[str, list[dict[str, Any]]] = json.loads(text)
    return out


def _event_source(e: dict[str, Any]) -> str:
    return str(e.get("reportingComponent") or (e.get("source") or {}).get("component") or "")


def _event(e: dict[str, Any]) -> dict[str, Any]:
    inv = e.get("involvedObject") or {}
    return {
        "regarding": f"{inv.get('kind')}/{inv.get('name')}",
        "reason": e.get("reason", ""),
        "type": e.get("type", ""),
        "action": e.get("action", ""),
        "source": _event_source(e),
        # the legacy recorder's aggregation prefix (client-go EventCorrelator), not part of the note
        "note": str(e.get("message", "")).removeprefix("(combined from similar events): "),
    }


# ---- diff ----------------------------------------------------------------------------------------------


def _events(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Events by (regarding, reason, type): the actions, reporting components and notes seen."""
    out: dict[str, dict[str, Any]] = {}
    for e in objs:
        agg = out.setdefault(f"{e['regarding']} {e['reason']} {e['type']}", {"action": [], "source": [], "note": []})
        for k in ("action", "source", "note"):
            if e[k] not in agg[k]:
                agg[k].append(e[k])
    for agg in out.values():
        for k in agg:
            agg[k].sort()
    return out


def _keyed(kind: str, objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Objects by normalised name; same-named ones (generated names) get #i in a content order."""
    if kind == "Event":
        return _events(objs)
    groups: dict[str, list[dict[str, Any]]] = {}
    for o in objs:
        groups.setdefault(o["metadata"]["name"], []).append(o)
    out: dict[str, dict[str, Any]] = {}
    for name, group in groups.items():
        if len(group) == 1:
            out[name] = group[0]
            continue
        for i, o in enumerate(sorted(group, key=lambda x: json.dumps(x, sort_keys=True))):
            out[f"{name}#{i}"] = o
    return out


def _event_diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Actions and components compared as they are; notes as a subset. The events.k8s.io recorder
    (v1.7.0, and ours) keeps one series per (regarding, reason, action) with the first note, while
    v1.6.1's legacy recorder keeps one event per distinct message: every note of ours must be one
    upstream wrote."""
    found = diff_values({k: a[k] for k in ("action", "source")}, {k: b[k] for k in ("action", "source")})
    if not set(a["note"]) <= set(b["note"]):
        found.append(("note", a["note"], b["note"]))
    return found


def diff_values(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        found: list[tuple[str, Any, Any]] = []
        for k in sorted(set(a) | set(b)):
            p = f"{path}.{k}" if path else k
            if k not in a:
                found.append((p, "<absent>", b[k]))
            elif k not in b:
                found.append((p, a[k], "<absent>"))
            else:
                found += diff_values(a[k], b[k], p)
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        found = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found += diff_values(x, y, f"{path}[{i}]")
        return found
    return [] if a == b else [(path, a, b)]


def compare(label: str, ours: dict[str, list[dict[str, Any]]], upstream: dict[str, list[dict[str, Any]]]) -> Result:
    r = Result(label)
    for kind in sorted(set(ours) | set(upstream)):
        a, b = _keyed(kind, ours.get(kind, [])), _keyed(kind, upstream.get(kind, []))
        for name in sorted(set(a) | set(b)):
            if name not in b:
                r.only_ours[kind] += 1
                r.differences.append(Difference(kind, name, "", "<present>", "<absent>"))
                continue
            if name not in a:
                r.only_upstream[kind] += 1
                r.differences.append(Difference(kind, name, "", "<absent>", "<present>"))
                continue
            r.compared[kind] += 1
            found = _event_diff(a[name], b[name]) if kind == "Event" else diff_values(a[name], b[name])
            if not found:
                r.identical[kind] += 1
            r.differences += [Difference(kind, name, p, x, y) for p, x, y in found]
    return r


# ---- the Recreate spec hash ----------------------------------------------------------------------------

#: WorkerGroupSpec fields v1.7.0 has and v1.6.1 does not (kuberay-behaviour.md §2.3; the CRD defaults
#: ``priority`` to 0): v1.6.1 drops them when it decodes the spec, so they are not in what it hashes.
V17_ONLY_GROUP_FIELDS = ("priority",)
_HASH_KEY = "ray.io/upgrade-strategy-recreate-hash"
_SERVICE_HASH_KEY = "ray.io/hash-without-replicas-and-workers-to-delete"


def v161_recreate_hash(spec: dict[str, Any]) -> str:
    """The hash v1.6.1 computes for ``spec``: ours over the spec without the v1.7.0-only fields."""
    s = copy.deepcopy(spec)
    for group in s.get("workerGroupSpecs") or ():
        for f in V17_ONLY_GROUP_FIELDS:
            group.pop(f, None)
    return U.generate_hash_without_replicas_and_workers_to_delete(s)


def recreate_hash_problems(
    ours: dict[str, list[dict[str, Any]]], upstream: dict[str, list[dict[str, Any]]]
) -> list[str]:
    """For RayClusters whose spec never changed after creation (the generated ones): our head pod's
    hash is ours of the spec, and upstream's is ours of the same spec without the v1.7.0-only fields.
    This is what makes the allowed difference `recreate-hash-v1.7-fields` honest: the hashes differ
    by those fields only, never by how the spec is serialised."""
    problems: list[str] = []
    for side, snap, expect in (
        ("ours", ours, U.generate_hash_without_replicas_and_workers_to_delete),
        ("upstream", upstream, v161_recreate_hash),
    ):
        specs = {rc["metadata"]["name"]: rc["spec"] for rc in snap.get("RayCluster", [])}
        for pod in snap.get("Pod", []):
            labels = pod["metadata"].get("labels") or {}
            spec = specs.get(labels.get("ray.io/cluster", ""))
            if labels.get("ray.io/node-type") != "head" or spec is None:
                continue
            got = (pod["metadata"].get("annotations") or {}).get(_HASH_KEY)
            want = expect(spec)
            if got != want:
                problems.append(f"{side} head pod of {labels['ray.io/cluster']}: {_HASH_KEY}={got}, expected {want}")
        # a RayService's cluster carries the hash of the RayService's rayClusterConfig
        services = {svc["metadata"]["name"]: svc["spec"] for svc in snap.get("RayService", [])}
        for rc in snap.get("RayCluster", []):
            for o in rc["metadata"].get("ownerReferences") or ():
                if o.get("kind") != "RayService" or o.get("name") not in services:
                    continue
                got = (rc["metadata"].get("annotations") or {}).get(_SERVICE_HASH_KEY)
                want = expect(services[o["name"]]["rayClusterConfig"])
                if got != want:
                    rc_name = rc["metadata"]["name"]
                    problems.append(f"{side} RayCluster {rc_name}: {_SERVICE_HASH_KEY}={got}, expected {want}")
    return problems


# ---- allowed differences -------------------------------------------------------------------------------


def _glob(pattern: str, value: str) -> bool:
    """Shell-like match where only ``*`` is special (JSON paths contain brackets)."""
    rx = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(rx, value, re.S) is not None


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


@dataclass
class Allowed:
    """One allowed difference. ``ours``/``upstream`` match the values (JSON text, ``*`` globs);
    ``rewrite`` instead turns our string into upstream's by a regex substitution ([pattern,
    replacement]): the difference is allowed only when what remains is identical."""

    id: str
    kind: str
    name: str
    path: str | list[str]  # one glob or several
    reason: str
    ours: str | None = None
    upstream: str | None = None
    rewrite: list[str] | None = None
    version: str | None = None  # the spec section when the difference is v1.7.0 vs the v1.6.1 oracle

    def matches(self, d: Difference) -> bool:
        paths = [self.path] if isinstance(self.path, str) else self.path
        if not (_glob(self.kind, d.kind) and _glob(self.name, d.name) and any(_glob(p, d.path) for p in paths)):
            return False
        if self.rewrite is not None:
            return re.sub(self.rewrite[0], self.rewrite[1], _text(d.ours), flags=re.S) == _text(d.upstream)
        return (self.ours is None or _glob(self.ours, _text(d.ours))) and (
            self.upstream is None or _glob(self.upstream, _text(d.upstream))
        )


def load_allowed(path: Path = ALLOWED_FILE) -> list[Allowed]:
    entries = yaml.safe_load(path.read_text()) or []
    out = [Allowed(**e) for e in entries]
    ids = [a.id for a in out]
    assert len(ids) == len(set(ids)), f"duplicate ids in {path.name}"
    for a in out:
        assert a.reason.strip(), f"{path.name}: {a.id} has no reason"
    return out


def apply_allowed(r: Result, allowed: list[Allowed]) -> None:
    for d in r.differences:
        for a in allowed:
            if a.matches(d):
                d.allowed_by = a.id
                break
    objects: dict[str, set[str]] = {}  # compared objects with a difference not allowed
    for d in r.differences:
        if d.path and not d.allowed_by:
            objects.setdefault(d.kind, set()).add(d.name)
    for k, n in r.compared.items():
        r.equivalent[k] = n - len(objects.get(k, ()))
