"""The validating webhooks (ENABLE_WEBHOOKS=true) called by a real kube-apiserver: the operator serves
them over HTTPS on loopback with a certificate from a directory, a ValidatingWebhookConfiguration points
the API server at it (``clientConfig.url`` with the CA as ``caBundle``, limited to the test's namespace),
and what a user sees is kubectl's error: ``admission webhook "<name>" denied the request: <message>``.
The operator runs as the shipped ServiceAccount: the webhooks need no RBAC."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.operator import running_operator
from support.wait import eventually

from internal.client import Client, Invalid, NotFound, Resource
from internal.client.resources import RAYCLUSTERS, RAYJOBS, RAYSERVICES
from internal.controlplane.certs import generate
from internal.webhook import WebhookServer
from pkg.webhooks import v1 as webhooks_v1

pytestmark = pytest.mark.t2

VWCS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    "ValidatingWebhookConfiguration",
    namespaced=False,
)


def _issue(into: Path, scratch: Path) -> bytes:
    """A new CA and a serving pair for 127.0.0.1 in ``into`` (tls.crt, tls.key); returns the CA's PEM."""
    certs = generate(scratch)
    into.mkdir(parents=True, exist_ok=True)
    # written beside, then renamed: the server never reads a half-written pair
    shutil.copy(certs.serving_key, into / "tls.key.new")
    shutil.copy(certs.serving_crt, into / "tls.crt.new")
    (into / "tls.key.new").replace(into / "tls.key")
    (into / "tls.crt.new").replace(into / "tls.crt")
    return certs.ca_crt.read_bytes()


def _configuration(name: str, namespace: str, port: int, ca: bytes) -> dict[str, Any]:
    """config/webhook/manifests.yaml as generated, pointed at the test's server and namespace."""
    (config,) = webhooks_v1.render_webhook_configuration()["manifests.yaml"]
    config["metadata"] = {"name": name}
    for hook in config["webhooks"]:
        path = hook["clientConfig"]["service"]["path"]
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": base64.b64encode(ca).decode()}
        hook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
        hook["timeoutSeconds"] = 5
    return config


def _served_serial(port: int) -> int:
    """The serial number of the certificate the server presents to a new connection."""
    import socket

    from cryptography import x509

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def _job(name: str) -> dict[str, Any]:
    return {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": name}, "spec": {"entrypoint": "true"}}


def _service(name: str) -> dict[str, Any]:
    head = {"rayStartParams": {}, "template": {"spec": {"containers": [{"name": "ray-head", "image": "ray"}]}}}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name},
        "spec": {"rayClusterConfig": {"headGroupSpec": head}},
    }


def _cluster(name: str, groups: list[str]) -> dict[str, Any]:
    spec = _service(name)["spec"]["rayClusterConfig"]
    spec["workerGroupSpecs"] = [
        {
            "groupName": g,
            "replicas": 1,
            "minReplicas": 0,
            "maxReplicas": 1,
            "rayStartParams": {},
            "template": {"spec": {"containers": [{"name": "ray-worker", "image": "ray"}]}},
        }
        for g in groups
    ]
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": name}, "spec": spec}


async def _denied(c: Client, res: Resource, obj: dict[str, Any], ns: str) -> Invalid:
    with pytest.raises(Invalid) as err:
        await c.create(res, obj, ns)
    return err.value


@contextlib.asynccontextmanager
async def webhooks_on(plane: Any, kclient: Client, namespace: str, tmp_path: Path) -> AsyncIterator[WebhookServer]:
    cert_dir = tmp_path / "serving-certs"
    ca = _issue(cert_dir, tmp_path / "ca-1")
    server = WebhookServer(host="127.0.0.1", port=0, cert_dir=cert_dir, reload_interval=0.5)
    name = f"kuberay-webhooks-{namespace}"
    async with running_operator(plane, [lambda rt: webhooks_v1.setup(rt, server)]):
        await asyncio.wait_for(server.started.wait(), 30)
        assert server.bound_port
        await kclient.create(VWCS, _configuration(name, namespace, server.bound_port, ca))
        try:
            # the API server picks a new configuration up within a moment: probe with dry runs
            async def effective() -> bool:
                try:
                    await kclient.create(RAYJOBS, _job("p" * 48), namespace, dry_run=True)
                except Invalid:
                    return True
                return False

            await eventually(effective, 30, "the webhook configuration in effect")
            yield server
        finally:
            with contextlib.suppress(NotFound):
                await kclient.delete(VWCS, name)


