"""CRD generation from the Python API types (the job controller-gen does upstream).

Our own fields come from the declarative field specs in ``api/v1`` (``View.__fields__``). Embedded
Kubernetes types (PodTemplateSpec, ResourceRequirements, ServiceSpec, ...) are never hand-written:
their schemas are taken from the Kubernetes OpenAPI v3 documents of the pinned release (the
``api/openapi-spec/v3`` files of the ``k8s.io/kubernetes`` Go module that ``make bins`` downloads) and
turned into structural CRD schemas the way controller-gen does with ``maxDescLen=0`` and
``generateEmbeddedObjectMeta=true``: references inlined, descriptions dropped, int-or-string and
quantities as ``x-kubernetes-int-or-string``, embedded ObjectMeta reduced to its five user fields,
and only scalar defaults kept (list-map keys such as ``protocol: TCP`` need them).
"""

from __future__ import annotations

import enum
import json
import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from api.v1.fields import FieldSpec, KindInfo, View

Schema = dict[str, Any]

REPO = Path(__file__).resolve().parents[1]
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_SPECIAL: dict[str, Schema] = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": QUANTITY_PATTERN,
        "x-kubernetes-int-or-string": True,
    },
    f"{_META}.Time": {"type": "string", "format": "date-time"},
    f"{_META}.MicroTime": {"type": "string", "format": "date-time"},
    f"{_META}.Duration": {"type": "string"},
    # generateEmbeddedObjectMeta: only what a user may set on an embedded template.
    f"{_META}.ObjectMeta": {
        "type": "object",
        "properties": {
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "finalizers": {"type": "array", "items": {"type": "string"}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "name": {"type": "string"},
            "namespace": {"type": "string"},
        },
    },
    "io.k8s.apimachinery.pkg.runtime.RawExtension": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}
# Keys a CRD's JSONSchemaProps accepts; anything else in the Kubernetes OpenAPI is dropped.
_ALLOWED = {
    "type",
    "format",
    "properties",
    "additionalProperties",
    "items",
    "required",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "nullable",
    "anyOf",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-validations",
}


