"""Views over the Kubernetes types the ray.io/v1 types embed.

These are *helpers*: the JSON stays a plain dict and only the fields the controllers and validators
read are declared (all others pass through untouched). Each class names the Kubernetes schema in
``__k8s_ref__``, which a CRD generator must embed in full instead of walking the partial field list.
``Condition`` is the exception: ``metav1.Condition`` is emitted inline by controller-gen, so its field
list is complete and carries the markers.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable

from .constants import ConditionStatus
from .fields import (
    Bool,
    Embedded,
    EmbeddedList,
    Int64,
    Obj,
    ObjList,
    OptBool,
    OptStr,
    Str,
    StrList,
    StrMap,
    Time,
    View,
    ViewList,
    format_time,
)

__all__ = [
    "Condition",
    "Container",
    "EnvVar",
    "ObjectMeta",
    "PodSpec",
    "PodTemplate",
    "Volume",
    "VolumeMount",
    "env_var",
    "env_var_exists",
    "find_condition",
    "is_condition_true",
    "set_condition",
]

K8S_CORE = "io.k8s.api.core.v1"
K8S_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
K8S_NETWORKING = "io.k8s.api.networking.v1"


class ObjectMeta(View):
    """``metav1.ObjectMeta`` (helpers for the fields the operator uses)."""

    __slots__ = ()
    __k8s_ref__ = f"{K8S_META}.ObjectMeta"

    name = Str("name")
    generate_name = Str("generateName")
    namespace = Str("namespace")
    uid = Str("uid")
    resource_version = Str("resourceVersion")
    generation = Int64("generation")
    creation_timestamp = Time("creationTimestamp")
    deletion_timestamp = Time("deletionTimestamp")
    labels = StrMap("labels")
    annotations = StrMap("annotations")
    finalizers = StrList("finalizers")
    owner_references = EmbeddedList("ownerReferences", k8s_ref=f"{K8S_META}.OwnerReference")


class EnvVar(View):
    """``corev1.EnvVar``."""

    __slots__ = ()
    __k8s_ref__ = f"{K8S_CORE}.EnvVar"

    name = Str("name", omitempty=False)
    value = Str("value")
    value_from = Embedded("valueFrom", k8s_ref=f"{K8S_CORE}.EnvVarSource")


class VolumeMount(View):
    """``corev1.VolumeMount``."""

    __slots__ = ()
    __k8s_ref__ = f"{K8S_CORE}.VolumeMount"

    name = Str("name", omitempty=False)
    mount_path = Str("mountPath", omitempty=False)
    sub_path = Str("subPath")
    read_only = Bool("readOnly")


class Volume(View):
    """``corev1.Volume`` (name only; the volume source stays in the dict)."""

    __slots__ = ()
    __k8s_ref__ = f"{K8S_CORE}.Volume"

    name = Str("name", omitempty=False)


class Container(View):
    """``corev1.Container``."""

    __slots__ = ()
    __k8s_ref__ = f"{K8S_CORE}.Container"

    name = Str("name", omitempty=False)
    image = Str("image")
    image_pull_policy = Str("imagePullPolicy")
    command = StrList("command")
    args = StrList("args")
    env = ObjList("env", EnvVar)
    env_from = EmbeddedList("envFrom", k8s_ref=f"{K8S_CORE}.EnvFromSource")
    ports = EmbeddedList("ports", k8s_ref=f"{K8S_CORE}.ContainerPort")
    resources = Embedded("resources", k8s_ref=f"{K8S_CORE}.ResourceRequirements")
    volume_mounts = ObjList("volumeMounts", VolumeMount)
    security_context = Embedded("securityContext", k8s_ref=f"{K8S_CORE}.SecurityContext")
    restart_policy = OptStr("restartPolicy")


class PodSpec(View):
    """``corev1.PodSpec``."""

    __slots__ = ()
    __k8s_ref__ = f"{K8S_CORE}.PodSpec"

    containers = ObjList("containers", Container, omitempty=False)
    init_containers = ObjList("initContainers", Container)
    volumes = ObjList("volumes", Volume)
    restart_policy = Str("restartPolicy")
    service_account_name = Str("serviceAccountName")
    node_selector = StrMap("nodeSelector")
    tolerations = EmbeddedList("tolerations", k8s_ref=f"{K8S_CORE}.Toleration")
    scheduling_gates = EmbeddedList("schedulingGates", k8s_ref=f"{K8S_CORE}.PodSchedulingGate")
    enable_service_links = OptBool("enableServiceLinks")


class PodTemplate(View):
    """``corev1.PodTemplateSpec``. ``containers[0]`` is the Ray container."""

    __slots__ = ()
    __k8s_ref__ = f"{K8S_CORE}.PodTemplateSpec"

    metadata = Obj("metadata", ObjectMeta)
    spec = Obj("spec", PodSpec)

    @property
    def containers(self) -> ViewList[Container]:
        """Shortcut for ``template.spec.containers``."""
        return self.spec.containers

    @property
    def ray_container(self) -> Container | None:
        """``containers[0]``, or ``None`` when the template has no container."""
        containers = self.spec.containers
        return containers[0] if len(containers) else None


def env_var(env: Iterable[EnvVar], name: str) -> EnvVar | None:
    """``EnvVarByName``: the first env var called ``name``."""
    for item in env:
        if item.name == name:
            return item
    return None


def env_var_exists(env: Iterable[EnvVar], name: str) -> bool:
    """``EnvVarExists``."""
    return env_var(env, name) is not None


_CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)


class Condition(View):
    """``metav1.Condition``: one aspect of the current state of an object."""

    __slots__ = ()

    type = Str(
        "type",
        doc="type of condition in CamelCase or in foo.example.com/CamelCase.",
        required=True,
        omitempty=False,
        max_length=316,
        pattern=_CONDITION_TYPE_PATTERN,
    )
    status = Str(
        "status",
        doc="status of the condition, one of True, False, Unknown.",
        required=True,
        omitempty=False,
        enum=tuple(ConditionStatus),
    )
    observed_generation = Int64(
        "observedGeneration",
        doc="observedGeneration represents the .metadata.generation that the condition was set based upon.",
        minimum=0,
    )
    last_transition_time = Time(
        "lastTransitionTime",
        doc="lastTransitionTime is the last time the condition transitioned from one status to another.",
        required=True,
        omitempty=False,
    )
    reason = Str(
        "reason",
        doc="reason contains a programmatic identifier indicating the reason for the condition's last transition.",
        required=True,
        omitempty=False,
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    )
    message = Str(
        "message",
        doc="message is a human readable message indicating details about the transition.",
        required=True,
        omitempty=False,
        max_length=32768,
    )


def find_condition(conditions: Iterable[Condition], cond_type: str) -> Condition | None:
    """``meta.FindStatusCondition``."""
    for cond in conditions:
        if cond.type == cond_type:
            return cond
    return None


def is_condition_true(conditions: Iterable[Condition], cond_type: str) -> bool:
    """``meta.IsStatusConditionTrue``."""
    cond = find_condition(conditions, cond_type)
    return cond is not None and cond.status == ConditionStatus.TRUE


def set_condition(
    conditions: ViewList[Condition],
    cond_type: str,
    status: str,
    reason: str,
    message: str,
    *,
    observed_generation: int | None = None,
    now: _dt.datetime | None = None,
) -> bool:
    """``meta.SetStatusCondition``: add or update a condition; returns True when anything changed.

    ``lastTransitionTime`` changes only when the status changes (or the condition is new).
    """
    stamp = format_time(now or _dt.datetime.now(_dt.UTC))
    existing = find_condition(conditions, cond_type)
    if existing is None:
        raw: dict[str, object] = {
            "type": cond_type,
            "status": status,
            "lastTransitionTime": stamp,
            "reason": reason,
            "message": message,
        }
        if observed_generation:
            raw["observedGeneration"] = observed_generation
        conditions.append(raw)
        return True
    changed = False
    if existing.status != status:
        existing.status = status
        existing.last_transition_time = stamp
        changed = True
    if existing.reason != reason:
        existing.reason = reason
        changed = True
    if existing.message != message:
        existing.message = message
        changed = True
    if observed_generation is not None and existing.observed_generation != observed_generation:
        existing.observed_generation = observed_generation
        changed = True
    return changed
