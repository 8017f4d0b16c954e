"""Informers: reflector (list+watch), indexed cache, shared informers and a cached reader."""

from internal.informer.cache import ByObject, Cache, CacheNotStarted, CacheOptions
from internal.informer.frozen import FrozenDict, FrozenList, freeze, raw, thaw
from internal.informer.informer import (
    EventHandler,
    HandlerFuncs,
    Informer,
    Registration,
    strip_managed_fields,
)
from internal.informer.reflector import Backoff, Reflector
from internal.informer.selector import Selector
from internal.informer.store import DeletedFinalStateUnknown, Indexer, object_key

__all__ = [
    "Backoff",
    "ByObject",
    "Cache",
    "CacheNotStarted",
    "CacheOptions",
    "DeletedFinalStateUnknown",
    "EventHandler",
    "FrozenDict",
    "FrozenList",
    "HandlerFuncs",
    "Indexer",
    "Informer",
    "Reflector",
    "Registration",
    "Selector",
    "freeze",
    "object_key",
    "raw",
    "strip_managed_fields",
    "thaw",
]
