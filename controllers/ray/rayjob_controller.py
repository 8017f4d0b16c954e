"""The RayJob controller (upstream ``rayjob_controller.go``): create or select a RayCluster, submit the
entrypoint (K8sJobMode, HTTPMode, SidecarMode, InteractiveMode), follow the Ray job to a terminal
state, retry by ``backoffLimit`` and clean up by policy.

The state machine keeps upstream's states, checks and order. A case either *returns* (a Result, no
status write) or *breaks* (None): then the backoff check runs and the status is written only when a
tracked field changed, and the RayJob is requeued after 3 s. Dashboard calls go through the
non-blocking client in ``controllers/ray/utils/dashboard.py``: every call is bounded by its timeout,
so one dead head never holds a worker longer than that.

Beyond upstream: before a cluster created for the job is deleted, the driver log is copied from the
dashboard into a ConfigMap ``<rayjob>-driver-log`` owned by the RayJob (see docs/rayjob-driver-logs.md).
"""

from __future__ import annotations

import copy
import logging
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from api.v1 import validation as v
from api.v1.errors import ValidationError
from api.v1.fields import go_marshal
from api.v1.raycluster_types import RayClusterStatus
from api.v1.rayjob_types import RayJobStatus
from controllers.ray.common import job as jobb
from controllers.ray.common import service as svcb
from controllers.ray.raycluster_controller import inconsistent_status
from controllers.ray.utils import constants as C
from controllers.ray.utils import dashboard as dash
from controllers.ray.utils import util as U
from controllers.ray.utils.constants import EventReason as R
from internal.client import AlreadyExists, ApiError, Client, Conflict, NotFound
from internal.client import resources as res
from internal.controller import (
    Controller,
    ControllerOptions,
    ForOwner,
    ReconcileError,
    Request,
    Result,
    for_object,
)
from internal.events import Recorder
from internal.features import FeatureGates
from internal.informer import Cache, thaw
from internal.startup import StartupError

# Upstream's logger name (ctrl.Log.WithName("controllers").WithName("RayJob")).
log = logging.getLogger("controllers.RayJob")

Obj = dict[str, Any]
REQUEUE = 3.0
SUBMITTER_FINISHED_TIMEOUT = 30.0
MANAGED_BY = "ray.io/kuberay-operator"
FINALIZER = C.RAY_JOB_STOP_JOB_FINALIZER
DRIVER_LOG_LIMIT = 900 * 1024  # a ConfigMap holds at most 1 MiB
DRIVER_LOG_SUFFIX = "-driver-log"

NEW, INITIALIZING, RUNNING, COMPLETE, FAILED = "", "Initializing", "Running", "Complete", "Failed"
VALIDATION_FAILED, SUSPENDING, SUSPENDED, RETRYING, WAITING = (
    "ValidationFailed",
    "Suspending",
    "Suspended",
    "Retrying",
    "Waiting",
)
K8S_JOB, HTTP, INTERACTIVE, SIDECAR = "K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"
TERMINAL_JOB = frozenset({"STOPPED", "SUCCEEDED", "FAILED"})


def _env_seconds(env: Mapping[str, str], key: str, default: int) -> int:
    try:
        n = int(env.get(key) or default)
    except ValueError:
        return default
    return n if n > 0 else default


@dataclass
class RayJobOptions:
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    gates: FeatureGates = field(default_factory=FeatureGates)
    keep_driver_logs: bool = True


