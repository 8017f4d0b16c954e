"""The events.k8s.io/v1 recorder against a real API server: the server's validation accepts what
it writes, repeats become a series, and Warnings are visible through both event APIs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from internal.client import Client, api_client, load_configuration
from internal.client.resources import CONFIGMAPS, CORE_EVENTS, EVENTS
from internal.events import EventRecorder
from internal.leaderelection import LeaderElectionConfig, LeaderElector

pytestmark = pytest.mark.timeout(120)


async def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@pytest.fixture
async def client(control_plane: Any) -> AsyncIterator[Client]:
    cfg = await load_configuration(str(control_plane.kubeconfig))
    c = Client(api_client(cfg, 10))
    yield c
    await c.close()


@pytest.fixture
async def recorder(client: Client) -> AsyncIterator[EventRecorder]:
    rec = EventRecorder(client, "kuberay-operator", retry_interval=0.2, shutdown_timeout=5)
    task = asyncio.create_task(rec.run())
    yield rec
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def configmap(client: Client, namespace: str, name: str = "subject") -> dict[str, Any]:
    return await client.create(
        CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}, namespace
    )


async def events_about(client: Client, namespace: str, name: str) -> list[dict[str, Any]]:
    items = (await client.list(EVENTS, namespace))["items"]
    return [e for e in items if (e.get("regarding") or {}).get("name") == name]


async def test_an_event_is_created_with_the_events_v1_fields(
    client: Client, namespace: str, recorder: EventRecorder
) -> None:
    cm = await configmap(client, namespace)
    cm.setdefault("apiVersion", "v1")
    cm.setdefault("kind", "ConfigMap")
    assert recorder.event(cm, "Normal", "Created", "created the head service " + "x" * 2000, action="Reconcile")

    [ev] = await wait_for(lambda: events_about(client, namespace, "subject"), 10, "the event")
    assert ev["type"] == "Normal"
    assert ev["reason"] == "Created"
    assert ev["action"] == "Reconcile"
    assert ev["reportingController"] == "kuberay-operator"
    assert ev["reportingInstance"] == recorder.reporting_instance
    assert ev["reportingInstance"].startswith("kuberay-operator-") and len(ev["reportingInstance"]) <= 128
    assert ev["note"].startswith("created the head service")
    assert len(ev["note"].encode()) <= 1024  # truncated, so the server accepted it
    assert ev["regarding"]["kind"] == "ConfigMap"
    assert ev["regarding"]["apiVersion"] == "v1"
    assert ev["regarding"]["namespace"] == namespace
    assert ev["regarding"]["uid"] == cm["metadata"]["uid"]
    assert ev["eventTime"].endswith("Z") and "." in ev["eventTime"]
    assert "series" not in ev
    assert recorder.stats.created == 1 and recorder.stats.failed == 0


async def test_repeated_identical_events_become_one_event_with_a_series_count(
    client: Client, namespace: str, recorder: EventRecorder
) -> None:
    cm = await configmap(client, namespace)
    cm.update(apiVersion="v1", kind="ConfigMap")
    recorder.event(cm, "Normal", "Scaled", "scaled workers to 2")
    recorder.event(cm, "Normal", "Scaled", "scaled workers to 2")

    async def count(n: int) -> bool:
        evs = await events_about(client, namespace, "subject")
        return len(evs) == 1 and (evs[0].get("series") or {}).get("count") == n

    await wait_for(lambda: count(2), 10, "series count 2")
    for _ in range(3):
        recorder.event(cm, "Normal", "Scaled", "scaled workers to 2")
    await recorder.flush()  # what the 30-minute refresh does; waits for the writes
    assert await count(5)
    [ev] = await events_about(client, namespace, "subject")
    assert ev["series"]["lastObservedTime"].endswith("Z")
    assert (recorder.stats.created, recorder.stats.patched, recorder.stats.aggregated) == (1, 2, 3)

    # A different reason is a different event.
    recorder.event(cm, "Normal", "Other", "something else")

    async def two_events() -> bool:
        return len(await events_about(client, namespace, "subject")) == 2

    await wait_for(two_events, 10, "a second event")


async def test_a_warning_is_visible_through_both_event_apis(
    client: Client, namespace: str, recorder: EventRecorder
) -> None:
    cm = await configmap(client, namespace, "broken")
    cm.update(apiVersion="v1", kind="ConfigMap")
    recorder.event(cm, "Warning", "FailedCreateHeadPod", "pods is forbidden: exceeded quota")

    async def core_warning() -> list[dict[str, Any]]:
        items = (await client.list(CORE_EVENTS, namespace, field_selector="type=Warning"))["items"]
        return [e for e in items if e["involvedObject"]["name"] == "broken"]

    [core] = await wait_for(core_warning, 10, "the Warning in core/v1 events")
    assert core["reason"] == "FailedCreateHeadPod"
    assert core["message"] == "pods is forbidden: exceeded quota"
    assert core["involvedObject"]["kind"] == "ConfigMap"
    assert core["reportingComponent"] == "kuberay-operator"
    [ev] = await events_about(client, namespace, "broken")
    assert ev["type"] == "Warning"


async def test_leader_election_records_became_leader_on_the_lease(
    client: Client, namespace: str, recorder: EventRecorder
) -> None:
    le = LeaderElector(
        client,
        namespace,
        "evented-lock",
        identity="me_1",
        config=LeaderElectionConfig(lease_duration=2, renew_deadline=1.5, retry_period=0.3),
        recorder=recorder,
    )
    await le.acquire()
    [ev] = await wait_for(lambda: events_about(client, namespace, "evented-lock"), 10, "the leader event")
    assert ev["regarding"]["kind"] == "Lease"
    assert ev["regarding"]["apiVersion"] == "coordination.k8s.io/v1"
    assert ev["reason"] == "LeaderElection"
    assert ev["note"] == "me_1 became leader"
