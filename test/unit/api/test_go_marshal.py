"""Statuses are written as upstream's Go structs encode them (``encoding/json`` with ``omitempty``), so a
RayJob read back from the API looks the same whichever operator wrote it."""

from __future__ import annotations

from api.v1.fields import go_marshal
from api.v1.rayjob_types import RayJobStatus


def test_empty_strings_zero_counters_and_empty_lists_are_omitted() -> None:
    status = {
        "jobId": "job-abcde",
        "jobStatus": "SUCCEEDED",
        "jobDeploymentStatus": "Complete",
        "reason": "",
        "message": "",
        "dashboardURL": "",
        "observedGeneration": 0,
        "rayClusterStatus": {
            "state": "ready",
            "reason": "",
            "readyWorkerReplicas": 0,
            "availableWorkerReplicas": 1,
            "conditions": [],
            "endpoints": {},
            "desiredCPU": "2",
        },
    }
    out = go_marshal(RayJobStatus, status)
    assert out["jobId"] == "job-abcde" and out["jobDeploymentStatus"] == "Complete"
    for gone in ("reason", "message", "dashboardURL", "observedGeneration"):
        assert gone not in out
    rcs = out["rayClusterStatus"]
    assert rcs["state"] == "ready" and rcs["availableWorkerReplicas"] == 1 and rcs["desiredCPU"] == "2"
    for gone in ("reason", "readyWorkerReplicas", "conditions", "endpoints"):
        assert gone not in rcs


def test_pointer_counters_and_structs_are_written_as_go_writes_them() -> None:
    out = go_marshal(RayJobStatus, {"succeeded": 0, "failed": 0})
    # *int32 counters: 0 is a value, not "unset".
    assert out["succeeded"] == 0 and out["failed"] == 0
    # Non-pointer structs are never omitted by encoding/json; a zero resource.Quantity encodes as "0".
    assert out["rayJobInfo"] == {}
    assert out["rayClusterStatus"] == {
        "desiredCPU": "0",
        "desiredMemory": "0",
        "desiredGPU": "0",
        "desiredTPU": "0",
        "head": {},
    }
    assert "startTime" not in out and "jobStatusCheckFailureStartTime" not in out


def test_fields_the_struct_does_not_declare_are_dropped() -> None:
    out = go_marshal(RayJobStatus, {"jobId": "x", "notAField": 1, "rayJobInfo": {"startTime": None, "x": 1}})
    assert out == {
        "jobId": "x",
        "rayJobInfo": {},
        "rayClusterStatus": {"desiredCPU": "0", "desiredMemory": "0", "desiredGPU": "0", "desiredTPU": "0", "head": {}},
    }
