"""Predicates and event handlers: which updates pass which predicate, how owners map to requests,
and how the controller's handler combines them (old and new owners, dedup, tombstones)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from internal.client.resources import PODS
from internal.controller import (
    AnnotationsChanged,
    Controller,
    ControllerOptions,
    ForOwner,
    GenerationChanged,
    LabelsChanged,
    Request,
    ResourceVersionChanged,
    Result,
    Watch,
    all_of,
    any_of,
    for_object,
    from_map_func,
    label_selector,
    negate,
)
from internal.informer import Cache, DeletedFinalStateUnknown, freeze

BASE: dict[str, Any] = {
    "metadata": {
        "name": "rc",
        "namespace": "ns",
        "resourceVersion": "10",
        "generation": 3,
        "labels": {"app": "ray"},
        "annotations": {"note": "a"},
        "finalizers": ["ray.io/f"],
    },
    "spec": {"replicas": 1},
    "status": {"state": "ready"},
}


def changed(path: str, value: Any, *, bump_rv: bool = True, bump_gen: bool = False) -> dict[str, Any]:
    """BASE with one field changed, as the API server would return it."""
    obj = copy.deepcopy(BASE)
    *parents, leaf = path.split(".")
    cur = obj
    for p in parents:
        cur = cur[p]
    cur[leaf] = value
    if bump_rv:
        obj["metadata"]["resourceVersion"] = "11"
    if bump_gen:
        obj["metadata"]["generation"] = 4
    return obj


UPDATES = {
    "resync": copy.deepcopy(BASE),  # on_update(obj, obj): same RV
    "labels": changed("metadata.labels", {"app": "ray", "x": "1"}),
    "annotations": changed("metadata.annotations", {"note": "b"}),
    "finalizers": changed("metadata.finalizers", []),
    "status": changed("status.state", "failed"),
    "spec": changed("spec.replicas", 2, bump_gen=True),
}

EXPECTED = {
    # update kind:   GenerationChanged, ResourceVersionChanged, LabelsChanged, AnnotationsChanged
    "resync": (False, False, False, False),
    "labels": (False, True, True, False),
    "annotations": (False, True, False, True),
    "finalizers": (False, True, False, False),
    "status": (False, True, False, False),
    "spec": (True, True, False, False),
}


@pytest.mark.parametrize("kind", list(UPDATES))
def test_update_predicates_table(kind: str) -> None:
    old, new = BASE, UPDATES[kind]
    got = tuple(
        p.update(old, new) for p in (GenerationChanged, ResourceVersionChanged, LabelsChanged, AnnotationsChanged)
    )
    assert got == EXPECTED[kind]


def test_resync_same_object_is_dropped_by_generation_and_rv_predicates() -> None:
    obj = copy.deepcopy(BASE)
    assert not GenerationChanged.update(obj, obj)
    assert not ResourceVersionChanged.update(obj, obj)


def test_predicates_work_on_frozen_views() -> None:
    assert GenerationChanged.update(freeze(BASE), freeze(UPDATES["spec"]))
    assert LabelsChanged.update(freeze(BASE), freeze(UPDATES["labels"]))


def test_labels_and_annotations_absent_vs_empty_are_equal() -> None:
    a = {"metadata": {"name": "x"}}
    b = {"metadata": {"name": "x", "labels": {}, "annotations": {}}}
    assert not LabelsChanged.update(a, b)
    assert not AnnotationsChanged.update(a, b)


@pytest.mark.parametrize("pred", [GenerationChanged, ResourceVersionChanged, LabelsChanged, AnnotationsChanged])
def test_create_and_delete_always_pass_update_predicates(pred: Any) -> None:
    assert pred.create(BASE)
    assert pred.delete(BASE)


def test_label_selector_predicate_filters_every_kind() -> None:
    p = label_selector("app in (ray,other)")
    other = changed("metadata.labels", {"app": "web"})
    assert p.create(BASE) and p.delete(BASE)
    assert not p.create(other) and not p.delete(other)
    assert p.update(other, BASE)  # judged on the new object
    assert not p.update(BASE, other)


def test_combinators() -> None:
    spec, labels = UPDATES["spec"], UPDATES["labels"]
    gen_or_labels = any_of(GenerationChanged, LabelsChanged)
    assert gen_or_labels.update(BASE, spec) and gen_or_labels.update(BASE, labels)
    assert not gen_or_labels.update(BASE, UPDATES["status"])
    both = all_of(ResourceVersionChanged, LabelsChanged)
    assert both.update(BASE, labels) and not both.update(BASE, spec)
    assert negate(GenerationChanged).update(BASE, labels)
    assert not negate(GenerationChanged).create(BASE)


# ---- handlers ------------------------------------------------------------------------------------


def owned(*refs: dict[str, Any], ns: str = "ns", name: str = "pod") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": "1", "ownerReferences": list(refs)}}


def ref(
    name: str, *, kind: str = "RayCluster", api: str = "ray.io/v1", controller: bool | None = True
) -> dict[str, Any]:
    r: dict[str, Any] = {"apiVersion": api, "kind": kind, "name": name, "uid": f"uid-{name}"}
    if controller is not None:
        r["controller"] = controller
    return r


def test_for_object_maps_the_object_itself() -> None:
    assert for_object(BASE) == [Request("ns", "rc")]
    assert for_object({"metadata": {"name": "node-1"}}) == [Request("", "node-1")]


def test_for_owner_maps_only_controller_owner_of_kind_and_group_any_version() -> None:
    h = ForOwner(kind="RayCluster", group="ray.io")
    obj = owned(
        ref("rc-v1"),  # controller owner, ray.io/v1
        ref("rc-other-kind", kind="RayJob"),
        ref("rc-other-group", api="example.com/v1"),
        ref("rc-not-controller", controller=False),
        ref("rc-no-flag", controller=None),
    )
    assert h(obj) == [Request("ns", "rc-v1")]
    assert h(owned(ref("rc-old", api="ray.io/v1alpha1"))) == [Request("ns", "rc-old")]  # version ignored
    assert h(owned()) == []
    assert h({"metadata": {"name": "x", "namespace": "ns"}}) == []


def test_for_owner_core_group_and_cluster_scoped_owner() -> None:
    assert ForOwner(kind="Service", group="")(owned(ref("svc", kind="Service", api="v1"))) == [Request("ns", "svc")]
    cluster = ForOwner(kind="Node", group="", owner_namespaced=False)
    assert cluster(owned(ref("n1", kind="Node", api="v1"))) == [Request("", "n1")]


def test_for_owner_match_every_owner() -> None:
    h = ForOwner(kind="RayCluster", group="ray.io", match_every_owner=True)
    obj = owned(ref("a"), ref("b", controller=False), ref("c", controller=None), ref("d", kind="RayJob"))
    assert h(obj) == [Request("ns", "a"), Request("ns", "b"), Request("ns", "c")]


def _controller(*watches: Watch) -> Controller:
    class Noop:
        async def reconcile(self, request: Request) -> Result:
            return Result()

    return Controller("pred", Noop(), Cache(None), ControllerOptions(watches=list(watches)))  # type: ignore[arg-type]


async def _drain(ctl: Controller) -> list[Request]:
    """Everything ready in the controller's queue, each taken and marked done."""
    q, out = ctl.queue, []
    while len(q):
        item = await q.get()
        q.done(item)
        out.append(item)
    return sorted(out)


