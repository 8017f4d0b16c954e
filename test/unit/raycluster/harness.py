"""An in-memory API for driving the RayCluster reconciler pass by pass: one store serves as both the
API server (the client's writes) and the informer cache (what the reconciler reads), so every write is
visible on the next read. A pod with finalizers is only marked terminating on delete, as the API
server does, which is how tests hold a pod in its drain."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from typing import Any

from controllers.ray.raycluster_controller import RayClusterOptions, RayClusterReconciler
from internal.client import AlreadyExists, NotFound
from internal.client import resources as res
from internal.controller import Request, Result
from internal.events import FakeRecorder
from internal.features import FeatureGates
from internal.informer import freeze
from internal.informer.selector import Selector

Obj = dict[str, Any]
NOW = "2026-01-01T00:00:00Z"


class Store:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.calls: list[tuple[str, str, str]] = []  # (verb, plural, name)
        self.refuse_create: dict[str, Exception] = {}  # plural -> the error every create gets
        self._rv = itertools.count(1)
        self._uid = itertools.count(1)

    def _key(self, r: res.Resource, name: str, ns: str | None) -> tuple[str, str, str]:
        return (r.plural, ns or "", name)

    def put(self, r: res.Resource, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(self._rv))
        self.objects[self._key(r, meta["name"], meta.get("namespace"))] = obj
        return obj

    def items(self, r: res.Resource, ns: str | None, selector: Selector | None = None) -> list[Obj]:
        return [
            o
            for (plural, ons, _), o in self.objects.items()
            if plural == r.plural
            and (ns is None or ons == ns)
            and (selector is None or selector.matches(o["metadata"].get("labels")))
        ]

    def remove(self, r: res.Resource, name: str, ns: str | None) -> None:
        key = self._key(r, name, ns)
        obj = self.objects.get(key)
        if obj is None:
            raise NotFound(f'{r.plural} "{name}" not found', reason="NotFound")
        if obj["metadata"].get("finalizers"):
            obj["metadata"].setdefault("deletionTimestamp", NOW)
        else:
            del self.objects[key]


class FakeClient:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, r: res.Resource, name: str, namespace: str | None = None, **_: Any) -> Obj:
        obj = self.store.objects.get(self.store._key(r, name, namespace))
        if obj is None:
            raise NotFound(f'{r.plural} "{name}" not found', reason="NotFound")
        return copy.deepcopy(obj)

    async def list(self, r: res.Resource, namespace: str | None = None, **kw: Any) -> Obj:
        sel = Selector.parse(kw.get("label_selector"))
        return {"items": [copy.deepcopy(o) for o in self.store.items(r, namespace, sel)]}

    async def create(self, r: res.Resource, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        refused = self.store.refuse_create.get(r.plural)
        if refused is not None:
            raise refused
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", namespace)
        if not meta.get("name"):
            meta["name"] = f"{meta.get('generateName', 'obj-')}{next(self.store._uid):05d}"
        if self.store._key(r, meta["name"], meta.get("namespace")) in self.store.objects:
            raise AlreadyExists(f'{r.plural} "{meta["name"]}" already exists', reason="AlreadyExists")
        meta["uid"] = f"uid-{next(self.store._uid)}"
        if r.plural == res.SERVICES.plural and not obj.setdefault("spec", {}).get("clusterIP"):
            obj["spec"]["clusterIP"] = f"10.96.0.{next(self.store._uid)}"
        for port in obj.get("spec", {}).get("ports") or () if r.plural == res.SERVICES.plural else ():
            port.setdefault("targetPort", port.get("port"))  # the API server's default
        self.store.calls.append(("create", r.plural, meta["name"]))
        return copy.deepcopy(self.store.put(r, obj))

    async def delete(self, r: res.Resource, name: str, namespace: str | None = None, **_: Any) -> None:
        self.store.calls.append(("delete", r.plural, name))
        self.store.remove(r, name, namespace)

    async def delete_collection(self, r: res.Resource, namespace: str, *, label_selector: str, **_: Any) -> None:
        self.store.calls.append(("deletecollection", r.plural, label_selector))
        for o in self.store.items(r, namespace, Selector.parse(label_selector)):
            self.store.remove(r, o["metadata"]["name"], namespace)

    async def patch(self, r: res.Resource, name: str, patch: Any, namespace: str | None = None, **_: Any) -> Obj:
        self.store.calls.append(("patch", r.plural, name))
        obj = self.store.objects[self.store._key(r, name, namespace)]
        _merge(obj, copy.deepcopy(patch))
        return copy.deepcopy(self.store.put(r, obj))

    async def update(self, r: res.Resource, obj: Obj, **_: Any) -> Obj:
        meta = obj["metadata"]
        self.store.calls.append(("update", r.plural, meta["name"]))
        return copy.deepcopy(self.store.put(r, copy.deepcopy(obj)))

    async def update_status(self, r: res.Resource, body: Obj) -> Obj:
        meta = body["metadata"]
        self.store.calls.append(("update_status", r.plural, meta["name"]))
        obj = self.store.objects[self.store._key(r, meta["name"], meta.get("namespace"))]
        obj["status"] = copy.deepcopy(body["status"])
        return copy.deepcopy(self.store.put(r, obj))


def _merge(dst: Obj, patch: Mapping[str, Any]) -> None:
    for k, v in patch.items():
        if k == "resourceVersion":
            continue
        if v is None:
            dst.pop(k, None)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v


class FakeCache:
    """The store read as a synced informer cache (frozen objects, label maps or selector strings)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, r: res.Resource, name: str, namespace: str | None = None) -> Any:
        obj = self.store.objects.get(self.store._key(r, name, namespace))
        if obj is None:
            raise NotFound(f'{r.plural} "{name}" not found in cache', reason="NotFound")
        return freeze(copy.deepcopy(obj))

    def list(
        self, r: res.Resource, namespace: str | None = None, *, labels: Any = None, field: Any = None
    ) -> list[Any]:
        sel = Selector.from_labels(labels) if isinstance(labels, dict) else Selector.parse(labels)
        return [freeze(copy.deepcopy(o)) for o in self.store.items(r, namespace, sel)]


