"""The local node's pod network and sandboxes (internal/controlplane/localnode/sandbox.py), on this machine.

Needs root, `ip` and `nft` (hack/ci-tools.sh installs nftables). Each test gets a network of its own: a
bridge ``krpyt<4 hex>`` and a /24 inside 198.18.0.0/15 (RFC 2544 benchmarking range) that no other route
on the machine overlaps, so parallel runs and the node's real network (krpy0, 198.19.0.0/16) are never
touched. Every probe runs in a spawned process (a pod, or a host process for "from the host"): the test
process itself connects nowhere.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from internal.controlplane.localnode import Mount, PodNetwork, PodSandbox, SandboxError
from internal.controlplane.localnode.sandbox import environment_mounts

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


@pytest.fixture(autouse=True)
def _needs_root_and_tools() -> None:
    if os.geteuid() != 0:
        pytest.fail("the local-node sandbox tests need root (network namespaces, bridges, nftables); CI runs as root")
    missing = [t for t in ("ip", "nft", "findmnt") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {missing}: run `bash hack/ci-tools.sh` as root (it installs nftables)")


def _routes() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(
        ["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    nets = []
    for r in json.loads(out):
        with contextlib.suppress(ValueError):
            if r.get("dst") not in (None, "default"):
                nets.append(ipaddress.IPv4Network(r["dst"], strict=False))
    return nets


def _new_network() -> PodNetwork:
    """A PodNetwork with a fresh bridge name and a /24 of 198.18.0.0/15 that no route uses yet."""
    for _ in range(10):
        used = _routes()
        free = [
            n
            for n in ipaddress.ip_network("198.18.0.0/15").subnets(new_prefix=24)
            if not any(n.overlaps(u) for u in used if u.prefixlen > 0)
        ]
        net = PodNetwork(bridge=f"krpyt{secrets.token_hex(2)}", cidr=str(secrets.choice(free)))
        try:
            net.setup()
        except SandboxError as e:  # another run took the /24 between our look and our setup
            if "overlaps" in str(e):
                continue
            raise
        return net
    raise AssertionError("no free /24 in 198.18.0.0/15")


@pytest.fixture
def network(process_guard: object) -> Iterator[PodNetwork]:
    net = _new_network()
    try:
        # Addresses of a network namespace the project created itself are what the guard's allow() is for.
        process_guard.allow(net.cidr)  # type: ignore[attr-defined]
        yield net
    finally:
        net.teardown()


@pytest.fixture
def sandboxes(network: PodNetwork, tmp_path: Path) -> Iterator[Callable[..., PodSandbox]]:
    made: list[PodSandbox] = []

    def make(name: str, hosts: dict[str, str] | None = None) -> PodSandbox:
        sb = PodSandbox(network, f"test-{name}-{secrets.token_hex(2)}", network.allocate(), tmp_path / name)
        made.append(sb)
        sb.create(hosts or {})
        return sb

    try:
        yield make
    finally:
        for sb in made:
            sb.destroy()


def _env(**extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", "PYTHONUNBUFFERED": "1"}
    if "KUBERAY_PY_TEST_RUN" in os.environ:  # the process guard finds re-parented pod processes by it
        env["KUBERAY_PY_TEST_RUN"] = os.environ["KUBERAY_PY_TEST_RUN"]
    return {**env, **extra}


def _wait_for(what: str, cond: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _run_in(sb: PodSandbox, log: Path, code: str, mounts: tuple[Mount, ...] = (), timeout: float = 20) -> str:
    """Runs ``python -c code`` in the sandbox and returns its output (it must exit 0)."""
    proc = sb.spawn([PY, "-c", code], _env(), None, mounts, log)
    try:
        rc = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    text = log.read_text()
    assert rc == 0, text
    return text


@contextlib.contextmanager
def _guard_allows_briefly(guard: object, network: str) -> Iterator[None]:
    """Lets the process guard accept ``network`` only while a probe that must touch it runs."""
    guard.allow(network)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        guard.allowed.remove(ipaddress.ip_network(network))  # type: ignore[attr-defined]


def test_pods_reach_each_other_and_hosts_updates_are_seen(
    sandboxes: Callable[..., PodSandbox], network: PodNetwork, tmp_path: Path
) -> None:
    b = sandboxes("b")
    a = sandboxes("a", {"peer.test": b.ip})
    server = b.spawn(
        [
            PY,
            "-c",
            "import socket\n"
            f"s = socket.create_server(({b.ip!r}, 8080))\n"
            "print('listening', flush=True)\n"
            "while True:\n"
            "    c, peer = s.accept()\n"
            "    c.sendall(f'hello {peer[0]}'.encode())\n"
            "    c.close()\n",
        ],
        _env(),
        None,
        (),
        tmp_path / "server.log",
    )
    try:
        _wait_for("the server in b", lambda: "listening" in (tmp_path / "server.log").read_text())
        # From pod a, by the name its /etc/hosts gives b.
        out = _run_in(
            a,
            tmp_path / "client.log",
            "import socket\nprint(socket.create_connection(('peer.test', 8080), timeout=5).recv(100).decode())\n",
        )
        assert f"hello {a.ip}" in out
        # From the host (a process in the host's network namespace), by pod IP: the host's address on
        # the bridge is the gateway.
        host = subprocess.run(
            [PY, "-c", f"import socket; print(socket.create_connection(({b.ip!r}, 8080), timeout=5).recv(100))"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
            env=_env(),
        )
        assert f"hello {network.gateway}" in host.stdout, host.stderr

        # A running process resolves again after set_hosts and sees the new address.
        new_ip = str(ipaddress.ip_address(b.ip) + 100)
        watcher_log = tmp_path / "watcher.log"
        watcher = a.spawn(
            [
                PY,
                "-c",
                "import socket, time\n"
                "seen = None\n"
                "while True:\n"
                "    ip = socket.gethostbyname('peer.test')\n"
                "    if ip != seen:\n"
                "        print('resolved', ip, flush=True)\n"
                "        seen = ip\n"
                f"    if ip == {new_ip!r}:\n"
                "        break\n"
                "    time.sleep(0.05)\n",
            ],
            _env(),
            None,
            (),
            watcher_log,
        )
        try:
            _wait_for("the first lookup", lambda: f"resolved {b.ip}" in watcher_log.read_text())
            a.set_hosts({"peer.test": new_ip, "other.test": b.ip})
            assert watcher.wait(timeout=15) == 0
            assert f"resolved {new_ip}" in watcher_log.read_text()
            assert f"{new_ip}\tpeer.test\n" in (a.root / "hosts").read_text()
        finally:
            if watcher.poll() is None:
                watcher.kill()
                watcher.wait(timeout=10)
    finally:
        server.kill()
        server.wait(timeout=10)


def _host_address(exclude: ipaddress.IPv4Network) -> str:
    """A non-loopback IPv4 address of this machine, read from the kernel (nothing is sent)."""
    out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, timeout=10, check=True).stdout
    for link in json.loads(out):
        for a in link.get("addr_info", []):
            addr = ipaddress.ip_address(a["local"])
            if not addr.is_loopback and addr not in exclude and a.get("scope") == "global":
                return str(addr)
    pytest.fail("this machine has no non-loopback IPv4 address to test isolation against")


def _drop_counters(network: PodNetwork) -> dict[str, int]:
    out = subprocess.run(
        ["nft", "-j", "list", "table", "inet", network.nft_table],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    counts: dict[str, int] = {}
    for item in json.loads(out)["nftables"]:
        rule = item.get("rule")
        if rule:
            for expr in rule["expr"]:
                if "counter" in expr:
                    counts[rule["chain"]] = counts.get(rule["chain"], 0) + expr["counter"]["packets"]
    return counts


def test_pods_reach_only_pods_and_the_gateway(
    sandboxes: Callable[..., PodSandbox], network: PodNetwork, process_guard: object, tmp_path: Path
) -> None:
    """Inside a pod, the route to 8.8.8.8 leaves from the pod IP (Ray's node-address lookup: a UDP
    connect, which sends nothing), a closed port on the gateway answers at once (the host is reachable
    there), and a connect to this machine's own routable address gets no answer at all: the nftables
    input rule drops the SYN as it arrives on the host from the bridge. That address is the machine's own,
    so the SYN never goes near a wire even without the rule; no other outside address is dialled. The
    process guard would (rightly) flag both sockets, so each is allowed exactly while its probe runs."""
    sb = sandboxes("iso")
    host_addr = _host_address(ipaddress.IPv4Network(network.cidr))
    # A port bound but not listening on the gateway: connects to it are refused, not dropped.
    closed = socket.socket()
    closed.bind((network.gateway, 0))
    port = closed.getsockname()[1]
    try:
        before = _drop_counters(network)
        with _guard_allows_briefly(process_guard, "8.8.8.8/32"), _guard_allows_briefly(process_guard, host_addr):
            out = _run_in(
                sb,
                tmp_path / "iso.log",
                "import socket, time\n"
                "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                "u.connect(('8.8.8.8', 53))\n"
                "print('route via', u.getsockname()[0])\n"
                "u.close()\n"
                f"for name, addr in (('gateway', {network.gateway!r}), ('host', {host_addr!r})):\n"
                "    t = time.monotonic()\n"
                "    try:\n"
                f"        socket.create_connection((addr, {port}), timeout=1.5).close()\n"
                "        result = 'connected'\n"
                "    except TimeoutError:\n"
                "        result = 'timeout'\n"
                "    except ConnectionRefusedError:\n"
                "        result = 'refused'\n"
                "    print(name, result, round(time.monotonic() - t, 2))\n",
            )
        after = _drop_counters(network)
    finally:
        closed.close()
    assert f"route via {sb.ip}\n" in out
    assert "gateway refused" in out, out
    assert "host timeout" in out, out
    assert after["input"] > before["input"], (before, after)  # the rule, not a missing route, dropped it
    assert after["forward"] == before["forward"], (before, after)  # nothing tried to leave the bridge


def _findmnt() -> list[str]:
    """The host's mounts, without the netns files of test networks (``ip netns add`` makes those)."""
    out = subprocess.run(
        ["findmnt", "-rn", "-o", "TARGET,SOURCE"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    return [line for line in out.splitlines() if not line.startswith("/run/netns/krpyt")]


def test_mounts_are_private_and_destroy_leaves_nothing(sandboxes: Callable[..., PodSandbox], tmp_path: Path) -> None:
    cm = tmp_path / "configmap"
    cm.mkdir()
    (cm / "test.py").write_text("print('from the configmap')\n")
    target_dir = f"/home/ray/kuberay-py-{secrets.token_hex(3)}"
    assert not Path(target_dir).exists()
    mounts = (
        Mount(f"{target_dir}/test.py", cm / "test.py", read_only=True),  # like a configMap subPath
        Mount("/opt/samples", cm, read_only=True),
        Mount("/dev/shm", tmpfs=True, size="64m"),
    )
    mounts_before = _findmnt()
    one, two = sandboxes("one"), sandboxes("two")
    code = (
        "import os, subprocess\n"
        f"print(open({target_dir + '/test.py'!r}).read().strip())\n"
        "print('samples', sorted(os.listdir('/opt/samples')))\n"
        "try:\n"
        "    open('/opt/samples/new', 'w')\n"
        "except OSError as e:\n"
        "    print('read-only', e.errno)\n"
        "open('/tmp/mine', 'w').write(os.uname().nodename)\n"
        "print('tmp', sorted(os.listdir('/tmp')))\n"
        "print('shm', subprocess.run(['findmnt', '-rn', '-o', 'SIZE', '/dev/shm'], capture_output=True, text=True)"
        ".stdout.strip())\n"
    )
    out1 = _run_in(one, tmp_path / "one.log", code, mounts)
    out2 = _run_in(two, tmp_path / "two.log", code, mounts)
    for out in (out1, out2):
        assert "from the configmap" in out
        assert "samples ['test.py']" in out
        assert "read-only 30" in out  # EROFS
        # Each pod has a /tmp of its own: only its file, and the top of the Python environment when that
        # lives under /tmp (a checkout there is mounted back in, read-only).
        env_tops = [
            Path(m.target).relative_to("/tmp").parts[0]
            for m in environment_mounts(Path(sys.executable).parent)
            if Path(m.target).is_relative_to("/tmp")
        ]
        assert f"tmp {sorted(['mine', *env_tops])}" in out
        assert "shm 64M" in out
    assert not Path(target_dir).exists()  # the mount point was made in the pod's overlay, not on the host
    assert not Path("/tmp/mine").exists()
    assert _findmnt() == mounts_before  # nothing of the pods' mount namespaces reached the host

    # A pod with processes still running (a shell and its background child) is destroyed without a trace.
    daemon = one.spawn(["sh", "-c", "sleep 300 & echo $!; wait"], _env(), None, mounts, tmp_path / "d.log")
    _wait_for("the daemon", lambda: (tmp_path / "d.log").read_text().strip().isdigit())
    pids = one.pids()
    assert len(pids) >= 2, pids
    one.destroy()
    assert daemon.wait(timeout=10) < 0  # killed
    assert not [p for p in pids if Path(f"/proc/{p}").exists() and _not_zombie(p)]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True).stdout
    assert one.netns not in netns
    assert not Path(f"/sys/class/net/{one.host_veth}").exists()
    assert _findmnt() == mounts_before
    assert two.netns in netns  # the other pod is untouched
    one.destroy()  # idempotent


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10, check=True).stdout


