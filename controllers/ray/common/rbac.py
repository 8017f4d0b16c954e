"""Autoscaler RBAC objects (upstream ``common/rbac.go`` + ``reconcileAutoscaler*``). Spec §4.5, §4.3.

Created only when ``enableInTreeAutoscaling`` is true; the ServiceAccount only when the head
template names none (a named but missing one is an error event upstream). Never updated (Q7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controllers.ray.utils import constants as C
from controllers.ray.utils import util as U
from controllers.ray.utils.util import JSON

__all__ = ["autoscaler_service_account_name", "build_role", "build_role_binding", "build_service_account"]


def _labels(cluster: Mapping[str, Any]) -> dict[str, str]:
    return {
        C.RAY_CLUSTER_LABEL_KEY: U.cluster_name(cluster),
        C.KUBERNETES_APPLICATION_NAME_LABEL_KEY: C.APPLICATION_NAME,
        C.KUBERNETES_CREATED_BY_LABEL_KEY: C.COMPONENT_NAME,
    }


def _metadata(cluster: Mapping[str, Any], name: str) -> JSON:
    metadata: JSON = {"name": name}
    namespace = U.cluster_namespace(cluster)
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = _labels(cluster)
    U.set_controller_reference(metadata, cluster)
    return metadata


def autoscaler_service_account_name(cluster: Mapping[str, Any]) -> str:
    """``CheckName(<head template serviceAccountName or cluster name>)``."""
    return U.check_name(U.get_head_group_service_account_name(cluster))


def build_service_account(cluster: Mapping[str, Any]) -> JSON:
    """The autoscaler ServiceAccount (labels cluster, app name, created-by; controller ownerRef)."""
    return U.plain_json(
        {
            "apiVersion": "v1",
            "kind": C.SERVICE_ACCOUNT_KIND,
            "metadata": _metadata(cluster, autoscaler_service_account_name(cluster)),
        }
    )


def build_role(cluster: Mapping[str, Any]) -> JSON:
    """Role ``CheckName(<cluster>)``: pods get/list/watch/patch, pods/resize patch, rayclusters get/patch."""
    return U.plain_json(
        {
            "apiVersion": C.RBAC_API_VERSION,
            "kind": C.ROLE_KIND,
            "metadata": _metadata(cluster, U.check_name(U.cluster_name(cluster))),
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
                {"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["patch"]},
                {"apiGroups": [C.RAY_API_GROUP], "resources": ["rayclusters"], "verbs": ["get", "patch"]},
            ],
        }
    )


def build_role_binding(cluster: Mapping[str, Any]) -> JSON:
    """RoleBinding ``CheckName(<cluster>)`` from the Role to the autoscaler ServiceAccount."""
    subject: JSON = {"kind": C.SERVICE_ACCOUNT_KIND, "name": autoscaler_service_account_name(cluster)}
    namespace = U.cluster_namespace(cluster)
    if namespace:
        subject["namespace"] = namespace
    return U.plain_json(
        {
            "apiVersion": C.RBAC_API_VERSION,
            "kind": "RoleBinding",
            "metadata": _metadata(cluster, U.check_name(U.cluster_name(cluster))),
            "subjects": [subject],
            "roleRef": {
                "apiGroup": C.RBAC_API_GROUP,
                "kind": C.ROLE_KIND,
                "name": U.check_name(U.cluster_name(cluster)),
            },
        }
    )
