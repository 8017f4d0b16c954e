"""The operator installed as a user installs it, running from the built image under its ServiceAccount.

Each overlay gets a T2 plane of its own (its CRDs, RBAC and Deployment come from the install, so they
cannot collide with the session plane's), audited for the installed ServiceAccount. The install is
``kubectl apply --server-side -k config/<overlay>``, or ``helm install`` of helm-chart/kuberay-operator
(whose Deployment starts upstream's ``/manager`` command and sets no bind flags); then each replica
of the Deployment runs from the image with ``podman run --network host`` (support/image.py), with the
container's command, args and env as the Deployment has them (support/deployed.py expands ``$(VAR)``),
the in-cluster variables pointing at the loopback apiserver, and a ServiceAccount token from the
TokenRequest API mounted where a kubelet mounts it. Two differences from a kubelet, both forced by the
host network: the metrics and probe bind addresses become ``127.0.0.1:<free port>`` (the Deployment's
``:8080``/``:8082``, given or defaulted, would bind every address and collide between replicas), and
the container's ``/etc/hosts`` maps the head Services' DNS names to loopback addresses where a fake Ray
dashboard answers (nothing else resolves cluster DNS here).

Every test ends with a look at the audit log: any request the authorizer refused fails it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from support.deployed import (
    PodSpec,
    check_hosts_file,
    in_cluster_env,
    install,
    last_flag,
    pod_spec,
    service_account_volume,
)
from support.fake_dashboard import FakeDashboard
from support.helm import install as helm_install
from support.image import Container, Mount, ensure_image, image_ref, service_account_mount
from support.rbac_audit import AuditLog
from support.wait import eventually, gone

from internal.client import Client, ClientMetrics, NotFound, api_client, load_configuration
from internal.client.resources import CONFIGMAPS, LEASES, PODS, RAYCLUSTERS, RAYJOBS
from internal.metrics import new_registry

pytestmark = [pytest.mark.deploy, pytest.mark.t2]

REPO = Path(__file__).resolve().parents[2]
INSTALL_NAMESPACE = "default"  # config/default's namespace
OPERATOR_USER = f"system:serviceaccount:{INSTALL_NAMESPACE}:kuberay-operator"
LEASE = "ray-operator-leader"

CLUSTER = yaml.safe_load(
    """
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: rc
spec:
  rayVersion: '2.52.0'
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.52.0
          resources: {requests: {cpu: "1", memory: 1Gi}}
  workerGroupSpecs:
  - groupName: small
    replicas: 1
    minReplicas: 0
    maxReplicas: 5
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.52.0
          resources: {requests: {cpu: "1", memory: 1Gi}}
"""
)
RAYJOB = yaml.safe_load(
    """
apiVersion: ray.io/v1
kind: RayJob
metadata:
  name: job
spec:
  entrypoint: python -c "print('done')"
  submissionMode: K8sJobMode
  shutdownAfterJobFinishes: true
  rayClusterSpec:
    rayVersion: '2.52.0'
    headGroupSpec:
      rayStartParams: {}
      template:
        spec:
          containers:
          - name: ray-head
            image: rayproject/ray:2.52.0
