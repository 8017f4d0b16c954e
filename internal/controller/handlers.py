"""Event handlers that turn object events into reconcile requests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from internal.controller.reconcile import Request

Obj = Mapping[str, Any]


class MapFunc(Protocol):
    def __call__(self, obj: Obj) -> Iterable[Request]: ...


def request_for(obj: Obj) -> Request:
    meta = obj.get("metadata") or {}
    return Request(meta.get("namespace") or "", meta.get("name") or "")


def for_object(obj: Obj) -> list[Request]:
    """EnqueueRequestForObject: the object itself."""
    return [request_for(obj)]


@dataclass(frozen=True)
class ForOwner:
    """EnqueueRequestForOwner: the owner(s) of matching kind and API group (version ignored);
    only the controller owner unless ``match_every_owner``."""

    kind: str
    group: str
    match_every_owner: bool = False
    owner_namespaced: bool = True

    def __call__(self, obj: Obj) -> list[Request]:
        meta = obj.get("metadata") or {}
        out = []
        for ref in meta.get("ownerReferences") or ():
            if ref.get("kind") != self.kind or str(ref.get("apiVersion", "")).rpartition("/")[0] != self.group:
                continue
            if not self.match_every_owner and not ref.get("controller"):
                continue
            ns = (meta.get("namespace") or "") if self.owner_namespaced else ""
            out.append(Request(ns, ref.get("name") or ""))
        return out


def from_map_func(fn: Callable[[Obj], Iterable[Request]]) -> MapFunc:
    """EnqueueRequestsFromMapFunc."""

    def mapper(obj: Obj) -> Iterable[Request]:
        return fn(obj)

    return mapper
