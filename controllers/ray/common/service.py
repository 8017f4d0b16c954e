"""Services of a RayCluster (upstream ``common/service.go`` and the service parts of
``raycluster_controller.go``/``rayjob_controller.go``). Spec §4.5, §3.6, §4.3, §13 Q7/Q17.

* head service ``<cluster>-head-svc`` (or the custom ``headService`` name): headless by default;
* serve service ``<cluster>-serve-svc`` (only with the ``ray.io/enable-serve-service=true`` annotation);
* headless worker service ``<cluster>-headless`` (only when a group has ``numOfHosts > 1``);
* the RayJob-owned head service ``<rayjob>-head-svc``.

The controllers create these when missing and never update them (Q7); builders only build.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from controllers.ray.utils import constants as C
from controllers.ray.utils import util as U
from controllers.ray.utils.util import JSON

__all__ = [
    "ServiceBuildError",
    "build_head_service",
    "build_head_service_for_ray_job",
    "build_headless_service",
    "build_serve_service",
    "build_service_for_head_pod",
    "get_service_ports",
    "head_service_labels",
    "is_serve_service_enabled",
]

_EMPTY_ENV: Final[Mapping[str, str]] = {}


class ServiceBuildError(ValueError):
    """Upstream returns an error instead of a Service (no ports, no serve port)."""


def head_service_labels(cluster: Mapping[str, Any]) -> dict[str, str]:
    """``HeadServiceLabels``: the selector keys of the head service with their default values."""
    name = U.cluster_name(cluster)
    return {
        C.RAY_CLUSTER_LABEL_KEY: name,
        C.RAY_NODE_TYPE_LABEL_KEY: C.RayNodeType.HEAD,
        C.RAY_ID_LABEL_KEY: U.check_label(U.generate_identifier(name, C.RayNodeType.HEAD)),
        C.KUBERNETES_APPLICATION_NAME_LABEL_KEY: C.APPLICATION_NAME,
        C.KUBERNETES_CREATED_BY_LABEL_KEY: C.COMPONENT_NAME,
    }


def get_service_ports(cluster: Mapping[str, Any]) -> dict[str, int]:
    """``getServicePorts``: the head Ray container's ports by name (unnamed: ``<port>-port``; a later
    port with the same name wins), the five defaults when there are none, and ``metrics: 8080``
    whenever no port is called ``metrics``."""
    containers = U.template_containers(U.head_group_spec(cluster))
    ports: dict[str, int] = {}
    if containers:
        for raw in U.as_list(containers[C.RAY_CONTAINER_INDEX].get("ports")):
            port = U.as_map(raw)
            number = U.as_int(port.get("containerPort"), 0)
            name = U.as_str(port.get("name")) or f"{number}{C.UNNAMED_PORT_SUFFIX}"
            ports[name] = number
    if not ports:
        ports = dict(C.DEFAULT_HEAD_SERVICE_PORTS)
    ports.setdefault(C.METRICS_PORT_NAME, C.DEFAULT_METRICS_PORT)
    return ports


def _service(name: str, namespace: str, labels: Mapping[str, str], annotations: Mapping[str, str] | None) -> JSON:
    metadata: JSON = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": {}}


def build_service_for_head_pod(
    cluster: Mapping[str, Any],
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    *,
    env: Mapping[str, str] = _EMPTY_ENV,
) -> JSON:
    """``BuildServiceForHeadPod`` (no owner reference; see ``build_head_service``).

    ``labels`` may override the *values* of the default selector keys only; the service's labels are
    the selector. Ports get ``appProtocol: tcp`` and are sorted by name. With no custom
    ``headService`` and type ""/ClusterIP the service is headless unless
    ``ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE=true``. A custom ``headService`` keeps its spec, gets the
    forced selector, merged annotations (``annotations`` win), the default ports appended, merged
    labels (defaults win), a default name, the cluster namespace and a default type; it is never
    made headless.
    """
    labels = labels or {}
    defaults = head_service_labels(cluster)
    selector = {k: labels.get(k, v) for k, v in defaults.items()}
    namespace = U.cluster_namespace(cluster)
    head = U.head_group_spec(cluster)
    default_name = U.generate_head_service_name(C.CRDType.RAY_CLUSTER, U.cluster_spec(cluster), U.cluster_name(cluster))
    default_type = U.as_str(head.get("serviceType"))
    port_map = get_service_ports(cluster)
    if not port_map:
        raise ServiceBuildError("no ports are defined for the head service")
    ports = [
        {"name": name, "port": port_map[name], "appProtocol": C.DEFAULT_SERVICE_APP_PROTOCOL}
        for name in sorted(port_map)
    ]

    custom = head.get("headService")
    if isinstance(custom, dict):
        service: JSON = copy.deepcopy(custom)
        service.setdefault("apiVersion", "v1")
        service.setdefault("kind", "Service")
        metadata = U.as_map(service.get("metadata"))
        service["metadata"] = metadata
        spec = U.as_map(service.get("spec"))
        service["spec"] = spec
        spec["selector"] = dict(selector)
        merged_annotations = U.string_map(metadata.get("annotations"))
        merged_annotations.update(annotations or {})
        if merged_annotations:
            metadata["annotations"] = merged_annotations
        # Upstream appends the default ports in Go map order (random); they are sorted here.
        spec["ports"] = [*U.as_list(spec.get("ports")), *ports]
        merged_labels = U.string_map(metadata.get("labels"))
        merged_labels.update(selector)
        metadata["labels"] = merged_labels
        if not U.as_str(metadata.get("name")):
            metadata["name"] = default_name
        if namespace:
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        if not U.as_str(spec.get("type")) and default_type:
            spec["type"] = default_type
        return U.plain_json(service)

    service = _service(default_name, namespace, selector, annotations)
    spec = service["spec"]
    spec["selector"] = dict(selector)
    spec["ports"] = ports
    if default_type:
        spec["type"] = default_type
    if not U.is_ray_head_cluster_ip_service_enabled(env) and default_type in ("", "ClusterIP"):
        spec["clusterIP"] = "None"
        spec["publishNotReadyAddresses"] = True
    return U.plain_json(service)


def build_head_service(cluster: Mapping[str, Any], *, env: Mapping[str, str] = _EMPTY_ENV) -> JSON:
    """The RayCluster's head service as ``reconcileHeadService`` creates it: the template's
    ``app.kubernetes.io/name`` label (if any) overrides the selector value, ``headServiceAnnotations``
    become the annotations, and the cluster is the controller owner."""
    template_labels = U.string_map(
        U.as_map(U.as_map(U.head_group_spec(cluster).get("template")).get("metadata")).get("labels")
    )
    labels: dict[str, str] = {}
    if C.KUBERNETES_APPLICATION_NAME_LABEL_KEY in template_labels:
        labels[C.KUBERNETES_APPLICATION_NAME_LABEL_KEY] = template_labels[C.KUBERNETES_APPLICATION_NAME_LABEL_KEY]
    annotations = U.string_map(U.cluster_spec(cluster).get("headServiceAnnotations"))
    service = build_service_for_head_pod(cluster, labels, annotations, env=env)
    U.set_controller_reference(service["metadata"], cluster)
    return U.plain_json(service)


def is_serve_service_enabled(cluster: Mapping[str, Any]) -> bool:
    """The serve service exists only with the annotation ``ray.io/enable-serve-service: "true"``."""
    return U.cluster_annotations(cluster).get(C.ENABLE_SERVE_SERVICE_KEY) == C.ENABLE_SERVE_SERVICE_TRUE


def build_serve_service(cluster: Mapping[str, Any]) -> JSON:
    """``<cluster>-serve-svc``: ports named ``serve`` or ``serve-*`` (sorted), selector
    ``ray.io/cluster`` only, labels originated-from-cr-name/-crd and ``ray.io/serve=<cluster>-serve``.
    Raises ``ServiceBuildError`` when the head container has no serve port."""
    name = U.cluster_name(cluster)
    port_map = get_service_ports(cluster)
    ports: list[JSON] = [
        {"name": port_name, "port": port_map[port_name]}
        for port_name in sorted(port_map)
        if port_name == C.SERVING_PORT_NAME or port_name.startswith(C.SERVING_PORT_NAME + C.DASH_SYMBOL)
    ]
    if not ports:
        raise ServiceBuildError(
            "Please specify the port named 'serve' in the Ray head container; "
            "otherwise, the Kubernetes service for Ray Serve will not be created."
        )
    labels = {
        C.RAY_ORIGINATED_FROM_CR_NAME_LABEL_KEY: name,
        C.RAY_ORIGINATED_FROM_CRD_LABEL_KEY: C.CRDType.RAY_CLUSTER,
        C.RAY_CLUSTER_SERVING_SERVICE_LABEL_KEY: U.generate_serve_service_label(name),
    }
    service = _service(U.generate_serve_service_name(name), U.cluster_namespace(cluster), labels, None)
    spec = service["spec"]
    spec["selector"] = {C.RAY_CLUSTER_LABEL_KEY: name}
    spec["ports"] = ports
    service_type = U.as_str(U.head_group_spec(cluster).get("serviceType"))
    if service_type:
        spec["type"] = service_type
    U.set_controller_reference(service["metadata"], cluster)
    return U.plain_json(service)


def build_headless_service(cluster: Mapping[str, Any]) -> JSON:
    """``BuildHeadlessServiceForRayCluster``: ``<cluster>-headless`` selecting the cluster's workers
    (created only when ``util.needs_headless_worker_service``)."""
    name = U.cluster_name(cluster)
    service = _service(
        U.headless_service_name(name),
        U.cluster_namespace(cluster),
        {C.RAY_CLUSTER_HEADLESS_SERVICE_LABEL_KEY: name},
        None,
    )
    service["spec"] = {
        "clusterIP": "None",
        "selector": {C.RAY_CLUSTER_LABEL_KEY: name, C.RAY_NODE_TYPE_LABEL_KEY: C.RayNodeType.WORKER},
        "type": "ClusterIP",
        "publishNotReadyAddresses": True,
    }
    U.set_controller_reference(service["metadata"], cluster)
    return U.plain_json(service)


def build_head_service_for_ray_job(
    ray_job: Mapping[str, Any], cluster: Mapping[str, Any], *, env: Mapping[str, str] = _EMPTY_ENV
) -> JSON:
    """``BuildHeadServiceForRayJob`` (§3.6): the cluster's head service renamed ``<rayjob>-head-svc``,
    labelled for the RayJob and controller-owned by it."""
    job_meta = U.as_map(ray_job.get("metadata"))
    job_name = U.as_str(job_meta.get("name"))
    service = build_service_for_head_pod(cluster, None, None, env=env)
    metadata = service["metadata"]
    metadata["name"] = U.generate_head_service_name(C.CRDType.RAY_JOB, U.cluster_spec(cluster), job_name)
    namespace = U.as_str(job_meta.get("namespace"))
    if namespace:
        metadata["namespace"] = namespace
    else:
        metadata.pop("namespace", None)
    metadata["labels"] = {
        C.RAY_ORIGINATED_FROM_CR_NAME_LABEL_KEY: job_name,
        C.RAY_ORIGINATED_FROM_CRD_LABEL_KEY: C.CRDType.RAY_JOB,
        C.RAY_NODE_TYPE_LABEL_KEY: C.RayNodeType.HEAD,
        C.RAY_ID_LABEL_KEY: U.check_label(U.generate_identifier(job_name, C.RayNodeType.HEAD)),
    }
    metadata.pop("ownerReferences", None)
    U.set_controller_reference(metadata, ray_job, kind="RayJob")
    return U.plain_json(service)
