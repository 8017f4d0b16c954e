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
