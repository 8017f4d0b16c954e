"""The indexed object cache (client-go's ThreadSafeStore + Indexer), single-threaded under asyncio."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], list[str]]

NAMESPACE_INDEX = "namespace"
ALL_NAMESPACES = "__all_namespaces"


@dataclass(frozen=True, slots=True)
class DeletedFinalStateUnknown:
    """A delete inferred at relist: the object vanished while the watch was down. ``obj`` is the
    last state this cache knew."""

    key: str
    obj: Obj


def object_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])


def namespace_index(obj: Obj) -> builtins.list[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def field_index(extract: Callable[[Obj], list[str]]) -> IndexFunc:
    """controller-runtime's field index layout: each value under "<ns>/<v>" and "__all_namespaces/<v>"."""

    def index(obj: Obj) -> builtins.list[str]:
        ns = (obj.get("metadata") or {}).get("namespace")
        out: list[str] = []
        for v in extract(obj):
            if ns:
                out.append(f"{ns}/{v}")
            out.append(f"{ALL_NAMESPACES}/{v}")
        return out

    return index


class Indexer:
    def __init__(self, indexers: dict[str, IndexFunc] | None = None) -> None:
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {NAMESPACE_INDEX: namespace_index, **(indexers or {})}
        self._indices: dict[str, dict[str, set[str]]] = {name: {} for name in self._indexers}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def get_by_key(self, key: str) -> Obj | None:
        return self._items.get(key)

    def list(self) -> builtins.list[Obj]:
        return list(self._items.values())

    def list_keys(self) -> builtins.list[str]:
        return list(self._items)

    def add_indexers(self, indexers: dict[str, IndexFunc]) -> None:
        for name, fn in indexers.items():
            if name in self._indexers:
                raise ValueError(f"indexer {name!r} already exists")
            self._indexers[name] = fn
            idx: dict[str, set[str]] = {}
            for key, obj in self._items.items():
                for v in fn(obj):
                    idx.setdefault(v, set()).add(key)
            self._indices[name] = idx

    def upsert(self, key: str, obj: Obj) -> Obj | None:
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        self._index(key, obj)
        return old

    def delete(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def by_index(self, name: str, value: str) -> builtins.list[Obj]:
        keys = self._indices[name].get(value, ())
        return [self._items[k] for k in keys]

    def index_keys(self, name: str, value: str) -> builtins.list[str]:
        return sorted(self._indices[name].get(value, ()))

    def index_values(self, name: str) -> builtins.list[str]:
        return list(self._indices[name])

    def _index(self, key: str, obj: Obj) -> None:
        for name, fn in self._indexers.items():
            idx = self._indices[name]
            for v in fn(obj):
                idx.setdefault(v, set()).add(key)

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, fn in self._indexers.items():
            idx = self._indices[name]
            for v in fn(obj):
                keys = idx.get(v)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del idx[v]

    def keys_in(self, namespace: str | None) -> Iterable[str]:
        if namespace is None:
            return self._items.keys()
        return self._indices[NAMESPACE_INDEX].get(namespace, set())
