"""Hypothesis strategies for Ray custom resources, derived from the API types' field metadata
(``View.__fields__``): objects shaped as the types declare (values of the declared kind, realistic
values for some names), optionally malformed (any JSON where a field's value goes), plus unknown
fields. Used by the property tests of api/v1 and the fuzz of the operator through kube-apiserver."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from api.v1 import (
    DeletionPolicyType,
    FieldSpec,
    JobDeploymentStatus,
    JobSubmissionMode,
    RayCluster,
    RayJob,
    RayService,
    View,
)

INT64 = (-(2**63), 2**63 - 1)

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(*INT64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
arbitrary_json = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
unknown_key = st.text(min_size=1, max_size=6).map(lambda k: "x-" + k)

_NAMES = st.sampled_from(["", "a", "ray-head", "workers", "RAY_REDIS_ADDRESS", "RAY_enable_autoscaler_v2", "token"])
_TIMES = st.sampled_from(["2024-01-01T00:00:00Z", "2025-06-30T12:34:56Z"])
_QUANTITIES = st.one_of(st.sampled_from(["1", "500m", "2Gi", "0"]), st.integers(0, 64))


def _int_strategy(bits: int) -> st.SearchStrategy[int]:
    hi = 2 ** (bits - 1) - 1
    return st.one_of(st.integers(-2, 6), st.integers(-hi - 1, hi))


#: Realistic values for some field names, so that generated objects get past the first rules and
#: exercise the deeper ones.
_HINTS: dict[str, st.SearchStrategy[Any]] = {
    "name": st.sampled_from(["rayjob-sample", "raycluster", "workers", "ray-head", "ray-history-collector", "Bad"]),
    "groupName": st.sampled_from(["workers", "small-group", "Workers", "a.b"]),
    "rayVersion": st.sampled_from(["2.52.0", "2.56.0", "2.9.0", "", "latest", "v2.55.1"]),
    "runtimeEnvYAML": st.sampled_from(["", "pip: [requests]", "plain", "a: [", "- 1", "a: 1\na: 2"]),
    "submissionMode": st.sampled_from([m.value for m in JobSubmissionMode] + [""]),
    "restartPolicy": st.sampled_from(["", "Never", "Always", "OnFailure"]),
    "jobDeploymentStatus": st.sampled_from([s.value for s in JobDeploymentStatus]),
    "value": st.sampled_from(["1", "true", "x", ""]),
    "type": st.sampled_from(["Recreate", "None", "NewCluster", "NewClusterWithIncrementalUpgrade", "Other"]),
    "policy": st.sampled_from([p.value for p in DeletionPolicyType]),
}


def scalar(spec: FieldSpec) -> st.SearchStrategy[Any]:
    hint = _HINTS.get(spec.json_name)
    if hint is not None and spec.kind == "string":
        return st.one_of(hint, st.text(max_size=6)) if spec.enum is None else hint
    if spec.enum:
        values: st.SearchStrategy[Any] = st.sampled_from(spec.enum)
        return st.one_of(values, _NAMES) if spec.kind == "string" else values
    kind = spec.kind
    if kind == "string":
        return st.one_of(_NAMES, st.text(max_size=10))
    if kind == "int32":
        return _int_strategy(32)
    if kind == "int64":
        return _int_strategy(64)
    if kind == "float":
        return st.one_of(st.integers(0, 8), st.floats(-1e6, 1e6, allow_nan=False))
    if kind == "bool":
        return st.booleans()
    if kind == "quantity":
        return _QUANTITIES
    if kind == "time":
        return _TIMES
    if kind == "string_map":
        return st.dictionaries(
            st.one_of(_NAMES, st.text(max_size=5)), st.one_of(_NAMES, st.text(max_size=5)), max_size=3
        )
    if kind == "string_list":
        return st.lists(st.one_of(_NAMES, st.text(max_size=5)), max_size=3)
    if kind == "time_map":
        return st.dictionaries(st.text(max_size=5), st.one_of(st.none(), _TIMES), max_size=2)
    if kind == "embedded":
        return st.dictionaries(st.text(max_size=6), arbitrary_json, max_size=3)
    if kind == "embedded_list":
        return st.lists(st.dictionaries(st.text(max_size=6), arbitrary_json, max_size=2), max_size=2)
    raise AssertionError(kind)


_CACHE: dict[tuple[type[View], bool, int], st.SearchStrategy[dict[str, Any]]] = {}


def shaped(cls: type[View], *, malformed: bool, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Objects of ``cls``: declared fields with values of their type (when ``malformed``, sometimes any
    JSON instead), plus unknown fields."""
    key = (cls, malformed, depth)
    if key in _CACHE:
        return _CACHE[key]
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for spec in cls.__fields__:
        value: st.SearchStrategy[Any]
        if spec.ref is not None and depth < 8:
            child = shaped(spec.ref, malformed=malformed, depth=depth + 1)
            if spec.kind == "object":
                value = child
            elif spec.kind == "object_list":
                value = st.lists(child, max_size=2)
            else:
                value = st.dictionaries(st.text(max_size=5), child, max_size=2)
        elif spec.ref is not None:
            value = st.just([]) if spec.kind == "object_list" else st.just({})
        else:
            value = scalar(spec)
        if malformed:
            value = st.one_of(value, value, value, arbitrary_json)
        optional[spec.json_name] = value
    strategy = st.fixed_dictionaries({}, optional=optional).flatmap(
        lambda d: st.dictionaries(unknown_key, arbitrary_json, max_size=2).map(lambda extra: {**d, **extra})
    )
    _CACHE[key] = strategy
    return strategy


