"""Common base of the top-level ray.io/v1 kinds."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import orjson

from .constants import API_VERSION
from .core import ObjectMeta
from .fields import KindInfo, Obj, Str, View

__all__ = ["ListMeta", "TopLevel"]


class TopLevel(View):
    """A top-level object: ``apiVersion``, ``kind`` and ``metadata`` plus the kind's spec and status."""

    __slots__ = ()
    #: CRD-level facts (plural, printer columns, ...); set by each kind.
    __kind__: ClassVar[KindInfo]

    api_version = Str("apiVersion")
    kind = Str("kind")
    metadata = Obj("metadata", ObjectMeta)

    @classmethod
    def new(cls, name: str = "", namespace: str = "", **fields: Any) -> Self:
        """A new object with ``apiVersion``/``kind`` set and the given metadata name and namespace.

        Extra keyword arguments are top-level JSON members (e.g. ``spec={...}``).
        """
        raw: dict[str, Any] = {"apiVersion": API_VERSION, "kind": cls.__kind__.kind}
        metadata: dict[str, Any] = {}
        if name:
            metadata["name"] = name
        if namespace:
            metadata["namespace"] = namespace
        raw["metadata"] = metadata
        raw.update(fields)
        return cls(raw)

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview | str) -> Self:
        return cls(orjson.loads(data))

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace


class ListMeta(View):
    """``metav1.ListMeta``."""

    __slots__ = ()
    __k8s_ref__ = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"

    resource_version = Str("resourceVersion")
    continue_ = Str("continue")
