"""The ray.io/v1 validating webhooks (upstream ``pkg/webhooks/v1``), served when ``ENABLE_WEBHOOKS`` is
exactly ``true``. They check only what a controller cannot fix later: the names (length, DNS-1035, the
RayService initializing-timeout annotation) and, for RayClusters, unique worker group names. Every other
rule stays in the controllers (events and conditions), as upstream.

The paths and webhook names are upstream's (kubebuilder's ``/validate-<group>-<version>-<kind>`` and
``v<kind>.kb.io``), so a ValidatingWebhookConfiguration written for upstream works unchanged;
``make manifests`` renders this project's into config/webhook/manifests.yaml from :data:`WEBHOOKS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.v1 import validation as v
from api.v1.errors import ValidationError
from api.v1.raycluster_types import WorkerGroupSpec
from controllers.ray.utils import gojson
from internal.webhook import FieldError, JSONValue, ValidatingWebhook, WebhookServer

GROUP = "ray.io"
VERSION = "v1"


def _name_error(obj: Mapping[str, Any], check: Any) -> list[FieldError]:
    try:
        check(obj)
    except ValidationError as e:
        return [FieldError("metadata.name", str((obj.get("metadata") or {}).get("name") or ""), str(e))]
    return []


def validate_ray_cluster(obj: Mapping[str, Any]) -> list[FieldError]:
    """``RayClusterWebhook.validateRayCluster``: the metadata, then the first repeated worker group name
    (reported at the later index, with the whole group as its value)."""
    errors = _name_error(obj, v.validate_ray_cluster_metadata)
    seen: set[Any] = set()
    groups = (obj.get("spec") or {}).get("workerGroupSpecs") or []
    for i, group in enumerate(groups if isinstance(groups, list) else []):
        name = group.get("groupName", "") if isinstance(group, Mapping) else ""
        if name in seen:
            value = JSONValue(gojson.marshal(group, WorkerGroupSpec).decode())
            errors.append(FieldError(f"spec.workerGroupSpecs[{i}]", value, "worker group names must be unique"))
            break
        seen.add(name)
    return errors


def validate_ray_job(obj: Mapping[str, Any]) -> list[FieldError]:
    """``RayJobWebhook.validateRayJob``: the metadata."""
    return _name_error(obj, v.validate_ray_job_metadata)


def validate_ray_service(obj: Mapping[str, Any]) -> list[FieldError]:
    """``RayServiceWebhook.validateRayService``: the metadata (name and initializing-timeout annotation)."""
    return _name_error(obj, v.validate_ray_service_metadata)


WEBHOOKS: tuple[ValidatingWebhook, ...] = (
    ValidatingWebhook(
        "vraycluster.kb.io",
        "/validate-ray-io-v1-raycluster",
        GROUP,
        VERSION,
        "RayCluster",
        "rayclusters",
        validate_ray_cluster,
    ),
    ValidatingWebhook(
        "vrayjob.kb.io", "/validate-ray-io-v1-rayjob", GROUP, VERSION, "RayJob", "rayjobs", validate_ray_job
    ),
    ValidatingWebhook(
        "vrayservice.kb.io",
        "/validate-ray-io-v1-rayservice",
        GROUP,
        VERSION,
        "RayService",
        "rayservices",
        validate_ray_service,
    ),
)


def setup(rt: Any, server: WebhookServer) -> list[Any]:
    """Register the three webhooks on ``server`` and let the manager run it (on every replica, leader
    or not, as controller-runtime's webhook server). Returns no controllers."""
    for hook in WEBHOOKS:
        server.register(hook)
    rt.manager.runnables.append(server.run)
    return []


def render_webhook_configuration() -> dict[str, list[dict[str, Any]]]:
    """config/webhook/manifests.yaml: the ValidatingWebhookConfiguration for :data:`WEBHOOKS`, its
    clientConfig pointing at the kuberay-webhook-service Service (kustomize sets the namespace)."""
    hooks = [
        {
            "admissionReviewVersions": ["v1"],
            "clientConfig": {
                "service": {"name": "kuberay-webhook-service", "namespace": "system", "path": h.path},
            },
            "failurePolicy": "Fail",
            "name": h.name,
            "rules": [
                {
                    "apiGroups": [h.group],
                    "apiVersions": [h.version],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": [h.plural],
                }
            ],
            "sideEffects": "None",
        }
        for h in WEBHOOKS
    ]
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "kuberay-validating-webhook-configuration"},
        "webhooks": hooks,
    }
    return {"manifests.yaml": [config]}
