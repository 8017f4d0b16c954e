"""What Go's ``encoding/json`` makes of a decoded object: ``json.Unmarshal`` into the typed struct, then
``json.Marshal`` of it.

Upstream hashes and writes typed Go structs, so what it produces depends on the struct, not on the JSON
it read: fields come out in declaration order, unknown fields are dropped, a non-``omitempty`` field is
written with its zero value (``""``, ``0``, ``null`` for a nil slice/map/pointer), structs are never
omitted, map keys are sorted, quantities are canonical (``1000m`` → ``1``), ``metav1.Time`` has second
precision, and strings escape ``<``, ``>``, ``&``, U+2028 and U+2029.

The ray.io types are described by their views in ``api/v1`` (field order, ``omitempty``, pointer-ness);
the Kubernetes types they embed by :data:`controllers.ray.utils.k8s_structs.STRUCTS`.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import hashlib
from collections.abc import Mapping
from typing import Any, Final

import orjson

from api.v1.fields import FieldSpec, View, parse_time
from controllers.ray.utils.k8s_structs import STRUCTS
from controllers.ray.utils.quantity import QuantityError, QuantityFormat, _interpret, _split, parse_quantity

__all__ = ["json_hash", "marshal", "normalise"]

# A type: a scalar name ("string", "bool", "int32", "int64", "float", "quantity", "intorstr", "time",
# "raw"), a Kubernetes struct name (a key of STRUCTS), a ray.io View class, or ("*" | "[]" | "map", T).
GoType = Any
_OMITEMPTY: Final = 1
_OMITZERO: Final = 2
_SCALARS: Final = frozenset({"string", "bool", "int32", "int64", "float", "quantity", "intorstr", "time", "raw"})


@functools.cache
def _parse_type(spec: str) -> GoType:
    if spec.startswith("*"):
        return ("*", _parse_type(spec[1:]))
    if spec.startswith("[]"):
        return ("[]", _parse_type(spec[2:]))
    if spec.startswith("map:"):
        return ("map", _parse_type(spec[4:]))
    if spec not in _SCALARS and spec not in STRUCTS:
        raise KeyError(f"unknown Go type {spec}")
    return spec


def _field_type(f: FieldSpec) -> GoType:
    """The Go type of a ray.io view field."""
    kind = f.kind
    if kind in ("embedded", "embedded_list", "object", "object_list", "object_map"):
        base: GoType
        if f.k8s_ref and f.k8s_ref in STRUCTS:
            base = f.k8s_ref
        else:
            assert f.ref is not None, f.json_name
            base = f.ref
        if kind.endswith("_list"):
            return ("[]", base)
        if kind == "object_map":
            return ("map", base)
        return ("*", base) if f.pointer else base
    leaf: GoType = {
        "string_map": ("map", "string"),
        "string_list": ("[]", "string"),
        "time_map": ("map", ("*", "time")),
    }.get(kind, kind)
    return ("*", leaf) if f.pointer else leaf


@functools.cache
def _fields(t: GoType) -> tuple[tuple[str, GoType, int], ...]:
    if isinstance(t, str):
        return tuple((name, _parse_type(spec), flags) for name, spec, flags in STRUCTS[t])
    ref = getattr(t, "__k8s_ref__", None)
    if ref in STRUCTS:
        return _fields(ref)
    return tuple((f.json_name, _field_type(f), _OMITEMPTY if f.omitempty else 0) for f in t.__fields__)


def _is_struct(t: GoType) -> bool:
    return (isinstance(t, str) and t in STRUCTS) or (isinstance(t, type) and issubclass(t, View))


def normalise(value: Any, t: GoType) -> Any:
    """``value`` (decoded JSON, ``None`` for absent) as Go would marshal it after unmarshalling it into
    type ``t``: plain dicts/lists/scalars in Go's output order."""
    if isinstance(t, tuple):
        op, inner = t
        if value is None:
            return None
        if op == "*":
            return normalise(value, inner)
        if op == "[]":
            return [normalise(v, inner) for v in value] if isinstance(value, list) else None
        if not isinstance(value, Mapping):
            return None
        return {k: normalise(value[k], inner) for k in sorted(value)}
    if _is_struct(t):
        src = value if isinstance(value, Mapping) else {}
        out: dict[str, Any] = {}
        for name, ft, flags in _fields(t):
            raw = src.get(name)
            if raw is None:  # most fields are absent: their (cached) zero value
                omitted, zero = _zero_field(ft, flags)
                if not omitted:
                    out[name] = copy.deepcopy(zero) if isinstance(zero, dict) else zero
                continue
            v = normalise(raw, ft)
            if not _omitted(v, ft, flags):
                out[name] = v
        return out
    return _scalar(value, t)