"""
)


# ---- the installed operator ------------------------------------------------------------------------


@dataclass
class Replica:
    spec: PodSpec
    container: Container

    @property
    def probe_port(self) -> int:
        return int((last_flag(self.spec.args, "--health-probe-bind-address") or ":0").rsplit(":", 1)[1])

    @property
    def metrics_port(self) -> int:
        return int((last_flag(self.spec.args, "--metrics-addr") or ":0").rsplit(":", 1)[1])


@dataclass
class Installed:
    plane: Any
    overlay: str
    objects: list[dict[str, Any]]
    image: str
    work: Path
    audit: AuditLog
    replicas: list[Replica] = field(default_factory=list)
    _next_ip: int = 1

    @property
    def deployment(self) -> dict[str, Any]:
        return next(o for o in self.objects if o["kind"] == "Deployment")

    @property
    def hosts(self) -> Path:
        return self.work / "hosts"

    def start_replica(self) -> Replica:
        from internal.controlplane.plane import free_port

        spec = pod_spec(self.deployment, f"r{len(self.replicas)}", free_port)
        sa = service_account_volume(self.plane, spec.namespace, spec.service_account, self.work / f"sa-{spec.name}")
        # The kustomize Deployment sets only args (the image's entrypoint); Helm's sets upstream's command.
        assert spec.command in ([], ["/manager"]), spec.command
        container = Container(
            args=spec.args,
            entrypoint=spec.command[0] if spec.command else None,
            env={**spec.env, **in_cluster_env(self.plane)},
            mounts=[service_account_mount(sa), Mount(self.hosts, "/etc/hosts")],
            read_only=True,  # the Deployment's readOnlyRootFilesystem
            podman_args=["--no-hosts", f"--hostname={spec.name}"],
            image=self.image,
            log_dir=self.work,
        )
        container.start()
        container.wait_started()
        replica = Replica(spec, container)
        self.replicas.append(replica)
        return replica

    def map_name(self, hostname: str) -> str:
        """Make ``hostname`` resolve, inside the operator's container, to a fresh loopback address."""
        ip = f"127.3.{self._next_ip // 250}.{self._next_ip % 250 + 1}"
        self._next_ip += 1
        with self.hosts.open("a") as f:
            f.write(f"{ip}\t{hostname}\n")
        return ip

    def stop(self) -> None:
        for r in self.replicas:
            r.container.close()


def _deploy_plane(work: Path) -> Any:
    from internal.controlplane import ControlPlane, PlaneError, default_bin_dir, missing_binaries

    if missing_binaries(default_bin_dir()):
        pytest.fail("control-plane binaries missing: run `make bins`", pytrace=False)
    plane = ControlPlane(bin_dir=default_bin_dir(), work_dir=work / "plane", audit_users=(OPERATOR_USER,))
    try:
        plane.start()
    except PlaneError as e:
        plane.stop()
        pytest.fail(f"control plane unavailable: {e}", pytrace=False)
    return plane


@contextlib.contextmanager
def installed(
    overlay: str, tmp: Path, replicas: int = 1, how: Callable[[Any], list[dict[str, Any]]] | None = None
) -> Iterator[Installed]:
    """``config/<overlay>`` installed on a plane of its own (or by ``how(plane)``, as the Helm chart is),
    and ``replicas`` replicas of its Deployment running from the image."""
    image = ensure_image()
    plane = _deploy_plane(tmp)
    inst: Installed | None = None
    try:
        objects = how(plane) if how is not None else install(plane, REPO / "config" / overlay)
        plane.start_sim()  # after the install: the garbage collector learns the CRDs' kinds at start
        inst = Installed(
            plane, overlay.rsplit("/", 1)[-1], objects, image, tmp, AuditLog(plane.audit_log, OPERATOR_USER)
        )
        check_hosts_file(inst.hosts)
        for _ in range(replicas):
            inst.start_replica()
        yield inst
        refused = inst.audit.take_forbidden()
        assert not refused, "the installed operator was refused:\n  " + "\n  ".join(refused)
    finally:
        if inst is not None:
            inst.stop()
        plane.stop()
        shutil.rmtree(tmp / "plane" / "etcd-data-0", ignore_errors=True)


@contextlib.asynccontextmanager
async def admin(plane: Any) -> AsyncIterator[Client]:
    cfg = await load_configuration(str(plane.kubeconfig))
    c = Client(api_client(cfg, 8), metrics=ClientMetrics.register(new_registry()))
    try:
        yield c
    finally:
        await c.close()


async def http_get(port: int, path: str) -> tuple[int, str] | None:
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=3)) as r,
        ):
            return r.status, await r.text()
    except (aiohttp.ClientError, TimeoutError):
        return None


