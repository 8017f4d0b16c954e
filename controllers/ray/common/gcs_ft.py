"""GCS fault tolerance objects (upstream ``common/gcs_ft.go`` and ``buildRedisCleanupJob``). Spec §4.9.

The head-pod side of GCS FT (annotations, env vars, rayStartParams, the RocksDB volume) lives in
``pod.py``; this module builds the Redis cleanup Job and the RocksDB PVC and answers the
"is the finalizer/Job needed" questions from the cluster and the operator environment.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from api.v1._goutil import atoi
from controllers.ray.common.pod import DEFAULT_POD_CONFIG, PodConfig, build_head_pod
from controllers.ray.utils import constants as C
from controllers.ray.utils import util as U
from controllers.ray.utils.util import JSON

__all__ = [
    "DEFAULT_GCS_FT_DELETION_TIMEOUT_SECONDS",
    "build_gcs_storage_pvc",
    "build_redis_cleanup_job",
    "gcs_ft_deletion_timeout_seconds",
    "gcs_storage_pvc_drift",
    "needs_redis_cleanup_finalizer",
    "redis_cleanup_args",
]

DEFAULT_GCS_FT_DELETION_TIMEOUT_SECONDS: Final = 300
_EMPTY_ENV: Final[Mapping[str, str]] = {}

_CLEANUP_PREFIX: Final = (
    'echo "To get more information about manually deleting the storage namespace in Redis and removing the '
    f"RayCluster's finalizer, please check {C.GCS_FT_DOCS_URL} for more details.\" && "
    'python -c "from ray._private.gcs_utils import cleanup_redis_storage; '
    "from urllib.parse import urlparse; "
    "import os; "
    "import sys; "
    "redis_address = os.getenv('RAY_REDIS_ADDRESS', '').split(',')[0]; "
    "redis_address = redis_address if '://' in redis_address else 'redis://' + redis_address; "
    "parsed = urlparse(redis_address); "
)
_CLEANUP_CALL_WITH_USERNAME: Final = (
    "sys.exit(1) if not cleanup_redis_storage(host=parsed.hostname, port=parsed.port, "
    "username=os.getenv('REDIS_USERNAME', parsed.username), "
    "password=os.getenv('REDIS_PASSWORD', parsed.password or ''), use_ssl=parsed.scheme=='rediss', "
    "storage_namespace=os.getenv('RAY_external_storage_namespace')) else None\""
)
_CLEANUP_CALL: Final = (
    "sys.exit(1) if not cleanup_redis_storage(host=parsed.hostname, port=parsed.port, "
    "password=os.getenv('REDIS_PASSWORD', parsed.password or ''), use_ssl=parsed.scheme=='rediss', "
    "storage_namespace=os.getenv('RAY_external_storage_namespace')) else None\""
)


def redis_cleanup_args(with_username: bool) -> str:
    """The single argument of the cleanup container: parses the first ``RAY_REDIS_ADDRESS`` entry
    (``redis://`` added when there is no scheme; ``rediss`` means SSL) and deletes the namespace."""
    return _CLEANUP_PREFIX + (_CLEANUP_CALL_WITH_USERNAME if with_username else _CLEANUP_CALL)


def needs_redis_cleanup_finalizer(cluster: Mapping[str, Any], env: Mapping[str, str] = _EMPTY_ENV) -> bool:
    """``ENABLE_GCS_FT_REDIS_CLEANUP != false``, GCS FT enabled, and the backend is not RocksDB."""
    return (
        U.is_gcs_ft_redis_cleanup_enabled(env)
        and U.is_gcs_fault_tolerance_enabled(cluster)
        and not U.is_gcs_fault_tolerance_embedded(cluster)
    )


def gcs_ft_deletion_timeout_seconds(cluster: Mapping[str, Any]) -> int:
    """``ray.io/gcs-ft-deletion-timeout`` in seconds when it is a positive integer (``strconv.Atoi``),
    else 300: a zero or negative timeout would force-remove the finalizer before any cleanup ran."""
    raw = U.cluster_annotations(cluster).get(C.GCS_FT_DELETION_TIMEOUT_ANNOTATION_KEY)
    if raw is not None:
        try:
            seconds = atoi(str(raw))
        except ValueError:
            seconds = 0
        if seconds > 0:
            return seconds
    return DEFAULT_GCS_FT_DELETION_TIMEOUT_SECONDS


def build_redis_cleanup_job(
    cluster: Mapping[str, Any],
    *,
    env: Mapping[str, str] = _EMPTY_ENV,
    features: Mapping[str, bool] | None = None,
    config: PodConfig = DEFAULT_POD_CONFIG,
    spec_hash: str | None = None,
    kuberay_version: str = C.KUBERAY_VERSION,
) -> JSON:
    """``buildRedisCleanupJob``: the head pod relabelled ``ray.io/node-type=redis-cleanup``, only the
    Ray container (cleanup command, no probes, two Redis retry env vars, 200m/256Mi), no
    ``wait-for-tls-ip-san`` init container, ``restartPolicy: Never``, ``backoffLimit: 0``,
    ``activeDeadlineSeconds: 300``, name ``<cluster>-redis-cleanup`` (last 63 characters), ownerRef."""
    pod = build_head_pod(
        cluster, env=env, features=features, config=config, spec_hash=spec_hash, kuberay_version=kuberay_version
    )
    metadata: JSON = pod["metadata"]
    metadata["labels"][C.RAY_NODE_TYPE_LABEL_KEY] = C.RayNodeType.REDIS_CLEANUP.value
    spec: JSON = pod["spec"]
    ray: JSON = spec["containers"][C.RAY_CONTAINER_INDEX]
    spec["containers"] = [ray]
    inits = [
        c
        for c in U.as_list(spec.get("initContainers"))
        if not (isinstance(c, dict) and c.get("name") == C.WAIT_FOR_TLS_IP_SAN_INIT_CONTAINER_NAME)
    ]
    if inits:
        spec["initContainers"] = inits
    else:
        spec.pop("initContainers", None)
    ray["command"] = list(C.REDIS_CLEANUP_COMMAND)
    ray["args"] = [redis_cleanup_args(U.env_var_exists(C.REDIS_USERNAME, U.as_list(ray.get("env"))))]
    ray.pop("livenessProbe", None)
    ray.pop("readinessProbe", None)
    env_list = ray.get("env")
    ray["env"] = [
        *(env_list if isinstance(env_list, list) else []),
        {"name": C.RAY_REDIS_DB_CONNECT_RETRIES, "value": "120"},
        {"name": C.RAY_REDIS_DB_CONNECT_WAIT_MILLISECONDS, "value": "500"},
    ]
    ray["resources"] = {
        "limits": {C.RESOURCE_CPU: C.REDIS_CLEANUP_CPU, C.RESOURCE_MEMORY: C.REDIS_CLEANUP_MEMORY},
        "requests": {C.RESOURCE_CPU: C.REDIS_CLEANUP_CPU, C.RESOURCE_MEMORY: C.REDIS_CLEANUP_MEMORY},
    }
    spec["restartPolicy"] = "Never"

    job_metadata: JSON = {"name": U.redis_cleanup_job_name(U.cluster_name(cluster))}
    namespace = U.cluster_namespace(cluster)
    if namespace:
        job_metadata["namespace"] = namespace
    job_metadata["labels"] = copy.deepcopy(metadata["labels"])
    if metadata.get("annotations"):
        job_metadata["annotations"] = copy.deepcopy(metadata["annotations"])
    U.set_controller_reference(job_metadata, cluster)
    return U.plain_json(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": job_metadata,
            "spec": {
                "backoffLimit": C.REDIS_CLEANUP_BACKOFF_LIMIT,
                "template": {"metadata": metadata, "spec": spec},
                "activeDeadlineSeconds": C.REDIS_CLEANUP_ACTIVE_DEADLINE_SECONDS,
            },
        }
    )