class RayJobReconciler:
    def __init__(
        self,
        client: Client,
        cache: Cache,
        recorder: Recorder,
        dashboards: dash.DashboardClientFactory,
        options: RayJobOptions | None = None,
        metrics: Any = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.recorder = recorder
        self.dashboards = dashboards
        self.options = options or RayJobOptions()
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()

    # ---- entry -----------------------------------------------------------------------------------

    async def reconcile(self, request: Request) -> Result:
        try:
            cached = self.cache.get(res.RAYJOBS, request.name, request.namespace)
        except NotFound:
            if self.metrics:
                self.metrics.forget_job(request.name, request.namespace)
            return Result()
        job: Obj = thaw(cached)
        spec = job.setdefault("spec", {})
        status: Obj = job.setdefault("status", {})
        if spec.get("managedBy") and spec.get("managedBy") != MANAGED_BY:
            return Result()
        if job["metadata"].get("deletionTimestamp"):
            return await self._handle_deletion(job)
        original = copy.deepcopy(job)

        for reason in (R.INVALID_RAY_JOB_METADATA, R.INVALID_RAY_JOB_SPEC, R.INVALID_RAY_JOB_STATUS):
            try:
                if reason == R.INVALID_RAY_JOB_METADATA:
                    v.validate_ray_job_metadata(job)
                elif reason == R.INVALID_RAY_JOB_SPEC:
                    v.validate_ray_job_spec(job, self.options.gates.values)
                else:
                    v.validate_ray_job_status(job)
            except ValidationError as e:
                meta = job["metadata"]
                self.recorder.event(
                    job, "Warning", reason, f"{meta['namespace']}/{meta['name']}: {e}", action="Validate"
                )
                status.update(jobDeploymentStatus=VALIDATION_FAILED, reason=VALIDATION_FAILED, message=str(e))
                await self._write_status(job)
                return Result()

        state = status.get("jobDeploymentStatus") or NEW
        log.info(
            "RayJob",
            extra={
                "JobStatus": status.get("jobStatus") or "",
                "JobDeploymentStatus": state,
                "SubmissionMode": spec.get("submissionMode") or K8S_JOB,
            },
        )
        handler = {
            NEW: self._new,
            INITIALIZING: self._initializing,
            WAITING: self._waiting,
            RUNNING: self._running,
            SUSPENDING: self._suspending,
            RETRYING: self._suspending,
            SUSPENDED: self._suspended,
            COMPLETE: self._terminal,
            FAILED: self._terminal,
        }.get(state)
        if handler is None:
            log.info("Unknown JobDeploymentStatus", extra={"JobDeploymentStatus": state})
            return Result(requeue_after=REQUEUE)
        out = await handler(job)
        if out is not None:
            return out
        self._check_backoff_limit(job)
        await self._update_status(original, job)
        return Result(requeue_after=REQUEUE)

    # ---- states ----------------------------------------------------------------------------------

    async def _new(self, job: Obj) -> Result | None:
        meta = job["metadata"]
        if FINALIZER not in (meta.get("finalizers") or []):
            log.info("Add a finalizer", extra={"finalizer": FINALIZER})
            patched = await self.client.patch(
                res.RAYJOBS,
                meta["name"],
                {
                    "metadata": {
                        "finalizers": [*(meta.get("finalizers") or []), FINALIZER],
                        "resourceVersion": meta["resourceVersion"],
                    }
                },
                meta["namespace"],
            )
            meta.setdefault("finalizers", []).append(FINALIZER)
            # As upstream's r.Update, which refreshes the object: the status write below must carry the
            # patched resourceVersion, or it always fails with a conflict.
            meta["resourceVersion"] = patched["metadata"]["resourceVersion"]
        self._init_status(job)
        return None

    def _init_status(self, job: Obj) -> None:
        spec, status = job["spec"], job["status"]
        if status.get("jobId") and status.get("rayClusterName") and status.get("jobStatus"):
            return
        name = job["metadata"]["name"]
        suffix = lambda: U.random_string(C.RANDOM_SUFFIX_LENGTH, self.rng)  # noqa: E731
        if spec.get("submissionMode") != INTERACTIVE and not status.get("jobId"):
            status["jobId"] = spec.get("jobId") or U.generate_ray_job_id(name, suffix)
        if not status.get("rayClusterName"):
            selector = spec.get("clusterSelector") or {}
            status["rayClusterName"] = selector.get(C.RAY_CLUSTER_LABEL_KEY) or U.generate_ray_cluster_name(
                name, suffix
            )
        status.setdefault("jobStatus", "")
        status["jobDeploymentStatus"] = INITIALIZING
        status["startTime"] = U.format_time(self.clock())

    def _deadline_failures(self, job: Obj, *, active: bool, pre_running: bool) -> bool:
        spec, status = job["spec"], job["status"]
        start = U.parse_time(status.get("startTime")) or self.clock()
        now = self.clock()
        ads = spec.get("activeDeadlineSeconds")
        if active and ads and now >= start + ads:
            log.info(
                "The RayJob has passed the activeDeadlineSeconds. Transition the status to `Failed`.",
                extra={"StartTime": status.get("startTime"), "ActiveDeadlineSeconds": ads},
            )
            self._fail(
                job,
                "DeadlineExceeded",
                f"The RayJob has passed the activeDeadlineSeconds. StartTime: {status.get('startTime')}. "
                f"ActiveDeadlineSeconds: {ads}",
            )
            return True
        prds = spec.get("preRunningDeadlineSeconds")
        if pre_running and prds and now >= start + prds:
            log.info(
                "The RayJob has passed the preRunningDeadlineSeconds. Transition the status to `Failed`.",
                extra={"StartTime": status.get("startTime"), "PreRunningDeadlineSeconds": prds},
            )
            self._fail(
                job,
                "PreRunningDeadlineExceeded",
                f"The RayJob has passed the preRunningDeadlineSeconds. StartTime: {status.get('startTime')}. "
                f"PreRunningDeadlineSeconds: {prds}",
            )
            return True
        return False

    def _fail(self, job: Obj, reason: str, message: str) -> None:
        job["status"].update(jobDeploymentStatus=FAILED, reason=reason, message=message)

    async def _initializing(self, job: Obj) -> Result | None:
        spec, status = job["spec"], job["status"]
        if spec.get("suspend"):
            log.info("Try to transition the status to `Suspending`", extra={"oldStatus": status["jobDeploymentStatus"]})
            status["jobDeploymentStatus"] = SUSPENDING
            return None
        if self._deadline_failures(job, active=True, pre_running=True):
            return None
        cluster = await self._get_or_create_cluster(job)
        if not status.get("dashboardURL"):
            if (cluster.get("status") or {}).get("state") != "ready":
                status["rayClusterStatus"] = cluster.get("status") or {}
                return None
            # Upstream reads the head Service through the manager's cache; a Service created a moment
            # ago may not be there yet, so a miss asks the apiserver.
            ns, svc_name = cluster["metadata"]["namespace"], dash.head_service_name(cluster)
            try:
                svc: Mapping[str, Any] = self.cache.get(res.SERVICES, svc_name, ns)
            except NotFound:
                svc = await self.client.get(res.SERVICES, svc_name, ns)
            url = dash.head_service_url(svc, env=self.options.env)
            if not url:
                raise _Retry("the dashboard URL of the RayCluster is empty")
            status["dashboardURL"] = url
        mode = spec.get("submissionMode") or K8S_JOB
        if mode == INTERACTIVE:
            status["jobDeploymentStatus"] = WAITING
            return None
        if mode == K8S_JOB:
            await self._create_submitter_job_if_needed(job, cluster)
        status["jobDeploymentStatus"] = RUNNING
        return None

    async def _waiting(self, job: Obj) -> Result | None:
        if self._deadline_failures(job, active=False, pre_running=True):
            return None
        if not job["spec"].get("jobId"):
            return Result(requeue_after=REQUEUE)
        job["status"]["jobId"] = job["spec"]["jobId"]
        job["status"]["jobDeploymentStatus"] = RUNNING
        return None

    async def _running(self, job: Obj) -> Result | None:
        spec, status = job["spec"], job["status"]
        env = self.options.env
        now = self.clock()
        if spec.get("suspend"):
            log.info("Try to transition the status to `Suspending`", extra={"oldStatus": status["jobDeploymentStatus"]})
            status["jobDeploymentStatus"] = SUSPENDING
            return None
        if self._deadline_failures(job, active=True, pre_running=False):
            return None
        # The Ray job reached a terminal state but the deployment did not follow: give up after a grace.
        end = (status.get("rayJobInfo") or {}).get("endTime")
        if status.get("jobStatus") in TERMINAL_JOB and end:
            grace = _env_seconds(env, "RAYJOB_DEPLOYMENT_STATUS_TRANSITION_GRACE_PERIOD_SECONDS", 300)
            end_t = U.parse_time(end) or now
            if now >= end_t + grace:
                failed = status.get("jobStatus") == "FAILED"
                status.update(
                    jobDeploymentStatus=FAILED if failed else COMPLETE,
                    reason="JobDeploymentStatusTransitionGracePeriodExceeded",
                    message=f"The RayJob's deployment status did not follow its terminal job status within {grace}s",
                )
                return None
        check_start = U.parse_time(status.get("jobStatusCheckFailureStartTime"))
        if check_start is not None:
            limit = _env_seconds(env, "RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS", 300)
            if now >= check_start + limit:
                self._fail(
                    job,
                    "JobStatusCheckTimeoutExceeded",
                    f"Job status checks have been failing since {status['jobStatusCheckFailureStartTime']}; "
                    f"exceeded timeout of {limit}s",
                )
                return None
        cluster = await self._get_or_create_cluster(job)
        await self._reconcile_services(job, cluster)

        mode = spec.get("submissionMode") or K8S_JOB
        finished_at: float | None = None
        # The submitter finished and the Ray job has not been seen terminal for SUBMITTER_FINISHED_TIMEOUT.
        # Upstream fails the RayJob at once; here Ray is asked first, so an operator that was down or cut
        # off when the job ended reports what Ray says rather than a failure (found by the chaos tier).
        submitter_timed_out = False
        if mode in (K8S_JOB, SIDECAR):
            should_update, finished_at = await self._check_submitter(job, cluster)
            if should_update:
                return None
            submitter_timed_out = (
                finished_at is not None
                and now >= finished_at + SUBMITTER_FINISHED_TIMEOUT
                and status.get("jobStatus") not in TERMINAL_JOB
            )

        # Past the submitter timeout, any failure to read the Ray job fails the RayJob, as upstream does.
        unreadable: tuple[type[Exception], ...] = (dash.DashboardError, TimeoutError) if submitter_timed_out else ()
        client = await self._dashboard(cluster, status.get("dashboardURL") or "")
        try:
            info = await client.get_job_info(status["jobId"])
        except unreadable:
            assert finished_at is not None
            self._submitter_finished_timeout(job, finished_at)
            return None
        except dash.JobNotFound:
            if mode == HTTP:
                try:
                    await client.submit_job(jobb.ray_job_request(job))
                    status.pop("jobStatusCheckFailureStartTime", None)
                except dash.JobAlreadySubmitted:
                    self._first_check_failure(job)  # upstream: the duplicate answer counts as a failure
                except (dash.DashboardError, TimeoutError) as e:
                    log.info("RayJob %s: submission failed: %s", job["metadata"]["name"], e)
                    return None if self._first_check_failure(job) else Result(requeue_after=REQUEUE)
                return None
            if finished_at is not None:
                self._fail(job, "AppFailed", "Submitter completed but Ray job not found in RayCluster.")
                return None
            return Result(requeue_after=REQUEUE)
        except (dash.DashboardError, TimeoutError) as e:
            log.info("RayJob %s: job status check failed: %s", job["metadata"]["name"], e)
            return None if self._first_check_failure(job) else Result(requeue_after=REQUEUE)
        if submitter_timed_out and info.status not in TERMINAL_JOB:
            assert finished_at is not None
            self._submitter_finished_timeout(job, finished_at)
            return None
        status.pop("jobStatusCheckFailureStartTime", None)
        terminal = info.status in TERMINAL_JOB and (mode not in (K8S_JOB, SIDECAR) or finished_at is not None)
        status["rayClusterStatus"] = cluster.get("status") or {}
        status["jobStatus"] = info.status
        status["message"] = info.message
        ray_info: Obj = dict(status.get("rayJobInfo") or {})
        if info.start_time:
            ray_info["startTime"] = U.format_time(info.start_time / 1000)
        if info.end_time:
            ray_info["endTime"] = U.format_time(info.end_time / 1000)
        if ray_info:
            status["rayJobInfo"] = ray_info
        if terminal:
            if info.status == "FAILED":
                status.update(jobDeploymentStatus=FAILED, reason="AppFailed")
            else:
                status.update(jobDeploymentStatus=COMPLETE, reason="")
        return None

    @staticmethod
    def _submitter_finished_timeout(job: Obj, finished_at: float) -> None:
        job["status"].update(
            jobStatus="FAILED",
            jobDeploymentStatus=FAILED,
            reason="JobDeploymentStatusTransitionGracePeriodExceeded",
            message=f"The RayJob submitter finished at {U.format_time(finished_at)} but the ray job did not reach "
            f"terminal state within {SUBMITTER_FINISHED_TIMEOUT:.0f}s",
        )

    def _first_check_failure(self, job: Obj) -> bool:
        """Record when status checks started failing; True the first time (the caller breaks, so the
        time is persisted), False after that (the caller just requeues)."""
        status = job["status"]
        if status.get("jobStatusCheckFailureStartTime"):
            return False
        status["jobStatusCheckFailureStartTime"] = U.format_time(self.clock())
        return True

    async def _suspending(self, job: Obj) -> Result | None:
        status = job["status"]
        cluster_gone = await self._delete_cluster_resources(job)
        submitter_gone = await self._delete_submitter_job(job)
        if not (cluster_gone and submitter_gone):
            return Result(requeue_after=REQUEUE)
        for key in (
            "rayClusterStatus",
            "dashboardURL",
            "jobId",
            "message",
            "reason",
            "rayJobInfo",
            "jobStatusCheckFailureStartTime",
        ):
            status.pop(key, None)
        status["rayClusterName"] = ""
        status["jobStatus"] = ""
        status["jobDeploymentStatus"] = SUSPENDED if status.get("jobDeploymentStatus") == SUSPENDING else NEW
        return None

    async def _suspended(self, job: Obj) -> Result | None:
        if job["spec"].get("suspend"):
            return Result()
        log.info("The status is 'Suspended', but the suspend flag is false. Transition the status to 'New'.")
        job["status"]["jobStatus"] = ""
        job["status"]["jobDeploymentStatus"] = NEW
        return None

    async def _terminal(self, job: Obj) -> Result | None:
        spec = job["spec"]
        if spec.get("clusterSelector"):
            return Result()
        strategy = spec.get("deletionStrategy")
        if self.options.gates.enabled("RayJobDeletionPolicy") and strategy:
            if strategy.get("deletionRules"):
                return await self._deletion_rules(job, strategy["deletionRules"])
            return await self._legacy_deletion_policy(job, strategy)
        if spec.get("shutdownAfterJobFinishes"):
            due = self._end_time(job) + int(spec.get("ttlSecondsAfterFinished") or 0)
            now = self.clock()
            if now < due:
                return Result(requeue_after=due - now + 2)
            if str(self.options.env.get("DELETE_RAYJOB_CR_AFTER_JOB_FINISHES", "")).lower() == "true":
                await self._delete_self(job)
            else:
                await self._delete_cluster_resources(job)
            return Result()
        return Result()

    def _end_time(self, job: Obj) -> float:
        return U.parse_time(job["status"].get("endTime")) or self.clock()

    async def _legacy_deletion_policy(self, job: Obj, strategy: Mapping[str, Any]) -> Result:
        js = job["status"].get("jobStatus")
        policy = (
            strategy.get("onSuccess") if js == "SUCCEEDED" else strategy.get("onFailure") if js == "FAILED" else None
        )
        action = (policy or {}).get("policy")
        if not action or action == "DeleteNone":
            return Result()
        due = self._end_time(job) + int(job["spec"].get("ttlSecondsAfterFinished") or 0)
        now = self.clock()
        if now < due:
            return Result(requeue_after=due - now + 2)
        await self._execute_deletion(job, action)
        return Result()

    async def _deletion_rules(self, job: Obj, rules: list[Mapping[str, Any]]) -> Result:
        status = job["status"]
        end = self._end_time(job)
        now = self.clock()
        impact = {"DeleteSelf": 4, "DeleteCluster": 3, "DeleteWorkers": 2, "DeleteNone": 1}
        next_due: float | None = None
        overdue: list[str] = []
        for rule in rules:
            cond = rule.get("condition") or {}
            if "jobStatus" in cond and cond.get("jobStatus") != status.get("jobStatus"):
                continue
            if "jobDeploymentStatus" in cond and cond.get("jobDeploymentStatus") != status.get("jobDeploymentStatus"):
                continue
            due = end + int(cond.get("ttlSeconds") or 0)
            if now < due:
                next_due = due if next_due is None else min(next_due, due)
                continue
            action = str(rule.get("policy") or "")
            if not await self._deletion_done(job, action):
                overdue.append(action)
        if overdue:
            await self._execute_deletion(job, max(overdue, key=lambda a: impact.get(a, 0)))
        if next_due is not None:
            return Result(requeue_after=next_due - now + 2)
        return Result(requeue_after=REQUEUE) if overdue else Result()

    async def _deletion_done(self, job: Obj, action: str) -> bool:
        if action == "DeleteNone":
            return True
        if action == "DeleteSelf":
            return False
        cluster = self._cached_cluster(job)
        if cluster is None or (cluster.get("metadata") or {}).get("deletionTimestamp"):
            return True
        if action == "DeleteWorkers":
            return all(g.get("suspend") is True for g in (cluster.get("spec") or {}).get("workerGroupSpecs") or ())
        return False

    async def _execute_deletion(self, job: Obj, action: str) -> None:
        if action == "DeleteCluster":
            await self._delete_cluster_resources(job)
        elif action == "DeleteWorkers":
            await self._suspend_worker_groups(job)
        elif action == "DeleteSelf":
            await self._delete_self(job)

    # ---- deletion of the RayJob itself -------------------------------------------------------------

    async def _handle_deletion(self, job: Obj) -> Result:
        status, meta = job.get("status") or {}, job["metadata"]
        if status.get("jobStatus") not in TERMINAL_JOB and status.get("jobId"):
            cluster = self._cached_cluster(job)
            if cluster is not None:
                client = await self._dashboard(cluster, status.get("dashboardURL") or "")
                try:
                    await client.stop_job(status["jobId"])
                except (dash.DashboardError, TimeoutError) as e:
                    log.info("RayJob %s: stopping the Ray job failed: %s", meta["name"], e)
        if FINALIZER in (meta.get("finalizers") or []):
            remaining = [f for f in meta["finalizers"] if f != FINALIZER]
            await self.client.patch(
                res.RAYJOBS,
                meta["name"],
                {"metadata": {"finalizers": remaining or None, "resourceVersion": meta["resourceVersion"]}},
                meta["namespace"],
            )
        return Result(requeue_after=REQUEUE)

    async def _delete_self(self, job: Obj) -> None:
        meta = job["metadata"]
        await self._save_driver_log(job)
        try:
            await self.client.delete(res.RAYJOBS, meta["name"], meta["namespace"])
        except NotFound:
            pass

    # ---- cluster, services, submitter -------------------------------------------------------------

    def _cached_cluster(self, job: Obj) -> Obj | None:
        name = (job.get("status") or {}).get("rayClusterName")
        if not name:
            return None
        try:
            cluster: Obj = thaw(self.cache.get(res.RAYCLUSTERS, name, job["metadata"]["namespace"]))
        except NotFound:
            return None
        return cluster

    async def _get_or_create_cluster(self, job: Obj) -> Obj:
        meta, status, spec = job["metadata"], job["status"], job["spec"]
        name = status["rayClusterName"]
        cluster = self._cached_cluster(job)
        if cluster is not None:
            return cluster
        if spec.get("clusterSelector"):
            try:  # a cluster the user created a moment ago may not be in the cache yet
                return await self.client.get(res.RAYCLUSTERS, name, meta["namespace"])
            except NotFound:
                pass
            msg = (
                f"RayCluster {meta['namespace']}/{name} set in the clusterSelector is not found. "
                "It must be created manually"
            )
            self.recorder.event(job, "Warning", R.RAY_CLUSTER_NOT_FOUND, msg, action="Validate")
            raise _Retry(msg)
        log.info(
            "RayCluster not found, creating RayCluster!",
            extra={"RayCluster": {"name": name, "namespace": meta["namespace"]}},
        )
        try:
            cluster = jobb.construct_ray_cluster_for_rayjob(
                job, name, env=self.options.env, features=self.options.gates.values
            )
        except ValueError as e:  # a spec no validation rule catches, that cannot be built
            msg = f"Failed to create RayCluster {meta['namespace']}/{name}: {e}"
            self.recorder.event(job, "Warning", R.FAILED_TO_CREATE_RAY_CLUSTER, msg, action="Create")
            raise _Retry(msg) from e
        try:
            out = await self.client.create(res.RAYCLUSTERS, cluster, meta["namespace"])
        except AlreadyExists:
            return await self.client.get(res.RAYCLUSTERS, name, meta["namespace"])
        except ApiError as e:
            self.recorder.event(
                job,
                "Warning",
                R.FAILED_TO_CREATE_RAY_CLUSTER,
                f"Failed to create RayCluster {meta['namespace']}/{name}: {e}",
                action="Create",
            )
            raise
        self.recorder.event(
            job, "Normal", R.CREATED_RAY_CLUSTER, f"Created RayCluster {meta['namespace']}/{name}", action="Create"
        )
        return out

    async def _reconcile_services(self, job: Obj, cluster: Obj) -> None:
        if job["spec"].get("clusterSelector"):
            return
        meta = job["metadata"]
        want = svcb.build_head_service_for_ray_job(job, cluster, env=self.options.env)
        name = want["metadata"]["name"]
        try:
            have = thaw(self.cache.get(res.SERVICES, name, meta["namespace"]))
        except NotFound:
            try:
                await self.client.create(res.SERVICES, want, meta["namespace"])
            except AlreadyExists:
                return
            except ApiError as e:
                self.recorder.event(
                    job,
                    "Warning",
                    R.FAILED_TO_CREATE_SERVICE,
                    f"Failed to create the service {meta['namespace']}/{name}, {e}",
                    action="Create",
                )
                raise
            self.recorder.event(
                job, "Normal", R.CREATED_SERVICE, f"Created the service {meta['namespace']}/{name}", action="Create"
            )
            return
        old_sel = (have.get("spec") or {}).get("selector") or {}
        new_sel = want["spec"].get("selector") or {}
        if old_sel.get(C.RAY_CLUSTER_LABEL_KEY) != new_sel.get(C.RAY_CLUSTER_LABEL_KEY):
            have["spec"]["selector"] = new_sel
            try:
                await self.client.update(res.SERVICES, have)
            except Conflict:
                raise  # our cache is one write behind: retried with the fresh Service, not a failure to report
            except ApiError as e:
                self.recorder.event(
                    job,
                    "Warning",
                    R.FAILED_TO_UPDATE_SERVICE,
                    f"Failed to update the service {meta['namespace']}/{name}, {e}",
                    action="Update",
                )
                raise
            self.recorder.event(
                job, "Normal", R.UPDATED_SERVICE, f"Updated the service {meta['namespace']}/{name}", action="Update"
            )

    async def _create_submitter_job_if_needed(self, job: Obj, cluster: Obj) -> None:
        meta = job["metadata"]
        try:
            self.cache.get(res.JOBS, meta["name"], meta["namespace"])
            return
        except NotFound:
            pass
        try:
            submitter = jobb.build_submitter_job(job, cluster, job["status"]["dashboardURL"], env=self.options.env)
        except ValueError as e:
            # E.g. a submitterPodTemplate without containers: upstream indexes container 0 and panics; here
            # the user gets an event, and the reconcile retries with backoff until the spec is fixed.
            msg = f"Failed to create new Kubernetes Job {meta['namespace']}/{meta['name']}: {e}"
            self.recorder.event(job, "Warning", R.FAILED_TO_CREATE_RAY_JOB_SUBMITTER, msg, action="Create")
            raise _Retry(msg) from e
        try:
            await self.client.create(res.JOBS, submitter, meta["namespace"])
        except AlreadyExists:
            return
        except ApiError as e:
            self.recorder.event(
                job,
                "Warning",
                R.FAILED_TO_CREATE_RAY_JOB_SUBMITTER,
                f"Failed to create new Kubernetes Job {meta['namespace']}/{meta['name']}: {e}",
                action="Create",
            )
            raise
        log.info("Created submitter Kubernetes Job for RayJob", extra={"Kubernetes Job": meta["name"]})
        self.recorder.event(
            job,
            "Normal",
            R.CREATED_RAY_JOB_SUBMITTER,
            f"Created Kubernetes Job {meta['namespace']}/{meta['name']}",
            action="Create",
        )

    async def _check_submitter(self, job: Obj, cluster: Obj) -> tuple[bool, float | None]:
        """checkSubmitterAndUpdateStatusIfNeeded: (status changed, when the submitter finished)."""
        meta, status = job["metadata"], job["status"]
        if (job["spec"].get("submissionMode") or K8S_JOB) == K8S_JOB:
            try:
                sub = self.cache.get(res.JOBS, meta["name"], meta["namespace"])
            except NotFound:
                return False, None
            for c in (sub.get("status") or {}).get("conditions") or ():
                if c.get("status") != "True":
                    continue
                if c.get("type") == "Failed":
                    log.info(
                        "The submitter Kubernetes Job has failed. Attempting to transition the status to `Failed`.",
                        extra={"Submitter K8s Job": sub["metadata"]["name"], "Reason": c.get("reason", "")},
                    )
                    reason = "AppFailed" if status.get("jobStatus") == "FAILED" else "SubmissionFailed"
                    self._fail(
                        job,
                        reason,
                        f"Job submission has failed. Reason: {c.get('reason', '')}. Message: {c.get('message', '')}",
                    )
                    return True, U.parse_time(c.get("lastTransitionTime"))
                if c.get("type") == "Complete":
                    return False, U.parse_time(c.get("lastTransitionTime"))
            return False, None
        heads = self.cache.list(
            res.PODS,
            meta["namespace"],
            labels={C.RAY_CLUSTER_LABEL_KEY: status["rayClusterName"], C.RAY_NODE_TYPE_LABEL_KEY: "head"},
        )
        if not heads:
            self._fail(job, "AppFailed", "Ray head pod not found.")
            return True, None
        for cs in (heads[0].get("status") or {}).get("containerStatuses") or ():
            if cs.get("name") != C.RAY_JOB_SUBMITTER_CONTAINER_NAME:
                continue
            term = (cs.get("state") or {}).get("terminated")
            if self.options.gates.enabled(C.FEATURE_SIDECAR_SUBMITTER_RESTART):
                # The kubelet restarts the submitter on failure (restartPolicy OnFailure): fail only once
                # it has restarted as often as allowed, not on each non-zero exit.
                if sidecar_restarts_exceeded(cs, job):
                    log.info(
                        "The submitter sidecar container has exceeded the max restart count. "
                        "Attempting to transition the status to `Failed`.",
                        extra={"Submitter sidecar container": cs.get("name"), "RestartCount": cs.get("restartCount")},
                    )
                    reason = "AppFailed" if status.get("jobStatus") == "FAILED" else "SubmissionFailed"
                    self._fail(
                        job,
                        reason,
                        f"Ray head pod submitter container {cs.get('name')} terminated due to exceeding max "
                        "restart count",
                    )
                    return True, U.parse_time((term or {}).get("finishedAt"))
                if not term or term.get("exitCode", 0) != 0:
                    return False, None
                return False, U.parse_time(term.get("finishedAt"))
            if not term:
                return False, None
            if term.get("exitCode", 0) != 0:
                log.info(
                    "The submitter sidecar container has failed. Attempting to transition the status to `Failed`.",
                    extra={"Submitter sidecar container": cs.get("name"), "ExitCode": term.get("exitCode")},
                )
                reason = "AppFailed" if status.get("jobStatus") == "FAILED" else "SubmissionFailed"
                self._fail(
                    job,
                    reason,
                    f"Ray head pod container {cs.get('name')} terminated with exit code "
                    f"{term.get('exitCode')}: {term.get('message', '')}",
                )
                return True, U.parse_time(term.get("finishedAt"))
            return False, U.parse_time(term.get("finishedAt"))
        return False, None

    async def _delete_cluster_resources(self, job: Obj) -> bool:
        """True once the cluster is gone (a clusterSelector cluster is never ours to delete)."""
        if job["spec"].get("clusterSelector"):
            return True
        meta = job["metadata"]
        name = job["status"].get("rayClusterName")
        if not name:
            return True
        cluster = self._cached_cluster(job)
        try:
            live = await self.client.get(res.RAYCLUSTERS, name, meta["namespace"])
        except NotFound:
            return True
        if live["metadata"].get("deletionTimestamp"):
            return False
        await self._save_driver_log(job, cluster or live)
        try:
            await self.client.delete(res.RAYCLUSTERS, name, meta["namespace"])
        except NotFound:
            return True
        except ApiError as e:
            self.recorder.event(
                job,
                "Warning",
                R.FAILED_TO_DELETE_RAY_CLUSTER,
                f"Failed to delete cluster {meta['namespace']}/{name}: {e}",
                action="Delete",
            )
            raise
        log.info(
            "The associated RayCluster for RayJob is deleted",
            extra={"RayCluster": {"name": name, "namespace": meta["namespace"]}},
        )
        self.recorder.event(
            job, "Normal", R.DELETED_RAY_CLUSTER, f"Deleted cluster {meta['namespace']}/{name}", action="Delete"
        )
        return False

    async def _suspend_worker_groups(self, job: Obj) -> None:
        meta = job["metadata"]
        cluster = self._cached_cluster(job)
        if cluster is None:
            return
        await self._save_driver_log(job, cluster)
        for g in cluster["spec"].get("workerGroupSpecs") or ():
            g["suspend"] = True
        try:
            await self.client.update(res.RAYCLUSTERS, cluster)
        except ApiError as e:
            self.recorder.event(
                job,
                "Warning",
                R.FAILED_TO_UPDATE_RAY_CLUSTER,
                f"Failed to suspend worker groups in cluster {meta['namespace']}/{cluster['metadata']['name']}: {e}",
                action="Update",
            )
            raise
        self.recorder.event(
            job,
            "Normal",
            R.UPDATED_RAY_CLUSTER,
            f"Set the `suspend` field to true for all worker groups in cluster {meta['namespace']}/"
            f"{cluster['metadata']['name']}",
            action="Update",
        )

    async def _delete_submitter_job(self, job: Obj) -> bool:
        if (job["spec"].get("submissionMode") or K8S_JOB) != K8S_JOB:
            return True
        meta = job["metadata"]
        try:
            live = await self.client.get(res.JOBS, meta["name"], meta["namespace"])
        except NotFound:
            return True
        if live["metadata"].get("deletionTimestamp"):
            return False
        try:
            # Background propagation: the Job API would otherwise orphan the submitter pods.
            await self.client.delete(res.JOBS, meta["name"], meta["namespace"], propagation_policy="Background")
        except NotFound:
            return True
        except ApiError as e:
            self.recorder.event(
                job,
                "Warning",
                R.FAILED_TO_DELETE_RAY_JOB_SUBMITTER,
                f"Failed to delete submitter K8s Job {meta['namespace']}/{meta['name']}: {e}",
                action="Delete",
            )
            raise
        log.info(
            "The associated submitter Kubernetes Job for RayJob is deleted", extra={"Submitter K8s Job": meta["name"]}
        )
        self.recorder.event(
            job,
            "Normal",
            R.DELETED_RAY_JOB_SUBMITTER,
            f"Deleted submitter K8s Job {meta['namespace']}/{meta['name']}",
            action="Delete",
        )
        return False

    # ---- dashboard ---------------------------------------------------------------------------------

    async def _dashboard(self, cluster: Mapping[str, Any], url: str) -> dash.RayDashboardClient:
        token = await dash.read_auth_token(self.client, cluster)
        return self.dashboards.for_cluster(cluster, url, token)

    async def _save_driver_log(self, job: Obj, cluster: Mapping[str, Any] | None = None) -> None:
        """Keep the driver log before the cluster (or the RayJob) goes: a ConfigMap owned by the RayJob,
        named in an event. Best effort, bounded by the dashboard timeout; never blocks the deletion."""
        if not self.options.keep_driver_logs:
            return
        status, meta = job.get("status") or {}, job["metadata"]
        job_id = status.get("jobId")
        cluster = cluster or self._cached_cluster(job)
        if not job_id or cluster is None or (job["spec"].get("submissionMode") == INTERACTIVE and not job_id):
            return
        name = U.check_name(meta["name"]) + DRIVER_LOG_SUFFIX
        try:
            await self.client.get(res.CONFIGMAPS, name, meta["namespace"])
            return  # saved already (e.g. by an earlier attempt)
        except NotFound:
            pass
        try:
            client = await self._dashboard(cluster, status.get("dashboardURL") or "")
            logs = await client.get_job_log(job_id)
        except (dash.DashboardError, TimeoutError, ApiError) as e:
            log.info("RayJob %s: could not fetch the driver log: %s", meta["name"], e)
            return
        if logs is None:
            return
        data = logs.encode()
        truncated = len(data) > DRIVER_LOG_LIMIT
        text = data[-DRIVER_LOG_LIMIT:].decode(errors="ignore") if truncated else logs
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": {
                    C.RAY_ORIGINATED_FROM_CR_NAME_LABEL_KEY: meta["name"],
                    C.RAY_ORIGINATED_FROM_CRD_LABEL_KEY: "RayJob",
                },
                "annotations": {"ray.io/job-id": job_id, "ray.io/driver-log-truncated": str(truncated).lower()},
                "ownerReferences": [U.owner_reference(job, kind="RayJob")],
            },
            "data": {"driver.log": text},
        }
        try:
            await self.client.create(res.CONFIGMAPS, cm, meta["namespace"])
        except AlreadyExists:
            return
        except ApiError as e:
            log.info("RayJob %s: could not save the driver log: %s", meta["name"], e)
            return
        # Say where it is in the status too (a patch: the state machine's status writes are unaffected).
        job["status"]["driverLogConfigMap"] = name
        try:
            await self.client.patch(
                res.RAYJOBS,
                meta["name"],
                {"status": {"driverLogConfigMap": name}},
                meta["namespace"],
                subresource="status",
            )
        except ApiError as e:
            log.info("RayJob %s: could not record the driver log ConfigMap in the status: %s", meta["name"], e)
        self.recorder.event(
            job,
            "Normal",
            "SavedDriverLog",
            f"Saved the driver log of job {job_id} in ConfigMap {meta['namespace']}/{name} (key driver.log)",
            action="Cleanup",
        )

    # ---- status ------------------------------------------------------------------------------------

    def _check_backoff_limit(self, job: Obj) -> None:
        spec, status = job["spec"], job["status"]
        failed = int(status.get("failed") or 0)
        succeeded = int(status.get("succeeded") or 0)
        if status.get("jobDeploymentStatus") == FAILED:
            failed += 1
        if status.get("jobStatus") == "SUCCEEDED" and status.get("jobDeploymentStatus") == COMPLETE:
            succeeded += 1
        status["failed"], status["succeeded"] = failed, succeeded
        limit = spec.get("backoffLimit")
        if (
            status.get("jobDeploymentStatus") == FAILED
            and limit is not None
            and failed < int(limit) + 1
            and status.get("reason") not in ("DeadlineExceeded", "JobStatusCheckTimeoutExceeded")
        ):
            log.info(
                "RayJob is eligible for retry, setting JobDeploymentStatus to Retrying",
                extra={"backoffLimit": int(limit), "succeeded": succeeded, "failed": failed},
            )
            status["jobDeploymentStatus"] = RETRYING

    async def _update_status(self, original: Obj, job: Obj) -> None:
        old, new = original.get("status") or {}, job["status"]
        # As Go compares structs: an absent field equals its zero value.
        changed = (
            (old.get("jobStatus") or "") != (new.get("jobStatus") or "")
            or (old.get("jobDeploymentStatus") or "") != (new.get("jobDeploymentStatus") or "")
            or inconsistent_status(
                go_marshal(RayClusterStatus, old.get("rayClusterStatus")),
                go_marshal(RayClusterStatus, new.get("rayClusterStatus")),
            )
            or old.get("jobStatusCheckFailureStartTime") != new.get("jobStatusCheckFailureStartTime")
        )
        if not changed:
            return
        if new.get("jobDeploymentStatus") in (COMPLETE, FAILED):
            new["endTime"] = U.format_time(self.clock())
        log.info(
            "updateRayJobStatus",
            extra={
                "old JobStatus": old.get("jobStatus") or "",
                "new JobStatus": new.get("jobStatus") or "",
                "old JobDeploymentStatus": old.get("jobDeploymentStatus") or "",
                "new JobDeploymentStatus": new.get("jobDeploymentStatus") or "",
            },
        )
        await self._write_status(job)
        if self.metrics:
            self.metrics.observe_transition(job, old, new)

    async def _write_status(self, job: Obj) -> None:
        # The status as upstream's Go struct encodes it: no "", 0 or [] where upstream writes nothing.
        body = {
            **job,
            "metadata": {k: v for k, v in job["metadata"].items() if k != "managedFields"},
            "status": go_marshal(RayJobStatus, job.get("status")),
        }
        await self.client.update_status(res.RAYJOBS, body)


