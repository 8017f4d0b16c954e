"""ray.io/v1 RayJob (``apis/ray/v1/rayjob_types.go``)."""

from __future__ import annotations

from .constants import (
    DELETION_CONDITION_JOB_DEPLOYMENT_STATUSES,
    DELETION_CONDITION_JOB_STATUSES,
    GROUP,
    VERSION,
    DeletionPolicyType,
    FeatureGate,
    JobSubmissionMode,
)
from .core import PodTemplate
from .fields import (
    Bool,
    Float,
    Int32,
    Int64,
    KindInfo,
    Obj,
    ObjList,
    OptInt32,
    OptObj,
    OptStr,
    PrinterColumn,
    Str,
    StrMap,
    Time,
    View,
    XValidation,
)
from .object import ListMeta, TopLevel
from .raycluster_types import MANAGED_BY_VALIDATIONS, RayClusterSpec, RayClusterStatus

__all__ = [
    "DeletionCondition",
    "DeletionPolicy",
    "DeletionRule",
    "DeletionStrategy",
    "RayJob",
    "RayJobList",
    "RayJobSpec",
    "RayJobStatus",
    "RayJobStatusInfo",
    "SubmitterConfig",
]


class DeletionCondition(View):
    """When a deletion rule fires: exactly one of jobStatus (SUCCEEDED, FAILED) or jobDeploymentStatus
    (Failed), plus a delay."""

    __slots__ = ()
    __x_validations__ = (
        XValidation(
            "!(has(self.jobStatus) && has(self.jobDeploymentStatus))",
            "JobStatus and JobDeploymentStatus cannot be used together within the same deletion condition.",
        ),
        XValidation(
            "has(self.jobStatus) || has(self.jobDeploymentStatus)",
            "the deletion condition requires either the JobStatus or the JobDeploymentStatus field.",
        ),
    )

    job_status = OptStr(
        "jobStatus",
        doc="Terminal Ray job status that triggers the rule: SUCCEEDED or FAILED.",
        enum=tuple(s.value for s in DELETION_CONDITION_JOB_STATUSES),
    )
    job_deployment_status = OptStr(
        "jobDeploymentStatus",
        doc="Terminal deployment status that triggers the rule: Failed.",
        enum=tuple(s.value for s in DELETION_CONDITION_JOB_DEPLOYMENT_STATUSES),
    )
    ttl_seconds = Int32(
        "ttlSeconds",
        doc="Seconds from reaching the status to the deletion; non-negative.",
        default=0,
        minimum=0,
    )


class DeletionRule(View):
    """One deletion action and its trigger."""

    __slots__ = ()

    policy = Str(
        "policy",
        doc="Action to take when the condition is met.",
        required=True,
        omitempty=False,
        enum=tuple(DeletionPolicyType),
    )
    condition = Obj(
        "condition",
        DeletionCondition,
        doc="When the rule is triggered.",
        required=True,
        omitempty=False,
    )


class DeletionPolicy(View):
    """Deprecated single-stage deletion policy (legacy onSuccess/onFailure)."""

    __slots__ = ()

    policy = OptStr(
        "policy",
        doc="Action to take; logically required in the legacy onSuccess/onFailure form.",
        enum=tuple(DeletionPolicyType),
    )


class DeletionStrategy(View):
    """Cleanup after the RayJob finishes: either both onSuccess and onFailure (deprecated) or a
    non-empty deletionRules list. Needs the RayJobDeletionPolicy feature gate."""

    __slots__ = ()
    __x_validations__ = (
        XValidation(
            "!((has(self.onSuccess) || has(self.onFailure)) && has(self.deletionRules))",
            "legacy policies (onSuccess/onFailure) and deletionRules cannot be used together within the "
            "same deletionStrategy",
        ),
        XValidation(
            "((has(self.onSuccess) && has(self.onFailure)) || has(self.deletionRules))",
            "deletionStrategy requires either BOTH onSuccess and onFailure, OR the deletionRules field "
            "(cannot be empty)",
        ),
    )

    on_success = OptObj("onSuccess", DeletionPolicy, doc="Deprecated: policy for a successful job.", deprecated=True)
    on_failure = OptObj("onFailure", DeletionPolicy, doc="Deprecated: policy for a failed job.", deprecated=True)
    deletion_rules = ObjList(
        "deletionRules",
        DeletionRule,
        doc="Deletion rules; when several are overdue the most impactful runs first.",
        list_type="atomic",
        min_items=1,
    )


class SubmitterConfig(View):
    """Configuration of the submitter."""

    __slots__ = ()

    backoff_limit = OptInt32(
        "backoffLimit",
        doc="backoffLimit of the submitter Kubernetes Job (2 when unset).",
    )


class RayJobStatusInfo(View):
    """Start and end time of the Ray job, from the Ray dashboard."""

    __slots__ = ()

    start_time = Time("startTime")
    end_time = Time("endTime")


