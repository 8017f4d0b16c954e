"""The RayCronJob controller (gate RayCronJob) on the simulated cluster, under the shipped RBAC. The
operator's wall clock is moved forward (support/clock.py), so activations a minute or a day away come
at once; the RayJobs it creates are what a user would `kubectl get`."""

from __future__ import annotations

import calendar
import copy
import datetime as dt
import time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from support.clock import SkewedClock
from support.operator import running_operator
from support.wait import events_for, eventually, gone, stays, wait_events

from api.v1.fields import parse_time
from controllers.ray import raycronjob_controller
from controllers.ray.raycronjob_controller import RayCronJobOptions
from internal.app import Runtime
from internal.client import Client
from internal.client.resources import RAYCRONJOBS, RAYJOBS

pytestmark = pytest.mark.t2

TEMPLATE = yaml.safe_load(
    """
entrypoint: python -c "print('tick')"
shutdownAfterJobFinishes: true
rayClusterSpec:
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.52.0
"""
)


def cronjob(name: str, ns: str, schedule: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCronJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"schedule": schedule, "jobTemplate": copy.deepcopy(TEMPLATE), **spec},
    }


def operator(plane: Any, clock: SkewedClock) -> Any:
    def setup(rt: Runtime) -> list[Any]:
        return raycronjob_controller.setup(rt, RayCronJobOptions(gates=rt.gates, clock=clock))

    return running_operator(plane, [setup], gates="RayCronJob=true")


async def ray_jobs(c: Client, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await c.list(RAYJOBS, ns))["items"]
    return sorted(items, key=lambda j: j["metadata"]["name"])


async def no_more_ray_jobs(c: Client, ns: str, count: int, window: float) -> bool:
    """True when the namespace holds exactly ``count`` RayJobs at every sample over ``window`` seconds."""

    async def how_many() -> int:
        return len(await ray_jobs(c, ns))

    return await how_many() == count and await stays(how_many, window)


