"""``python -m internal.controlplane.localnode exec [-n NS] [-c CONTAINER] POD -- COMMAND...``: run a
command inside a running container of the local node, as ``kubectl exec`` would (which the local node
does not serve): in the container's network, mount and UTS namespaces, with its environment and
working directory. Root only, on the machine that runs the node.

The container is found through the pod's status: the local node reports each running container as
``containerID: host-process://<pid>``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from internal.controlplane.localnode.kubelet import CONTAINER_ID_SCHEME

_KUBECTL_TIMEOUT = 30.0


class ExecError(Exception):
    pass


def _pod(kubeconfig: str | None, namespace: str, name: str) -> dict[str, object]:
    args = ["kubectl", *([f"--kubeconfig={kubeconfig}"] if kubeconfig else []), "-n", namespace]
    try:
        out = subprocess.run(
            [*args, "get", "pod", name, "-o", "json"],
            capture_output=True,
            text=True,
            timeout=_KUBECTL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ExecError(f"kubectl get pod {namespace}/{name}: {e}") from None
    if out.returncode != 0:
        raise ExecError(out.stderr.strip() or f"kubectl get pod {namespace}/{name} failed")
    pod: dict[str, object] = json.loads(out.stdout)
    return pod


def container_pid(pod: dict[str, object], container: str | None) -> int:
    """The pid of the container's process (the first container when none is named)."""
    status = pod.get("status")
    statuses = (status.get("containerStatuses") if isinstance(status, dict) else None) or []
    meta = pod.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else "?"
    if not statuses:
        raise ExecError(f"pod {name} has no running containers")
    chosen = next((c for c in statuses if c.get("name") == container), None) if container else statuses[0]
    if chosen is None:
        names = ", ".join(str(c.get("name")) for c in statuses)
        raise ExecError(f"container {container} is not valid for pod {name}: choose one of {names}")
    cid = str(chosen.get("containerID") or "")
    if "running" not in (chosen.get("state") or {}) or not cid.startswith(CONTAINER_ID_SCHEME):
        raise ExecError(f"container {chosen.get('name')} of pod {name} is not running on the local node")
    pid = int(cid.removeprefix(CONTAINER_ID_SCHEME))
    if not Path(f"/proc/{pid}").exists():
        raise ExecError(f"container {chosen.get('name')} of pod {name}: process {pid} is gone")
    return pid


def container_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="local-node exec", description=__doc__)
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("-c", "--container")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p.add_argument("pod")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("local-node exec: give the command after --", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("local-node exec: entering a pod's namespaces needs root", file=sys.stderr)
        return 1
    nsenter = shutil.which("nsenter")
    if nsenter is None:
        print("local-node exec: nsenter (util-linux) is not installed", file=sys.stderr)
        return 1
    try:
        pid = container_pid(_pod(args.kubeconfig, args.namespace, args.pod), args.container)
        env = container_env(pid)
    except (ExecError, OSError, ValueError) as e:
        print(f"local-node exec: {e}", file=sys.stderr)
        return 1
    # The container's namespaces, environment and working directory; stdio stay the caller's.
    os.execve(nsenter, [nsenter, f"--target={pid}", "--net", "--mount", "--uts", "--wd", "--", *command], env)
