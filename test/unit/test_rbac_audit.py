"""The audit reading behind the least-privilege check: what counts as a refusal, and as a used grant."""

from __future__ import annotations

from pathlib import Path

import orjson
from support.rbac_audit import OPERATOR_USER, AuditLog, granted, unused_grants

from controllers.ray.rbac import unused_reasons


def event(verb: str, resource: str, code: int, decision: str = "allow", group: str = "", **ref: str) -> bytes:
    ev = {
        "auditID": f"{verb}-{resource}-{code}-{decision}-{ref}",
        "stage": "ResponseComplete",
        "verb": verb,
        "user": {"username": OPERATOR_USER},
        "objectRef": {"resource": resource, "apiGroup": group, "namespace": "ns", **ref},
        "responseStatus": {"code": code},
        "annotations": {"authorization.k8s.io/decision": decision},
        "requestURI": f"/api/v1/namespaces/ns/{resource}",
    }
    return orjson.dumps(ev) + b"\n"


def test_only_the_authorizers_refusals_count_and_partial_lines_wait(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(
        event("create", "pods", 201)
        + event("create", "pods", 403, "allow")  # admission: the namespace is being deleted
        + event("get", "configmaps", 403, "forbid", name="x-driver-log")
        + orjson.dumps({"user": {"username": "someone-else"}, "verb": "get"})
        + b"\n"
        + b'{"half a li'
    )
    log = AuditLog(path)
    refused = log.take_forbidden()
    assert len(refused) == 1 and "get core/configmaps ns/x-driver-log" in refused[0]
    assert log.uses == {("", "pods", "create"): 2, ("", "configmaps", "get"): 1}
    assert log.take_forbidden() == []  # each refusal is reported once


def test_unused_grants_and_their_declared_reasons(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(event("list", "rayclusters", 200, group="ray.io") + event("watch", "pods", 200))
    log = AuditLog(path)
    log.poll()
    grants = granted()
    unused = unused_grants(log, grants)
    assert ("ray.io", "rayclusters", "list") not in unused and ("", "pods", "watch") not in unused
    assert ("ray.io", "rayclusters", "create") in unused
    reasons = unused_reasons()
    assert "NewClusterWithIncrementalUpgrade" in reasons[("gateway.networking.k8s.io", "httproutes", "delete")]
    assert ("ray.io", "rayservices/status", "update") not in reasons  # the RayService controller writes it
    assert "GCSFaultToleranceEmbeddedStorage" in reasons[("", "persistentvolumeclaims", "create")]
    # What the controllers must exercise has no reason: an unused one fails a whole-suite run.
    assert ("", "pods", "create") not in reasons and ("", "configmaps", "create") not in reasons
