"""The bench's name service (support/isolation.py): a process started by ``popen_isolated`` resolves the
names of the table, through the machine's own resolver (glibc, as the operators' resolvers), and no
other name."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from support.isolation import HOSTS, NameServer, dns_answer, popen_isolated, resolv_conf


def test_malformed_and_unknown_queries_get_an_error_code() -> None:
    assert dns_answer(b"\x00\x01", {}) is None  # not even a header: dropped
    query = bytes.fromhex("abcd01000001000000000000") + b"\x01x\x00\x00\x01\x00\x01"
    reply = dns_answer(query, {})
    assert reply is not None and reply[:2] == b"\xab\xcd" and reply[3] & 0x0F == 3  # NXDOMAIN


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare(1)")
async def test_an_isolated_process_resolves_the_table_and_nothing_else(tmp_path: Path) -> None:
    ns = NameServer("127.0.0.153")
    await ns.start()
    ns.table["rc-abc-head-svc.bench.svc.cluster.local"] = "127.1.2.3"
    hosts, resolv = tmp_path / "hosts", tmp_path / "resolv.conf"
    hosts.write_text(HOSTS)
    resolv.write_text(resolv_conf(ns.address))

    async def lookup(name: str) -> tuple[int, str]:
        log = tmp_path / f"{name}.log"
        p = popen_isolated(["getent", "ahostsv4", name], hosts=hosts, resolv=resolv, log=log, env=dict(os.environ))
        rc = await asyncio.to_thread(p.wait, 30)
        return rc, log.read_text()

    try:
        rc, out = await lookup("rc-abc-head-svc.bench.svc.cluster.local")
        assert rc == 0 and out.split()[0] == "127.1.2.3"
        rc, out = await lookup("example.com")
        assert rc == 2 and not out  # getent: not found
        assert ns.queries >= 2
    finally:
        ns.stop()