def _k8s_version() -> str:
    env = {}
    for line in (REPO / "hack" / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.strip().split("=", 1)
            env[k] = v
    return env["K8S_VERSION"]


def _gomodcache() -> Path:
    return Path(
        os.environ.get("GOMODCACHE")
        or subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    )


def k8s_api_types_dir() -> Path:
    """The Go sources of ``k8s.io/api`` for the pinned release (its ``+default=`` markers)."""
    version = "0." + _k8s_version().split(".", 1)[1]
    d = _gomodcache() / f"k8s.io/api@v{version}"
    if not d.is_dir():
        subprocess.run(
            ["go", "mod", "download", f"k8s.io/api@v{version}"],
            cwd=REPO / "hack" / "k8s-bins",
            check=True,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
        )
    if not d.is_dir():
        raise FileNotFoundError(f"k8s.io/api sources not found at {d}")
    return d


_STRUCT = re.compile(r"^type (\w+) struct")
_DEFAULT_MARKER = re.compile(r"^// \+default=(.*)$")
_JSON_NAME = re.compile(r'json:"([^,"]*)')
_INLINE = re.compile(r'^(\w+)\s+`json:",inline')


def default_markers(api_dir: Path) -> set[tuple[str, str]]:
    """(OpenAPI type name, property) pairs whose Go field carries a literal ``+default=`` marker,
    including fields of structs embedded inline. controller-gen emits only these defaults: the
    ``default: ""`` the OpenAPI documents put on many other fields is not in upstream's CRDs, and
    ``+default=ref(...)`` markers are not resolved by it either."""
    own: dict[str, set[str]] = {}
    inlined: dict[str, list[str]] = {}
    for f in sorted(api_dir.rglob("types.go")):
        rel = f.relative_to(api_dir).parts[:-1]
        if len(rel) != 2:
            continue
        prefix = f"io.k8s.api.{rel[0]}.{rel[1]}."
        current, marked = "", False
        for line in f.read_text(encoding="utf-8").splitlines():
            text = line.strip()
            m = _STRUCT.match(line)
            if m:
                current, marked = prefix + m.group(1), False
                continue
            m = _DEFAULT_MARKER.match(text)
            if m:
                marked = not m.group(1).startswith("ref(")
                continue
            if text.startswith("//") or not current:
                continue
            inline = _INLINE.match(text)
            if inline:
                inlined.setdefault(current, []).append(prefix + inline.group(1))
            elif marked:
                name = _JSON_NAME.search(text)
                if name:
                    own.setdefault(current, set()).add(name.group(1))
            marked = False

    def fields(t: str, seen: frozenset[str] = frozenset()) -> set[str]:
        out = set(own.get(t, ()))
        for inner in inlined.get(t, ()):
            if inner not in seen:
                out |= fields(inner, seen | {t})
        return out

    return {(t, p) for t in set(own) | set(inlined) for p in fields(t)}


def k8s_openapi_dir() -> Path:
    """The OpenAPI v3 documents of the pinned Kubernetes release, from the Go module cache."""
    version = _k8s_version()
    d = _gomodcache() / f"k8s.io/kubernetes@v{version}" / "api" / "openapi-spec" / "v3"
    if not d.is_dir():
        subprocess.run(
            ["go", "mod", "download", f"k8s.io/kubernetes@v{version}"],
            cwd=REPO / "hack" / "k8s-bins",
            check=True,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
        )
    if not d.is_dir():
        raise FileNotFoundError(f"Kubernetes OpenAPI documents not found at {d}")
    return d


class K8sSchemas:
    """Kubernetes OpenAPI component schemas, converted to structural CRD schemas on demand."""

    def __init__(self, openapi_dir: Path | None = None, markers: set[tuple[str, str]] | None = None) -> None:
        self.defs: dict[str, Schema] = {}
        self.markers = default_markers(k8s_api_types_dir()) if markers is None else markers
        d = openapi_dir or k8s_openapi_dir()
        for f in sorted(d.glob("*.json")):
            comps = json.loads(f.read_text()).get("components", {}).get("schemas", {})
            for name, schema in comps.items():
                self.defs.setdefault(name, schema)

    def schema(self, name: str, stack: tuple[str, ...] = ()) -> Schema:
        if name in _SPECIAL:
            copied: Schema = json.loads(json.dumps(_SPECIAL[name]))
            return copied
        if name in stack:
            # A recursive type (none in what Ray's CRDs embed today): stop with an open object.
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        if name not in self.defs:
            raise KeyError(f"{name} is not in the Kubernetes OpenAPI of the pinned release")
        return self._convert(self.defs[name], (*stack, name))

    def _convert(self, s: Schema, stack: tuple[str, ...], marked: bool = False) -> Schema:
        """``marked``: the schema is a property whose Go field has a ``+default=`` marker; only then
        is its (scalar) default kept."""
        if "$ref" in s:
            return self.schema(s["$ref"].rsplit("/", 1)[-1], stack)
        if "allOf" in s and len(s["allOf"]) == 1:
            # A reference with siblings (description, default): the referenced schema wins.
            inner = self._convert(s["allOf"][0], stack)
            if marked and _is_scalar_default(s.get("default")) and "default" not in inner:
                inner["default"] = s["default"]
            return inner
        out: Schema = {}
        owner = stack[-1] if stack else ""
        for k, v in s.items():
            if k not in _ALLOWED:
                continue
            if k == "properties":
                out[k] = {p: self._convert(ps, stack, (owner, p) in self.markers) for p, ps in sorted(v.items())}
            elif k in ("items", "additionalProperties") and isinstance(v, dict):
                out[k] = self._convert(v, stack)
            elif k == "default":
                if marked and _is_scalar_default(v):
                    out[k] = v
            else:
                out[k] = v
        if "properties" in out and "type" not in out:
            out["type"] = "object"
        if out.get("required"):
            out["required"] = sorted(out["required"])
        return out


def _plain(v: Any) -> Any:
    """Enum members (our enums are str/int Enums) as their JSON values."""
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _is_scalar_default(v: Any) -> bool:
    # Object and list defaults ({} on every embedded struct) would rewrite users' objects; scalar
    # ones come from +default markers and list-map keys need them (protocol: TCP, name: "").
    return isinstance(v, str | int | float | bool)


def _field_schema(f: FieldSpec, k8s: K8sSchemas) -> Schema:
    s = _kind_schema(f, k8s)
    if f.enum:
        s["enum"] = [_plain(e) for e in f.enum]
    for key, val in (
        ("minimum", f.minimum),
        ("maximum", f.maximum),
        ("minLength", f.min_length),
        ("maxLength", f.max_length),
        ("minItems", f.min_items),
        ("pattern", f.pattern),
    ):
        if val is not None:
            s[key] = val
    if f.format and s.get("type") in ("string", "integer", "number"):
        s["format"] = f.format
    if f.has_default:
        s["default"] = _plain(f.default)
    if f.nullable:
        s["nullable"] = True
    if f.list_type:
        s["x-kubernetes-list-type"] = f.list_type
    if f.list_map_keys:
        s["x-kubernetes-list-map-keys"] = list(f.list_map_keys)
    if f.x_validations:
        s["x-kubernetes-validations"] = [{"message": v.message, "rule": v.rule} for v in f.x_validations]
    return s


def _kind_schema(f: FieldSpec, k8s: K8sSchemas) -> Schema:
    match f.kind:
        case "string":
            return {"type": "string"}
        case "int32":
            return {"type": "integer", "format": "int32"}
        case "int64":
            return {"type": "integer", "format": "int64"}
        case "float":
            return {"type": "number"}
        case "bool":
            return {"type": "boolean"}
        case "quantity":
            return k8s.schema("io.k8s.apimachinery.pkg.api.resource.Quantity")
        case "time":
            return {"type": "string", "format": "date-time"}
        case "string_map":
            return {"type": "object", "additionalProperties": {"type": "string"}}
        case "string_list":
            return {"type": "array", "items": {"type": "string"}}
        case "time_map":
            return {"type": "object", "additionalProperties": {"type": "string", "format": "date-time"}}
        case "object":
            return _ref_schema(f, k8s)
        case "object_list":
            return {"type": "array", "items": _ref_schema(f, k8s)}
        case "object_map":
            return {"type": "object", "additionalProperties": _ref_schema(f, k8s)}
        case "embedded":
            return k8s.schema(_k8s_ref(f))
        case "embedded_list":
            return {"type": "array", "items": k8s.schema(_k8s_ref(f))}
    raise ValueError(f"field {f.json_name}: unknown kind {f.kind}")


def _k8s_ref(f: FieldSpec) -> str:
    if not f.k8s_ref:
        raise ValueError(f"field {f.json_name} embeds a Kubernetes type but names none")
    return f.k8s_ref


def _ref_schema(f: FieldSpec, k8s: K8sSchemas) -> Schema:
    if f.k8s_ref:
        return k8s.schema(f.k8s_ref)
    if f.ref is None:
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return view_schema(f.ref, k8s)


def view_schema(cls: type[View], k8s: K8sSchemas) -> Schema:
    """The structural schema of one of our struct types (or of the Kubernetes type it stands for)."""
    if getattr(cls, "__k8s_ref__", None):
        return k8s.schema(cls.__k8s_ref__)  # type: ignore[arg-type]
    props = {f.json_name: _field_schema(f, k8s) for f in sorted(cls.__fields__, key=lambda f: f.json_name)}
    s: Schema = {"type": "object"}
    if props:
        s["properties"] = props
    required = sorted(f.json_name for f in cls.__fields__ if f.required)
    if required:
        s["required"] = required
    xv = getattr(cls, "__x_validations__", ())
    if xv:
        s["x-kubernetes-validations"] = [{"message": v.message, "rule": v.rule} for v in xv]
    if not props:
        s["x-kubernetes-preserve-unknown-fields"] = True
    return s


def crd(cls: type[View], k8s: K8sSchemas) -> Schema:
    """The CustomResourceDefinition of a top-level kind (a View with ``__kind__``)."""
    info: KindInfo = cls.__kind__  # type: ignore[attr-defined]
    root = view_schema(cls, k8s)
    props = root.setdefault("properties", {})
    props["apiVersion"] = {"type": "string"}
    props["kind"] = {"type": "string"}
    props["metadata"] = {"type": "object"}
    root["properties"] = dict(sorted(props.items()))
    version: Schema = {"name": info.version, "served": info.served, "storage": info.storage}
    if info.printer_columns:
        cols = []
        for c in info.printer_columns:
            col: Schema = {"jsonPath": c.json_path, "name": c.name, "type": c.type}
            if c.format:
                col["format"] = c.format
            if c.priority:
                col["priority"] = c.priority
            cols.append(col)
        version["additionalPrinterColumns"] = cols
    version["schema"] = {"openAPIV3Schema": root}
    if info.status_subresource:
        version["subresources"] = {"status": {}}
    versions = [version]
    alpha = V1ALPHA1.get(info.kind)
    if alpha is not None:
        versions.append(_v1alpha1(version, printer_columns=alpha))
    names: Schema = {"kind": info.kind, "listKind": info.list_kind, "plural": info.plural, "singular": info.singular}
    if info.categories:
        names["categories"] = list(info.categories)
    if info.short_names:
        names["shortNames"] = list(info.short_names)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{info.group}"},
        "spec": {"group": info.group, "names": names, "scope": info.scope, "versions": versions},
    }