def test_setup_recovers_from_a_crash_and_teardown_removes_everything(network: PodNetwork, tmp_path: Path) -> None:
    sb = PodSandbox(network, "crashed-pod", network.allocate(), tmp_path / "crashed")
    sb.create({})
    leftover = sb.spawn(["sleep", "300"], _env(), None, (), tmp_path / "crashed.log")
    try:
        # The node crashed: a new PodNetwork with the same bridge starts over without a teardown.
        again = PodNetwork(bridge=network.bridge, cidr=network.cidr)
        again.setup()
        assert leftover.wait(timeout=10) < 0
        assert not Path(f"/run/netns/{sb.netns}").exists()
        assert not Path(f"/sys/class/net/{sb.host_veth}").exists()
        assert f"table inet {network.nft_table}" in _nft_tables()
        fresh = PodSandbox(again, "fresh-pod", again.allocate(), tmp_path / "fresh")
        fresh.create({})
        out = _run_in(fresh, tmp_path / "fresh.log", "import socket; print(socket.gethostbyname(socket.gethostname()))")
        assert fresh.ip in out

        again.teardown()
        assert not Path(f"/sys/class/net/{network.bridge}").exists()
        assert not Path(f"/sys/class/net/{fresh.host_veth}").exists()
        assert network.nft_table not in _nft_tables()
        assert not list(Path("/run/netns").glob(f"{network.netns_prefix}*"))
        again.teardown()  # idempotent
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait(timeout=10)


