"""``python -m internal.controlplane.localnode --kubeconfig K``: run the local node until SIGTERM/SIGINT.

The control plane starts it as one of its processes (``ControlPlane.start_sim(node="local")``). On a
stop it ends every pod's processes (SIGTERM, then SIGKILL after the grace period), removes the pods'
network namespaces and its bridge, and deletes its Node.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from internal.client import Client, api_client, load_configuration
from internal.controlplane.localnode.kubelet import LocalNode, NodeOptions
from internal.controlplane.localnode.sandbox import PodNetwork


async def _main(args: argparse.Namespace) -> None:
    # Sandbox set-up runs in threads (ip, nft, mounts): more than the default few, so that many pods
    # starting or stopping at once never queue behind each other.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=32))
    cfg = await load_configuration(args.kubeconfig)
    client = Client(api_client(cfg, 32), qps=200, burst=400, user_agent="kuberay-py-local-node")
    node = LocalNode(
        client,
        PodNetwork(bridge=args.bridge),
        NodeOptions(
            name=args.name, work_dir=Path(args.work_dir), bin_dir=Path(args.bin_dir), api_server=args.api_server
        ),
    )
    task = asyncio.create_task(node.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await client.close()


def main() -> int:
    if sys.argv[1:2] == ["exec"]:
        from internal.controlplane.localnode.podexec import main as exec_main

        return exec_main(sys.argv[2:])
    p = argparse.ArgumentParser(prog="local-node", description=__doc__)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--name", default="local-node-0")
    p.add_argument("--work-dir", required=True)
    p.add_argument("--bin-dir", default=str(Path(sys.executable).parent), help="prepended to containers' PATH")
    p.add_argument("--bridge", default="krpy0")
    p.add_argument("--api-server", default="", help="host:port of kube-apiserver, offered to pods on the gateway")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