#: Kinds upstream still serves as ray.io/v1alpha1 (served, never stored), and whether that version has
#: the v1 printer columns. A cluster that once stored v1alpha1 lists it in the CRD's
#: status.storedVersions, and the API server refuses a CRD without it: replacing upstream's CRDs works
#: only if it is still served.
V1ALPHA1: dict[str, bool] = {"RayCluster": True, "RayJob": False, "RayService": False}


def _v1alpha1(v1: Schema, *, printer_columns: bool) -> Schema:
    """The v1alpha1 version entry. There is no conversion webhook (strategy None, as upstream), so a
    v1alpha1 read is the stored object under another apiVersion: its spec and status are kept as they
    are (``x-kubernetes-preserve-unknown-fields``) rather than pruned by a second copy of the schema,
    which would double the size of CRDs already near etcd's object limit."""
    open_object: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    root: Schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": dict(open_object),
            "status": dict(open_object),
        },
    }
    out: Schema = {"name": "v1alpha1", "served": True, "storage": False}
    if printer_columns and "additionalPrinterColumns" in v1:
        out["additionalPrinterColumns"] = json.loads(json.dumps(v1["additionalPrinterColumns"]))
    out["schema"] = {"openAPIV3Schema": root}
    if "subresources" in v1:
        out["subresources"] = {"status": {}}
    return out


def render_crds(kinds: Iterable[type[View]] | None = None, k8s: K8sSchemas | None = None) -> dict[str, list[Schema]]:
    """{"<group>_<plural>.yaml": [crd]} for each top-level kind (all of ray.io/v1 by default)."""
    if kinds is None:
        from api.v1 import raycluster_types, raycronjob_types, rayjob_types, rayservice_types

        kinds = (
            raycluster_types.RayCluster,
            rayjob_types.RayJob,
            rayservice_types.RayService,
            raycronjob_types.RayCronJob,
        )
    k8s = k8s or K8sSchemas()
    out: dict[str, list[Schema]] = {}
    for cls in kinds:
        info: KindInfo = cls.__kind__  # type: ignore[attr-defined]
        out[f"{info.group}_{info.plural}.yaml"] = [crd(cls, k8s)]
    return out