def sidecar_restarts_exceeded(status: Mapping[str, Any], rayjob: Mapping[str, Any]) -> bool:
    """With gate SidecarSubmitterRestart: the submitter container has terminated at least once
    (``lastState.terminated``), has not since exited 0, and restarted ``submitterConfig.backoffLimit``
    times (2 when unset)."""
    if not (status.get("lastState") or {}).get("terminated"):
        return False
    term = (status.get("state") or {}).get("terminated")
    if term and term.get("exitCode", 0) == 0:
        return False
    return int(status.get("restartCount") or 0) >= jobb.submitter_backoff_limit(rayjob)


#: Per-container restartPolicy is on by default from Kubernetes 1.35 (alpha behind a gate in 1.34).
SIDECAR_SUBMITTER_RESTART_MIN_K8S = (1, 35)


def check_kubernetes_version(gates: FeatureGates, git_version: str) -> None:
    """Refuse to start with gate SidecarSubmitterRestart on an API server older than 1.35, as upstream
    does: the submitter's container restartPolicy would be dropped and it would never restart."""
    if not gates.enabled(C.FEATURE_SIDECAR_SUBMITTER_RESTART):
        return
    m = re.match(r"v?(\d+)\.(\d+)", git_version)
    if m is None or (int(m.group(1)), int(m.group(2))) < SIDECAR_SUBMITTER_RESTART_MIN_K8S:
        raise StartupError(
            f"feature gate {C.FEATURE_SIDECAR_SUBMITTER_RESTART} needs Kubernetes v1.35 or later (per-container "
            f"restartPolicy), and the API server is {git_version or 'of an unknown version'}: "
            f"upgrade the cluster or set --feature-gates={C.FEATURE_SIDECAR_SUBMITTER_RESTART}=false"
        )


