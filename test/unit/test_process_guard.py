"""The process-tree guard sees what the run's child processes do with sockets, not only this process.

Each test starts a small child that holds a socket, asks the session's own guard to look, and checks
that it names the address and the process. Nothing here sends a packet off loopback: binding to the
machine's own address sends nothing, and the connecting test runs inside a network namespace it creates.
Each test drains what it provoked, so the autouse check does not fail it (any other test would fail).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.proc_guard import ProcessTreeGuard, parse_net_table, process_tree

SIOCGIFADDR = 0x8915


def machine_ipv4_addresses() -> list[str]:
    """This machine's own non-loopback IPv4 addresses, read from the interfaces (no packet is sent)."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                raw = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address on this interface
                continue
            addr = socket.inet_ntoa(raw[20:24])
            if not ipaddress.ip_address(addr).is_loopback:
                found.append(addr)
    return found


@contextlib.contextmanager
def child(code: str, argv_prefix: tuple[str, ...] = ()) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A Python child running ``code``; it prints one line when its socket is in place, then waits."""
    proc = subprocess.Popen(
        [*argv_prefix, sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line:
            pytest.fail(f"the child did not start: {proc.stderr.read() if proc.stderr else ''}")
        yield proc, line
    finally:
        proc.kill()
        proc.wait(timeout=10)


LISTEN_ON = """
    import socket, sys
    s = socket.socket()
    s.bind((sys.argv[1], 0))
    s.listen()
    print(s.getsockname()[1], flush=True)
    sys.stdin.read()
