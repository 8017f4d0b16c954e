"""The OpenShift Route of ``enableIngress`` (raycluster-extensions.md §2.4) as a pure function."""

from __future__ import annotations

from typing import Any

import pytest

from controllers.ray.common.ingress import build_route_for_head_service, route_name


def cluster(name: str = "rc", namespace: str = "ns", **head: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name, "namespace": namespace, "uid": "u"},
        "spec": {
            "headGroupSpec": {
                "enableIngress": True,
                "template": {"spec": {"containers": [{"name": "ray-head", **head}]}},
            }
        },
    }


@pytest.mark.parametrize(
    ("name", "namespace", "want"),
    [
        ("rc", "ns", "rc-head-route"),
        # 51 - len(namespace) characters from the start (the Ingress keeps the end instead)
        ("a" * 40, "n" * 20, "a" * 31),
        ("a" * 40, "n" * 10, "a" * 40 + "-"),
        # then CheckName: a leading digit becomes "r"
        ("1abc", "ns", "rabc-head-route"),
    ],
)
def test_route_name_is_cut_from_the_front_for_the_namespace(name: str, namespace: str, want: str) -> None:
    assert route_name(cluster(name, namespace)) == want


def test_the_route_targets_the_head_services_dashboard_port() -> None:
    route = build_route_for_head_service(cluster(ports=[{"containerPort": 7000}]))  # unnamed: the default port
    assert route["spec"] == {
        "to": {"kind": "Service", "name": "rc-head-svc", "weight": 100},
        "port": {"targetPort": 8265},
        "wildcardPolicy": "None",
    }
    assert "annotations" not in route["metadata"]
    named = build_route_for_head_service(cluster(ports=[{"name": "dashboard", "containerPort": 7000}]))
    assert named["spec"]["port"] == {"targetPort": 7000}
