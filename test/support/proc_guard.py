"""A socket guard for the processes a test run starts (Ray heads, submitters, the control plane).

The in-process guard in ``test/conftest.py`` wraps ``socket.connect`` of the pytest process only; a
child such as ``ray start`` is invisible to it. This guard looks from the outside instead: it finds
the run's process tree (descendants of the pytest process, plus any process that still carries the
run's marker variable after being re-parented), maps each process's socket file descriptors to the
kernel's socket tables of its network namespace (``/proc/<pid>/net/{tcp,tcp6,udp,udp6}``) and
reports every socket whose bound address or peer is outside loopback and the networks the project
created itself (``allow``). A wildcard listener (``0.0.0.0``/``::``) counts as bound outside
loopback: it accepts connections on the machine's routable addresses.

It only reads ``/proc``; it never sends anything.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
MARKER_ENV = "KUBERAY_PY_TEST_RUN"

# /proc/net/tcp state codes (include/net/tcp_states.h)
TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SocketEntry:
    proto: str  # tcp, tcp6, udp, udp6
    state: str
    local: tuple[IPAddress, int]
    remote: tuple[IPAddress, int]
    inode: int


@dataclass(frozen=True)
class Violation:
    pid: int
    process: str
    proto: str
    state: str
    what: str  # "bound to" or "peer"
    address: str

    def __str__(self) -> str:
        return f"{self.process} (pid {self.pid}): {self.proto} {self.state} {self.what} {self.address}"


def _decode_addr(hexaddr: str) -> tuple[IPAddress, int]:
    host, port = hexaddr.split(":")
    raw = bytes.fromhex(host)
    # The kernel prints each 32-bit word in host (little-endian) order.
    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    addr: IPAddress = ipaddress.ip_address(packed)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr, int(port, 16)


def parse_net_table(text: str, proto: str) -> list[SocketEntry]:
    """Rows of ``/proc/<pid>/net/<proto>``."""
    rows = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10:
            continue
        st = cols[3]
        state = TCP_STATES.get(st, st) if proto.startswith("tcp") else ("UNCONN" if st == "07" else "ESTAB")
        rows.append(SocketEntry(proto, state, _decode_addr(cols[1]), _decode_addr(cols[2]), int(cols[9])))
    return rows


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks since boot) from ``/proc/<pid>/stat``."""
    stat = _read(PROC / str(pid) / "stat")
    if stat is None:
        return None
    try:
        fields = stat.rsplit(b")", 1)[1].split()
        return int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def process_name(pid: int) -> str:
    cmd = _read(PROC / str(pid) / "cmdline") or b""
    args = [a.decode(errors="replace") for a in cmd.split(b"\0") if a]
    if not args:
        comm = _read(PROC / str(pid) / "comm") or b"?"
        return comm.decode(errors="replace").strip()
    text = " ".join([Path(args[0]).name, *args[1:]])
    return text if len(text) <= 120 else text[:117] + "..."


def process_tree(root: int, marker: str | None = None) -> set[int]:
    """``root`` and its descendants, plus processes whose environment carries ``MARKER_ENV=marker``
    (a daemonised child is re-parented away from the tree but keeps its environment)."""
    children: dict[int, list[int]] = {}
    started: dict[int, int] = {}
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            pid = int(entry.name)
            st = _stat(pid)
            if st is not None:
                children.setdefault(st[0], []).append(pid)
                started[pid] = st[1]
    tree = _subtree(children, root)
    if marker and root in started:
        needle = f"{MARKER_ENV}={marker}".encode()
        # Only a process started after the root can carry its marker; reading every environ is slow.
        for pid in [p for p, t in started.items() if t >= started[root] and p not in tree]:
            env = _read(PROC / str(pid) / "environ")
            if env and needle in env.split(b"\0"):
                tree |= _subtree(children, pid)
    return tree