def _container(name: str) -> dict[str, Any]:
    return {"name": name, "image": "rayproject/ray:2.56.0"}


def _cluster_spec() -> dict[str, Any]:
    return {
        "rayVersion": "2.56.0",
        "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [_container("ray-head")]}}},
        "workerGroupSpecs": [
            {
                "groupName": "workers",
                "replicas": 1,
                "minReplicas": 0,
                "maxReplicas": 4,
                "rayStartParams": {},
                "template": {"spec": {"containers": [_container("ray-worker")]}},
            }
        ],
    }


BASES: dict[type[View], dict[str, Any]] = {
    RayJob: {"metadata": {"name": "rayjob"}, "spec": {"entrypoint": "python x.py", "rayClusterSpec": _cluster_spec()}},
    RayCluster: {"metadata": {"name": "raycluster"}, "spec": _cluster_spec()},
    RayService: {"metadata": {"name": "rayservice"}, "spec": {"rayClusterConfig": _cluster_spec()}},
}


def mutate(data: st.DataObject, cls: type[View], raw: dict[str, Any], junk: bool) -> None:
    """Change one field somewhere in ``raw`` (an object of ``cls``) to a value of its type, drop it, or,
    when ``junk``, sometimes put any JSON there."""
    fields = cls.__fields__
    if cls in BASES and data.draw(st.integers(0, 4)) > 0:
        fields = tuple(f for f in fields if f.json_name == "spec")  # mostly mutate the spec
    spec = data.draw(st.sampled_from(fields))
    key = spec.json_name
    ref = spec.ref
    if ref is not None and ref.__fields__ and data.draw(st.integers(0, 3)) > 0:
        if spec.kind == "object":
            child = raw.get(key)
            if not isinstance(child, dict):
                child = raw[key] = {}
            mutate(data, ref, child, junk)
            return
        if spec.kind == "object_list":
            items = raw.get(key)
            if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
                items = raw[key] = [{}]
            mutate(data, ref, data.draw(st.sampled_from(items)), junk)
            return
    if junk and data.draw(st.integers(0, 9)) == 0:
        raw[key] = data.draw(arbitrary_json)
    elif ref is not None:
        child_strategy = shaped(ref, malformed=False, depth=6)
        if spec.kind == "object":
            raw[key] = data.draw(child_strategy)
        elif spec.kind == "object_list":
            raw[key] = data.draw(st.lists(child_strategy, max_size=2))
        else:
            raw[key] = data.draw(st.dictionaries(st.text(max_size=4), child_strategy, max_size=2))
    elif data.draw(st.integers(0, 7)) == 0:
        raw.pop(key, None)
    else:
        raw[key] = data.draw(scalar(spec))