def minute_ticks(after: float, count: int) -> list[int]:
    """The first ``count`` activations of "* * * * *" after ``after``."""
    first = (int(after) // 60 + 1) * 60
    return [first + 60 * i for i in range(count)]


def past(tick: int) -> SkewedClock:
    """The operator's clock 20 s past ``tick`` (and 40 s before a minute schedule's next activation)."""
    return SkewedClock(offset=tick + 20 - time.time())


def utc(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_missed_activations_each_get_a_ray_job_named_by_the_minute(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """Three minutes of operator time after creation: three RayJobs, one per activation, each made of
    the template with upstream's one label, one annotation and the RayCronJob as controller, and
    lastScheduleTime at the last activation; the next one is a minute away, so nothing more comes."""
    created = await kclient.create(RAYCRONJOBS, cronjob("every-minute", namespace, "* * * * *"))
    born = parse_time(created["metadata"]["creationTimestamp"]).timestamp()
    ticks = minute_ticks(born, 3)
    clock = past(ticks[-1])

    async with operator(sim_cluster, clock):
        await eventually(lambda: no_more_ray_jobs(kclient, namespace, 3, 3), 60, "three RayJobs, then no more")
        jobs = await ray_jobs(kclient, namespace)
        assert [j["metadata"]["name"] for j in jobs] == [f"every-minute-{t // 60}" for t in ticks]
        for job, tick in zip(jobs, ticks, strict=True):
            meta = job["metadata"]
            assert meta["labels"] == {"ray.io/cronjob-name": "every-minute"}
            assert meta["annotations"] == {"ray.io/cronjob-scheduled-timestamp": utc(tick)}
            assert meta["ownerReferences"] == [
                {
                    "apiVersion": "ray.io/v1",
                    "kind": "RayCronJob",
                    "name": "every-minute",
                    "uid": created["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
            assert job["spec"]["entrypoint"] == TEMPLATE["entrypoint"]
            assert (
                job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
                == TEMPLATE["rayClusterSpec"]["headGroupSpec"]["template"]
            )
        live = await kclient.get(RAYCRONJOBS, "every-minute", namespace)
        assert live["status"] == {"lastScheduleTime": utc(ticks[-1])}

    # Deleting the RayCronJob deletes its RayJobs (garbage collection of the controller reference).
    await kclient.delete(RAYCRONJOBS, "every-minute", namespace, propagation_policy="Foreground")
    for job in jobs:
        await eventually(lambda j=job: gone(kclient, RAYJOBS, j["metadata"]["name"], namespace), 60, "RayJob gone")


async def test_time_zone_decides_the_activation_and_the_annotation_is_utc(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """``30 2 * * *`` in Asia/Kolkata is 21:00 UTC the day before; the operator, moved to just past the
    first such instant after creation, creates exactly that RayJob, and the next is a day away."""
    created = await kclient.create(RAYCRONJOBS, cronjob("kolkata", namespace, "30 2 * * *", timeZone="Asia/Kolkata"))
    born = parse_time(created["metadata"]["creationTimestamp"]).timestamp()
    local = dt.datetime.fromtimestamp(born, ZoneInfo("Asia/Kolkata"))
    at = local.replace(hour=2, minute=30, second=0, microsecond=0)
    if at.timestamp() <= born:
        at += dt.timedelta(days=1)
    tick = int(at.timestamp())
    assert utc(tick).endswith("T21:00:00Z")
    clock = past(tick)

    async with operator(sim_cluster, clock):
        await eventually(lambda: no_more_ray_jobs(kclient, namespace, 1, 3), 60, "one RayJob, then no more")
        [job] = await ray_jobs(kclient, namespace)
        assert job["metadata"]["name"] == f"kolkata-{tick // 60}"
        assert job["metadata"]["annotations"]["ray.io/cronjob-scheduled-timestamp"] == utc(tick)
        live = await kclient.get(RAYCRONJOBS, "kolkata", namespace)
        assert live["status"]["lastScheduleTime"] == utc(tick)


async def test_suspended_creates_nothing_and_resuming_creates_every_missed_run(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    created = await kclient.create(RAYCRONJOBS, cronjob("paused", namespace, "*/1 * * * *", suspend=True))
    born = parse_time(created["metadata"]["creationTimestamp"]).timestamp()
    ticks = minute_ticks(born, 2)
    clock = past(ticks[-1])

    async with operator(sim_cluster, clock):
        [ev] = await wait_events(kclient, namespace, "paused", "SuspendedRayCronJob")
        assert (ev["type"], ev["action"], ev["note"]) == (
            "Normal",
            "Suspend",
            "RayCronJob suspended, no new RayJobs will be created",
        )
        assert ev["reportingController"] == "raycronjob-controller"
        assert await no_more_ray_jobs(kclient, namespace, 0, 3)
        assert "status" not in await kclient.get(RAYCRONJOBS, "paused", namespace)

        live = await kclient.get(RAYCRONJOBS, "paused", namespace)
        live["spec"]["suspend"] = False
        await kclient.update(RAYCRONJOBS, live)
        await eventually(lambda: no_more_ray_jobs(kclient, namespace, 2, 3), 60, "the two missed runs")
        assert [j["metadata"]["name"] for j in await ray_jobs(kclient, namespace)] == [
            f"paused-{t // 60}" for t in ticks
        ]


async def test_a_ray_job_left_by_an_earlier_pass_is_not_created_twice(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """A pass that created the RayJob but could not record lastScheduleTime (the operator stopped, the
    write failed) leaves the RayJob; the next pass finds it under the same name, takes it as done and
    moves lastScheduleTime on."""
    created = await kclient.create(RAYCRONJOBS, cronjob("again", namespace, "* * * * *"))
    born = parse_time(created["metadata"]["creationTimestamp"]).timestamp()
    [tick] = minute_ticks(born, 1)
    leftover = raycronjob_controller.construct_ray_job(created, tick)
    leftover["metadata"]["labels"]["made-by"] = "the-earlier-pass"
    await kclient.create(RAYJOBS, leftover)
    clock = past(tick)

    async with operator(sim_cluster, clock):

        async def scheduled() -> bool:
            live = await kclient.get(RAYCRONJOBS, "again", namespace)
            return (live.get("status") or {}).get("lastScheduleTime") == utc(tick)

        await eventually(scheduled, 60, "lastScheduleTime at the activation")
        assert await no_more_ray_jobs(kclient, namespace, 1, 2)
        [job] = await ray_jobs(kclient, namespace)
        assert job["metadata"]["labels"]["made-by"] == "the-earlier-pass"


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("x" * 37, {"schedule": "* * * * *"}, "RayCronJob name should be no more than 36 characters"),
        ("tz", {"schedule": "TZ=UTC * * * * *"}, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
        ("fields", {"schedule": "* * *"}, "invalid cron schedule: expected exactly 5 fields, found 3: [* * *]"),
        ("range", {"schedule": "0-60 * * * *"}, "invalid cron schedule: end of range (60) above maximum (59): 0-60"),
        (
            "zone",
            {"schedule": "* * * * *", "timeZone": "Mars/Olympus"},
            "invalid time zone: unknown time zone Mars/Olympus",
        ),
        (
            "template",
            {"schedule": "* * * * *", "jobTemplate": {"entrypoint": "python x.py"}},
            "invalid RayJob template: The RayJob spec is invalid: one of RayClusterSpec or ClusterSelector must be set",
        ),
    ],
)
async def test_an_invalid_spec_is_a_warning_event_and_nothing_else(
    sim_cluster: Any, kclient: Client, namespace: str, name: str, spec: dict[str, Any], message: str
) -> None:
    body = cronjob(name, namespace, spec.pop("schedule"), **spec)
    await kclient.create(RAYCRONJOBS, body)
    async with operator(sim_cluster, SkewedClock(offset=600)):
        [ev] = await wait_events(kclient, namespace, name, "InvalidRayCronJobSpec")
        assert (ev["type"], ev["action"], ev["note"]) == ("Warning", "Validate", f"{namespace}/{name}: {message}")
        assert await no_more_ray_jobs(kclient, namespace, 0, 2)
        assert "status" not in await kclient.get(RAYCRONJOBS, name, namespace)


async def test_without_the_gate_a_raycronjob_is_left_alone(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    await kclient.create(RAYCRONJOBS, cronjob("ignored", namespace, "* * * * *"))
    async with running_operator(sim_cluster) as rt:
        assert "raycronjob" not in {c.name for c in rt.manager.controllers}
        assert await no_more_ray_jobs(kclient, namespace, 0, 2)
        assert await events_for(kclient, namespace, "ignored") == []


def test_minute_ticks_helper() -> None:
    t = calendar.timegm((2026, 12, 7, 10, 0, 30))
    assert minute_ticks(t, 2) == [t + 30, t + 90]
