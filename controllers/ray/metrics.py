"""KubeRay's own metrics (upstream ``controllers/ray/metrics``), registered with --enable-metrics.

``kuberay_cluster_info`` and ``kuberay_cluster_condition_provisioned`` are produced at scrape time from
the informer cache (upstream lists RayClusters from the API server on every scrape; the cache gives
the same answer without the request). ``kuberay_cluster_provisioned_duration_seconds`` is set when
RayClusterProvisioned first becomes True and removed when the RayCluster is gone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from internal.client import resources as res
from internal.informer import Cache, CacheNotStarted


class _ClusterCollector(Collector):
    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info = GaugeMetricFamily(
            "kuberay_cluster_info",
            "Metadata information about RayCluster custom resources",
            labels=["name", "namespace", "uid", "owner_kind"],
        )
        prov = GaugeMetricFamily(
            "kuberay_cluster_condition_provisioned",
            "Indicates whether the RayCluster is provisioned",
            labels=["name", "namespace", "uid", "condition"],
        )
        try:
            clusters = self.cache.list(res.RAYCLUSTERS)
        except CacheNotStarted:
            clusters = []
        for c in clusters:
            meta = c.get("metadata") or {}
            labels = meta.get("labels") or {}
            name, ns, uid = str(meta.get("name")), str(meta.get("namespace")), str(meta.get("uid"))
            info.add_metric([name, ns, uid, str(labels.get("ray.io/originated-from-crd") or "None")], 1)
            provisioned = any(
                x.get("type") == "RayClusterProvisioned" and x.get("status") == "True"
                for x in (c.get("status") or {}).get("conditions") or ()
            )
            prov.add_metric([name, ns, uid, str(provisioned).lower()], 1)
        yield info
        yield prov


class RayClusterMetrics:
    def __init__(self, registry: CollectorRegistry, cache: Cache) -> None:
        self.provisioned_duration = Gauge(
            "kuberay_cluster_provisioned_duration_seconds",
            "The time, in seconds, when a RayCluster's RayClusterProvisioned status transitions from false "
            "(or unset) to true",
            ["name", "namespace", "uid"],
            registry=registry,
        )
        registry.register(_ClusterCollector(cache))

    def observe_provisioned(self, cluster: Mapping[str, Any]) -> None:
        meta = cluster.get("metadata") or {}
        created = dt.datetime.fromisoformat(str(meta.get("creationTimestamp")).replace("Z", "+00:00"))
        seconds = (dt.datetime.now(dt.UTC) - created).total_seconds()
        self.provisioned_duration.labels(meta.get("name"), meta.get("namespace"), meta.get("uid")).set(seconds)

    def forget_cluster(self, name: str, namespace: str) -> None:
        for labels in list(self.provisioned_duration._metrics):  # DeletePartialMatch{name, namespace}
            if labels[0] == name and labels[1] == namespace:
                self.provisioned_duration.remove(*labels)


class _JobCollector(Collector):
    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info = GaugeMetricFamily(
            "kuberay_job_info",
            "Metadata information about RayJob custom resources",
            labels=["name", "namespace", "uid"],
        )
        deploy = GaugeMetricFamily(
            "kuberay_job_deployment_status",
            "The RayJob's current deployment status",
            labels=["name", "namespace", "uid", "deployment_status"],
        )
        try:
            jobs = self.cache.list(res.RAYJOBS)
        except CacheNotStarted:
            jobs = []
        for j in jobs:
            meta = j.get("metadata") or {}
            name, ns, uid = str(meta.get("name")), str(meta.get("namespace")), str(meta.get("uid"))
            info.add_metric([name, ns, uid], 1)
            deploy.add_metric([name, ns, uid, str((j.get("status") or {}).get("jobDeploymentStatus") or "")], 1)
        yield info
        yield deploy


class RayJobMetrics:
    def __init__(self, registry: CollectorRegistry, cache: Cache) -> None:
        self.execution_duration = Gauge(
            "kuberay_job_execution_duration_seconds",
            "Duration of the RayJob CR's JobDeploymentStatus transition from Initializing to either the Retrying "
            "state or a terminal state, such as Complete or Failed.",
            ["name", "namespace", "uid", "job_deployment_status", "retry_count"],
            registry=registry,
        )
        registry.register(_JobCollector(cache))

    def observe_transition(self, job: Mapping[str, Any], old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """After a successful status write: old not terminal, new Complete, Failed or Retrying."""
        if old.get("jobDeploymentStatus") in ("Complete", "Failed"):
            return
        state = new.get("jobDeploymentStatus")
        if state not in ("Complete", "Failed", "Retrying") or not new.get("startTime"):
            return
        start = dt.datetime.fromisoformat(str(new["startTime"]).replace("Z", "+00:00"))
        meta = job.get("metadata") or {}
        self.execution_duration.labels(
            meta.get("name"), meta.get("namespace"), meta.get("uid"), state, str(int(old.get("failed") or 0))
        ).set((dt.datetime.now(dt.UTC) - start).total_seconds())

    def forget_job(self, name: str, namespace: str) -> None:
        for labels in list(self.execution_duration._metrics):
            if labels[0] == name and labels[1] == namespace:
                self.execution_duration.remove(*labels)


class _ServiceCollector(Collector):
    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from controllers.ray.rayservice_controller import service_metric_rows

        labels = ["name", "namespace", "uid"]
        info = GaugeMetricFamily(
            "kuberay_service_info", "Metadata information about RayService custom resources", labels=labels
        )
        ready = GaugeMetricFamily(
            "kuberay_service_condition_ready",
            "Describes whether the RayService is ready. Ready means users can send requests to the underlying "
            "cluster and the number of serve endpoints is greater than 0.",
            labels=[*labels, "condition"],
        )
        upgrading = GaugeMetricFamily(
            "kuberay_service_condition_upgrade_in_progress",
            "Describes whether the RayService is performing a zero-downtime upgrade.",
            labels=[*labels, "condition"],
        )
        try:
            services = self.cache.list(res.RAYSERVICES)
        except CacheNotStarted:
            services = []
        for name, ns, uid, is_ready, is_upgrading in service_metric_rows(services):
            info.add_metric([name, ns, uid], 1)
            ready.add_metric([name, ns, uid, str(is_ready).lower()], 1)
            upgrading.add_metric([name, ns, uid, str(is_upgrading).lower()], 1)
        yield info
        yield ready
        yield upgrading


class RayServiceMetrics:
    """``kuberay_service_*``: produced at scrape time from the informer cache of RayServices."""

    def __init__(self, registry: CollectorRegistry, cache: Cache) -> None:
        registry.register(_ServiceCollector(cache))
