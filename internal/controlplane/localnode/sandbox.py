"""Pod network and pod sandboxes for the local node: each pod runs as host processes in a network
namespace of its own, on a private bridge, with a private mount namespace.

Nothing here may send a packet off this machine. The bridge carries only pod veths (no physical port),
and an nftables table of the network's own drops, whatever ``net.ipv4.ip_forward`` says:

* forwarded traffic into or out of the bridge unless it both enters and leaves on the bridge (bridged
  pod-to-pod traffic with br_netfilter), so nothing from a pod is routed to another interface;
* anything the host receives from the bridge that is not IPv4 addressed to the gateway, so pods can
  reach neither the host's routable addresses nor other local networks (podman's, say).

Synchronous by design: the kubelet calls it through ``asyncio.to_thread``. Every external command has a
timeout. Needs root, ``ip`` (iproute2) and ``nft`` (nftables; ``hack/ci-tools.sh`` installs it).

Run as a script (``python -I -S sandbox.py``) this file is also the in-namespace init of ``spawn``; that
part uses only the standard library and nothing from the package.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import ipaddress
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

POD_CIDR = "198.19.0.0/16"  # RFC 2544 benchmarking range: never routed, used by nothing else here
GATEWAY = "198.19.0.1"  # the bridge's address on the host

NETNS_DIR = Path("/run/netns")
_CMD_TIMEOUT = 30.0
_KILL_TIMEOUT = 15.0
_SPAWN_TIMEOUT = 30.0
_BRIDGE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,14}")  # IFNAMSIZ 15; also a valid nft identifier part

HOSTS_HEADER = (
    "# Kubernetes-managed hosts file (kuberay-py local node).\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)
# Nothing listens on 127.0.0.53 inside a pod's network namespace: a lookup that misses /etc/hosts gets
# "connection refused" at once instead of waiting for a server that is not there.
RESOLV_CONF = "nameserver 127.0.0.53\noptions timeout:1 attempts:1\n"


# Paths every pod sees afresh: a host directory under them is hidden inside the pod.
PRIVATE_IN_POD = (Path("/tmp"), Path("/dev/shm"))


def environment_mounts(bin_dir: Path) -> list[Mount]:
    """The Python environment of ``bin_dir`` (its parent: a virtualenv) mounted back into a pod,
    read-only, when it lives under a path that pods see privately (a checkout in /tmp, as CI's)."""
    if str(bin_dir) in ("", "."):
        return []
    root = bin_dir.resolve().parent
    if any(root.is_relative_to(private) for private in PRIVATE_IN_POD):
        return [Mount(target=str(root), source=root, read_only=True)]
    return []


class SandboxError(Exception):
    """A pod network or sandbox operation failed; the message carries the failing command's output."""


def _run(args: Sequence[str], *, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        res = subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=_CMD_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SandboxError(f"{' '.join(args)}: {e}") from e
    if check and res.returncode != 0:
        raise SandboxError(f"{' '.join(args)} exited {res.returncode}: {(res.stderr or res.stdout).strip()}")
    return res


def _ip_json(*args: str) -> list[dict[str, object]]:
    out = _run(["ip", "-j", *args]).stdout.strip()
    return list(json.loads(out)) if out else []


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _disable_ipv6(dev: str) -> None:
    # Pods talk IPv4; without an IPv6 address on the host side, nothing v6 reaches the host from a pod.
    with contextlib.suppress(OSError):
        Path(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6").write_text("1\n")


def _ns_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _pids_in_netns(netns: Sequence[str]) -> dict[str, list[int]]:
    """The processes whose network namespace is one of ``netns`` (names under /run/netns)."""
    wanted = {ident: name for name in netns if (ident := _ns_id(NETNS_DIR / name)) is not None}
    found: dict[str, list[int]] = {}
    if not wanted:
        return found
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            ident = _ns_id(Path(entry.path, "ns", "net"))
            if ident in wanted:
                found.setdefault(wanted[ident], []).append(int(entry.name))
    return found


def _kill_netns_processes(netns: Sequence[str]) -> None:
    """SIGKILLs every process in the namespaces until none is left (a process may fork meanwhile)."""
    deadline = time.monotonic() + _KILL_TIMEOUT
    while pids := [p for ps in _pids_in_netns(netns).values() for p in ps]:
        if time.monotonic() > deadline:
            raise SandboxError(f"processes {pids} in network namespaces {list(netns)} did not exit")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)  # poll interval while the kernel reaps them, not a synchronisation


def _delete_netns(name: str) -> None:
    if (NETNS_DIR / name).exists():
        _run(["ip", "netns", "delete", name])


@dataclass
class PodNetwork:
    """The node's pod network: a bridge on the host with the gateway (the first address of ``cidr``:
    ``GATEWAY``/16 by default), and an nftables table of its own so that traffic from the bridge can
    reach only other pods and the gateway address itself: nothing is forwarded off the bridge (whatever
    net.ipv4.ip_forward says), and the host accepts from the bridge only packets addressed to the
    gateway. Network namespaces of its sandboxes are named ``<bridge>-…``."""

    bridge: str = "krpy0"
    cidr: str = POD_CIDR
    _net: ipaddress.IPv4Network = field(init=False, repr=False)
    _used: set[str] = field(default_factory=set, init=False, repr=False)
    _cursor: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if not _BRIDGE_RE.fullmatch(self.bridge):
            raise SandboxError(f"bridge name {self.bridge!r}: want a letter then up to 14 of [A-Za-z0-9_]")
        net = ipaddress.ip_network(self.cidr)
        if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen > 30:
            raise SandboxError(f"pod CIDR {self.cidr!r}: want an IPv4 network of at least 4 addresses")
        self._net = net

    @property
    def gateway(self) -> str:
        return str(self._net.network_address + 1)

    @property
    def prefixlen(self) -> int:
        return self._net.prefixlen

    @property
    def netns_prefix(self) -> str:
        return f"{self.bridge}-"

    @property
    def nft_table(self) -> str:
        return f"kuberay_py_{self.bridge}"

    def setup(self) -> None:
        """Creates the bridge and the rules; first removes what a crashed earlier run left behind."""
        self.teardown()
        self._check_cidr_free()
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        try:
            _disable_ipv6(self.bridge)
            _run(["ip", "addr", "add", f"{self.gateway}/{self.prefixlen}", "dev", self.bridge])
            _run(["nft", "-f", "-"], stdin=self._ruleset())
            _run(["ip", "link", "set", self.bridge, "up"])
        except BaseException:
            with contextlib.suppress(SandboxError):
                self.teardown()
            raise

    def _check_cidr_free(self) -> None:
        # Two bridges with overlapping routes would steal each other's pods: refuse instead.
        for route in _ip_json("-4", "route", "show", "table", "all"):
            dst, dev = route.get("dst"), route.get("dev")
            if not isinstance(dst, str) or dst == "default" or dev == self.bridge:
                continue
            try:
                other = ipaddress.ip_network(dst, strict=False)
            except ValueError:
                continue
            if isinstance(other, ipaddress.IPv4Network) and other.overlaps(self._net) and other.prefixlen > 0:
                raise SandboxError(f"pod CIDR {self.cidr} overlaps route {dst} on {dev}: another network uses it")

    def _ruleset(self) -> str:
        br, gw, t = self.bridge, self.gateway, self.nft_table
        # "table; delete table; table {…}" in one transaction: idempotent and atomic.
        return f"""table inet {t}
delete table inet {t}
table inet {t} {{
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname "{br}" meta nfproto ipv4 ip daddr {gw} accept
    iifname "{br}" counter drop
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname "{br}" oifname "{br}" accept
    iifname "{br}" counter drop
    oifname "{br}" counter drop
  }}
}}
"""

    def teardown(self) -> None:
        """Removes every sandbox netns of this network (and their processes), the bridge and the rules."""
        names = [p.name for p in NETNS_DIR.glob(f"{self.netns_prefix}*")] if NETNS_DIR.is_dir() else []
        _kill_netns_processes(names)
        if _link_exists(self.bridge):
            for link in _ip_json("link", "show", "master", self.bridge):
                if isinstance(name := link.get("ifname"), str):
                    _run(["ip", "link", "delete", name], check=False)
        for name in names:
            _delete_netns(name)
        if _link_exists(self.bridge):
            _run(["ip", "link", "delete", self.bridge])
        _run(["nft", "-f", "-"], stdin=f"table inet {self.nft_table}\ndelete table inet {self.nft_table}\n")
        with self._lock:
            self._used.clear()

    def allocate(self) -> str:
        """A free pod IP. Allocation goes round the range, so a released IP is reused as late as possible
        (other pods may still have its old MAC in their ARP cache)."""
        with self._lock:
            size = self._net.num_addresses
            for step in range(1, size):
                offset = (self._cursor + step) % size
                if offset < 2 or offset == size - 1:  # network, gateway, broadcast
                    continue
                ip = str(self._net.network_address + offset)
                if ip not in self._used:
                    self._used.add(ip)
                    self._cursor = offset
                    return ip
        raise SandboxError(f"pod CIDR {self.cidr} has no free address")

    def release(self, ip: str) -> None:
        with self._lock:
            self._used.discard(ip)


@dataclass(frozen=True)
class Mount:
    target: str  # absolute path inside the pod
    source: Path | None = None  # a host file or directory to bind-mount (None with tmpfs=True)
    read_only: bool = False
    tmpfs: bool = False  # a fresh tmpfs (emptyDir with medium Memory, /dev/shm)
    size: str | None = None  # tmpfs size, e.g. "512m"


@dataclass
class PodSandbox:
    """One pod: a network namespace with a veth on the network's bridge, and the files its processes see
    at /etc/hosts and /etc/resolv.conf. ``hostname`` (default: ``name``) is the pod's host name, in
    /etc/hosts and in the UTS namespace of its processes. ``destroy`` leaves ``root`` in place."""

    network: PodNetwork
    name: str
    ip: str
    root: Path
    hostname: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def _digest(self) -> str:
        return hashlib.sha256(f"{self.network.bridge}/{self.name}".encode()).hexdigest()

    @property
    def netns(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.name)[:40].strip("-.")
        return f"{self.network.netns_prefix}{slug}-{self._digest[:8]}"

    @property
    def host_veth(self) -> str:
        return f"kv{self._digest[:12]}"  # 14 characters (IFNAMSIZ 15)

    @property
    def hosts_path(self) -> Path:
        return self.root / "hosts"

    @property
    def resolv_path(self) -> Path:
        return self.root / "resolv.conf"

    def create(self, hosts: Mapping[str, str]) -> None:
        """The netns, a veth pair on the bridge (eth0 with ip/prefix inside, default route via the
        gateway, lo up), and the hosts and resolv.conf files."""
        self.destroy_network()  # a crashed earlier run may have left this pod's netns or veth behind
        self.root.mkdir(parents=True, exist_ok=True)
        self.hosts_path.write_text(self._hosts_text(hosts))
        self.resolv_path.write_text(RESOLV_CONF)
        _run(["ip", "netns", "add", self.netns])
        try:
            _run(["ip", "link", "add", self.host_veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns])
            _disable_ipv6(self.host_veth)
            _run(["ip", "link", "set", self.host_veth, "master", self.network.bridge, "up"])
            inside = (
                f"addr add {self.ip}/{self.network.prefixlen} dev eth0\n"
                "link set lo up\n"
                "link set eth0 up\n"
                f"route add default via {self.network.gateway} dev eth0\n"
            )
            _run(["ip", "-n", self.netns, "-batch", "-"], stdin=inside)
        except BaseException:
            with contextlib.suppress(SandboxError):
                self.destroy_network()
            raise

    def _hosts_text(self, hosts: Mapping[str, str]) -> str:
        lines = [HOSTS_HEADER, f"{self.ip}\t{self.hostname or self.name}\n"]
        for name, ip in hosts.items():
            if not name or any(c.isspace() for c in name + ip):
                raise SandboxError(f"hosts entry {name!r} -> {ip!r}: no whitespace allowed")
            ipaddress.ip_address(ip)
            lines.append(f"{ip}\t{name}\n")
        return "".join(lines)

    def set_hosts(self, hosts: Mapping[str, str]) -> None:
        """Rewrites the hosts file in place (its inode is bind-mounted into running processes, so a rename
        would not reach them). One write of the new text, padded with a comment to at least the old
        length, then a truncate: a reader sees the old or the new entries, never half a line."""
        text = self._hosts_text(hosts).encode()
        with self._lock:
            fd = os.open(self.hosts_path, os.O_RDWR)
            try:
                old = os.fstat(fd).st_size
                pad = old - len(text)
                padded = text + (b"#" + b" " * (pad - 2) + b"\n" if pad >= 2 else b"\n" * max(pad, 0))
                os.pwrite(fd, padded, 0)
                os.ftruncate(fd, len(text))
            finally:
                os.close(fd)

    def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str | None,
        mounts: Sequence[Mount],
        log: Path,
    ) -> subprocess.Popen[bytes]:
        """Runs argv in the pod's netns and a private mount (and UTS) namespace: /etc/hosts and
        /etc/resolv.conf from the sandbox, a private tmpfs at /tmp and at /dev/shm, then each Mount, then
        chdir(cwd or "/") and exec. Returns once argv is exec'ed; SandboxError (with the reason) if the
        namespace setup or the exec failed. stdout+stderr are appended to ``log``; the process leads a
        session of its own."""
        if not argv:
            raise SandboxError("empty argv")
        # The interpreter's own environment (which provides ray) stays visible if /tmp would hide it.
        given = {m.target for m in mounts}
        mounts = [*(m for m in environment_mounts(Path(sys.executable).parent) if m.target not in given), *mounts]
        for m in mounts:
            if not m.target.startswith("/") or (m.tmpfs == (m.source is not None)):
                raise SandboxError(f"mount {m}: want an absolute target and either a source or tmpfs=True")
        config = {
            "netns": str(NETNS_DIR / self.netns),
            "hostname": (self.hostname or self.name)[:64],
            "hosts": str(self.hosts_path),
            "resolv": str(self.resolv_path),
            "mounts": [
                {
                    "target": m.target,
                    "source": str(m.source) if m.source is not None else None,
                    "read_only": m.read_only,
                    "tmpfs": m.tmpfs,
                    "size": m.size,
                }
                for m in mounts
            ],
            "cwd": cwd or "/",
        }
        if not (NETNS_DIR / self.netns).exists():
            raise SandboxError(f"sandbox {self.name}: network namespace {self.netns} does not exist (create first)")
        log.parent.mkdir(parents=True, exist_ok=True)
        # The init reports a failure on this pipe; its end is close-on-exec, so EOF means argv was exec'ed.
        r, w = os.pipe()
        try:
            with log.open("ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", __file__, "--nsinit", str(w), json.dumps(config), "--", *argv],
                    env=dict(env),
                    cwd="/",
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    pass_fds=(w,),
                    start_new_session=True,
                )
            os.close(w)
            w = -1
            failure = _read_until_eof(r, _SPAWN_TIMEOUT)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        if failure is None or failure:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=_CMD_TIMEOUT)
            why = "timed out" if failure is None else failure.decode(errors="replace")
            raise SandboxError(f"sandbox {self.name}: starting {argv[0]!r}: {why}")
        return proc

    def pids(self) -> list[int]:
        """The processes in this pod's network namespace."""
        return _pids_in_netns([self.netns]).get(self.netns, [])

    def destroy_network(self) -> None:
        """Kills every process in the netns and deletes the veth and the netns (not the IP, not root)."""
        _kill_netns_processes([self.netns])
        if _link_exists(self.host_veth):
            _run(["ip", "link", "delete", self.host_veth])  # both ends, synchronously
        _delete_netns(self.netns)

    def destroy(self) -> None:
        """Kills anything left in the netns, deletes veth and netns, releases the IP; idempotent."""
        self.destroy_network()
        self.network.release(self.ip)