async def ready(replica: Replica, timeout: float = 120) -> None:
    async def ok() -> bool:
        if not replica.container.running():
            pytest.fail(f"the operator container exited:\n{replica.container.logs()[-3000:]}")
        got = await http_get(replica.probe_port, "/readyz")
        return bool(got and got[0] == 200)

    await eventually(ok, timeout, f"{replica.spec.name} /readyz", interval=0.5)


async def new_namespace(c: Client, name: str) -> str:
    from internal.client.resources import NAMESPACES

    await c.create(NAMESPACES, {"metadata": {"name": name}})
    return name


async def cluster_ready(c: Client, ns: str, name: str, workers: int, timeout: float = 120) -> None:
    async def check() -> bool:
        rc = await c.get(RAYCLUSTERS, name, ns)
        st = rc.get("status") or {}
        return st.get("state") == "ready" and st.get("readyWorkerReplicas", 0) == workers

    await eventually(check, timeout, f"RayCluster {ns}/{name} ready with {workers} workers", interval=0.5)


async def lease_holder(c: Client) -> str | None:
    """Who holds the operator's leader Lease (None: no Lease or no holder yet)."""
    try:
        lease = await c.get(LEASES, LEASE, INSTALL_NAMESPACE)
    except NotFound:
        return None
    return (lease.get("spec") or {}).get("holderIdentity") or None


async def job_state(c: Client, ns: str, name: str, want: str, timeout: float = 120) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        st = (await c.get(RAYJOBS, name, ns)).get("status") or {}
        return st if st.get("jobDeploymentStatus") == want else None

    return await eventually(reached, timeout, f"RayJob {ns}/{name} {want}", interval=0.5)


async def serve_head(inst: Installed, c: Client, fake: FakeDashboard, ns: str, name: str) -> Any:
    """Once the RayJob names its cluster's dashboard, make that name answer with a fake head."""

    async def url() -> str | None:
        st = (await c.get(RAYJOBS, name, ns)).get("status") or {}
        return st.get("dashboardURL") and st.get("rayClusterName") and st["dashboardURL"]

    dashboard = await eventually(url, 120, f"RayJob {ns}/{name} dashboardURL", interval=0.5)
    host, _, port = dashboard.removeprefix("http://").partition(":")
    ip = inst.map_name(host)
    st = (await c.get(RAYJOBS, name, ns))["status"]
    return await fake.cluster_on_address(st["rayClusterName"], ip, int(port or 8265))


# ---- default install ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    with installed("default", tmp_path_factory.mktemp("deploy-default")) as inst:
        yield inst


async def test_probes_metrics_and_leader_lease_on_the_services_ports(default_install: Installed) -> None:
    inst = default_install
    (replica,) = inst.replicas
    await ready(replica)
    # The Service targets the container ports that the Deployment's flags bind (rewritten to loopback).
    svc = next(o for o in inst.objects if o["kind"] == "Service" and o["metadata"]["name"] == "kuberay-operator")
    target = svc["spec"]["ports"][0]["targetPort"]
    assert replica.spec.binds["--metrics-addr"].endswith(f":{replica.spec.ports[target]}")
    assert replica.spec.binds["--health-probe-bind-address"].endswith(f":{replica.spec.ports['health']}")
    assert (await http_get(replica.probe_port, "/healthz") or (0, ""))[0] == 200
    status, body = await http_get(replica.metrics_port, "/metrics") or (0, "")
    assert status == 200 and "controller_runtime_reconcile_total" in body and "workqueue_depth" in body
    async with admin(inst.plane) as c:
        leader = await eventually(lambda: lease_holder(c), 60, "the leader Lease")
        assert leader.startswith(replica.spec.name)


async def test_raycluster_in_another_namespace_becomes_ready_and_scales(default_install: Installed) -> None:
    inst = default_install
    await ready(inst.replicas[0])
    async with admin(inst.plane) as c:
        ns = await new_namespace(c, "team-a")
        rc = copy.deepcopy(CLUSTER)
        rc["metadata"]["namespace"] = ns
        await c.create(RAYCLUSTERS, rc, ns)
        await cluster_ready(c, ns, "rc", 1)
        await c.patch(
            RAYCLUSTERS,
            "rc",
            [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 3}],
            ns,
            patch_type="json",
        )
        await cluster_ready(c, ns, "rc", 3)
        pods = (await c.list(PODS, ns, label_selector="ray.io/cluster=rc"))["items"]
        assert sorted(p["metadata"]["labels"]["ray.io/node-type"] for p in pods) == [
            "head",
            "worker",
            "worker",
            "worker",
        ]


