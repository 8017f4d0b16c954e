"""Declarative field machinery: typed, lossless views over decoded JSON, and the schema metadata.

Every ray.io/v1 struct is a :class:`View` subclass whose class attributes are field descriptors
(:class:`Str`, :class:`OptInt32`, :class:`Obj`, ...). A descriptor is declared **once** and serves two
purposes:

* at run time it is the typed accessor/setter of the field on the wrapped ``dict`` (the object exactly
  as ``orjson.loads`` returned it; nothing is copied or converted, so unknown fields survive and
  ``orjson.dumps(view.raw)`` reproduces the input byte for byte);
* at class level it carries a frozen :class:`FieldSpec` (JSON name, kind, Go pointer-ness, default,
  enum, minimum/maximum, lengths, pattern, list type, CEL rules, doc, feature gate) that a CRD generator
  walks through ``View.__fields__`` to emit the OpenAPI v3 schema.

Wrapping is O(1): a view holds a reference to its ``dict`` (plus its parent and key, used for error
paths and for attaching a view that was read from a missing field once it is written). Reads never
mutate the JSON. Values of the wrong JSON type raise :class:`~api.v1.errors.FieldTypeError` (a
:class:`~api.v1.errors.ValidationError`) when they are read: that is where a Go client would have failed
to decode the object.

Go semantics kept by the accessors:

* non-pointer scalars (``string``, ``int32``, ``bool``, ``float32``) read as their zero value when absent
  or ``null``; pointer scalars (``*int32`` ...) read as ``None``;
* a non-pointer struct (``Spec RayJobSpec``) reads as an empty, *detached* view when absent: reading
  through it yields zero values, and the first write attaches it (and any detached ancestors);
* a pointer struct (``*RayClusterSpec``) reads as ``None`` when absent;
* setters follow ``encoding/json``'s ``omitempty``: assigning ``None`` always removes the key, and
  assigning the zero value of an ``omitempty`` non-pointer field removes it too, so what is written is
  what the Go operator would have written.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, MutableSequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final, Generic, Literal, Self, TypeVar, overload

import orjson

from .constants import MAX_INT32, MAX_INT64, MIN_INT32, MIN_INT64
from .errors import FieldRangeError, FieldTypeError

__all__ = [
    "MISSING",
    "Bool",
    "Embedded",
    "EmbeddedList",
    "Field",
    "FieldKind",
    "FieldSpec",
    "Float",
    "Int32",
    "Int64",
    "KindInfo",
    "Obj",
    "ObjList",
    "ObjMap",
    "OptBool",
    "OptInt32",
    "OptObj",
    "OptStr",
    "PrinterColumn",
    "Quantity",
    "Str",
    "StrList",
    "StrMap",
    "Time",
    "TimeMap",
    "TypeSchema",
    "View",
    "ViewList",
    "ViewMap",
    "XValidation",
    "check_types",
    "format_time",
    "go_marshal",
    "parse_time",
    "type_schema",
]


class _Missing:
    """Sentinel for "no default"."""

    _instance: ClassVar[_Missing | None] = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

#: What a field holds. ``embedded``/``embedded_list`` are Kubernetes core/meta types kept as plain
#: dicts; their schema is named by ``FieldSpec.k8s_ref``. ``object``/``object_list``/``object_map`` are
#: ray.io types described by ``FieldSpec.ref`` (a View subclass, itself possibly a ``__k8s_ref__``).
FieldKind = Literal[
    "string",
    "int32",
    "int64",
    "float",
    "bool",
    "quantity",
    "time",
    "string_map",
    "string_list",
    "time_map",
    "object",
    "object_list",
    "object_map",
    "embedded",
    "embedded_list",
]


@dataclass(frozen=True, slots=True)
class XValidation:
    """A ``+kubebuilder:validation:XValidation`` CEL rule (``x-kubernetes-validations``)."""

    rule: str
    message: str


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """Schema metadata of one field, as a CRD generator needs it.

    ``required`` lists the field in its parent's ``required`` (json tag without ``omitempty`` and no
    ``+optional``). ``pointer`` is Go pointer-ness (``None`` is distinct from the zero value).
    ``default`` is the ``+kubebuilder:default`` value (``MISSING`` when there is none). ``enum``,
    ``minimum``, ``maximum``, ``min_length``, ``max_length``, ``min_items`` and ``pattern`` are the OpenAPI
    validation markers. ``format`` is the OpenAPI format (``int32``, ``int64``, ``float``, ``date-time``).
    """

    json_name: str
    kind: FieldKind
    doc: str = ""
    py_name: str = ""
    required: bool = False
    pointer: bool = False
    omitempty: bool = True
    nullable: bool = False
    default: Any = MISSING
    enum: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    pattern: str | None = None
    format: str | None = None
    list_type: str | None = None
    list_map_keys: tuple[str, ...] = ()
    x_validations: tuple[XValidation, ...] = ()
    ref: type[View] | None = None
    k8s_ref: str | None = None
    feature_gate: str | None = None
    deprecated: bool = False

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING


@dataclass(frozen=True, slots=True)
class TypeSchema:
    """Schema metadata of one struct type: what :func:`type_schema` returns."""

    name: str
    doc: str
    fields: tuple[FieldSpec, ...]
    required: tuple[str, ...]
    x_validations: tuple[XValidation, ...]
    k8s_ref: str | None


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    """An ``additionalPrinterColumns`` entry."""

    name: str
    type: str
    json_path: str
    priority: int = 0
    format: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class KindInfo:
    """CRD-level facts about a top-level kind."""

    kind: str
    list_kind: str
    plural: str
    singular: str
    group: str
    version: str
    scope: str
    categories: tuple[str, ...]
    short_names: tuple[str, ...]
    printer_columns: tuple[PrinterColumn, ...]
    status_subresource: bool
    storage: bool
    served: bool
    doc: str


def type_schema(cls: type[View]) -> TypeSchema:
    """The schema metadata of a View class."""
    fields = cls.__fields__
    return TypeSchema(
        name=cls.__name__,
        doc=_clean_doc(cls.__doc__),
        fields=fields,
        required=tuple(f.json_name for f in fields if f.required),
        x_validations=cls.__x_validations__,
        k8s_ref=cls.__k8s_ref__,
    )


def _clean_doc(doc: str | None) -> str:
    if not doc:
        return ""
    import inspect

    return inspect.cleandoc(doc)


# ---- time helpers ---------------------------------------------------------------------------------


def format_time(value: _dt.datetime) -> str:
    """Format like ``metav1.Time``: RFC 3339 in UTC with second precision (``2024-05-01T10:00:00Z``)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return value.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> _dt.datetime:
    """Parse an RFC 3339 timestamp as written by the API server into an aware datetime."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = _dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.UTC)
    return parsed


# ---- views ----------------------------------------------------------------------------------------

_T = TypeVar("_T")
_V = TypeVar("_V", bound="View")


class View:
    """A typed, lossless view over one JSON object (``raw``)."""

    __slots__ = ("_detached", "_key", "_parent", "_raw")

    #: Field metadata of this type, in declaration order (base classes first).
    __fields__: ClassVar[tuple[FieldSpec, ...]] = ()
    #: Python attribute name -> descriptor.
    __descriptors__: ClassVar[dict[str, Field[Any]]] = {}
    #: Type-level CEL rules.
    __x_validations__: ClassVar[tuple[XValidation, ...]] = ()
    #: Set on views over Kubernetes types: the schema comes from Kubernetes, the declared fields are
    #: only typed helpers for the controllers (a partial list).
    __k8s_ref__: ClassVar[str | None] = None

    _raw: dict[str, Any]
    _parent: View | ViewList[Any] | ViewMap[Any] | None
    _key: str | int | None
    _detached: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        descriptors: dict[str, Field[Any]] = {}
        for klass in reversed(cls.__mro__):
            for name, attr in vars(klass).items():
                if isinstance(attr, Field):
                    descriptors[name] = attr
        cls.__descriptors__ = descriptors
        cls.__fields__ = tuple(d.spec for d in descriptors.values())

    def __init__(self, raw: dict[str, Any] | None = None) -> None:
        if raw is None:
            raw = {}
        elif not isinstance(raw, dict):
            raise FieldTypeError("", "object", raw)
        self._raw = raw
        self._parent = None
        self._key = None
        self._detached = False

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def _attached(cls, raw: dict[str, Any], parent: View | ViewList[Any] | ViewMap[Any], key: str | int) -> Self:
        view = cls.__new__(cls)
        view._raw = raw
        view._parent = parent
        view._key = key
        view._detached = False
        return view

    @classmethod
    def _missing(cls, parent: View, key: str) -> Self:
        view = cls.__new__(cls)
        view._raw = {}
        view._parent = parent
        view._key = key
        view._detached = True
        return view

    @classmethod
    def wrap(cls, raw: Any) -> Self:
        """Wrap an already decoded object (no copy). Raises FieldTypeError if it is not a JSON object."""
        if isinstance(raw, cls):
            return raw
        if isinstance(raw, View):
            return cls(raw.raw)
        if not isinstance(raw, dict):
            raise FieldTypeError("", "object", raw)
        return cls(raw)

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview | str) -> Self:
        """Decode JSON text with orjson and wrap the result."""
        return cls(orjson.loads(data))

    # -- access -----------------------------------------------------------------------------------

    @property
    def raw(self) -> dict[str, Any]:
        """The wrapped JSON object itself (not a copy)."""
        return self._raw

    def to_dict(self) -> dict[str, Any]:
        return self._raw

    def to_json(self) -> bytes:
        return orjson.dumps(self._raw)

    def copy(self) -> Self:
        """A deep copy (a new, unattached view over a new dict)."""
        return type(self)(orjson.loads(orjson.dumps(self._raw)))

    @property
    def json_path(self) -> str:
        """The JSON path of this object inside the top-level object (``spec.workerGroupSpecs[0]``)."""
        parent = self._parent
        if parent is None or self._key is None:
            return ""
        return parent._child_path(self._key)

    def _child_path(self, key: str | int) -> str:
        base = self.json_path
        return f"{base}.{key}" if base else str(key)

    @property
    def is_detached(self) -> bool:
        """True for a view read from an absent non-pointer struct field that was not written yet."""
        return self._detached

    def _materialize(self) -> None:
        if not self._detached:
            return
        parent = self._parent
        key = self._key
        assert isinstance(parent, View) and isinstance(key, str)
        parent._materialize()
        existing = parent._raw.get(key)
        if isinstance(existing, dict):
            existing.update(self._raw)
            self._raw = existing
        else:
            parent._raw[key] = self._raw
        self._detached = False

    @overload
    def ensure(self, field: Obj[_V] | OptObj[_V]) -> _V: ...
    @overload
    def ensure(self, field: ObjList[_V]) -> ViewList[_V]: ...
    @overload
    def ensure(self, field: ObjMap[_V]) -> ViewMap[_V]: ...
    @overload
    def ensure(self, field: StrMap) -> dict[str, str]: ...
    @overload
    def ensure(self, field: StrList) -> list[str]: ...
    @overload
    def ensure(self, field: Embedded) -> dict[str, Any]: ...
    @overload
    def ensure(self, field: EmbeddedList) -> list[dict[str, Any]]: ...
    def ensure(self, field: Field[Any]) -> Any:
        """Return the container a field holds, creating (and attaching) an empty one when absent.

        ``spec.ensure(RayJobSpec.ray_cluster_spec)`` returns the RayClusterSpec view, adding
        ``"rayClusterSpec": {}`` first when the field is missing.
        """
        return field.ensure(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, View):
            return type(self) is type(other) and self._raw == other._raw
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._raw!r})"


class ViewList(MutableSequence[_V], Generic[_V]):
    """A list of views over a JSON array of objects; items are wrapped on access (O(1) each)."""

    __slots__ = ("_cls", "_detached", "_key", "_parent", "_raw")

    def __init__(
        self,
        cls: type[_V],
        raw: list[Any],
        parent: View | None = None,
        key: str | None = None,
        *,
        detached: bool = False,
    ) -> None:
        self._cls = cls
        self._raw = raw
        self._parent = parent
        self._key = key
        self._detached = detached

    @property
    def raw(self) -> list[Any]:
        return self._raw

    @property
    def json_path(self) -> str:
        if self._parent is None or self._key is None:
            return ""
        return self._parent._child_path(self._key)

    def _child_path(self, key: str | int) -> str:
        return f"{self.json_path}[{key}]"

    def _materialize(self) -> None:
        if not self._detached:
            return
        parent = self._parent
        key = self._key
        assert parent is not None and key is not None
        parent._materialize()
        existing = parent._raw.get(key)
        if isinstance(existing, list):
            existing.extend(self._raw)
            self._raw = existing
        else:
            parent._raw[key] = self._raw
        self._detached = False

    def _wrap(self, item: Any, index: int) -> _V:
        if not isinstance(item, dict):
            raise FieldTypeError(self._child_path(index), "object", item)
        return self._cls._attached(item, self, index)

    def __len__(self) -> int:
        return len(self._raw)

    @overload
    def __getitem__(self, index: int) -> _V: ...
    @overload
    def __getitem__(self, index: slice) -> list[_V]: ...
    def __getitem__(self, index: int | slice) -> _V | list[_V]:
        if isinstance(index, slice):
            return [self._wrap(self._raw[i], i) for i in range(*index.indices(len(self._raw)))]
        item = self._raw[index]
        return self._wrap(item, index if index >= 0 else index + len(self._raw))

    def __iter__(self) -> Iterator[_V]:
        for index, item in enumerate(self._raw):
            yield self._wrap(item, index)

    @overload
    def __setitem__(self, index: int, value: _V) -> None: ...
    @overload
    def __setitem__(self, index: slice, value: Iterable[_V]) -> None: ...
    def __setitem__(self, index: int | slice, value: Any) -> None:
        self._materialize()
        if isinstance(index, slice):
            self._raw[index] = [_raw_object(v) for v in value]
        else:
            self._raw[index] = _raw_object(value)

    def __delitem__(self, index: int | slice) -> None:
        del self._raw[index]

    def insert(self, index: int, value: _V | Mapping[str, Any]) -> None:
        self._materialize()
        self._raw.insert(index, _raw_object(value))

    def append(self, value: _V | Mapping[str, Any]) -> None:
        self._materialize()
        self._raw.append(_raw_object(value))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ViewList):
            return self._raw == other._raw
        if isinstance(other, list):
            return self._raw == [_raw_object(v) if isinstance(v, View) else v for v in other]
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ViewList[{self._cls.__name__}]({self._raw!r})"


class ViewMap(MutableMapping[str, _V], Generic[_V]):
    """A map of views over a JSON object whose values are objects (``map[string]AppStatus``)."""

    __slots__ = ("_cls", "_detached", "_key", "_parent", "_raw")

    def __init__(
        self,
        cls: type[_V],
        raw: dict[str, Any],
        parent: View | None = None,
        key: str | None = None,
        *,
        detached: bool = False,
    ) -> None:
        self._cls = cls
        self._raw = raw
        self._parent = parent
        self._key = key
        self._detached = detached

    @property
    def raw(self) -> dict[str, Any]:
        return self._raw

    @property
    def json_path(self) -> str:
        if self._parent is None or self._key is None:
            return ""
        return self._parent._child_path(self._key)

    def _child_path(self, key: str | int) -> str:
        return f"{self.json_path}[{key}]"

    def _materialize(self) -> None:
        if not self._detached:
            return
        parent = self._parent
        key = self._key
        assert parent is not None and key is not None
        parent._materialize()
        existing = parent._raw.get(key)
        if isinstance(existing, dict):
            existing.update(self._raw)
            self._raw = existing
        else:
            parent._raw[key] = self._raw
        self._detached = False

    def __getitem__(self, key: str) -> _V:
        item = self._raw[key]
        if not isinstance(item, dict):
            raise FieldTypeError(self._child_path(key), "object", item)
        return self._cls._attached(item, self, key)

    def __setitem__(self, key: str, value: _V | Mapping[str, Any]) -> None:
        self._materialize()
        self._raw[key] = _raw_object(value)

    def __delitem__(self, key: str) -> None:
        del self._raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"ViewMap[{self._cls.__name__}]({self._raw!r})"


def check_types(view: View) -> None:
    """Read every declared field of ``view`` recursively, as decoding into the Go structs would.

    Raises :class:`~api.v1.errors.FieldTypeError` at the first value of the wrong JSON type. Unknown
    fields, and the undeclared fields of embedded Kubernetes objects, are not looked at.
    """
    for descriptor in type(view).__descriptors__.values():
        value = descriptor.read(view)
        if isinstance(value, View):
            if not value._detached:
                check_types(value)
        elif isinstance(value, ViewList):
            for item in value:
                check_types(item)
        elif isinstance(value, ViewMap):
            for item in value.values():
                check_types(item)


def _raw_object(value: Any) -> dict[str, Any]:
    if isinstance(value, View):
        return value._raw
    if isinstance(value, dict):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise FieldTypeError("", "object", value)


# ---- descriptors ----------------------------------------------------------------------------------


class Field(Generic[_T]):
    """Base descriptor. Subclasses define ``kind``, pointer-ness, ``read`` and ``__set__``."""

    __slots__ = ("key", "spec")

    kind: ClassVar[FieldKind]
    pointer: ClassVar[bool] = False
    fmt: ClassVar[str | None] = None

    def __init__(
        self,
        json_name: str,
        *,
        doc: str = "",
        required: bool = False,
        omitempty: bool = True,
        nullable: bool = False,
        default: Any = MISSING,
        enum: Iterable[str] | None = None,
        minimum: int | None = None,
        maximum: int | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        min_items: int | None = None,
        pattern: str | None = None,
        list_type: str | None = None,
        list_map_keys: tuple[str, ...] = (),
        x_validations: tuple[XValidation, ...] = (),
        ref: type[View] | None = None,
        k8s_ref: str | None = None,
        feature_gate: str | None = None,
        deprecated: bool = False,
    ) -> None:
        self.key = json_name
        self.spec = FieldSpec(
            json_name=json_name,
            kind=self.kind,
            doc=doc,
            required=required,
            pointer=self.pointer,
            omitempty=omitempty,
            nullable=nullable,
            default=default,
            enum=tuple(enum) if enum is not None else None,
            minimum=minimum,
            maximum=maximum,
            min_length=min_length,
            max_length=max_length,
            min_items=min_items,
            pattern=pattern,
            format=self.fmt,
            list_type=list_type,
            list_map_keys=list_map_keys,
            x_validations=x_validations,
            ref=ref,
            k8s_ref=k8s_ref if k8s_ref is not None else (ref.__k8s_ref__ if ref is not None else None),
            feature_gate=feature_gate,
            deprecated=deprecated,
        )

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.spec = replace(self.spec, py_name=name)

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: View, owner: type[Any]) -> _T: ...
    def __get__(self, obj: View | None, owner: type[Any]) -> Self | _T:
        if obj is None:
            return self
        return self.read(obj)

    def read(self, obj: View) -> _T:
        raise NotImplementedError

    def ensure(self, obj: View) -> Any:
        raise TypeError(f"field {self.key!r} is not a container")

    def _path(self, obj: View) -> str:
        return obj._child_path(self.key)

    def _store(self, obj: View, value: Any) -> None:
        obj._materialize()
        obj._raw[self.key] = value

    def _delete(self, obj: View) -> None:
        if self.key in obj._raw:
            obj._materialize()
            del obj._raw[self.key]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r})"


def _check_int(field: Field[Any], obj: View, value: Any, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldTypeError(field._path(obj), "integer", value)
    lo, hi = (MIN_INT32, MAX_INT32) if bits == 32 else (MIN_INT64, MAX_INT64)
    if value < lo or value > hi:
        raise FieldRangeError(field._path(obj), value, bits)
    return value


class Str(Field[str]):
    """A Go ``string``: reads ``""`` when absent."""

    __slots__ = ()
    kind = "string"

    def read(self, obj: View) -> str:
        value = obj._raw.get(self.key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise FieldTypeError(self._path(obj), "string", value)
        return value

    def __set__(self, obj: View, value: str | None) -> None:
        if value is None or (value == "" and self.spec.omitempty):
            self._delete(obj)
        else:
            self._store(obj, str(value))


class OptStr(Field[str | None]):
    """A Go ``*string``: reads ``None`` when absent."""

    __slots__ = ()
    kind = "string"
    pointer = True

    def read(self, obj: View) -> str | None:
        value = obj._raw.get(self.key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise FieldTypeError(self._path(obj), "string", value)
        return value

    def __set__(self, obj: View, value: str | None) -> None:
        if value is None:
            self._delete(obj)
        else:
            self._store(obj, str(value))


class Int32(Field[int]):
    """A Go ``int32``: reads ``0`` when absent."""

    __slots__ = ()
    kind = "int32"
    fmt = "int32"

    def read(self, obj: View) -> int:
        value = obj._raw.get(self.key)
        if value is None:
            return 0
        return _check_int(self, obj, value, 32)

    def __set__(self, obj: View, value: int | None) -> None:
        if value is None or (value == 0 and self.spec.omitempty):
            self._delete(obj)
        else:
            self._store(obj, _check_int(self, obj, value, 32))


class OptInt32(Field[int | None]):
    """A Go ``*int32``: reads ``None`` when absent."""

    __slots__ = ()
    kind = "int32"
    fmt = "int32"
    pointer = True

    def read(self, obj: View) -> int | None:
        value = obj._raw.get(self.key)
        if value is None:
            return None
        return _check_int(self, obj, value, 32)

    def __set__(self, obj: View, value: int | None) -> None:
        if value is None:
            self._delete(obj)
        else:
            self._store(obj, _check_int(self, obj, value, 32))


class Int64(Field[int]):
    """A Go ``int64``: reads ``0`` when absent."""

    __slots__ = ()
    kind = "int64"
    fmt = "int64"

    def read(self, obj: View) -> int:
        value = obj._raw.get(self.key)
        if value is None:
            return 0
        return _check_int(self, obj, value, 64)

    def __set__(self, obj: View, value: int | None) -> None:
        if value is None or (value == 0 and self.spec.omitempty):
            self._delete(obj)
        else:
            self._store(obj, _check_int(self, obj, value, 64))


class Float(Field[float]):
    """A Go ``float32``: reads ``0.0`` when absent; JSON integers are accepted."""

    __slots__ = ()
    kind = "float"
    fmt = "float"

    def read(self, obj: View) -> float:
        value = obj._raw.get(self.key)
        if value is None:
            return 0.0
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FieldTypeError(self._path(obj), "number", value)
        return float(value)

    def __set__(self, obj: View, value: float | None) -> None:
        if value is None or (value == 0 and self.spec.omitempty):
            self._delete(obj)
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FieldTypeError(self._path(obj), "number", value)
            self._store(obj, value)


class Bool(Field[bool]):
    """A Go ``bool``: reads ``False`` when absent."""

    __slots__ = ()
    kind = "bool"

    def read(self, obj: View) -> bool:
        value = obj._raw.get(self.key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise FieldTypeError(self._path(obj), "boolean", value)
        return value

    def __set__(self, obj: View, value: bool | None) -> None:
        if value is None or (value is False and self.spec.omitempty):
            self._delete(obj)
        else:
            self._store(obj, bool(value))


class OptBool(Field[bool | None]):
    """A Go ``*bool``: reads ``None`` when absent."""

    __slots__ = ()
    kind = "bool"
    pointer = True

    def read(self, obj: View) -> bool | None:
        value = obj._raw.get(self.key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise FieldTypeError(self._path(obj), "boolean", value)
        return value

    def __set__(self, obj: View, value: bool | None) -> None:
        if value is None:
            self._delete(obj)
        else:
            self._store(obj, bool(value))


class Quantity(Field[str | int | float | None]):
    """A ``resource.Quantity`` (int-or-string). Kept as written; ``None`` when absent."""

    __slots__ = ()
    kind = "quantity"

    def read(self, obj: View) -> str | int | float | None:
        value = obj._raw.get(self.key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise FieldTypeError(self._path(obj), "string", value)
        return value

    def __set__(self, obj: View, value: str | int | float | None) -> None:
        if value is None:
            self._delete(obj)
        else:
            self._store(obj, value)


class Time(Field[str | None]):
    """A ``*metav1.Time``: the RFC 3339 string as stored; ``None`` when absent.

    Assign a ``datetime`` (formatted like ``metav1.Time``) or a string. Use :func:`parse_time` to get a
    ``datetime``.
    """

    __slots__ = ()
    kind = "time"
    fmt = "date-time"
    pointer = True

    def read(self, obj: View) -> str | None:
        value = obj._raw.get(self.key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise FieldTypeError(self._path(obj), "string", value)
        return value

    def __set__(self, obj: View, value: _dt.datetime | str | None) -> None:
        if value is None:
            self._delete(obj)
        elif isinstance(value, _dt.datetime):
            self._store(obj, format_time(value))
        else:
            self._store(obj, str(value))


class StrMap(Field[dict[str, str] | None]):
    """A Go ``map[string]string``: the live dict, or ``None`` when absent (use ``View.ensure``)."""

    __slots__ = ()
    kind = "string_map"

    def read(self, obj: View) -> dict[str, str] | None:
        value = obj._raw.get(self.key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise FieldTypeError(self._path(obj), "object", value)
        for k, v in value.items():
            if not isinstance(v, str):
                raise FieldTypeError(f"{self._path(obj)}[{k}]", "string", v)
        return value

    def __set__(self, obj: View, value: Mapping[str, str] | None) -> None:
        if value is None or (not value and self.spec.omitempty):
            self._delete(obj)
        else:
            self._store(obj, value if isinstance(value, dict) else dict(value))

    def ensure(self, obj: View) -> dict[str, str]:
        current = self.read(obj)
        if current is None:
            current = {}
            self._store(obj, current)
        return current


class TimeMap(Field[dict[str, str | None] | None]):
    """A Go ``map[K]*metav1.Time`` (``stateTransitionTimes``)."""

    __slots__ = ()
    kind = "time_map"

    def read(self, obj: View) -> dict[str, str | None] | None:
        value = obj._raw.get(self.key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise FieldTypeError(self._path(obj), "object", value)
        for k, v in value.items():
            if v is not None and not isinstance(v, str):
                raise FieldTypeError(f"{self._path(obj)}[{k}]", "string", v)
        return value

    def __set__(self, obj: View, value: Mapping[str, str | None] | None) -> None:
        if value is None or (not value and self.spec.omitempty):
            self._delete(obj)
        else:
            self._store(obj, value if isinstance(value, dict) else dict(value))


class StrList(Field[list[str] | None]):
    """A Go ``[]string``: the live list, or ``None`` when absent."""

    __slots__ = ()
    kind = "string_list"

    def read(self, obj: View) -> list[str] | None:
        value = obj._raw.get(self.key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise FieldTypeError(self._path(obj), "array", value)
        for i, v in enumerate(value):
            if not isinstance(v, str):
                raise FieldTypeError(f"{self._path(obj)}[{i}]", "string", v)
        return value

    def __set__(self, obj: View, value: Iterable[str] | None) -> None:
        if value is None:
            self._delete(obj)
            return
        items = value if isinstance(value, list) else list(value)
        if not items and self.spec.omitempty:
            self._delete(obj)
        else:
            self._store(obj, items)

    def ensure(self, obj: View) -> list[str]:
        current = self.read(obj)
        if current is None:
            current = []
            self._store(obj, current)
        return current


class Embedded(Field[dict[str, Any] | None]):
    """A Kubernetes type kept as a plain dict (``*corev1.Service`` ...); ``None`` when absent."""

    __slots__ = ()
    kind = "embedded"
    pointer = True

    def read(self, obj: View) -> dict[str, Any] | None:
        value = obj._raw.get(self.key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise FieldTypeError(self._path(obj), "object", value)
        return value

    def __set__(self, obj: View, value: Mapping[str, Any] | None) -> None:
        if value is None:
            self._delete(obj)
        else:
            self._store(obj, _raw_object(value))

    def ensure(self, obj: View) -> dict[str, Any]:
        current = self.read(obj)
        if current is None:
            current = {}
            self._store(obj, current)
        return current


class EmbeddedList(Field[list[dict[str, Any]] | None]):
    """A list of Kubernetes objects kept as plain dicts (``[]networkingv1.IngressTLS`` ...)."""

    __slots__ = ()
    kind = "embedded_list"

    def read(self, obj: View) -> list[dict[str, Any]] | None:
        value = obj._raw.get(self.key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise FieldTypeError(self._path(obj), "array", value)
        for i, v in enumerate(value):
            if not isinstance(v, dict):
                raise FieldTypeError(f"{self._path(obj)}[{i}]", "object", v)
        return value

    def __set__(self, obj: View, value: Iterable[Mapping[str, Any]] | None) -> None:
        if value is None:
            self._delete(obj)
            return
        items = [_raw_object(v) for v in value]
        if not items and self.spec.omitempty:
            self._delete(obj)
        else:
            self._store(obj, items)

    def ensure(self, obj: View) -> list[dict[str, Any]]:
        current = self.read(obj)
        if current is None:
            current = []
            self._store(obj, current)
        return current


class Obj(Field[_V]):
    """A non-pointer struct: reads an empty detached view when absent (attached on first write)."""

    __slots__ = ("cls",)
    kind = "object"

    def __init__(self, json_name: str, cls: type[_V], **kwargs: Any) -> None:
        super().__init__(json_name, ref=cls, **kwargs)
        self.cls = cls

    def read(self, obj: View) -> _V:
        value = obj._raw.get(self.key)
        if value is None:
            return self.cls._missing(obj, self.key)
        if not isinstance(value, dict):
            raise FieldTypeError(self._path(obj), "object", value)
        return self.cls._attached(value, obj, self.key)

    def __set__(self, obj: View, value: _V | Mapping[str, Any] | None) -> None:
        if value is None:
            self._delete(obj)
        else:
            self._store(obj, _raw_object(value))

    def ensure(self, obj: View) -> _V:
        view = self.read(obj)
        view._materialize()
        return view


class OptObj(Field[_V | None]):
    """A pointer struct (``*RayClusterSpec``): reads ``None`` when absent."""

    __slots__ = ("cls",)
    kind = "object"
    pointer = True

    def __init__(self, json_name: str, cls: type[_V], **kwargs: Any) -> None:
        super().__init__(json_name, ref=cls, **kwargs)
        self.cls = cls

    def read(self, obj: View) -> _V | None:
        value = obj._raw.get(self.key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise FieldTypeError(self._path(obj), "object", value)
        return self.cls._attached(value, obj, self.key)

    def __set__(self, obj: View, value: _V | Mapping[str, Any] | None) -> None:
        if value is None:
            self._delete(obj)
        else:
            self._store(obj, _raw_object(value))

    def ensure(self, obj: View) -> _V:
        value = self.read(obj)
        if value is None:
            raw: dict[str, Any] = {}
            self._store(obj, raw)
            return self.cls._attached(raw, obj, self.key)
        return value


class ObjList(Field[ViewList[_V]]):
    """A ``[]T`` of structs: a :class:`ViewList` (empty and detached when absent)."""

    __slots__ = ("cls",)
    kind = "object_list"

    def __init__(self, json_name: str, cls: type[_V], **kwargs: Any) -> None:
        super().__init__(json_name, ref=cls, **kwargs)
        self.cls = cls

    def read(self, obj: View) -> ViewList[_V]:
        value = obj._raw.get(self.key)
        if value is None:
            return ViewList(self.cls, [], obj, self.key, detached=True)
        if not isinstance(value, list):
            raise FieldTypeError(self._path(obj), "array", value)
        return ViewList(self.cls, value, obj, self.key)

    def __set__(self, obj: View, value: Iterable[_V | Mapping[str, Any]] | None) -> None:
        if value is None:
            self._delete(obj)
            return
        items = value.raw if isinstance(value, ViewList) else [_raw_object(v) for v in value]
        if not items and self.spec.omitempty:
            self._delete(obj)
        else:
            self._store(obj, items)

    def ensure(self, obj: View) -> ViewList[_V]:
        view = self.read(obj)
        view._materialize()
        return view


class ObjMap(Field[ViewMap[_V]]):
    """A ``map[string]T`` of structs: a :class:`ViewMap` (empty and detached when absent)."""

    __slots__ = ("cls",)
    kind = "object_map"

    def __init__(self, json_name: str, cls: type[_V], **kwargs: Any) -> None:
        super().__init__(json_name, ref=cls, **kwargs)
        self.cls = cls

    def read(self, obj: View) -> ViewMap[_V]:
        value = obj._raw.get(self.key)
        if value is None:
            return ViewMap(self.cls, {}, obj, self.key, detached=True)
        if not isinstance(value, dict):
            raise FieldTypeError(self._path(obj), "object", value)
        return ViewMap(self.cls, value, obj, self.key)

    def __set__(self, obj: View, value: Mapping[str, _V | Mapping[str, Any]] | None) -> None:
        if value is None:
            self._delete(obj)
            return
        items = value.raw if isinstance(value, ViewMap) else {k: _raw_object(v) for k, v in value.items()}
        if not items and self.spec.omitempty:
            self._delete(obj)
        else:
            self._store(obj, items)

    def ensure(self, obj: View) -> ViewMap[_V]:
        view = self.read(obj)
        view._materialize()
        return view


# ---- Go encoding ------------------------------------------------------------------------------------

_ZERO: dict[str, Any] = {"string": "", "int32": 0, "int64": 0, "float": 0, "bool": False}
_CONTAINERS = ("string_map", "time_map", "string_list", "embedded_list", "object_list", "object_map")


def go_marshal(cls: type[View], raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """``raw`` as upstream's operator would write it: decoded into the Go struct ``cls`` and encoded
    again with ``encoding/json``.

    An ``omitempty`` zero scalar (``""``, ``0``, ``false``), an empty map or list and a nil pointer are
    left out; a non-pointer struct is always written (``rayJobInfo: {}``: ``omitempty`` never omits a
    struct), and so is a non-pointer ``resource.Quantity`` (``"0"`` when unset). Keys the struct does not
    declare are dropped, as decoding drops them. Views over Kubernetes types (``__k8s_ref__``) are
    partial declarations: their values are kept as they are."""
    src = raw or {}
    out: dict[str, Any] = {}
    for f in cls.__fields__:
        name = f.json_name
        value = src.get(name)
        ref = f.ref
        if f.kind == "object":
            if value is None and f.pointer:
                continue
            if ref is None or ref.__k8s_ref__ is not None:
                if value is not None:
                    out[name] = value
                continue
            out[name] = go_marshal(ref, value if isinstance(value, Mapping) else None)
        elif f.kind == "quantity":
            out[name] = "0" if value is None else value
        elif f.kind in _CONTAINERS:
            if value is None or (f.omitempty and not value):
                continue
            if f.kind == "object_list" and ref is not None and ref.__k8s_ref__ is None:
                value = [go_marshal(ref, v) for v in value]
            elif f.kind == "object_map" and ref is not None and ref.__k8s_ref__ is None:
                value = {k: go_marshal(ref, v) for k, v in value.items()}
            out[name] = value
        elif f.pointer or f.kind in ("time", "embedded"):
            if value is not None:
                out[name] = value
        else:
            zero = _ZERO.get(f.kind)
            if value is None or value == zero:
                if not f.omitempty:
                    out[name] = zero
                continue
            out[name] = value
    return out