async def test_update_enqueues_old_and_new_owners_deduplicated() -> None:
    w = Watch(PODS, ForOwner(kind="RayCluster", group="ray.io"))
    ctl = _controller(w)
    h = ctl._handler(w)
    old = owned(ref("rc-1"), name="p")
    new = owned(ref("rc-2"), name="p")
    h.on_update(old, new)
    assert await _drain(ctl) == [Request("ns", "rc-1"), Request("ns", "rc-2")]
    # Same owner on both sides: one request only.
    h.on_update(old, copy.deepcopy(old))
    assert await _drain(ctl) == [Request("ns", "rc-1")]


async def test_for_object_update_enqueues_once_and_delete_unwraps_tombstone() -> None:
    w = Watch(PODS)
    ctl = _controller(w)
    h = ctl._handler(w)
    h.on_update(BASE, UPDATES["spec"])
    assert await _drain(ctl) == [Request("ns", "rc")]
    h.on_delete(DeletedFinalStateUnknown("ns/rc", copy.deepcopy(BASE)))
    assert await _drain(ctl) == [Request("ns", "rc")]
    h.on_add(BASE, True)
    assert await _drain(ctl) == [Request("ns", "rc")]


async def test_tombstone_owner_is_mapped_from_last_known_state() -> None:
    w = Watch(PODS, ForOwner(kind="RayCluster", group="ray.io"))
    ctl = _controller(w)
    ctl._handler(w).on_delete(DeletedFinalStateUnknown("ns/p", owned(ref("rc-9"), name="p")))
    assert await _drain(ctl) == [Request("ns", "rc-9")]


async def test_watch_predicates_gate_the_handler() -> None:
    w = Watch(PODS, for_object, (GenerationChanged,))
    ctl = _controller(w)
    h = ctl._handler(w)
    for kind in ("resync", "labels", "annotations", "finalizers", "status"):
        h.on_update(BASE, UPDATES[kind])
    h.on_update(BASE, BASE)  # a resync: on_update(obj, obj)
    assert await _drain(ctl) == []
    h.on_update(BASE, UPDATES["spec"])
    assert await _drain(ctl) == [Request("ns", "rc")]
    h.on_add(BASE, False)  # creates and deletes pass GenerationChanged
    assert await _drain(ctl) == [Request("ns", "rc")]

    w2 = Watch(PODS, for_object, (LabelsChanged,))
    ctl2 = _controller(w2)
    h2 = ctl2._handler(w2)
    h2.on_update(BASE, UPDATES["annotations"])
    assert await _drain(ctl2) == []
    h2.on_update(BASE, UPDATES["labels"])
    assert await _drain(ctl2) == [Request("ns", "rc")]


async def test_from_map_func_union_on_update() -> None:
    def by_label(o: Any) -> list[Request]:
        return [Request("ns", o["metadata"]["labels"]["app"])]

    w = Watch(PODS, from_map_func(by_label))
    ctl = _controller(w)
    ctl._handler(w).on_update(BASE, changed("metadata.labels", {"app": "x"}))
    assert await _drain(ctl) == [Request("ns", "ray"), Request("ns", "x")]
