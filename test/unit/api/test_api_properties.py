"""Property tests: lossless round trips of arbitrary valid-shaped objects (with unknown fields), and
validators/defaulting that raise nothing but ValidationError on arbitrary JSON-like input.

The strategies are derived from the field metadata (``View.__fields__``), so they follow the types."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.spec_strategies import BASES, arbitrary_json, mutate, scalar, shaped

from api.v1 import (
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
        value = data.draw(scalar(field))
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
        mutate(data, cls, raw, junk)
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