class Harness:
    """A RayCluster reconciler over the in-memory store."""

    def __init__(self, env: Mapping[str, str] | None = None, gates: str = "") -> None:
        self.store = Store()
        self.client = FakeClient(self.store)
        self.recorder = FakeRecorder()
        options = RayClusterOptions(env=dict(env or {}), gates=FeatureGates.parse(gates) if gates else FeatureGates())
        self.reconciler = RayClusterReconciler(
            self.client,  # type: ignore[arg-type]
            FakeCache(self.store),  # type: ignore[arg-type]
            self.recorder,
            options,
        )

    def add(self, r: res.Resource, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        obj["metadata"].setdefault("uid", f"uid-{next(self.store._uid)}")
        obj["metadata"].setdefault("generation", 1)
        return self.store.put(r, obj)

    def cluster(self, ns: str, name: str) -> Obj:
        return self.store.objects[(res.RAYCLUSTERS.plural, ns, name)]

    def pods(self, ns: str, **labels: str) -> list[Obj]:
        return self.store.items(res.PODS, ns, Selector.from_labels(labels))

    async def reconcile(self, ns: str, name: str) -> Result:
        return await self.reconciler.reconcile(Request(ns, name))

    async def settle(self, ns: str, name: str, passes: int = 10) -> None:
        """Reconcile until a pass writes nothing (errors are retried like the work queue would)."""
        for _ in range(passes):
            before = len(self.store.calls)
            try:
                await self.reconcile(ns, name)
            except Exception:
                pass
            if len(self.store.calls) == before:
                return
        raise AssertionError(f"RayCluster {ns}/{name} still writing after {passes} passes")


def run_pods(h: Harness, ns: str, *, ready: bool = True, ip_prefix: str = "10.0.0.") -> None:
    """What the kubelet would do: every pending pod becomes Running (and Ready), with an IP."""
    for i, p in enumerate(h.pods(ns)):
        st = p.setdefault("status", {})
        if st.get("phase") in (None, "Pending"):
            st["phase"] = "Running"
            st["podIP"] = f"{ip_prefix}{i + 1}"
            st["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