"""


def drain(guard: ProcessTreeGuard) -> None:
    guard.scan()
    guard.take()


def test_child_listening_on_the_machines_routable_address_fails(process_guard: ProcessTreeGuard) -> None:
    addrs = machine_ipv4_addresses()
    if not addrs:
        pytest.skip("this machine has no non-loopback IPv4 address to bind")
    code = LISTEN_ON.replace("sys.argv[1]", repr(addrs[0]))
    with child(code) as (proc, port):
        found = process_guard.scan()
        mine = [v for v in found if v.pid == proc.pid]
        assert [(v.state, v.what, v.address) for v in mine] == [("LISTEN", "bound to", f"{addrs[0]}:{port}")]
        assert "python" in mine[0].process
        msg = process_guard.failure_message()
        assert msg is not None and f"(pid {proc.pid}): tcp LISTEN bound to {addrs[0]}:{port}" in msg
    drain(process_guard)


def test_child_listening_on_every_address_fails(process_guard: ProcessTreeGuard) -> None:
    code = LISTEN_ON.replace("sys.argv[1]", "'0.0.0.0'")
    with child(code) as (proc, port):
        mine = [v for v in process_guard.scan() if v.pid == proc.pid]
        assert [(v.what, v.address) for v in mine] == [("bound to", f"0.0.0.0:{port}")]
    drain(process_guard)


def test_loopback_child_is_not_reported(process_guard: ProcessTreeGuard) -> None:
    code = """
        import socket, sys
        s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
        c = socket.create_connection(s.getsockname(), timeout=5)
        a, _ = s.accept()
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind(("::1", 0))
        print("ready", flush=True)
        sys.stdin.read()
    """
    with child(code) as (proc, _):
        assert [v for v in process_guard.scan() if v.pid == proc.pid] == []


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare(1)")
def test_child_connecting_to_a_non_loopback_address_fails_and_allow_admits_the_projects_network(
    process_guard: ProcessTreeGuard,
) -> None:
    # A network namespace of the test's own, with 198.18.0.1 on its loopback device: the connection is
    # real, but it never leaves the namespace.
    code = """
        import socket, subprocess, sys
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "addr", "add", "198.18.0.1/32", "dev", "lo"], check=True)
        s = socket.socket(); s.bind(("198.18.0.1", 0)); s.listen()
        c = socket.create_connection(s.getsockname(), timeout=5)
        a, _ = s.accept()
        print(s.getsockname()[1], flush=True)
        sys.stdin.read()
    """
    with child(code, ("unshare", "--net")) as (proc, port):
        inner = process_tree(proc.pid)  # unshare, and the python it runs in the new namespace
        found = [v for v in process_guard.scan() if v.pid in inner]
        peers = {v.address for v in found if v.what == "peer" and v.state == "ESTABLISHED"}
        assert f"198.18.0.1:{port}" in peers, found
        assert any(v.what == "bound to" and v.state == "LISTEN" for v in found), found
        process_guard.take()

        guard = ProcessTreeGuard(root=proc.pid)
        guard.allow("198.18.0.0/15")  # as the local node will for the pod network it creates
        assert guard.scan() == []
    drain(process_guard)


def test_daemonised_grandchild_is_still_watched(process_guard: ProcessTreeGuard) -> None:
    # The child forks and exits at once: the grandchild is re-parented out of pytest's tree and is found
    # only through the run's marker in its environment.
    code = """
        import os, socket, sys
        r, w = os.pipe()
        if os.fork():
            os.close(w)
            print(os.read(r, 64).decode(), flush=True)
            os._exit(0)
        os.setsid()
        s = socket.socket(); s.bind(("0.0.0.0", 0)); s.listen()
        os.write(w, f"{os.getpid()} {s.getsockname()[1]}".encode())
        import time
        while True:
            time.sleep(60)
    """
    with child(code) as (proc, line):
        grandchild, port = (int(x) for x in line.split())
        try:
            proc.wait(timeout=10)
            found = [v for v in process_guard.scan() if v.pid == grandchild]
            assert [v.address for v in found] == [f"0.0.0.0:{port}"]
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(grandchild, 9)
    drain(process_guard)


def test_proc_net_rows_are_decoded() -> None:
    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    tail = "00000000:00000000 00:00000000 00000000     0        0"
    v4 = (
        head + f"   0: 0100007F:1F90 00000000:0000 0A {tail} 1234 1\n   1: 020200C0:0050 0100007F:1F90 01 {tail} 99 1\n"
    )
    assert [(str(r.local[0]), r.local[1], str(r.remote[0]), r.state, r.inode) for r in parse_net_table(v4, "tcp")] == [
        ("127.0.0.1", 8080, "0.0.0.0", "LISTEN", 1234),
        ("192.0.2.2", 80, "127.0.0.1", "ESTABLISHED", 99),
    ]
    loop6, mapped = "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"
    (row,) = parse_net_table(head + f"   0: {loop6}:1F90 {mapped}:0050 01 {tail} 7 1\n", "tcp6")
    assert (str(row.local[0]), str(row.remote[0]), row.inode) == ("::1", "127.0.0.1", 7)  # v4-mapped shown as v4


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare(1)")
def test_wildcard_listener_inside_a_network_namespace_of_the_run_is_not_reported(
    process_guard: ProcessTreeGuard,
) -> None:
    # In a namespace of the run's own (a pod's), 0.0.0.0 means that namespace's addresses only.
    code = LISTEN_ON.replace("sys.argv[1]", "'0.0.0.0'")
    with child(code, ("unshare", "--net")) as (proc, _):
        inner = process_tree(proc.pid)
        assert [v for v in process_guard.scan() if v.pid in inner] == []


def test_a_python_environment_under_tmp_is_mounted_back_into_pods(tmp_path: Path) -> None:
    from internal.controlplane.localnode.sandbox import environment_mounts

    # A checkout under /tmp (as CI's clone) would be hidden by the pod's private /tmp.
    venv = tmp_path / "checkout" / ".venv"
    (venv / "bin").mkdir(parents=True)
    [mount] = environment_mounts(venv / "bin")
    assert (mount.target, mount.source, mount.read_only) == (str(venv.resolve()), venv.resolve(), True)
    assert environment_mounts(Path("/usr/bin")) == []