class RayJobSpec(View):
    """Desired state of a RayJob."""

    __slots__ = ()

    active_deadline_seconds = OptInt32(
        "activeDeadlineSeconds",
        doc="Seconds the RayJob may run (from status.startTime) before it fails with DeadlineExceeded; "
        "must be positive.",
    )
    backoff_limit = OptInt32(
        "backoffLimit",
        doc="Retries before the job is marked failed; each retry creates a new RayCluster.",
        default=0,
    )
    ray_cluster_spec = OptObj("rayClusterSpec", RayClusterSpec, doc="Template of the RayCluster that runs the job.")
    submitter_pod_template = OptObj(
        "submitterPodTemplate",
        PodTemplate,
        doc="Pod template of the `ray job submit` Pod.",
    )
    metadata = StrMap("metadata", doc="Metadata stored with the Ray job.")
    cluster_selector = StrMap(
        "clusterSelector",
        doc="Run on an existing RayCluster, named by the ray.io/cluster key.",
    )
    submitter_config = OptObj("submitterConfig", SubmitterConfig, doc="Configuration of the submitter Job.")
    managed_by = OptStr(
        "managedBy",
        doc="Controller that manages the object: ray.io/kuberay-operator (default) or "
        "kueue.x-k8s.io/multikueue. Immutable.",
        x_validations=MANAGED_BY_VALIDATIONS,
    )
    deletion_strategy = OptObj(
        "deletionStrategy",
        DeletionStrategy,
        doc="Post-completion cleanup (legacy onSuccess/onFailure, or deletionRules).",
        feature_gate=FeatureGate.RAY_JOB_DELETION_POLICY,
    )
    entrypoint = Str("entrypoint", doc="Command that starts the job.")
    runtime_env_yaml = Str("runtimeEnvYAML", doc="Runtime environment as a multi-line YAML string.")
    job_id = Str("jobId", doc="Submission ID; generated when unset.")
    submission_mode = Str(
        "submissionMode",
        doc="How the job is submitted: K8sJobMode, HTTPMode, InteractiveMode or SidecarMode.",
        default=JobSubmissionMode.K8S_JOB_MODE.value,
    )
    entrypoint_resources = Str("entrypointResources", doc="Custom resources (JSON) reserved for the entrypoint.")
    entrypoint_num_cpus = Float("entrypointNumCpus", doc="CPUs reserved for the entrypoint.")
    entrypoint_num_gpus = Float("entrypointNumGpus", doc="GPUs reserved for the entrypoint.")
    ttl_seconds_after_finished = Int32(
        "ttlSecondsAfterFinished",
        doc="Seconds after the job finishes before the RayCluster is deleted (with shutdownAfterJobFinishes).",
        default=0,
    )
    pre_running_deadline_seconds = OptInt32(
        "preRunningDeadlineSeconds",
        doc="Seconds from status.startTime to reach Running before the job fails; positive.",
        minimum=1,
    )
    shutdown_after_job_finishes = Bool("shutdownAfterJobFinishes", doc="Delete the RayCluster after the job finishes.")
    suspend = Bool("suspend", doc="Do not run (or stop running) the job; used by Kueue.")


class RayJobStatus(View):
    """Observed state of a RayJob."""

    __slots__ = ()

    ray_job_status_info = Obj("rayJobInfo", RayJobStatusInfo, doc="Ray job information from the dashboard.")
    job_id = Str("jobId")
    ray_cluster_name = Str("rayClusterName")
    dashboard_url = Str("dashboardURL")
    job_status = Str("jobStatus")
    job_deployment_status = Str("jobDeploymentStatus")
    reason = Str("reason")
    message = Str("message")
    start_time = Time("startTime", doc="Time of the transition from New to Initializing (reset on every retry).")
    end_time = Time("endTime", doc="Time the RayJob reached Complete or Failed.")
    succeeded = OptInt32("succeeded", doc="Number of times the job succeeded.", default=0)
    failed = OptInt32("failed", doc="Number of times the job failed.", default=0)
    ray_cluster_status = Obj("rayClusterStatus", RayClusterStatus, doc="Status of the RayCluster running the job.")
    job_status_check_failure_start_time = Time(
        "jobStatusCheckFailureStartTime",
        doc="First failure of a dashboard job status check; cleared on success.",
    )
    observed_generation = Int64("observedGeneration")
    # Not in upstream: where the driver log was kept when the job's RayCluster was deleted.
    driver_log_config_map = Str(
        "driverLogConfigMap",
        doc="ConfigMap (key driver.log) holding the driver log saved before the RayCluster was deleted.",
    )


class RayJob(TopLevel):
    """RayJob is the Schema for the rayjobs API."""

    __slots__ = ()
    __kind__ = KindInfo(
        kind="RayJob",
        list_kind="RayJobList",
        plural="rayjobs",
        singular="rayjob",
        group=GROUP,
        version=VERSION,
        scope="Namespaced",
        categories=("all",),
        short_names=(),
        printer_columns=(
            PrinterColumn("job status", "string", ".status.jobStatus"),
            PrinterColumn("deployment status", "string", ".status.jobDeploymentStatus"),
            PrinterColumn("ray cluster name", "string", ".status.rayClusterName"),
            PrinterColumn("start time", "string", ".status.startTime"),
            PrinterColumn("end time", "string", ".status.endTime"),
            PrinterColumn("age", "date", ".metadata.creationTimestamp"),
        ),
        status_subresource=True,
        storage=True,
        served=True,
        doc="RayJob is the Schema for the rayjobs API",
    )

    spec = Obj("spec", RayJobSpec)
    status = Obj("status", RayJobStatus)


class RayJobList(View):
    """A list of RayJobs."""

    __slots__ = ()

    api_version = Str("apiVersion")
    kind = Str("kind")
    metadata = Obj("metadata", ListMeta)
    items = ObjList("items", RayJob, omitempty=False)
