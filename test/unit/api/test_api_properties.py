"""Property tests: lossless round trips of arbitrary valid-shaped objects (with unknown fields), and
validators/defaulting that raise nothing but ValidationError on arbitrary JSON-like input.

The strategies are derived from the field metadata (``View.__fields__``), so they follow the types."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.v1 import (
    DeletionPolicyType,
    FieldSpec,
    JobDeploymentStatus,
    JobSubmissionMode,
    RayCluster,
    RayJob,
    RayService,
    ValidationError,
    View,
    ViewList,
    ViewMap,
    apply_crd_defaults,
    validate_ray_cluster,
    validate_ray_cluster_spec,
    validate_ray_job,
    validate_ray_job_spec,
    validate_ray_service,
)
from api.v1.fields import check_types

INT64 = (-(2**63), 2**63 - 1)
ALL_GATES = {
    "RayClusterNetworkPolicy": True,
    "RayClusterMTLS": True,
    "RayClusterHistoryServer": True,
    "GCSFaultToleranceEmbeddedStorage": True,
}
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

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


def _scalar(spec: FieldSpec) -> st.SearchStrategy[Any]:
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
            value = _scalar(spec)
        if malformed:
            value = st.one_of(value, value, value, arbitrary_json)
        optional[spec.json_name] = value
    strategy = st.fixed_dictionaries({}, optional=optional).flatmap(
        lambda d: st.dictionaries(unknown_key, arbitrary_json, max_size=2).map(lambda extra: {**d, **extra})
    )
    _CACHE[key] = strategy
    return strategy


def read_all(view: View) -> None:
    for name in type(view).__descriptors__:
        value = getattr(view, name)
        if isinstance(value, View):
            read_all(value)
        elif isinstance(value, ViewList):
            for item in value:
                read_all(item)
        elif isinstance(value, ViewMap):
            for item in value.values():
                read_all(item)


KINDS: list[type[View]] = [RayJob, RayCluster, RayService]


@SETTINGS
@given(st.sampled_from(KINDS).flatmap(lambda cls: st.tuples(st.just(cls), shaped(cls, malformed=False))))
def test_valid_shaped_objects_round_trip_losslessly(case: tuple[type[View], dict[str, Any]]) -> None:
    cls, raw = case
    body = orjson.dumps(raw)
    view = cls.from_json(body)
    check_types(view)  # every declared field has the right type
    read_all(view)  # reading never writes
    assert view.to_json() == body
    assert view.copy().to_json() == body
    defaulted = apply_crd_defaults(view)
    assert view.to_json() == body  # defaulting is pure
    assert apply_crd_defaults(defaulted) is defaulted  # and idempotent


@SETTINGS
@given(shaped(RayJob, malformed=False))
def test_validation_of_valid_shaped_jobs_only_raises_validation_error(raw: dict[str, Any]) -> None:
    before = orjson.dumps(raw)
    job = apply_crd_defaults(RayJob(raw))
    for gates in (None, {"RayJobDeletionPolicy": False, "GCSFaultToleranceEmbeddedStorage": True}):
        for validate in (validate_ray_job, validate_ray_job_spec):
            try:
                validate(job, gates)
            except ValidationError:
                pass
    cluster_spec = job.spec.ray_cluster_spec
    if cluster_spec is not None:
        try:
            validate_ray_cluster_spec(cluster_spec, job.metadata.annotations, ALL_GATES)
        except ValidationError:
            pass
    assert orjson.dumps(raw) == before  # validation never mutates


@SETTINGS
@given(st.sampled_from(KINDS).flatmap(lambda cls: st.tuples(st.just(cls), shaped(cls, malformed=True))))
def test_validators_only_raise_validation_error_on_malformed_objects(case: tuple[type[View], dict[str, Any]]) -> None:
    cls, raw = case
    before = orjson.dumps(raw)
    validator = {RayJob: validate_ray_job, RayCluster: validate_ray_cluster, RayService: validate_ray_service}[cls]
    for gates in (None, {"RayJobDeletionPolicy": False, "RayClusterNetworkPolicy": True, "RayClusterMTLS": True}):
        try:
            validator(raw, gates)
        except ValidationError:
            pass
        try:
            validator(apply_crd_defaults(cls.wrap(raw)), gates)
        except ValidationError:
            pass
    assert orjson.dumps(raw) == before


@SETTINGS
@given(arbitrary_json)
def test_validators_only_raise_validation_error_on_arbitrary_json(value: Any) -> None:
    for validator in (validate_ray_job, validate_ray_cluster, validate_ray_service):
        try:
            validator(value)
        except ValidationError:
            pass
    for cls in KINDS:
        try:
            cls.wrap(value)
        except ValidationError:
            continue
        snapshot = copy.deepcopy(value)
        apply_crd_defaults(cls.wrap(value))
        assert value == snapshot


@SETTINGS
@given(st.data())
def test_scalar_setters_round_trip(data: st.DataObject) -> None:
    job = RayJob({"spec": {"x-unknown": [1, {"a": None}]}})
    spec = job.spec
    for name, descriptor in type(spec).__descriptors__.items():
        field = descriptor.spec
        if field.ref is not None or field.kind in ("embedded", "embedded_list", "time_map"):
            continue
        value = data.draw(_scalar(field))
        setattr(spec, name, value)
        got = getattr(spec, name)
        if field.kind == "float":
            assert got == float(value) or (value == 0 and got == 0.0)
        elif not field.pointer and not value and field.omitempty:
            assert field.json_name not in spec.raw  # omitempty zero value removed
        else:
            assert got == value
        setattr(spec, name, None)
        assert field.json_name not in spec.raw
    assert spec.raw["x-unknown"] == [1, {"a": None}]  # unknown fields survive writes


# ---- mutation fuzzing from valid objects -----------------------------------------------------------
#
# Randomly generated objects rarely get past the first rules. Starting from valid objects and changing a
# few fields at random depths reaches every rule, with well-typed values and, sometimes, junk.


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


def _mutate(data: st.DataObject, cls: type[View], raw: dict[str, Any], junk: bool) -> None:
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
            _mutate(data, ref, child, junk)
            return
        if spec.kind == "object_list":
            items = raw.get(key)
            if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
                items = raw[key] = [{}]
            _mutate(data, ref, data.draw(st.sampled_from(items)), junk)
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
        raw[key] = data.draw(_scalar(spec))


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(st.data())
def test_mutated_valid_objects_only_raise_validation_error(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(KINDS))
    raw = copy.deepcopy(BASES[cls])
    junk = data.draw(st.booleans())
    for _ in range(data.draw(st.integers(1, 4))):
        _mutate(data, cls, raw, junk)
    before = orjson.dumps(raw)
    validator = {RayJob: validate_ray_job, RayCluster: validate_ray_cluster, RayService: validate_ray_service}[cls]
    gates = data.draw(
        st.sampled_from([None, ALL_GATES, {"RayJobDeletionPolicy": False, "RayServiceIncrementalUpgrade": False}])
    )
    try:
        validator(apply_crd_defaults(cls(raw)), gates)
    except ValidationError:
        pass
    assert orjson.dumps(raw) == before
    assert cls.from_json(before).to_json() == before