def build_gcs_storage_pvc(cluster: Mapping[str, Any]) -> JSON | None:
    """``BuildGCSStoragePVC`` for the RocksDB backend: ``<cluster>-gcs-pvc`` (label ``ray.io/cluster``;
    size default 1Gi, access modes default [ReadWriteOnce], optional storage class), with a
    controller ownerRef unless ``deletionPolicy: Retain``. None when the user supplies ``claimName``
    (never created or owned) or the backend is not RocksDB."""
    if not U.is_gcs_fault_tolerance_embedded(cluster):
        return None
    storage = U.as_map(U.as_map(U.cluster_spec(cluster).get("gcsFaultToleranceOptions")).get("storage"))
    if U.as_str(storage.get("claimName")):
        return None
    access_modes = [U.as_str(m) for m in U.as_list(storage.get("accessModes"))] or [C.GCS_STORAGE_DEFAULT_ACCESS_MODE]
    size_raw = storage.get("size")
    size = U.try_parse_quantity(size_raw) if size_raw is not None else None
    size_text = size.canonical() if size is not None else U.as_str(size_raw) or C.GCS_STORAGE_DEFAULT_SIZE
    pvc_spec: JSON = {"accessModes": access_modes, "resources": {"requests": {C.RESOURCE_STORAGE: size_text}}}
    if storage.get("storageClassName") is not None:
        pvc_spec["storageClassName"] = storage["storageClassName"]
    metadata: JSON = {"name": U.get_gcs_storage_pvc_name(cluster)}
    namespace = U.cluster_namespace(cluster)
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {C.RAY_CLUSTER_LABEL_KEY: U.cluster_name(cluster)}
    if storage.get("deletionPolicy") != C.GCS_STORAGE_DELETION_POLICY_RETAIN:
        U.set_controller_reference(metadata, cluster)
    return U.plain_json({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": pvc_spec})


def gcs_storage_pvc_drift(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """What differs between the operator-managed GCS PVC and ``gcsFaultToleranceOptions.storage``:
    size (as quantities), access modes, and the storage class when the spec names one (an unnamed class
    is filled in by the cluster's default). The PVC is never updated; the caller warns."""
    have, want = U.as_map(existing.get("spec")), U.as_map(desired.get("spec"))
    drift: list[str] = []

    def storage(spec: Mapping[str, Any]) -> object:
        raw = U.as_map(U.as_map(spec.get("resources")).get("requests")).get(C.RESOURCE_STORAGE)
        q = U.try_parse_quantity(raw)
        return q.canonical() if q is not None else raw

    if storage(have) != storage(want):
        drift.append(f"size {storage(have)} (spec: {storage(want)})")
    if U.as_list(have.get("accessModes")) != U.as_list(want.get("accessModes")):
        drift.append(f"accessModes {U.as_list(have.get('accessModes'))} (spec: {U.as_list(want.get('accessModes'))})")
    if "storageClassName" in want and have.get("storageClassName") != want["storageClassName"]:
        drift.append(f"storageClassName {have.get('storageClassName')} (spec: {want['storageClassName']})")
    return drift
