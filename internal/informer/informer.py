"""The shared index informer: one reflector feeding one indexed cache and any number of handlers.

Under asyncio there is a single consumer, so the reflector applies each change to the store and
notifies every handler in order, inline (client-go's RealFIFO semantics without a FIFO). Handlers
are synchronous and must be quick (a controller's handler only enqueues keys); a handler that
raises is logged and counted, and never stops the others.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from internal.client import Client, Resource
from internal.informer.reflector import Reflector
from internal.informer.store import DeletedFinalStateUnknown, Indexer, IndexFunc, object_key

log = logging.getLogger("kuberay.informer")

Obj = dict[str, Any]
Transform = Callable[[Obj], Obj]
DEFAULT_RESYNC = 10 * 3600.0  # controller-runtime's SyncPeriod, jittered per informer


def strip_managed_fields(obj: Obj) -> Obj:
    """The default transform: managedFields are a large share of every object and nobody reads them."""
    meta = obj.get("metadata")
    if meta:
        meta.pop("managedFields", None)
    return obj


def _same_version(old: Obj, new: Obj) -> bool:
    rv = (new.get("metadata") or {}).get("resourceVersion")
    return bool(rv) and rv == (old.get("metadata") or {}).get("resourceVersion")


class EventHandler(Protocol):
    def on_add(self, obj: Obj, initial: bool) -> None: ...
    def on_update(self, old: Obj, new: Obj) -> None: ...
    def on_delete(self, obj: Obj | DeletedFinalStateUnknown) -> None: ...


@dataclass
class HandlerFuncs:
    """An EventHandler from optional callables."""

    add: Callable[[Obj, bool], None] | None = None
    update: Callable[[Obj, Obj], None] | None = None
    delete: Callable[[Obj | DeletedFinalStateUnknown], None] | None = None

    def on_add(self, obj: Obj, initial: bool) -> None:
        if self.add:
            self.add(obj, initial)

    def on_update(self, old: Obj, new: Obj) -> None:
        if self.update:
            self.update(old, new)

    def on_delete(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        if self.delete:
            self.delete(obj)


class Registration:
    def __init__(self, informer: Informer, handler: EventHandler) -> None:
        self.informer = informer
        self.handler = handler

    def has_synced(self) -> bool:
        # Initial adds are delivered inline, so a handler is synced exactly when its informer is.
        return self.informer.has_synced()


class Informer:
    def __init__(
        self,
        client: Client,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        transform: Transform | None = strip_managed_fields,
        indexers: dict[str, IndexFunc] | None = None,
        resync_period: float | None = DEFAULT_RESYNC,
        read_timeout: float = 90.0,
        reflector_factory: Callable[..., Reflector] = Reflector,
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.indexer = Indexer(indexers)
        self.transform = transform
        self.resync_period = resync_period * random.uniform(0.9, 1.1) if resync_period else None
        self._handlers: list[Registration] = []
        self._synced = asyncio.Event()
        self.handler_errors = 0
        self.reflector = reflector_factory(
            client,
            resource,
            self,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            read_timeout=read_timeout,
        )

    # ---- public ----------------------------------------------------------------------------------

    def add_event_handler(self, handler: EventHandler) -> Registration:
        """Register a handler; if objects are already cached it first gets on_add(initial=True) for
        each of them, then live events."""
        reg = Registration(self, handler)
        for obj in self.indexer.list():
            self._call(handler.on_add, obj, True)
        self._handlers.append(reg)
        return reg

    def remove_event_handler(self, reg: Registration) -> None:
        self._handlers = [r for r in self._handlers if r is not reg]

    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._synced.wait()

    def get(self, key: str) -> Obj | None:
        return self.indexer.get_by_key(key)

    def list(self) -> builtins.list[Obj]:
        return self.indexer.list()

    @property
    def last_sync_resource_version(self) -> str:
        return self.reflector.last_sync_rv

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.reflector.run())
            if self.resync_period:
                tg.create_task(self._resync_loop(self.resync_period))

    # ---- reflector sink --------------------------------------------------------------------------

    def replace(self, items: builtins.list[Obj], resource_version: str) -> None:
        initial = not self.has_synced()
        seen: set[str] = set()
        changes: builtins.list[tuple[Obj | None, Obj]] = []
        for item in items:
            obj = self._transform(item)
            key = object_key(obj)
            seen.add(key)
            changes.append((self.indexer.upsert(key, obj), obj))
        gone = [(k, self.indexer.get_by_key(k)) for k in self.indexer.list_keys() if k not in seen]
        for key, _ in gone:
            self.indexer.delete(key)
        # Store first, then deletions, then adds/updates in list order (as client-go's ReplacedAll).
        for key, last in gone:
            if last is not None:
                self._notify_delete(DeletedFinalStateUnknown(key, last))
        for old, new in changes:
            if old is None:
                self._notify_add(new, initial)
            elif not _same_version(old, new):
                # An unchanged object (same RV) is a "sync" update that client-go delivers only to
                # handlers due for resync; a relist must not re-enqueue the whole cache.
                self._notify_update(old, new)
        self._synced.set()

    def added(self, obj: Obj) -> None:
        self.modified(obj)

    def modified(self, obj: Obj) -> None:
        obj = self._transform(obj)
        old = self.indexer.upsert(object_key(obj), obj)
        if old is None:
            self._notify_add(obj, False)
        else:
            self._notify_update(old, obj)

    def deleted(self, obj: Obj) -> None:
        obj = self._transform(obj)
        if self.indexer.delete(object_key(obj)) is not None:
            self._notify_delete(obj)

    def bookmark(self, resource_version: str) -> None:
        pass  # the reflector keeps the RV; bookmarks reach no handler

    # ---- internals -------------------------------------------------------------------------------

    def _transform(self, obj: Obj) -> Obj:
        return self.transform(obj) if self.transform else obj

    def _notify_add(self, obj: Obj, initial: bool) -> None:
        for reg in self._handlers:
            self._call(reg.handler.on_add, obj, initial)

    def _notify_update(self, old: Obj, new: Obj) -> None:
        for reg in self._handlers:
            self._call(reg.handler.on_update, old, new)

    def _notify_delete(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        for reg in self._handlers:
            self._call(reg.handler.on_delete, obj)

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self.handler_errors += 1
            log.exception("informer %s: event handler failed", self.reflector.name)

    async def _resync_loop(self, period: float) -> None:
        """Deliver on_update(obj, obj) for every cached object each period; never contacts the server."""
        while True:
            await asyncio.sleep(period)
            if self.has_synced():
                for obj in self.indexer.list():
                    self._notify_update(obj, obj)
