"""Event filters, as controller-runtime's predicates: only Update events are filtered unless said."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from internal.informer.selector import Selector

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Predicate:
    create: Callable[[Obj], bool] = lambda o: True
    update: Callable[[Obj, Obj], bool] = lambda old, new: True
    delete: Callable[[Obj], bool] = lambda o: True


def _meta(o: Obj) -> Mapping[str, Any]:
    return o.get("metadata") or {}


GenerationChanged = Predicate(update=lambda old, new: _meta(old).get("generation") != _meta(new).get("generation"))
ResourceVersionChanged = Predicate(
    update=lambda old, new: _meta(old).get("resourceVersion") != _meta(new).get("resourceVersion")
)
LabelsChanged = Predicate(update=lambda old, new: (_meta(old).get("labels") or {}) != (_meta(new).get("labels") or {}))
AnnotationsChanged = Predicate(
    update=lambda old, new: (_meta(old).get("annotations") or {}) != (_meta(new).get("annotations") or {})
)


def label_selector(selector: str) -> Predicate:
    sel = Selector.parse(selector)

    def ok(o: Obj) -> bool:
        return sel.matches(_meta(o).get("labels"))

    return Predicate(create=ok, update=lambda old, new: ok(new), delete=ok)


def any_of(*preds: Predicate) -> Predicate:
    return Predicate(
        create=lambda o: any(p.create(o) for p in preds),
        update=lambda old, new: any(p.update(old, new) for p in preds),
        delete=lambda o: any(p.delete(o) for p in preds),
    )


def all_of(*preds: Predicate) -> Predicate:
    return Predicate(
        create=lambda o: all(p.create(o) for p in preds),
        update=lambda old, new: all(p.update(old, new) for p in preds),
        delete=lambda o: all(p.delete(o) for p in preds),
    )


def negate(p: Predicate) -> Predicate:
    return Predicate(
        create=lambda o: not p.create(o),
        update=lambda old, new: not p.update(old, new),
        delete=lambda o: not p.delete(o),
    )
