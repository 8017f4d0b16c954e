"""The EndpointSlice controller's part for RayService Services on the simulated cluster: kwok's loopback
pod IPs are refused in EndpointSlices, so none runs on T2. ``endpoint_slices`` publishes one slice per
RayService Service with the Pods its selector matches (ready as the Pod is), each at a non-loopback
address nobody dials, as upstream's envtest does by hand."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from internal.client import AlreadyExists, ApiError, Client, NotFound
from internal.client.resources import ENDPOINTSLICES, PODS, SERVICES


async def endpoint_slices(c: Client, ns: str, tolerant: bool = False) -> None:
    """Play the EndpointSlice controller for RayService Services in ``ns``: one slice per Service with
    the ready Pods its selector matches."""
    swallowed: tuple[type[ApiError], ...] = (ApiError,) if tolerant else (NotFound,)
    while True:
        try:
            services = (await c.list(SERVICES, ns, label_selector="ray.io/originated-from-crd=RayService"))["items"]
            pods = (await c.list(PODS, ns))["items"]
            for svc in services:
                await _publish(c, ns, svc, pods)
        except swallowed:
            pass  # tolerant: the apiserver restarts under the chaos tier
        await asyncio.sleep(0.2)


async def _publish(c: Client, ns: str, svc: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> None:
    selector = (svc.get("spec") or {}).get("selector") or {}
    endpoints = []
    for p in pods:
        labels = p["metadata"].get("labels") or {}
        if p["metadata"].get("deletionTimestamp") or any(labels.get(k) != v for k, v in selector.items()):
            continue
        ip = (p.get("status") or {}).get("podIP") or ""
        ready = any(
            x["type"] == "Ready" and x["status"] == "True" for x in (p.get("status") or {}).get("conditions") or ()
        )
        if not ip:
            continue
        endpoints.append(
            {
                "addresses": ["10." + ".".join(ip.split(".")[1:])],  # loopback pod IPs are refused here
                "conditions": {"ready": ready},
                "targetRef": {
                    "kind": "Pod",
                    "name": p["metadata"]["name"],
                    "namespace": ns,
                    "uid": p["metadata"]["uid"],
                },
            }
        )
    name = svc["metadata"]["name"]
    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-sim",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": name},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Service", "name": name, "uid": svc["metadata"]["uid"], "controller": True}
            ],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [
            {"name": p.get("name"), "port": p["port"], "protocol": "TCP"} for p in svc["spec"].get("ports") or ()
        ],
    }
    try:
        old = await c.get(ENDPOINTSLICES, f"{name}-sim", ns)
    except NotFound:
        with contextlib.suppress(AlreadyExists, NotFound):
            await c.create(ENDPOINTSLICES, body, ns)
        return
    if old.get("endpoints") != endpoints or old["metadata"]["ownerReferences"][0]["uid"] != svc["metadata"]["uid"]:
        body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        with contextlib.suppress(NotFound):
            if old["metadata"]["ownerReferences"][0]["uid"] != svc["metadata"]["uid"]:
                await c.delete(ENDPOINTSLICES, f"{name}-sim", ns)
            else:
                await c.update(ENDPOINTSLICES, body)