@pytest.mark.e2e
def test_ray_head_in_a_sandbox_uses_the_pod_ip(sandboxes: Callable[..., PodSandbox], tmp_path: Path) -> None:
    """The unchanged `ray start --head` picks the pod IP as its node address.

    Ray 2.60's dashboard head asks cloud metadata servers (169.254.169.254, metadata.google.internal)
    for the cloud provider at every start, whatever --disable-usage-stats says, unless
    ~/ray_bootstrap_config.yaml exists. The pod network would drop those connects on the host, but a
    test must not dial outside addresses at all: the pod's HOME gets an (empty) bootstrap config."""
    venv_bin = REPO / ".venv" / "bin"
    if not (venv_bin / "ray").exists():
        pytest.fail(f"{venv_bin}/ray is missing: `make install` installs ray[default]")
    bootstrap = tmp_path / "ray_bootstrap_config.yaml"
    bootstrap.write_text("{}\n")
    sb = sandboxes("ray-head")
    log = tmp_path / "ray.log"
    env = _env(PATH=f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}", HOME="/tmp")
    args = ["ray", "start", "--head", "--block", "--num-cpus=1", "--disable-usage-stats"]
    args += ["--include-dashboard=false", "--temp-dir=/tmp/ray"]
    proc = sb.spawn(args, env, None, (Mount("/tmp/ray_bootstrap_config.yaml", bootstrap, read_only=True),), log)
    pids: list[int] = []
    try:
        _wait_for("the head to be up", lambda: "Ray runtime started" in log.read_text(), timeout=120)
        text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text())  # Ray colours its CLI output
        assert f"Local node IP: {sb.ip}\n" in text, text
        pids = sb.pids()
        assert len(pids) > 2, pids  # ray start, gcs_server, raylet, …
    finally:
        sb.destroy()
        proc.wait(timeout=10)
    assert not [p for p in pids if Path(f"/proc/{p}").exists() and _not_zombie(p)]
    assert not sb.pids()