def _subtree(children: dict[int, list[int]], root: int) -> set[int]:
    tree = {root}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in tree:
                tree.add(child)
                todo.append(child)
    return tree


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        fds = os.listdir(PROC / str(pid) / "fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(PROC / str(pid) / "fd" / fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _netns(pid: int) -> int | None:
    try:
        return os.stat(PROC / str(pid) / "ns" / "net").st_ino
    except OSError:
        return None


def sockets_by_pid(
    pids: Iterable[int], namespaces: dict[int, int | None] | None = None
) -> dict[int, list[SocketEntry]]:
    """The IP sockets each process holds, from the socket tables of its own network namespace (each
    process's namespace inode goes into ``namespaces`` when given)."""
    tables: dict[int, dict[int, SocketEntry]] = {}
    found: dict[int, list[SocketEntry]] = {}
    for pid in pids:
        inodes = socket_inodes(pid)
        ns = _netns(pid) if inodes else None
        if namespaces is not None:
            namespaces[pid] = ns
        if ns is None:
            continue
        if ns not in tables:
            table: dict[int, SocketEntry] = {}
            for proto in ("tcp", "tcp6", "udp", "udp6"):
                raw = _read(PROC / str(pid) / "net" / proto)
                if raw is not None:
                    table.update((e.inode, e) for e in parse_net_table(raw.decode(), proto) if e.inode)
            tables[ns] = table
        mine = [tables[ns][i] for i in inodes if i in tables[ns]]
        if mine:
            found[pid] = mine
    return found


@dataclass
class ProcessTreeGuard:
    """Samples the run's process tree in a background thread; ``take()`` returns what it saw since."""

    root: int = field(default_factory=os.getpid)
    marker: str | None = None
    interval: float = 0.5
    allowed: list[IPNetwork] = field(default_factory=lambda: list(LOOPBACK))
    _seen: dict[tuple[int, str, str, str], Violation] = field(default_factory=dict, init=False)
    _reported: set[tuple[int, str, str, str]] = field(default_factory=set, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    errors: list[str] = field(default_factory=list, init=False)

    def allow(self, network: str) -> None:
        """Addresses of a network namespace the project created itself are allowed targets."""
        with self._lock:
            self.allowed.append(ipaddress.ip_network(network))

    def is_allowed(self, addr: IPAddress) -> bool:
        return any(addr in net for net in self.allowed if net.version == addr.version)

    def violations(
        self, entries: dict[int, list[SocketEntry]], namespaces: dict[int, int | None] | None = None
    ) -> list[Violation]:
        home = _netns(self.root)
        out = []
        for pid, socks in entries.items():
            # In a network namespace of the run's own (a pod's), the wildcard address means that
            # namespace's addresses only: the project's, not the machine's.
            private = namespaces is not None and namespaces.get(pid) not in (None, home)
            name: str | None = None
            for s in socks:
                bad: list[tuple[str, IPAddress, int]] = []
                laddr, lport = s.local
                raddr, rport = s.remote
                if s.state in ("LISTEN", "UNCONN"):
                    # Unconnected UDP and listeners: a wildcard or routable bind is reachable from outside.
                    if lport and not self.is_allowed(laddr) and not (private and laddr.is_unspecified):
                        bad.append(("bound to", laddr, lport))
                    if s.state == "UNCONN" and rport and not self.is_allowed(raddr):
                        bad.append(("peer", raddr, rport))
                else:
                    if not laddr.is_unspecified and not self.is_allowed(laddr):
                        bad.append(("bound to", laddr, lport))
                    if not raddr.is_unspecified and not self.is_allowed(raddr):
                        bad.append(("peer", raddr, rport))
                for what, addr, port in bad:
                    name = name or process_name(pid)
                    shown = f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"
                    out.append(Violation(pid, name, s.proto, s.state, what, shown))
        return out

    def scan(self) -> list[Violation]:
        """One sample of the tree; every violation is also kept for ``take()``."""
        namespaces: dict[int, int | None] = {}
        entries = sockets_by_pid(process_tree(self.root, self.marker), namespaces)
        found = self.violations(entries, namespaces)
        with self._lock:
            for v in found:
                self._seen.setdefault((v.pid, v.proto, v.what, v.address), v)
        return found

    def take(self) -> list[Violation]:
        """Violations seen since the last call (each socket reported once)."""
        with self._lock:
            new = [v for k, v in self._seen.items() if k not in self._reported]
            self._reported.update(self._seen)
        return new

    def failure_message(self) -> str | None:
        """What was seen since the last ``take()``, as a test failure message (None: nothing)."""
        problems = [str(v) for v in self.take()]
        problems += [f"the guard could not scan: {e}" for e in self.errors]
        self.errors.clear()
        if not problems:
            return None
        return "a process started by this test run used a non-loopback address:\n  " + "\n  ".join(problems)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="process-tree-socket-guard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.scan()
            except Exception as e:  # the guard must keep watching; a broken scan is reported, not hidden
                self.errors.append(f"{type(e).__name__}: {e}")