async def test_k8s_job_mode_rayjob_completes_and_its_cluster_is_deleted(default_install: Installed) -> None:
    inst = default_install
    await ready(inst.replicas[0])
    async with admin(inst.plane) as c, FakeDashboard() as fake:
        ns = await new_namespace(c, "team-b")
        job = copy.deepcopy(RAYJOB)
        job["metadata"]["namespace"] = ns
        await c.create(RAYJOBS, job, ns)
        head = await serve_head(inst, c, fake, ns, "job")
        st = await job_state(c, ns, "job", "Running")
        head.add_job(st["jobId"], status="SUCCEEDED", log_text="done\n")  # the submitter's part, on the fake head
        st = await job_state(c, ns, "job", "Complete")
        assert st["jobStatus"] == "SUCCEEDED"
        # The containerised operator reached the head by its Service's DNS name (mapped to the fake).
        assert head.calls["get"] >= 1 and head.calls["logs"] >= 1, head.calls
        await eventually(lambda: gone(c, RAYCLUSTERS, st["rayClusterName"], ns), 60, "the RayCluster to be deleted")
        cm = await c.get(CONFIGMAPS, "job-driver-log", ns)  # kept after the cluster is gone
        assert "done" in cm["data"]["driver.log"]


async def test_deletion_rules_and_delete_self(default_install: Installed) -> None:
    inst = default_install
    await ready(inst.replicas[0])
    rules = [
        {"policy": "DeleteWorkers", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 0}},
        {"policy": "DeleteSelf", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 5}},
    ]
    async with admin(inst.plane) as c, FakeDashboard() as fake:
        ns = await new_namespace(c, "team-c")
        job = copy.deepcopy(RAYJOB)
        job["metadata"] = {"name": "rules", "namespace": ns}
        job["spec"]["shutdownAfterJobFinishes"] = False
        job["spec"]["deletionStrategy"] = {"deletionRules": rules}
        await c.create(RAYJOBS, job, ns)
        head = await serve_head(inst, c, fake, ns, "rules")
        st = await job_state(c, ns, "rules", "Running")
        head.add_job(st["jobId"], status="SUCCEEDED")
        await job_state(c, ns, "rules", "Complete")
        await eventually(lambda: gone(c, RAYJOBS, "rules", ns), 90, "DeleteSelf to delete the RayJob")


async def test_suspended_rayjob_creates_nothing_until_resumed(default_install: Installed) -> None:
    inst = default_install
    await ready(inst.replicas[0])
    async with admin(inst.plane) as c, FakeDashboard() as fake:
        ns = await new_namespace(c, "team-d")
        job = copy.deepcopy(RAYJOB)
        job["metadata"] = {"name": "held", "namespace": ns}
        job["spec"]["suspend"] = True
        await c.create(RAYJOBS, job, ns)
        await job_state(c, ns, "held", "Suspended")
        assert (await c.list(RAYCLUSTERS, ns))["items"] == []
        await c.patch(RAYJOBS, "held", {"spec": {"suspend": False}}, ns)
        head = await serve_head(inst, c, fake, ns, "held")
        st = await job_state(c, ns, "held", "Running")
        head.add_job(st["jobId"], status="SUCCEEDED")
        st = await job_state(c, ns, "held", "Complete")
        await eventually(lambda: gone(c, RAYCLUSTERS, st["rayClusterName"], ns), 60, "the RayCluster to be deleted")


# ---- overlays --------------------------------------------------------------------------------------