class _Retry(ReconcileError):
    """Requeue with backoff (returned as an error, as upstream's requeue-with-error)."""


def setup(
    rt: Any, options: RayJobOptions | None = None, dashboards: dash.DashboardClientFactory | None = None
) -> list[Controller]:
    """Register the RayJob controller (internal.app.Runtime). Without ``dashboards``, clusters are reached
    as ``--use-kubernetes-proxy`` says (the apiserver proxy, or the head Service's DNS name)."""
    from controllers.ray.metrics import RayJobMetrics

    opts = options or RayJobOptions(gates=rt.gates)
    factory = dashboards
    if factory is None:
        resolver = dash.KubernetesProxy(rt.client) if rt.config.useKubernetesProxy else dash.ServiceDNS()
        factory = dash.DashboardClientFactory(resolver)
        rt.on_close(factory.close)
    metrics = RayJobMetrics(rt.registry, rt.cache) if rt.config.enableMetrics else None
    reconciler = RayJobReconciler(rt.client, rt.cache, rt.recorder("rayjob-controller"), factory, opts, metrics)
    ctrl = Controller(
        "rayjob",
        reconciler,
        rt.cache,
        ControllerOptions(workers=rt.config.reconcileConcurrency),
        metrics=rt.controller_metrics,
        queue_metrics=rt.queue_metrics,
    )
    ctrl.watch(res.RAYJOBS, for_object)
    owner = ForOwner(kind="RayJob", group="ray.io")
    for r in (res.RAYCLUSTERS, res.SERVICES, res.JOBS):
        ctrl.watch(r, owner)
    return [ctrl]
