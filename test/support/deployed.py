"""The operator installed as a user installs it, and its Deployment's container run as a kubelet would.

``install`` runs ``kubectl apply --server-side -k <overlay>`` against a plane with the admin kubeconfig.
``pod_spec`` then reads the applied Deployment back from the apiserver and prepares what a kubelet
would give its container: the command and args with ``$(VAR)`` references expanded, the env (values
and the downward-API fields an operator uses), and the ServiceAccount volume (a token from the
TokenRequest API, ``ca.crt`` and ``namespace``). The container is run from the built image by the caller
(support/image.py), with ``--network host``.

One thing differs from a kubelet, and the caller says so: with the host's network, the Deployment's
``:8080``/``:8082`` (every address, fixed ports) would bind the machine's routable addresses and
collide between replicas, so each replica's bind addresses are rewritten to ``127.0.0.1:<free port>``;
``service_ports`` checks that those flags are the ports the Service targets.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from internal.controlplane.localnode.kubelet import expand
from support.rbac_audit import request_token

REPO = Path(__file__).resolve().parents[2]
KUBECTL_TIMEOUT = 120
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
#: the operator's listening flags and their defaults (its Configuration's metricsAddr and probeAddr)
BIND_FLAGS = {"--metrics-addr": ":8080", "--health-probe-bind-address": ":8082"}


def kubectl(plane: Any, *args: str) -> str:
    """Run the machine's kubectl (with its built-in kustomize) as admin on ``plane``."""
    res = subprocess.run(
        ["kubectl", f"--kubeconfig={plane.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=KUBECTL_TIMEOUT,
        check=False,
    )
    if res.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    return res.stdout


def install(plane: Any, overlay: Path) -> list[dict[str, Any]]:
    """``kubectl apply --server-side -k overlay``, exactly as the install docs say; the applied objects."""
    out = kubectl(plane, "apply", "--server-side", "-k", str(overlay), "-o", "yaml")
    doc = yaml.safe_load(out)
    return list(doc.get("items") or [doc])


def _field_ref(path: str, pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    known = {
        "metadata.namespace": meta["namespace"],
        "metadata.name": meta["name"],
        "spec.nodeName": pod["spec"].get("nodeName", "local"),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path not in known:
        raise AssertionError(f"fieldRef {path} is not emulated by the deploy tier")
    return known[path]


@dataclass
class PodSpec:
    """What the kubelet would run for one replica of the operator's Deployment."""

    name: str
    namespace: str
    service_account: str
    command: list[str]
    args: list[str]
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)  # container port name -> number
    binds: dict[str, str] = field(default_factory=dict)  # bind flag -> loopback address used instead


def pod_spec(deploy: dict[str, Any], replica: str, free_port: Any) -> PodSpec:
    tmpl = deploy["spec"]["template"]
    (container,) = [c for c in tmpl["spec"]["containers"] if c["name"] == "kuberay-operator"]
    pod = {
        "metadata": {"name": f"{deploy['metadata']['name']}-{replica}", "namespace": deploy["metadata"]["namespace"]},
        "spec": tmpl["spec"],
    }
    env: dict[str, str] = {}
    for e in container.get("env") or ():
        if "value" in e:
            env[e["name"]] = expand(e["value"], env)
        elif (e.get("valueFrom") or {}).get("fieldRef"):
            env[e["name"]] = _field_ref(e["valueFrom"]["fieldRef"]["fieldPath"], pod)
        else:
            raise AssertionError(f"env {e['name']}: only values and fieldRefs are emulated")
    args = [expand(a, env) for a in container.get("args") or ()]
    binds: dict[str, str] = {}
    rewritten = []
    for a in args:
        flag, _, value = a.partition("=")
        if flag in BIND_FLAGS and value not in ("0", ""):
            binds[flag] = value
            a = f"{flag}=127.0.0.1:{free_port()}"
        rewritten.append(a)
    if "--config" not in args:
        # A flag left out binds the operator's default address (Helm's chart sets neither).
        for flag, default in BIND_FLAGS.items():
            if last_flag(args, flag) is None:
                binds[flag] = default
                rewritten.append(f"{flag}=127.0.0.1:{free_port()}")
    return PodSpec(
        name=pod["metadata"]["name"],
        namespace=pod["metadata"]["namespace"],
        service_account=tmpl["spec"].get("serviceAccountName", "default"),
        command=[expand(c, env) for c in container.get("command") or ()],
        args=rewritten,
        env=env,
        ports={p["name"]: p["containerPort"] for p in container.get("ports") or () if p.get("name")},
        binds=binds,
    )


def last_flag(args: list[str], flag: str) -> str | None:
    """The value of the last ``flag=value`` in ``args`` (the last occurrence wins, as for Go flags)."""
    found = None
    for a in args:
        name, sep, value = a.partition("=")
        if name == flag and sep:
            found = value
    return found


def service_account_volume(plane: Any, namespace: str, name: str, dest: Path) -> Path:
    """The projected ServiceAccount volume a kubelet mounts: a bound token, the cluster CA, the
    namespace; readable by the image's non-root user (0644 files, as the kubelet's default mode)."""
    token = request_token(plane, namespace, name)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "token").write_text(token)
    (dest / "ca.crt").write_bytes(Path(plane.certs.ca_crt).read_bytes())
    (dest / "namespace").write_text(namespace)
    for f in dest.iterdir():
        f.chmod(0o644)
    dest.chmod(0o755)
    return dest


def in_cluster_env(plane: Any) -> dict[str, str]:
    """The variables a kubelet sets for the ``kubernetes`` Service, pointing at the loopback apiserver."""
    host, _, port = plane.server.removeprefix("https://").rpartition(":")
    return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port, "KUBERNETES_SERVICE_PORT_HTTPS": port}


def check_hosts_file(path: Path) -> None:
    """/etc/hosts for the container: loopback names, plus entries the test adds for head Services."""
    if not path.exists():
        path.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        os.chmod(path, 0o644)
