"""Pure pieces of the local node's kubelet."""

from __future__ import annotations

from internal.controlplane.localnode.kubelet import pod_hostname


def test_the_host_name_is_the_pod_name_cut_to_one_dns_label() -> None:
    # The namespace is not part of it: "<ns>-<pod>" was 64+ characters for a seed RayJob's head, and
    # Ray's metrics exporter (socket.getfqdn) failed with "label too long", taking the raylet down.
    long = "rayjob-deletion-strategy-legacy-99276-head-cn9wx-and-then-some-more"
    assert pod_hostname({"metadata": {"name": "head-abc"}, "spec": {}}) == "head-abc"
    assert pod_hostname({"metadata": {"name": long}, "spec": {}}) == long[:62]  # without the trailing "-"
    assert pod_hostname({"metadata": {"name": "a" * 62 + "-b"}, "spec": {}}) == "a" * 62
    assert pod_hostname({"metadata": {"name": "p"}, "spec": {"hostname": "custom"}}) == "custom"
