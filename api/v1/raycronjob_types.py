"""ray.io/v1 RayCronJob (``apis/ray/v1/raycronjob_types.go``; controller behind gate RayCronJob:
``controllers/ray/raycronjob_controller.py``, validation in ``validation.validate_ray_cron_job_spec``).
"""

from __future__ import annotations

from .constants import GROUP, VERSION
from .fields import KindInfo, Obj, ObjList, OptBool, OptStr, PrinterColumn, Str, Time, View
from .object import ListMeta, TopLevel
from .rayjob_types import RayJobSpec

__all__ = ["RayCronJob", "RayCronJobList", "RayCronJobSpec", "RayCronJobStatus"]


class RayCronJobSpec(View):
    """Desired state of a RayCronJob."""

    __slots__ = ()

    job_template = Obj(
        "jobTemplate",
        RayJobSpec,
        doc="Spec of the RayJobs created on schedule.",
        required=True,
        omitempty=False,
    )
    schedule = Str("schedule", doc="Standard 5-field cron schedule.", required=True, omitempty=False)
    time_zone = OptStr(
        "timeZone",
        doc="Time zone of the schedule; the operator's local zone when unset. Empty is not allowed.",
        min_length=1,
    )
    suspend = OptBool("suspend", doc="Stop scheduling new RayJobs.")


class RayCronJobStatus(View):
    """Observed state of a RayCronJob."""

    __slots__ = ()

    last_schedule_time = Time("lastScheduleTime", doc="Last time a RayJob was scheduled.")


class RayCronJob(TopLevel):
    """RayCronJob is the Schema for the raycronjobs API."""

    __slots__ = ()
    __kind__ = KindInfo(
        kind="RayCronJob",
        list_kind="RayCronJobList",
        plural="raycronjobs",
        singular="raycronjob",
        group=GROUP,
        version=VERSION,
        scope="Namespaced",
        categories=("all",),
        short_names=(),
        printer_columns=(
            PrinterColumn("schedule", "string", ".spec.schedule"),
            PrinterColumn("timezone", "string", ".spec.timeZone"),
            PrinterColumn("last schedule", "date", ".status.lastScheduleTime"),
            PrinterColumn("age", "date", ".metadata.creationTimestamp"),
            PrinterColumn("suspend", "boolean", ".spec.suspend"),
        ),
        status_subresource=True,
        storage=True,
        served=True,
        doc="RayCronJob is the Schema for the raycronjobs API",
    )

    spec = Obj("spec", RayCronJobSpec)
    status = Obj("status", RayCronJobStatus)


class RayCronJobList(View):
    """A list of RayCronJobs."""

    __slots__ = ()

    api_version = Str("apiVersion")
    kind = Str("kind")
    metadata = Obj("metadata", ListMeta)
    items = ObjList("items", RayCronJob, omitempty=False)
