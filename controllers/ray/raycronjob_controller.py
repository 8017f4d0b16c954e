"""The RayCronJob controller (upstream v1.7.0 ``raycronjob_controller.go``, behind gate ``RayCronJob``): a
RayJob from ``spec.jobTemplate`` at every activation of ``spec.schedule`` (robfig/cron's standard
grammar, in ``spec.timeZone`` or the operator's zone).

The reconcile keeps upstream's steps (spec ``raycluster-extensions.md`` §7.3): read, validate, suspend,
the next activation after ``status.lastScheduleTime`` (else the creation time), and when it is due a
RayJob named ``<cronjob>-<minutes since the epoch>`` followed by ``lastScheduleTime`` set to that
activation. Every status write brings the object back, so activations missed while the operator was
away or the RayCronJob suspended each get their RayJob, one per pass, as upstream (no concurrency
policy, history limit or starting deadline: upstream has none). The deterministic name, with
``AlreadyExists`` taken as success, makes a retried pass create nothing twice.

Deliberate deviation: a schedule with no activation in the next five years (``0 0 30 2 *``) creates
nothing and says so in a Warning event; upstream takes robfig's zero time for an activation and creates
a RayJob for the year 1.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api.v1 import validation as v
from api.v1._cron import CronError, Schedule, parse_standard
from api.v1.errors import ValidationError
from controllers.ray.utils import constants as C
from controllers.ray.utils import util as U
from controllers.ray.utils.constants import RayCronJobEventReason as R
from internal.client import AlreadyExists, ApiError, Client, NotFound
from internal.client import resources as res
from internal.controller import Controller, ControllerOptions, ReconcileError, Request, Result, for_object
from internal.events import Recorder
from internal.features import FeatureGates
from internal.informer import Cache, thaw

log = logging.getLogger("controllers.RayCronJob")

Obj = dict[str, Any]


class _Retry(ReconcileError):
    """Requeue with backoff (upstream returns the error)."""


def schedule_of(spec: Obj) -> Schedule:
    """``spec.schedule`` in ``spec.timeZone`` (upstream prefixes ``TZ=<zone>``); without a zone, the
    operator's."""
    zone = spec.get("timeZone")
    text = str(spec.get("schedule") or "")
    return parse_standard(f"TZ={zone} {text}" if zone is not None else text)


def construct_ray_job(cron: Obj, tick: int) -> Obj:
    """The RayJob of the activation at ``tick``: the template's spec, one label, one annotation, and the
    RayCronJob as its controller (so deleting the RayCronJob deletes its RayJobs)."""
    meta = cron["metadata"]
    job_meta: Obj = {
        "name": f"{meta['name']}-{tick // 60}",
        "namespace": meta["namespace"],
        "labels": {C.RAY_CRON_JOB_NAME_LABEL_KEY: meta["name"]},
        "annotations": {C.RAY_CRON_JOB_TIMESTAMP_ANNOTATION_KEY: U.format_time(tick)},
    }
    U.set_controller_reference(job_meta, cron, kind=C.RAY_CRON_JOB_KIND)
    return {
        "apiVersion": C.RAY_API_VERSION,
        "kind": C.RAY_JOB_KIND,
        "metadata": job_meta,
        "spec": copy.deepcopy((cron.get("spec") or {}).get("jobTemplate") or {}),
    }


@dataclass
class RayCronJobOptions:
    gates: FeatureGates = field(default_factory=FeatureGates)
    #: wall clock (seconds): when an activation is due
    clock: Callable[[], float] = time.time


class RayCronJobReconciler:
    def __init__(self, client: Client, cache: Cache, recorder: Recorder, options: RayCronJobOptions) -> None:
        self.client = client
        self.cache = cache
        self.recorder = recorder
        self.options = options

    async def reconcile(self, request: Request) -> Result:
        try:
            cron: Obj = thaw(self.cache.get(res.RAYCRONJOBS, request.name, request.namespace))
        except NotFound:
            log.info("RayCronJob resource not found.")
            return Result()
        meta = cron["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"

        try:
            v.validate_ray_cron_job_spec(cron, self.options.gates.values)
        except ValidationError as e:
            self.recorder.event(cron, "Warning", R.INVALID_RAY_CRON_JOB_SPEC, f"{key}: {e}", action="Validate")
            return Result()

        spec = cron.setdefault("spec", {})
        if spec.get("suspend") is True:
            log.debug("RayCronJob suspended, no new RayJobs will be created.")
            self.recorder.event(
                cron,
                "Normal",
                R.SUSPENDED_RAY_CRON_JOB,
                "RayCronJob suspended, no new RayJobs will be created",
                action="Suspend",
            )
            return Result()

        try:
            schedule = schedule_of(spec)
        except CronError as e:  # validated above; only a zone that vanished since could get here
            raise _Retry(f"Failed to parse validated cron schedule: {e}") from e

        now = self.options.clock()
        status = cron.setdefault("status", {})
        # whole seconds, as every stored time
        earliest = int(
            U.parse_time(status.get("lastScheduleTime")) or U.parse_time(meta.get("creationTimestamp")) or now
        )
        tick = schedule.next(earliest)
        if tick is None:
            self.recorder.event(
                cron,
                "Warning",
                R.INVALID_RAY_CRON_JOB_SPEC,
                f"{key}: the schedule {spec.get('schedule')!r} has no activation in the next five years",
                action="Validate",
            )
            return Result()
        if tick > now:
            return Result(requeue_after=tick - now)

        ray_job = construct_ray_job(cron, tick)
        name = ray_job["metadata"]["name"]
        try:
            await self.client.create(res.RAYJOBS, ray_job)
            log.info("Successfully created RayJob", extra={"rayJobName": name, "namespace": meta["namespace"]})
        except AlreadyExists:
            log.info("RayJob already exists, created by an earlier pass", extra={"rayJobName": name})

        scheduled = U.format_time(tick)
        if status.get("lastScheduleTime") != scheduled:
            log.info(
                "updateRayCronJobStatus",
                extra={"old lastScheduleTime": status.get("lastScheduleTime"), "new lastScheduleTime": scheduled},
            )
            status["lastScheduleTime"] = scheduled
            try:
                await self.client.update_status(res.RAYCRONJOBS, cron)
            except ApiError as e:
                raise _Retry(f"Failed to update RayCronJob status: {e}") from e

        following = schedule.next(tick)
        if following is None:
            return Result()
        requeue = following - now
        log.info("Schedule timing", extra={"nextScheduledTime": U.format_time(following), "requeueAfter": requeue})
        # Not due yet: look again then. Already due (a missed activation): the status write just made
        # brings the object back at once, as upstream, which does not requeue a non-positive delay.
        return Result(requeue_after=requeue) if requeue > 0 else Result()


def setup(rt: Any, options: RayCronJobOptions | None = None) -> list[Controller]:
    """Register the RayCronJob controller (internal.app.Runtime). It watches RayCronJobs only: its RayJobs
    never bring it back, as upstream."""
    reconciler = RayCronJobReconciler(
        rt.client, rt.cache, rt.recorder("raycronjob-controller"), options or RayCronJobOptions(gates=rt.gates)
    )
    ctrl = Controller(
        "raycronjob",
        reconciler,
        rt.cache,
        ControllerOptions(workers=rt.config.reconcileConcurrency),
        metrics=rt.controller_metrics,
        queue_metrics=rt.queue_metrics,
    )
    ctrl.watch(res.RAYCRONJOBS, for_object)
    return [ctrl]