def _read_until_eof(fd: int, timeout: float) -> bytes | None:
    """Everything written to ``fd`` until EOF, or None when the deadline passes first."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return data
            data += chunk


# ---- the in-namespace init (runs as `python -I -S sandbox.py --nsinit <fd> <config> -- argv…`) --------

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_SLAVE = 1 << 19
_MNT_DETACH = 2


def _nsinit(report_fd: int, config: dict[str, object], argv: list[str]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)

    def check(ret: int, what: str) -> None:
        if ret != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        enc = [None if s is None else s.encode() for s in (source, target, fstype, data)]
        check(libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {source} on {target}")

    def make_mount_point(target: str, is_file: bool) -> None:
        path = Path(target)
        if path.exists():
            return
        # Creating a mount point must not change the host's file system: every directory that is missing
        # is created on a tmpfs. Find the nearest existing ancestor; unless it is already private to the
        # pod (/tmp, a tmpfs or overlay made here), put an overlay with a tmpfs upper layer over it.
        ancestor = path.parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not any(ancestor == p or p in ancestor.parents for p in private):
            if ancestor == Path("/"):
                raise OSError(f"mount point {target}: its top-level directory does not exist on this node")
            scratch = f"/dev/shm/.overlay-{len(private)}"  # /dev/shm is the pod's own tmpfs by now
            os.makedirs(f"{scratch}/upper")
            os.makedirs(f"{scratch}/work")
            opts = f"lowerdir={ancestor},upperdir={scratch}/upper,workdir={scratch}/work"
            mount("overlay", str(ancestor), "overlay", 0, opts)
            private.append(ancestor)
        path.parent.mkdir(parents=True, exist_ok=True)
        if is_file:
            path.touch()
        else:
            path.mkdir()

    def source_path(path: str) -> str:
        # Opened before /tmp and /dev/shm are replaced (a source may live there on the host) and before
        # any overlay: the bind mount then takes the file the path named at the start.
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        return f"/proc/self/fd/{fd}"

    fd = os.open(str(config["netns"]), os.O_RDONLY | os.O_CLOEXEC)
    check(libc.setns(fd, _CLONE_NEWNET), "setns")
    os.close(fd)
    check(libc.unshare(_CLONE_NEWNS | _CLONE_NEWUTS), "unshare")
    # Slave, not private: our mounts never reach the host, but the host's unmounts reach us, so an
    # `ip netns delete` of another pod is not held up by the copy of /run/netns in this namespace.
    mount(None, "/", None, _MS_REC | _MS_SLAVE)
    libc.umount2(b"/run/netns", _MNT_DETACH)  # the pod has no business with other netns; failure is fine
    hostname = str(config["hostname"]).encode()
    check(libc.sethostname(hostname, len(hostname)), "sethostname")
    mounts = config["mounts"]
    assert isinstance(mounts, list)
    sources: list[str | None] = []
    for m in mounts:
        try:
            sources.append(None if m["tmpfs"] else source_path(str(m["source"])))
        except OSError as e:
            raise OSError(f"mount source {m['source']}: {e.strerror}") from e
    mount(source_path(str(config["hosts"])), "/etc/hosts", None, _MS_BIND)
    mount(source_path(str(config["resolv"])), "/etc/resolv.conf", None, _MS_BIND)
    mount("tmpfs", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777")
    mount("shm", "/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777")
    private: list[Path] = [Path("/tmp"), Path("/dev/shm")]
    for m, source in zip(mounts, sources, strict=True):
        target = str(m["target"])
        if source is None:
            make_mount_point(target, is_file=False)
            opts = "mode=1777" + (f",size={m['size']}" if m["size"] else "")
            mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, opts)
            private.append(Path(target))
        else:
            make_mount_point(target, is_file=not os.path.isdir(source))
            mount(source, target, None, _MS_BIND | _MS_REC)
            if m["read_only"]:
                mount(None, target, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY)
    os.chdir(str(config["cwd"]))
    os.set_inheritable(report_fd, False)  # close-on-exec: the parent reads EOF once argv runs
    os.execvp(argv[0], argv)


def _nsinit_main(args: list[str]) -> int:
    report_fd = int(args[0])
    try:
        _nsinit(report_fd, json.loads(args[1]), args[3:])
    except BaseException as e:
        os.write(report_fd, f"{type(e).__name__}: {e}".encode() or b"failed")
        return 127
    return 0  # not reached: exec replaced this process


if __name__ == "__main__" and sys.argv[1:2] == ["--nsinit"]:
    sys.exit(_nsinit_main(sys.argv[2:]))
