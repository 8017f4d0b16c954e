"""Shared informers and the cached reader reconcilers use (controller-runtime's cache).

One informer per (resource, namespace, label selector): controllers that watch the same kind share
one watch and one copy of each object. Reads come from the cache as read-only views; writes go to
the API server through the client.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from internal.client import Client, NotFound, Resource
from internal.informer.frozen import FrozenDict, freeze
from internal.informer.informer import DEFAULT_RESYNC, Informer, Transform, strip_managed_fields
from internal.informer.selector import Selector
from internal.informer.store import ALL_NAMESPACES, NAMESPACE_INDEX, IndexFunc, field_index

log = logging.getLogger("kuberay.cache")

Obj = dict[str, Any]


class CacheNotStarted(RuntimeError):
    pass


@dataclass
class ByObject:
    """Per-resource cache options: a server-side label selector, a transform, and namespaces."""

    label_selector: str | None = None
    field_selector: str | None = None
    transform: Transform | None = strip_managed_fields
    namespaces: list[str] | None = None


@dataclass
class CacheOptions:
    namespaces: list[str] | None = None  # None: all namespaces
    by_object: dict[Resource, ByObject] = field(default_factory=dict)
    resync_period: float | None = DEFAULT_RESYNC
    read_timeout: float = 90.0


class Cache:
    """Creates informers on first use, starts them (now, or when the cache starts), and answers reads."""

    def __init__(self, client: Client, options: CacheOptions | None = None) -> None:
        self.client = client
        self.options = options or CacheOptions()
        self._informers: dict[tuple[Resource, str | None], Informer] = {}
        self._field_indexes: dict[Resource, dict[str, IndexFunc]] = {}
        self._label_indexes: dict[Resource, set[str]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._started = asyncio.Event()

    def _namespaces_for(self, res: Resource) -> builtins.list[str | None]:
        opts = self.options.by_object.get(res)
        nss = (opts.namespaces if opts and opts.namespaces is not None else None) or self.options.namespaces
        if not res.namespaced or not nss:
            return [None]
        return list(nss)

    def informers_for(self, res: Resource) -> builtins.list[Informer]:
        """The informers for a resource (one per watched namespace), created and started on demand."""
        out = []
        for ns in self._namespaces_for(res):
            inf = self._informers.get((res, ns))
            if inf is None:
                opts = self.options.by_object.get(res) or ByObject()
                inf = Informer(
                    self.client,
                    res,
                    namespace=ns,
                    label_selector=opts.label_selector,
                    field_selector=opts.field_selector,
                    transform=opts.transform,
                    indexers=dict(self._field_indexes.get(res, {})),
                    resync_period=self.options.resync_period,
                    read_timeout=self.options.read_timeout,
                )
                self._informers[(res, ns)] = inf
                if self._tg is not None:
                    self._tg.create_task(inf.run(), name=f"informer {res}")
            out.append(inf)
        return out

    def index_field(self, res: Resource, name: str, extract: Any) -> None:
        """Add a field index (controller-runtime layout: "<ns>/<v>" and "__all_namespaces/<v>")."""
        fn = field_index(extract)
        self._field_indexes.setdefault(res, {})[f"field:{name}"] = fn
        for (r, _), inf in self._informers.items():
            if r == res:
                inf.indexer.add_indexers({f"field:{name}": fn})

    def index_label(self, res: Resource, key: str) -> None:
        """Index ``res`` by the value of label ``key``: ``list`` with a label map naming ``key`` then
        reads that one bucket instead of scanning the namespace (an operator listing the pods of one
        of 1,000 clusters touches 4 pods, not 4,000)."""
        self.index_field(res, f"label:{key}", lambda o: _label_value(o, key))
        self._label_indexes.setdefault(res, set()).add(key)

    async def run(self) -> None:
        """Run every informer (including ones created later) until cancelled."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for (res, _), inf in self._informers.items():
                tg.create_task(inf.run(), name=f"informer {res}")
            self._started.set()
            try:
                await asyncio.Future()  # until cancelled
            finally:
                self._tg = None

    def has_synced(self) -> bool:
        return all(inf.has_synced() for inf in self._informers.values())

    async def wait_for_sync(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._started.wait()
            for inf in list(self._informers.values()):
                await inf.wait_for_sync()

    # ---- reads -----------------------------------------------------------------------------------

    def _synced_informers(self, res: Resource, namespace: str | None) -> Iterable[Informer]:
        if not self._started.is_set():
            raise CacheNotStarted("the cache is not running yet")
        infs = self.informers_for(res)
        if namespace is not None and len(infs) > 1:
            infs = [i for i in infs if i.namespace == namespace]
        # An unsynced cache would answer "nothing there", and a reconciler acting on that would
        # create duplicates: refuse instead (the reconcile errors and is retried).
        for inf in infs:
            if not inf.has_synced():
                raise CacheNotStarted(f"the informer for {res} has not synced yet")
        return infs

    def get(self, res: Resource, name: str, namespace: str | None = None) -> FrozenDict:
        key = f"{namespace}/{name}" if namespace and res.namespaced else name
        for inf in self._synced_informers(res, namespace):
            obj = inf.get(key)
            if obj is not None:
                frozen: FrozenDict = freeze(obj)
                return frozen
        raise NotFound(f'{res.plural} "{name}" not found in cache', reason="NotFound")

    def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        labels: dict[str, str] | str | None = None,
        field: tuple[str, str] | None = None,
    ) -> builtins.list[FrozenDict]:
        """Objects from the cache, filtered by namespace, labels (a map or selector string) and an
        exact-match field index."""
        sel = Selector.from_labels(labels) if isinstance(labels, dict) else Selector.parse(labels)
        if field is None and isinstance(labels, dict):
            indexed = self._label_indexes.get(res, ())
            field = next(((f"label:{k}", v) for k, v in labels.items() if k in indexed), None)
        out: list[FrozenDict] = []
        for inf in self._synced_informers(res, namespace):
            if field is not None:
                fname, value = field
                scope = namespace if namespace and res.namespaced else ALL_NAMESPACES
                objs = inf.indexer.by_index(f"field:{fname}", f"{scope}/{value}")
            elif namespace is not None and res.namespaced:
                objs = inf.indexer.by_index(NAMESPACE_INDEX, namespace)
            else:
                objs = inf.indexer.list()
            out.extend(freeze(o) for o in objs if sel.matches((o.get("metadata") or {}).get("labels")))
        return out


def _label_value(obj: Mapping[str, Any], key: str) -> list[str]:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(key)
    return [value] if isinstance(value, str) else []
