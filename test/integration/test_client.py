"""The operator's API client against a real API server: every verb, the patch flavours, the status
subresource, propagation policies, paging, typed errors, and spans for API calls."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support.wait import eventually

from internal.client import AlreadyExists, Client, Conflict, Invalid, NotFound
from internal.client.resources import CONFIGMAPS, JOBS, PODS


def cm(ns: str, name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}


async def test_crud_and_typed_errors(kclient: Client, namespace: str) -> None:
    created = await kclient.create(CONFIGMAPS, cm(namespace, "a", k="1"))
    assert created["metadata"]["uid"]
    with pytest.raises(AlreadyExists):
        await kclient.create(CONFIGMAPS, cm(namespace, "a"))
    with pytest.raises(NotFound):
        await kclient.get(CONFIGMAPS, "missing", namespace)
    stale = dict(created)
    updated = await kclient.update(CONFIGMAPS, {**created, "data": {"k": "2"}})
    assert updated["data"] == {"k": "2"}
    with pytest.raises(Conflict) as err:
        await kclient.update(CONFIGMAPS, {**stale, "data": {"k": "3"}})
    assert not isinstance(err.value, AlreadyExists)
    with pytest.raises(Invalid) as inv:
        await kclient.create(CONFIGMAPS, cm(namespace, "Not_A_Valid_Name"))
    assert inv.value.status == 422 and inv.value.causes
    dry = await kclient.create(CONFIGMAPS, cm(namespace, "dry"), dry_run=True)
    assert dry["metadata"]["name"] == "dry"
    with pytest.raises(NotFound):
        await kclient.get(CONFIGMAPS, "dry", namespace)
    await kclient.delete(CONFIGMAPS, "a", namespace)
    with pytest.raises(NotFound):
        await kclient.delete(CONFIGMAPS, "a", namespace)


async def test_patch_flavours_and_server_side_apply(kclient: Client, namespace: str) -> None:
    await kclient.create(CONFIGMAPS, cm(namespace, "p", a="1", b="2"))
    merged = await kclient.patch(CONFIGMAPS, "p", {"data": {"b": None, "c": "3"}}, namespace)
    assert merged["data"] == {"a": "1", "c": "3"}
    jp = await kclient.patch(
        CONFIGMAPS, "p", [{"op": "replace", "path": "/data/a", "value": "9"}], namespace, patch_type="json"
    )
    assert jp["data"]["a"] == "9"
    sm = await kclient.patch(CONFIGMAPS, "p", {"data": {"d": "4"}}, namespace, patch_type="strategic")
    assert sm["data"]["d"] == "4"

    applied = await kclient.apply(CONFIGMAPS, cm(namespace, "ssa", owned="x"), field_manager="kuberay-operator")
    assert applied["data"] == {"owned": "x"}
    managers = {m["manager"] for m in applied["metadata"]["managedFields"]}
    assert "kuberay-operator" in managers
    # Another manager changing an owned field conflicts unless it forces.
    with pytest.raises(Conflict):
        await kclient.apply(CONFIGMAPS, cm(namespace, "ssa", owned="y"), field_manager="someone-else", force=False)
    forced = await kclient.apply(CONFIGMAPS, cm(namespace, "ssa", owned="y"), field_manager="someone-else")
    assert forced["data"] == {"owned": "y"}


async def test_status_subresource_and_paged_list(kclient: Client, namespace: str) -> None:
    pod = {
        "metadata": {"name": "p0", "namespace": namespace},
        # No scheduler picks this pod, so no one else writes its status while the test does (on T2).
        "spec": {"schedulerName": "unscheduled", "containers": [{"name": "c", "image": "busybox"}]},
    }
    created = await kclient.create(PODS, pod)
    created["status"] = {"phase": "Running", "podIP": "127.1.0.9"}
    created["spec"]["containers"][0]["image"] = "ignored-by-status-write"
    out = await kclient.update_status(PODS, created)
    assert out["status"]["phase"] == "Running"
    assert out["spec"]["containers"][0]["image"] == "busybox"
    patched = await kclient.patch(PODS, "p0", {"status": {"message": "hi"}}, namespace, subresource="status")
    assert patched["status"]["message"] == "hi"

    for i in range(7):
        await kclient.create(CONFIGMAPS, cm(namespace, f"page-{i}"))
    pages = [p async for p in kclient.list_pages(CONFIGMAPS, namespace, limit=3)]
    assert len(pages) >= 3
    listed = await kclient.list(CONFIGMAPS, namespace, limit=3)
    names = [i["metadata"]["name"] for i in listed["items"]]
    assert {f"page-{i}" for i in range(7)} <= set(names)
    assert all(i["kind"] == "ConfigMap" and i["apiVersion"] == "v1" for i in listed["items"])
    assert listed["metadata"]["resourceVersion"]


@pytest.mark.t2
async def test_delete_with_foreground_propagation_waits_for_dependents(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    job = {
        "metadata": {"name": "fg", "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {"sim.kuberay-py.io/hold": "true"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    await kclient.create(JOBS, job)
    await eventually(lambda: kclient.list(PODS, namespace, label_selector="job-name=fg"), 30, "the Job's pod")
    deleting = await kclient.delete(JOBS, "fg", namespace, propagation_policy="Foreground")
    assert deleting and "foregroundDeletion" in deleting["metadata"].get("finalizers", [])

    async def all_gone() -> bool:
        pods = (await kclient.list(PODS, namespace, label_selector="job-name=fg"))["items"]
        try:
            await kclient.get(JOBS, "fg", namespace)
        except NotFound:
            return not pods
        return False

    await eventually(all_gone, 60, "the Job and its pod to be deleted")


async def test_api_calls_are_spans_under_the_current_trace(kclient: Client, namespace: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    kclient.tracer = provider.get_tracer("test")
    parent_tracer = provider.get_tracer("test-parent")
    with parent_tracer.start_as_current_span("reconcile test") as parent:
        await kclient.create(CONFIGMAPS, cm(namespace, "traced"))
    spans = exporter.get_finished_spans()
    api = [s for s in spans if s.name.startswith("POST ")]
    assert api and api[0].parent is not None
    assert api[0].parent.span_id == parent.get_span_context().span_id
    assert api[0].attributes is not None and api[0].attributes["http.status_code"] == 201
    assert trace.get_current_span() is not parent
