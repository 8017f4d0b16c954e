"""The dashboard Ingress of a RayCluster (upstream ``common/ingress.go``; raycluster-extensions.md §2.2),
or on OpenShift its Route (``common/openshift.go``, §2.4).

Built when ``headGroupSpec.enableIngress`` is true: ``<cluster>-head-ingress`` routing
``ingressOptions.path`` (``/``, ``Prefix`` by default) to the head Service's dashboard port, or the Route
``<cluster>-head-route`` to the same Service and port.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from api.v1.constants import DEFAULT_INGRESS_PATH, DEFAULT_INGRESS_PATH_TYPE
from controllers.ray.common.service import get_service_ports
from controllers.ray.utils import constants as C
from controllers.ray.utils import util as U
from controllers.ray.utils.util import JSON

__all__ = [
    "build_ingress_for_head_service",
    "build_route_for_head_service",
    "ingress_labels",
    "is_ingress_enabled",
    "route_name",
]

ROUTE_API_VERSION = "route.openshift.io/v1"


def is_ingress_enabled(cluster: Mapping[str, Any]) -> bool:
    """``enableIngress`` non-nil and true; nothing validates it."""
    return U.head_group_spec(cluster).get("enableIngress") is True


def ingress_labels(cluster: Mapping[str, Any]) -> dict[str, str]:
    """Exactly these four labels (no node type: the Ingress is not selected as a head object)."""
    name = U.cluster_name(cluster)
    return {
        C.RAY_CLUSTER_LABEL_KEY: name,
        C.RAY_ID_LABEL_KEY: U.check_label(U.generate_identifier(name, C.RayNodeType.HEAD)),
        C.KUBERNETES_APPLICATION_NAME_LABEL_KEY: C.APPLICATION_NAME,
        C.KUBERNETES_CREATED_BY_LABEL_KEY: C.COMPONENT_NAME,
    }


def build_ingress_for_head_service(cluster: Mapping[str, Any]) -> JSON:
    """``BuildIngressForHeadService``: every cluster annotation is copied except the ingress class,
    which becomes ``spec.ingressClassName`` when the key is present (even empty: passed through for
    the apiserver to judge); the cluster is the controller owner."""
    name = U.cluster_name(cluster)
    cluster_annotations = U.cluster_annotations(cluster)
    annotations = {k: v for k, v in cluster_annotations.items() if k != C.INGRESS_CLASS_ANNOTATION_KEY}
    options = U.as_map(U.head_group_spec(cluster).get("ingressOptions"))
    dashboard_port = _dashboard_port(cluster)
    path: JSON = {
        "path": U.as_str(options.get("path")) if options.get("path") is not None else DEFAULT_INGRESS_PATH,
        "pathType": U.as_str(options.get("pathType")) or DEFAULT_INGRESS_PATH_TYPE.value,
        "backend": {
            "service": {
                "name": U.generate_head_service_name(C.CRDType.RAY_CLUSTER, U.cluster_spec(cluster), name),
                "port": {"number": dashboard_port},
            }
        },
    }
    rule: JSON = {}
    host = U.as_str(options.get("host"))
    if host:
        rule["host"] = host
    rule["http"] = {"paths": [path]}
    spec: JSON = {}
    if C.INGRESS_CLASS_ANNOTATION_KEY in cluster_annotations:
        spec["ingressClassName"] = cluster_annotations[C.INGRESS_CLASS_ANNOTATION_KEY]
    spec["rules"] = [rule]
    tls = U.as_list(options.get("tls"))
    if tls:
        spec["tls"] = copy.deepcopy(tls)
    metadata: JSON = {"name": U.generate_ingress_name(name)}
    namespace = U.cluster_namespace(cluster)
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = ingress_labels(cluster)
    if annotations:
        metadata["annotations"] = annotations
    U.set_controller_reference(metadata, cluster)
    ingress: JSON = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec}
    return U.plain_json(ingress)


def _dashboard_port(cluster: Mapping[str, Any]) -> int:
    # A head container with ports but none named "dashboard" still routes to the default port.
    return get_service_ports(cluster).get(C.DASHBOARD_PORT_NAME, C.DEFAULT_DASHBOARD_PORT)


def route_name(cluster: Mapping[str, Any]) -> str:
    """``<cluster>-head-route`` cut to its first ``51 - len(namespace)`` characters (the Ingress keeps
    the last ones), then ``CheckName``."""
    return U.check_route_name(U.generate_route_name(U.cluster_name(cluster)), U.cluster_namespace(cluster))


def build_route_for_head_service(cluster: Mapping[str, Any]) -> JSON:
    """``BuildRouteForHeadService``: every cluster annotation (the ingress class too), the Ingress's
    labels, the head Service at its dashboard port; no host, path or TLS. Never updated once created."""
    name = U.cluster_name(cluster)
    metadata: JSON = {"name": route_name(cluster)}
    namespace = U.cluster_namespace(cluster)
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = ingress_labels(cluster)
    annotations = U.cluster_annotations(cluster)
    if annotations:
        metadata["annotations"] = dict(annotations)
    U.set_controller_reference(metadata, cluster)
    spec: JSON = {
        "to": {
            "kind": "Service",
            "name": U.generate_head_service_name(C.CRDType.RAY_CLUSTER, U.cluster_spec(cluster), name),
            "weight": 100,
        },
        "port": {"targetPort": _dashboard_port(cluster)},
        "wildcardPolicy": "None",
    }
    return U.plain_json({"apiVersion": ROUTE_API_VERSION, "kind": "Route", "metadata": metadata, "spec": spec})