async def test_invalid_ray_objects_are_refused_at_admission_with_upstreams_messages(
    sim_cluster: Any, kclient: Client, namespace: str, tmp_path: Path
) -> None:
    async with webhooks_on(sim_cluster, kclient, namespace, tmp_path):
        name = "s" * 48
        err = await _denied(kclient, RAYSERVICES, _service(name), namespace)
        assert err.message == (
            'admission webhook "vrayservice.kb.io" denied the request: RayService.ray.io "' + name + '" is invalid: '
            f'metadata.name: Invalid value: "{name}": The RayService metadata is invalid: RayService name should be '
            "no more than 47 characters"
        )
        err = await _denied(kclient, RAYJOBS, _job("j" * 48), namespace)
        assert err.message.startswith('admission webhook "vrayjob.kb.io" denied the request: RayJob.ray.io "jjj')
        assert err.message.endswith("The RayJob metadata is invalid: RayJob name should be no more than 47 characters")
        err = await _denied(kclient, RAYCLUSTERS, _cluster("rc", ["a", "b", "a"]), namespace)
        assert err.message.startswith(
            'admission webhook "vraycluster.kb.io" denied the request: RayCluster.ray.io "rc" is invalid: '
            'spec.workerGroupSpecs[2]: Invalid value: {"groupName":"a","replicas":1,"minReplicas":0,'
        )
        assert err.message.endswith(": worker group names must be unique")

        # Valid objects pass; an UPDATE is checked as well (the initializing-timeout annotation).
        await kclient.create(RAYSERVICES, _service("ok"), namespace)
        await kclient.create(RAYCLUSTERS, _cluster("rc", ["a", "b"]), namespace)
        patch = {"metadata": {"annotations": {"ray.io/initializing-timeout": "-5"}}}
        with pytest.raises(Invalid) as update:
            await kclient.patch(RAYSERVICES, "ok", patch, namespace)
        assert update.value.message.endswith(
            "RayService annotations is invalid: annotation ray.io/initializing-timeout must be a positive integer "
            "(seconds), got: -5"
        )
        svc = await kclient.get(RAYSERVICES, "ok", namespace)
        assert "ray.io/initializing-timeout" not in (svc["metadata"].get("annotations") or {})
        await kclient.delete(RAYSERVICES, "ok", namespace)  # DELETE is never checked


async def test_a_rotated_certificate_is_served_without_a_restart(
    sim_cluster: Any, kclient: Client, namespace: str, tmp_path: Path
) -> None:
    """cert-manager renews the Secret in place: the server presents the new pair to new connections, and
    the API server, given the new CA as cert-manager's injector would, keeps calling it."""
    async with webhooks_on(sim_cluster, kclient, namespace, tmp_path) as server:
        port = server.bound_port
        assert port
        before = await asyncio.to_thread(_served_serial, port)
        ca = _issue(server.cert_dir, tmp_path / "ca-2")

        async def rotated() -> bool:
            return await asyncio.to_thread(_served_serial, port) != before

        await eventually(rotated, 30, "the new certificate served")
        name = f"kuberay-webhooks-{namespace}"
        config = await kclient.get(VWCS, name)
        for hook in config["webhooks"]:
            hook["clientConfig"]["caBundle"] = base64.b64encode(ca).decode()
        await kclient.update(VWCS, config)

        async def denied_again() -> bool:
            try:
                await kclient.create(RAYSERVICES, _service("t" * 48), namespace, dry_run=True)
            except Invalid as e:
                return "vrayservice.kb.io" in e.message
            except Exception:  # the API server still holds the old CA for a moment: a call error
                return False
            return False

        await eventually(denied_again, 30, "the webhook called with the new certificate")
