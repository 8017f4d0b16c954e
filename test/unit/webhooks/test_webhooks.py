"""The ray.io/v1 validating webhooks as the API server sees them: the AdmissionReview answers and the
texts upstream's webhooks (controller-runtime, apimachinery's field errors) give for the same input."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from internal.webhook import FieldError, JSONValue, review
from pkg.webhooks.v1 import WEBHOOKS, render_webhook_configuration

HOOKS = {h.kind: h for h in WEBHOOKS}


def _review(kind: str, obj: dict[str, Any] | None, operation: str = "CREATE") -> dict[str, Any]:
    req: dict[str, Any] = {"uid": "u-1", "operation": operation, "name": (obj or {}).get("metadata", {}).get("name")}
    if obj is not None:
        req["object"] = obj
    body = orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
    answer = review(HOOKS[kind], body)
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    resp: dict[str, Any] = answer["response"]
    return resp


def _obj(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "ray.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def _group(name: str) -> dict[str, Any]:
    return {
        "groupName": name,
        "replicas": 1,
        "minReplicas": 0,
        "maxReplicas": 2,
        "rayStartParams": {},
        "template": {"spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.52.0"}]}},
    }


def test_a_valid_object_is_allowed_with_code_200() -> None:
    for kind in HOOKS:
        assert _review(kind, _obj(kind, "fine")) == {"uid": "u-1", "allowed": True, "status": {"code": 200}}


@pytest.mark.parametrize(
    ("kind", "limit", "prefix"),
    [
        ("RayCluster", 53, ""),
        ("RayJob", 47, "The RayJob metadata is invalid: "),
        ("RayService", 47, "The RayService metadata is invalid: "),
    ],
)
def test_a_too_long_name_is_a_422_invalid_on_metadata_name(kind: str, limit: int, prefix: str) -> None:
    name = "a" * (limit + 1)
    resp = _review(kind, _obj(kind, name))
    detail = f"{prefix}{kind} name should be no more than {limit} characters"
    assert resp["uid"] == "u-1" and resp["allowed"] is False
    assert resp["status"] == {
        "status": "Failure",
        "message": f'{kind}.ray.io "{name}" is invalid: metadata.name: Invalid value: "{name}": {detail}',
        "reason": "Invalid",
        "details": {
            "name": name,
            "group": "ray.io",
            "kind": kind,
            "causes": [
                {
                    "reason": "FieldValueInvalid",
                    "message": f'Invalid value: "{name}": {detail}',
                    "field": "metadata.name",
                }
            ],
        },
        "code": 422,
    }
    assert len(name) - 1 == limit and _review(kind, _obj(kind, name[:-1]))["allowed"] is True


def test_a_name_that_is_no_dns_1035_label_is_refused_with_the_kubernetes_messages() -> None:
    resp = _review("RayService", _obj("RayService", "1svc"))
    assert resp["status"]["message"] == (
        'RayService.ray.io "1svc" is invalid: metadata.name: Invalid value: "1svc": The RayService metadata is '
        "invalid: RayService name should be a valid DNS1035 label: [a DNS-1035 label must consist of lower case "
        "alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric "
        "character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')]"
    )


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("0", "annotation ray.io/initializing-timeout must be a positive duration, got: 0"),
        ("-5", "annotation ray.io/initializing-timeout must be a positive integer (seconds), got: -5"),
        (
            "soon",
            "annotation ray.io/initializing-timeout has invalid format: soon. Expected Go duration format "
            "(e.g., '5m', '1h') or positive integer seconds",
        ),
    ],
)
def test_a_bad_initializing_timeout_annotation_is_refused_on_update_too(value: str, detail: str) -> None:
    svc = _obj("RayService", "svc")
    svc["metadata"]["annotations"] = {"ray.io/initializing-timeout": value}
    resp = _review("RayService", svc, operation="UPDATE")
    assert resp["allowed"] is False
    want = f"The RayService metadata is invalid: RayService annotations is invalid: {detail}"
    assert resp["status"]["details"]["causes"][0]["message"] == f'Invalid value: "svc": {want}'


def test_a_repeated_worker_group_is_reported_at_its_later_index_with_the_group_as_go_json() -> None:
    rc = _obj("RayCluster", "rc", workerGroupSpecs=[_group("a"), _group("b"), _group("a"), _group("b")])
    resp = _review("RayCluster", rc)
    group_json = (
        '{"groupName":"a","replicas":1,"minReplicas":0,"maxReplicas":2,"rayStartParams":{},'
        '"template":{"metadata":{},"spec":{"containers":[{"name":"ray-worker","image":"rayproject/ray:2.52.0",'
        '"resources":{}}]}},"scaleStrategy":{}}'
    )
    assert resp["status"]["message"] == (
        f'RayCluster.ray.io "rc" is invalid: spec.workerGroupSpecs[2]: Invalid value: {group_json}: '
        "worker group names must be unique"
    )
    json.loads(group_json)  # the value is JSON, as apimachinery renders a struct


def test_two_errors_are_aggregated_in_brackets() -> None:
    name = "r" * 54
    rc = _obj("RayCluster", name, workerGroupSpecs=[_group("a"), _group("a")])
    msg = _review("RayCluster", rc)["status"]["message"]
    assert msg.startswith(f'RayCluster.ray.io "{name}" is invalid: [metadata.name: Invalid value: "{name}": ')
    assert ", spec.workerGroupSpecs[1]: Invalid value: {" in msg and msg.endswith("must be unique]")
    assert len(_review("RayCluster", rc)["status"]["details"]["causes"]) == 2


def test_delete_is_allowed_and_a_broken_review_is_a_400() -> None:
    assert _review("RayJob", None, operation="DELETE")["allowed"] is True
    answer = review(HOOKS["RayJob"], b"{not json")
    assert answer["response"]["allowed"] is False and answer["response"]["status"]["code"] == 400
    answer = review(HOOKS["RayJob"], b'{"request": {}}')
    assert answer["response"]["status"]["code"] == 400


def test_field_error_values_render_as_apimachinery_does() -> None:
    assert str(FieldError("a.b", 3, "x")) == "a.b: Invalid value: 3: x"
    assert str(FieldError("a.b", True, "x")) == "a.b: Invalid value: true: x"
    assert str(FieldError("a.b", "v", "x")) == 'a.b: Invalid value: "v": x'
    assert str(FieldError("a", JSONValue('{"k":1}'), "")) == 'a: Invalid value: {"k":1}'


def test_the_generated_configuration_names_upstreams_paths_and_webhooks() -> None:
    (config,) = render_webhook_configuration()["manifests.yaml"]
    hooks = {h["name"]: h for h in config["webhooks"]}
    assert set(hooks) == {"vraycluster.kb.io", "vrayjob.kb.io", "vrayservice.kb.io"}
    svc = hooks["vrayservice.kb.io"]
    assert svc["clientConfig"]["service"]["path"] == "/validate-ray-io-v1-rayservice"
    rule = {"apiGroups": ["ray.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"]}
    assert svc["rules"] == [{**rule, "resources": ["rayservices"]}]
    assert svc["failurePolicy"] == "Fail" and svc["sideEffects"] == "None" and svc["admissionReviewVersions"] == ["v1"]
