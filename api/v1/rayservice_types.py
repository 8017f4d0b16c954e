"""ray.io/v1 RayService (``apis/ray/v1/rayservice_types.go``)."""

from __future__ import annotations

from .constants import DEFAULT_MAX_SURGE_PERCENT, GROUP, VERSION, FeatureGate
from .core import K8S_CORE, Condition
from .fields import (
    Bool,
    Embedded,
    Int32,
    Int64,
    KindInfo,
    Obj,
    ObjList,
    ObjMap,
    OptInt32,
    OptObj,
    OptStr,
    PrinterColumn,
    Str,
    Time,
    View,
)
from .object import ListMeta, TopLevel
from .raycluster_types import MANAGED_BY_VALIDATIONS, RayClusterSpec, RayClusterStatus

__all__ = [
    "AppStatus",
    "ClusterUpgradeOptions",
    "RayService",
    "RayServiceList",
    "RayServiceSpec",
    "RayServiceStatus",
    "RayServiceStatuses",
    "RayServiceUpgradeStrategy",
    "ServeDeploymentStatus",
]


class ClusterUpgradeOptions(View):
    """Behaviour of the NewClusterWithIncrementalUpgrade upgrade type."""

    __slots__ = ()

    max_surge_percent = OptInt32(
        "maxSurgePercent",
        doc="Capacity the upgraded cluster scales to in each interval. Defaults to 100%.",
        default=DEFAULT_MAX_SURGE_PERCENT,
    )
    step_size_percent = OptInt32(
        "stepSizePercent",
        doc="Percentage of traffic moved to the upgraded cluster each interval; at most maxSurgePercent.",
        required=True,
        omitempty=False,
    )
    interval_seconds = OptInt32(
        "intervalSeconds",
        doc="Seconds between traffic moves.",
        required=True,
        omitempty=False,
    )
    gateway_class_name = Str(
        "gatewayClassName",
        doc="Gateway class installed by the cluster administrator.",
        required=True,
        omitempty=False,
    )


class RayServiceUpgradeStrategy(View):
    """How a RayService is upgraded."""

    __slots__ = ()

    type = OptStr(
        "type",
        doc="NewCluster, NewClusterWithIncrementalUpgrade or None.",
    )
    cluster_upgrade_options = OptObj(
        "clusterUpgradeOptions",
        ClusterUpgradeOptions,
        doc="Options of NewClusterWithIncrementalUpgrade (gate RayServiceIncrementalUpgrade).",
        feature_gate=FeatureGate.RAY_SERVICE_INCREMENTAL_UPGRADE,
    )


class RayServiceSpec(View):
    """Desired state of a RayService."""

    __slots__ = ()

    ray_cluster_deletion_delay_seconds = OptInt32(
        "rayClusterDeletionDelaySeconds",
        doc="Delay before old RayClusters are deleted; 60 seconds by default.",
        minimum=0,
    )
    service_unhealthy_second_threshold = OptInt32(
        "serviceUnhealthySecondThreshold", doc="Deprecated: not used anymore.", deprecated=True
    )
    deployment_unhealthy_second_threshold = OptInt32(
        "deploymentUnhealthySecondThreshold", doc="Deprecated: not used anymore.", deprecated=True
    )
    serve_service = Embedded(
        "serveService",
        doc="Service for the Pods with a healthy Serve proxy.",
        k8s_ref=f"{K8S_CORE}.Service",
    )
    upgrade_strategy = OptObj("upgradeStrategy", RayServiceUpgradeStrategy, doc="Upgrade strategy of the RayService.")
    managed_by = OptStr(
        "managedBy",
        doc="Controller that manages the object: ray.io/kuberay-operator (default) or "
        "kueue.x-k8s.io/multikueue. Immutable.",
        x_validations=MANAGED_BY_VALIDATIONS,
    )
    serve_config_v2 = Str("serveConfigV2", doc="Serve applications and deployments, as a YAML string.")
    ray_cluster_spec = Obj(
        "rayClusterConfig",
        RayClusterSpec,
        doc="Template of the RayClusters.",
        required=True,
        omitempty=False,
    )
    exclude_head_pod_from_serve_svc = Bool(
        "excludeHeadPodFromServeSvc",
        doc="Never select the head Pod in the serve Service (its ray.io/serve label stays false).",
    )
    suspend = Bool("suspend", doc="Delete every resource the RayService owns while true.")


class ServeDeploymentStatus(View):
    """State of a Serve deployment."""

    __slots__ = ()

    status = Str("status")
    message = Str("message")


class AppStatus(View):
    """State of a Serve application."""

    __slots__ = ()

    deployments = ObjMap("serveDeploymentStatuses", ServeDeploymentStatus)
    status = Str("status")
    message = Str("message")


class RayServiceStatus(View):
    """State of the active or pending RayCluster of a RayService."""

    __slots__ = ()

    applications = ObjMap("applicationStatuses", AppStatus)
    target_capacity = OptInt32("targetCapacity", doc="target_capacity percentage of the Serve replicas.")
    traffic_routed_percent = OptInt32("trafficRoutedPercent", doc="Percentage of traffic routed to this cluster.")
    last_traffic_migrated_time = Time("lastTrafficMigratedTime", doc="Last change of trafficRoutedPercent.")
    ray_cluster_name = Str("rayClusterName")
    ray_cluster_status = Obj("rayClusterStatus", RayClusterStatus)


class RayServiceStatuses(View):
    """Observed state of a RayService."""

    __slots__ = ()

    conditions = ObjList(
        "conditions",
        Condition,
        doc="Latest observations of the RayService state.",
        list_type="map",
        list_map_keys=("type",),
    )
    last_update_time = Time("lastUpdateTime")
    service_status = Str("serviceStatus", doc="Deprecated: Running iff the Ready condition is True.")
    active_service_status = Obj("activeServiceStatus", RayServiceStatus)
    pending_service_status = Obj(
        "pendingServiceStatus", RayServiceStatus, doc="The RayCluster being prepared for an upgrade."
    )
    num_serve_endpoints = Int32("numServeEndpoints", doc="Ray Pods selected by the serve Service.")
    observed_generation = Int64("observedGeneration")


class RayService(TopLevel):
    """RayService is the Schema for the rayservices API."""

    __slots__ = ()
    __kind__ = KindInfo(
        kind="RayService",
        list_kind="RayServiceList",
        plural="rayservices",
        singular="rayservice",
        group=GROUP,
        version=VERSION,
        scope="Namespaced",
        categories=("all",),
        short_names=(),
        printer_columns=(
            PrinterColumn("service status", "string", ".status.serviceStatus"),
            PrinterColumn("num serve endpoints", "string", ".status.numServeEndpoints"),
        ),
        status_subresource=True,
        storage=True,
        served=True,
        doc="RayService is the Schema for the rayservices API",
    )

    spec = Obj("spec", RayServiceSpec)
    status = Obj("status", RayServiceStatuses)


class RayServiceList(View):
    """A list of RayServices."""

    __slots__ = ()

    api_version = Str("apiVersion")
    kind = Str("kind")
    metadata = Obj("metadata", ListMeta)
    items = ObjList("items", RayService, omitempty=False)