def _omitted(v: Any, t: GoType, flags: int) -> bool:
    return bool((flags & _OMITEMPTY and _empty(v, t)) or (flags & _OMITZERO and t == "time" and v is None))


@functools.cache
def _zero_field(t: GoType, flags: int) -> tuple[bool, Any]:
    """Whether an absent field of type ``t`` is left out, and what is written otherwise."""
    zero = normalise(None, t)
    return _omitted(zero, t, flags), zero


def _empty(v: Any, t: GoType) -> bool:
    """encoding/json's ``isEmptyValue``; structs (quantity, intorstr, time included) are never empty."""
    if isinstance(t, tuple):
        return v is None or (t[0] != "*" and len(v) == 0)
    if t in ("string", "bool", "int32", "int64", "float"):
        return not v
    return False


def _scalar(value: Any, t: str) -> Any:
    if t == "string":
        return value if isinstance(value, str) else ""
    if t == "bool":
        return value is True
    if t in ("int32", "int64"):
        return value if isinstance(value, int) and not isinstance(value, bool) else 0
    if t == "float":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0
    if t == "quantity":
        if value is None or isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return "0"
        try:
            return _quantity_string(value if isinstance(value, str) else repr(value))
        except QuantityError:
            return str(value)
    if t == "intorstr":
        return value if isinstance(value, (int, str)) and not isinstance(value, bool) else 0
    if t == "time":
        if not isinstance(value, str) or not value:
            return None
        try:
            return parse_time(value).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return value
    return value  # raw JSON (FieldsV1)


_MAX_INT64: Final = (1 << 63) - 1


def _quantity_string(raw: str) -> str:
    """``Quantity.MarshalJSON`` of ``ParseQuantity(raw)``: ``ParseQuantity`` keeps the input string
    (and marshals it verbatim) when its fast path finds the number "in canonical form", a looser test
    than ``String()``'s (``1.G`` and ``+1`` are kept); otherwise the canonical form is written."""
    s = raw.strip()
    q = parse_quantity(s)
    if s == "0":
        return s
    _positive, _value, num, denom, suffix = _split(s)
    _base, exponent, fmt = _interpret(suffix)
    mantissa, scale, precision = 1, 0, -1
    if fmt in (QuantityFormat.DECIMAL_SI, QuantityFormat.DECIMAL_EXPONENT):
        scale = exponent
        precision = 18 - (len(num) + len(denom))
    elif exponent >= 0 and not denom:
        mantissa = 1 << exponent
        precision = 15 - len(num) - int(exponent * 3 / 10) - 1
    if precision >= 0:
        scale -= len(denom)
        shifted = num + denom
        if scale >= -9 and int(shifted) * mantissa <= _MAX_INT64:
            if fmt == QuantityFormat.BINARY_SI:
                if exponent % 10 == 0 and int(shifted) & 0x07:
                    return s
            elif scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0":
                return s
    return q.canonical()


# orjson escapes what encoding/json escapes (quotes, backslash, control characters as \b \f \n \r \t or
# \u00xx) except Go's HTML-safe set. Those characters only ever occur inside strings of the output,
# so replacing them in the whole text is exact.
_HTML_ESCAPES: Final = tuple((c, f"\\u{ord(c):04x}") for c in "<>&\u2028\u2029")


def marshal(value: Any, t: GoType) -> bytes:
    """The bytes Go's ``json.Marshal`` writes for ``value`` decoded into type ``t``."""
    text = orjson.dumps(normalise(value, t)).decode()
    for char, escaped in _HTML_ESCAPES:
        if char in text:
            text = text.replace(char, escaped)
    return text.encode()


def json_hash(value: Any, t: GoType) -> str:
    """Upstream's ``GenerateJsonHash``: base32hex(sha1(json.Marshal(obj))), padded."""
    digest = hashlib.sha1(marshal(value, t), usedforsecurity=False).digest()
    return base64.b32hexencode(digest).decode()
