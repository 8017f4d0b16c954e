"""Running an operator process whose name lookups the test controls, without touching the machine's
resolver: the process gets a private mount namespace in which /etc/hosts and /etc/resolv.conf are
files of the test. Used by the parity oracle (hosts file) and by ``make bench-vs-upstream`` (both
operators asking ``NameServer``, a loopback DNS responder that answers from a table the bench keeps).

Ray dashboards are dialled by the head Service's DNS name
(``<cluster>-head-svc.<ns>.svc.cluster.local``); on the kwok plane no DNS server knows those names,
kube-apiserver refuses to proxy to loopback pod IPs and EndpointSlices refuse loopback addresses, so
the name has to be answered here. Every name outside the table is refused (NXDOMAIN), so nothing
ever asks a resolver beyond the machine."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import subprocess
from pathlib import Path

HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def resolv_conf(nameserver: str = "127.0.0.1") -> str:
    return f"nameserver {nameserver}\noptions timeout:1 attempts:1\n"


def popen_isolated(
    argv: list[str], *, hosts: Path, resolv: Path, log: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """``argv`` in a private mount namespace where ``hosts`` is /etc/hosts and ``resolv`` is
    /etc/resolv.conf. The process replaces the shell (exec), so its pid is the returned Popen's, and
    /proc/<pid> describes the operator itself."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        raise RuntimeError("an isolated operator runs in a private mount namespace: it needs root and unshare(1)")
    script = 'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"'
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
                str(hosts),
                str(resolv),
                *argv,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


# ---- a loopback DNS responder ------------------------------------------------------------------------

_A, _AAAA, _IN = 1, 28, 1
_NOERROR, _FORMERR, _NXDOMAIN = 0, 1, 3


def _question(msg: bytes) -> tuple[str, int, int] | None:
    """(name, qtype, end offset of the question) of a one-question query, or None if malformed."""
    if len(msg) < 12 or struct.unpack("!H", msg[4:6])[0] != 1:
        return None
    labels: list[str] = []
    i = 12
    while i < len(msg):
        n = msg[i]
        if n == 0:
            if i + 5 > len(msg):
                return None
            qtype = struct.unpack("!H", msg[i + 1 : i + 3])[0]
            return ".".join(labels).lower(), qtype, i + 5
        if n & 0xC0 or i + 1 + n > len(msg):  # no compression in a question
            return None
        labels.append(msg[i + 1 : i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    return None


def dns_answer(query: bytes, table: dict[str, str]) -> bytes | None:
    """The reply to ``query`` from ``table`` (name -> IPv4): an A record with TTL 0 for a known name,
    no answer (NOERROR) for its other record types, NXDOMAIN for any other name."""
    if len(query) < 12:
        return None
    q = _question(query)
    qid, flags = struct.unpack("!HH", query[:4])
    rd = flags & 0x0100
    if q is None:
        return struct.pack("!HHHHHH", qid, 0x8000 | rd | _FORMERR, 0, 0, 0, 0)
    name, qtype, end = q
    ip = table.get(name.rstrip("."))
    rcode = _NXDOMAIN if ip is None else _NOERROR
    answers = b""
    if ip is not None and qtype == _A:
        answers = struct.pack("!HHHIH", 0xC00C, _A, _IN, 0, 4) + socket.inet_aton(ip)
    header = struct.pack("!HHHHHH", qid, 0x8000 | rd | 0x0080 | 0x0400 | rcode, 1, 1 if answers else 0, 0, 0)
    return header + query[12:end] + answers


class NameServer(asyncio.DatagramProtocol):
    """Answers DNS over UDP on ``address``:53 from ``table`` (edit it at any time: answers carry TTL 0
    and neither Go's resolver nor glibc caches them)."""

    def __init__(self, address: str = "127.0.0.153") -> None:
        self.address = address
        self.table: dict[str, str] = {}
        self.queries = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self.address, 53))
        self._transport = transport

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queries += 1
        reply = dns_answer(data, self.table)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)
