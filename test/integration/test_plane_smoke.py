"""The control plane the integration tests run on is a real one: schemas, optimistic concurrency,
watches, the job controller, the scheduler, kwok and the garbage collector all do their part."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.kuberay-py.io"},
    "spec": {
        "group": "smoke.kuberay-py.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


async def eventually(cond: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    """Poll an async condition until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = await cond()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.2)


def test_crd_is_installed_and_its_objects_are_served(control_plane: Any, namespace: str, tmp_path: Path) -> None:
    import yaml

    crd_file = tmp_path / "widget.yaml"
    crd_file.write_text(yaml.safe_dump(WIDGET_CRD))
    assert control_plane.install_crds([crd_file]) == ["widgets.smoke.kuberay-py.io"]

    base = f"/apis/smoke.kuberay-py.io/v1/namespaces/{namespace}/widgets"
    created = control_plane.request(
        "POST",
        base,
        {"apiVersion": "smoke.kuberay-py.io/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}},
    )
    assert created.status == 201, created.body
    got = control_plane.request("GET", f"{base}/w1").json()
    assert got["spec"] == {"size": 3}

    # The schema is enforced by the server, not by this test.
    bad = control_plane.request(
        "POST",
        base,
        {"apiVersion": "smoke.kuberay-py.io/v1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"size": 0}},
    )
    assert bad.status == 422
    assert "spec.size" in bad.json()["message"]


def test_project_crds_are_established(control_plane: Any) -> None:
    crds = sorted(Path(__file__).resolve().parents[2].joinpath("config", "crd", "bases").glob("*.yaml"))
    if not crds:
        pytest.skip("config/crd/bases holds no CRDs yet")
    for group_version in ("ray.io/v1",):
        r = control_plane.request("GET", f"/apis/{group_version}")
        assert r.status == 200
        assert {"rayclusters", "rayjobs", "rayservices"} <= {res["name"] for res in r.json()["resources"]}


async def test_stale_resource_version_on_update_is_a_conflict(kube: Any, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    cm = await core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {"k": "1"}})
    stale = cm.metadata.resource_version
    await core.patch_namespaced_config_map("cm", namespace, {"data": {"k": "2"}})
    with pytest.raises(ApiException) as err:
        await core.replace_namespaced_config_map(
            "cm", namespace, {"metadata": {"name": "cm", "resourceVersion": stale}, "data": {"k": "3"}}
        )
    assert err.value.status == 409
    current = await core.read_namespaced_config_map("cm", namespace)
    assert current.data == {"k": "2"}


async def test_watch_sees_added_modified_deleted_in_order(kube: Any, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    listed = await core.list_namespaced_config_map(namespace)
    rv = listed.metadata.resource_version
    seen: list[tuple[str, str]] = []

    async def follow() -> None:
        w = watch.Watch()
        async with w.stream(
            core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=30
        ) as stream:
            async for ev in stream:
                if ev["object"].metadata.name == "watched":
                    seen.append((ev["type"], ev["object"].data.get("v", "") if ev["object"].data else ""))
                if ev["type"] == "DELETED":
                    return

    task = asyncio.create_task(follow())
    await core.create_namespaced_config_map(namespace, {"metadata": {"name": "watched"}, "data": {"v": "a"}})
    await core.patch_namespaced_config_map("watched", namespace, {"data": {"v": "b"}})
    await core.delete_namespaced_config_map("watched", namespace)
    await asyncio.wait_for(task, 30)
    assert seen == [("ADDED", "a"), ("MODIFIED", "b"), ("DELETED", "b")]


def _job(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                },
            },
        },
    }


def _condition(obj: Any, kind: str) -> bool:
    return any(c.type == kind and c.status == "True" for c in (obj.status.conditions or []))


@pytest.mark.t2
async def test_job_completes_through_job_controller_scheduler_and_kwok(
    sim_cluster: Any, kube: Any, namespace: str
) -> None:
    batch = client.BatchV1Api(kube)
    core = client.CoreV1Api(kube)
    await batch.create_namespaced_job(namespace, _job("ok"))

    async def complete() -> bool:
        return _condition(await batch.read_namespaced_job_status("ok", namespace), "Complete")

    await eventually(complete, 60, "Job ok to be Complete")
    pods = (await core.list_namespaced_pod(namespace, label_selector="job-name=ok")).items
    assert len(pods) == 1
    pod = pods[0]
    assert pod.spec.node_name == "kwok-node-0"
    assert pod.status.phase == "Succeeded"
    # Pod IPs come from the loopback range, so nothing that dials them leaves this machine.
    assert ipaddress.ip_address(pod.status.pod_ip).is_loopback


@pytest.mark.t2
async def test_job_pods_can_be_held_running_or_made_to_fail(sim_cluster: Any, kube: Any, namespace: str) -> None:
    batch = client.BatchV1Api(kube)
    core = client.CoreV1Api(kube)
    await batch.create_namespaced_job(namespace, _job("held", {"sim.kuberay-py.io/hold": "true"}))
    await batch.create_namespaced_job(namespace, _job("fails", {"sim.kuberay-py.io/exit-code": "3"}))

    async def failed() -> bool:
        return _condition(await batch.read_namespaced_job_status("fails", namespace), "Failed")

    await eventually(failed, 60, "Job fails to be Failed")
    [failed_pod] = (await core.list_namespaced_pod(namespace, label_selector="job-name=fails")).items
    assert failed_pod.status.phase == "Failed"
    assert failed_pod.status.container_statuses[0].state.terminated.exit_code == 3

    async def held_running() -> Any:
        pods = (await core.list_namespaced_pod(namespace, label_selector="job-name=held")).items
        return pods and pods[0].status.phase == "Running" and pods[0]

    pod = await eventually(held_running, 60, "held pod Running")
    # Released, the held pod completes and so does its Job.
    await core.patch_namespaced_pod(
        pod.metadata.name, namespace, {"metadata": {"annotations": {"sim.kuberay-py.io/hold": None}}}
    )

    async def held_complete() -> bool:
        return _condition(await batch.read_namespaced_job_status("held", namespace), "Complete")

    await eventually(held_complete, 60, "released Job to be Complete")


@pytest.mark.t2
async def test_deleting_an_owner_garbage_collects_its_dependents(sim_cluster: Any, kube: Any, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    owner = await core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    await core.create_namespaced_config_map(namespace, {"metadata": {"name": "dep", "ownerReferences": [ref]}})
    await core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "dep-pod", "ownerReferences": [ref]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    await core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    async def gone() -> bool:
        names = {c.metadata.name for c in (await core.list_namespaced_config_map(namespace)).items}
        pods = (await core.list_namespaced_pod(namespace)).items
        return "dep" not in names and not pods

    await eventually(gone, 60, "dependents of the deleted owner to be garbage-collected")
