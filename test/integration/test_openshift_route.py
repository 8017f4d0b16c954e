"""The dashboard on OpenShift (raycluster-extensions.md §2.4): the operator process, as users run it and
under the shipped RBAC, detects OpenShift at start-up by its API groups (here: OpenShift's Route CRD,
from the openshift/api Go module upstream KubeRay pins, installed on a plane of the test's own, since
it flips every operator on that plane into Route mode) and exposes ``enableIngress`` through a Route;
``USE_INGRESS_ON_OPENSHIFT=true`` keeps the Ingress."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.gomod import go_module_dir
from support.rbac_audit import install_operator_identity
from support.wait import eventually

from internal.client import Client, ClientMetrics, api_client, load_configuration
from internal.client.resources import INGRESSES, RAYCLUSTERS, ROUTES
from internal.controlplane.plane import free_port
from internal.metrics import new_registry

REPO = Path(__file__).resolve().parents[2]
#: The openshift/api version upstream KubeRay's go.mod requires (its Route CRD).
OPENSHIFT_API_MODULE = "github.com/openshift/api@v0.0.0-20251214014457-bfa868a22401"
NAMESPACE = "team-a"


def route_crd() -> Path:
    return go_module_dir(OPENSHIFT_API_MODULE) / "route" / "v1" / "zz_generated.crd-manifests" / "routes.crd.yaml"


@pytest.fixture
def openshift_plane(private_plane: Any, tmp_path: Path) -> Any:
    private_plane.install_crds([*sorted((REPO / "config" / "crd" / "bases").glob("*.yaml")), route_crd()])
    private_plane.operator_kubeconfig = install_operator_identity(private_plane, tmp_path)
    r = private_plane.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    assert r.status == 201, r.body
    return private_plane


@pytest.fixture
def operator(openshift_plane: Any, tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = tmp_path / f"operator-{len(procs)}.log"
        metrics_port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "cmd" / "main.py"),
                f"--kubeconfig={openshift_plane.operator_kubeconfig}",
                "--enable-leader-election=false",
                f"--metrics-addr=127.0.0.1:{metrics_port}",
                f"--health-probe-bind-address=127.0.0.1:{free_port()}",
                "--log-stdout-encoder=console",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "OTEL_TRACES_EXPORTER": "none", **(env or {})},
        )
        procs.append(proc)
        proc.metrics_port = metrics_port  # type: ignore[attr-defined]
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def reconciles(port: int) -> float:
    """The operator's controller_runtime_reconcile_total for the RayCluster controller."""
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(5)) as r,
    ):
        body = await r.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("controller_runtime_reconcile_total{") and 'controller="raycluster"' in line
    )


async def _more(port: int, than: float) -> bool:
    return await reconciles(port) > than


async def admin(plane: Any) -> Client:
    cfg = await load_configuration(str(plane.kubeconfig))
    return Client(api_client(cfg, 4), metrics=ClientMetrics.register(new_registry()))


def cluster(name: str, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations},
        "spec": {
            "headGroupSpec": {
                "enableIngress": True,
                "rayStartParams": {},
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "ray-head",
                                "image": "rayproject/ray:2.52.0",
                                "ports": [{"name": "dashboard", "containerPort": 8300}],
                            }
                        ]
                    }
                },
            }
        },
    }


async def test_on_openshift_the_dashboard_is_a_route_never_updated(openshift_plane: Any, operator: Any) -> None:
    proc = operator()
    c = await admin(openshift_plane)
    try:
        created = await c.create(RAYCLUSTERS, cluster("dash", **{"kubernetes.io/ingress.class": "nginx", "team": "a"}))

        async def route() -> dict[str, Any] | None:
            items = (await c.list(ROUTES, NAMESPACE))["items"]
            return items[0] if items else None

        got = await eventually(route, 60, "the Route")
        assert proc.poll() is None
        assert got["metadata"]["name"] == "dash-head-route"
        assert got["metadata"]["labels"] == {
            "ray.io/cluster": "dash",
            "ray.io/identifier": "dash-head",
            "app.kubernetes.io/name": "kuberay",
            "app.kubernetes.io/created-by": "kuberay-operator",
        }
        # every annotation, the ingress class too (the Ingress drops it)
        assert got["metadata"]["annotations"] == {"kubernetes.io/ingress.class": "nginx", "team": "a"}
        assert got["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
        assert got["spec"]["to"] == {"kind": "Service", "name": "dash-head-svc", "weight": 100}
        assert got["spec"]["port"] == {"targetPort": 8300}
        assert got["spec"]["wildcardPolicy"] == "None"
        assert (await c.list(INGRESSES, NAMESPACE))["items"] == []

        # Never updated: a hand edit stays through later passes (an annotation change brings one at once,
        # seen in the operator's reconcile count).
        got["spec"]["port"] = {"targetPort": 9999}
        await c.update(ROUTES, got)
        before = await reconciles(proc.metrics_port)
        await c.patch(RAYCLUSTERS, "dash", {"metadata": {"annotations": {"team": "b"}}}, NAMESPACE)
        await eventually(lambda: _more(proc.metrics_port, before), 60, "a pass after the annotation change")
        live = await c.get(ROUTES, "dash-head-route", NAMESPACE)
        assert live["spec"]["port"] == {"targetPort": 9999}
        assert live["metadata"]["annotations"]["team"] == "a"
    finally:
        await c.close()


async def test_use_ingress_on_openshift_keeps_the_ingress(openshift_plane: Any, operator: Any) -> None:
    proc = operator({"USE_INGRESS_ON_OPENSHIFT": "True"})  # compared lower-cased, as upstream
    c = await admin(openshift_plane)
    try:
        await c.create(RAYCLUSTERS, cluster("dash"))

        async def ingress() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = (await c.list(INGRESSES, NAMESPACE))["items"]
            return items

        [got] = await eventually(ingress, 60, "the Ingress")
        assert proc.poll() is None
        assert got["metadata"]["name"] == "dash-head-ingress"
        assert (await c.list(ROUTES, NAMESPACE))["items"] == []
    finally:
        await c.close()