async def test_single_namespace_overlay_manages_only_its_namespace(tmp_path: Path) -> None:
    with installed("overlays/single-namespace", tmp_path) as inst:
        kinds = {(o["kind"], o["metadata"]["name"]) for o in inst.objects}
        assert ("ClusterRole", "kuberay-operator") not in kinds and ("Role", "kuberay-operator") in kinds
        await ready(inst.replicas[0])
        async with admin(inst.plane) as c:
            other = await new_namespace(c, "elsewhere")
            for ns in (INSTALL_NAMESPACE, other):
                rc = copy.deepcopy(CLUSTER)
                rc["metadata"]["namespace"] = ns
                await c.create(RAYCLUSTERS, rc, ns)
            await cluster_ready(c, INSTALL_NAMESPACE, "rc", 1)
            # The cluster outside the watched namespace is left alone (sampled over a window).
            for _ in range(10):
                assert (await c.list(PODS, other))["items"] == []
                assert not (await c.get(RAYCLUSTERS, "rc", other)).get("status")
                await asyncio.sleep(0.5)


async def test_ha_overlay_one_leader_and_failover_when_it_is_killed(tmp_path: Path) -> None:
    with installed("overlays/ha", tmp_path, replicas=2) as inst:
        assert inst.deployment["spec"]["replicas"] == 2
        async with admin(inst.plane) as c:
            first = await eventually(lambda: lease_holder(c), 90, "a leader")
            leader = next(r for r in inst.replicas if first.startswith(r.spec.name))
            standby = next(r for r in inst.replicas if r is not leader)
            ns = await new_namespace(c, "team-ha")
            rc = copy.deepcopy(CLUSTER)
            rc["metadata"]["namespace"] = ns
            await c.create(RAYCLUSTERS, rc, ns)
            await cluster_ready(c, ns, "rc", 1)
            leader.container.kill()

            async def taken_over() -> bool:
                h = await lease_holder(c)
                return bool(h and h.startswith(standby.spec.name))

            await eventually(taken_over, 60, "the standby to take the lease")
            await c.patch(
                RAYCLUSTERS,
                "rc",
                [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2}],
                ns,
                patch_type="json",
            )
            await cluster_ready(c, ns, "rc", 2)


# ---- the Helm chart ----------------------------------------------------------------------------------


async def test_helm_install_runs_the_operator_under_the_charts_rbac(tmp_path: Path) -> None:
    """``helm install`` of helm-chart/kuberay-operator with the default values (the image set): Helm
    installs the CRDs, then the chart's ServiceAccount, roles and Deployment; the Deployment's pod runs
    upstream's ``/manager`` command with the chart's flags, as that ServiceAccount, and manages a
    RayCluster in another namespace with no request refused."""
    repo, _, tag = image_ref().rpartition(":")

    def how(plane: Any) -> list[dict[str, Any]]:
        return helm_install(plane.kubeconfig, INSTALL_NAMESPACE, f"image.repository={repo}", f"image.tag={tag}")

    with installed("helm", tmp_path, how=how) as inst:
        kinds = {(o["kind"], o["metadata"]["name"]) for o in inst.objects}
        assert {("ClusterRole", "kuberay-operator"), ("Role", "kuberay-operator-leader-election")} <= kinds
        (replica,) = inst.replicas
        assert replica.spec.command == ["/manager"] and "--enable-metrics=true" in replica.spec.args
        await ready(replica)
        async with admin(inst.plane) as c:
            leader = await eventually(lambda: lease_holder(c), 60, "the leader Lease")
            assert leader.startswith(replica.spec.name)
            ns = await new_namespace(c, "team-helm")
            rc = copy.deepcopy(CLUSTER)
            rc["metadata"]["namespace"] = ns
            await c.create(RAYCLUSTERS, rc, ns)
            await cluster_ready(c, ns, "rc", 1)
        # The chart's probes and Service scrape /metrics on the http port, where the operator binds by default.
        assert replica.spec.binds["--metrics-addr"].endswith(f":{replica.spec.ports['http']}")
        status, body = await http_get(replica.metrics_port, "/metrics") or (0, "")
        assert status == 200 and "kuberay_cluster_info" in body  # --enable-metrics=true, from the chart
