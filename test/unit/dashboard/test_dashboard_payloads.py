"""Payload models of the dashboard client: request encoding, tolerant decoding, status helpers."""

from __future__ import annotations

import pytest

from controllers.ray.utils.dashboard import (
    DashboardError,
    DashboardTimeout,
    JobStatus,
    RayJobInfo,
    RayJobRequest,
    ServeDetails,
    is_job_terminal,
)


def test_request_omits_empty_and_zero_fields() -> None:
    assert RayJobRequest("echo").to_json() == {"entrypoint": "echo"}
    assert RayJobRequest("", runtime_env={}, metadata={}, entrypoint_resources={}).to_json() == {"entrypoint": ""}
    assert RayJobRequest("e", entrypoint_num_gpus=1).to_json() == {"entrypoint": "e", "entrypoint_num_gpus": 1}


def test_from_rayjob_minimal_and_errors() -> None:
    req = RayJobRequest.from_rayjob({"spec": {"entrypoint": "python x.py"}, "status": {}})
    assert req == RayJobRequest("python x.py")
    with pytest.raises(ValueError, match="failed to unmarshal RuntimeEnvYAML"):
        RayJobRequest.from_rayjob({"spec": {"entrypoint": "e", "runtimeEnvYAML": "a: [1"}})
    with pytest.raises(ValueError, match="failed to unmarshal RuntimeEnvYAML"):
        RayJobRequest.from_rayjob({"spec": {"entrypoint": "e", "runtimeEnvYAML": "- a\n- b\n"}})
    with pytest.raises(ValueError, match="entrypointResources"):
        RayJobRequest.from_rayjob({"spec": {"entrypoint": "e", "entrypointResources": "{bad"}})
    with pytest.raises(ValueError, match="entrypointResources"):
        RayJobRequest.from_rayjob({"spec": {"entrypoint": "e", "entrypointResources": '{"a": "1"}'}})


def test_job_info_tolerates_nulls_wrong_types_and_unknown_fields() -> None:
    info = RayJobInfo.from_json(
        {
            "type": "SUBMISSION",
            "job_id": None,
            "submission_id": "s",
            "driver_info": None,
            "status": "PENDING",
            "entrypoint": "e",
            "message": None,
            "error_type": None,
            "start_time": 1700000000000,
            "end_time": None,
            "metadata": None,
            "runtime_env": None,
            "driver_agent_http_address": None,
            "brand_new_field": {"nested": True},
        }
    )
    assert info == RayJobInfo(status="PENDING", entrypoint="e", submission_id="s", start_time=1700000000000)
    assert RayJobInfo.from_json([1, 2]) == RayJobInfo()  # not an object at all
    odd = RayJobInfo.from_json({"status": 3, "start_time": "soon", "end_time": -5, "metadata": {"n": 1}})
    assert (odd.status, odd.start_time, odd.end_time, odd.metadata) == ("", 0, 0, {"n": "1"})
    assert RayJobInfo.from_json({"error_type": "RUNTIME_ENV_SETUP_FAILURE"}).error_type == "RUNTIME_ENV_SETUP_FAILURE"


def test_serve_details_tolerate_unknown_fields() -> None:
    details = ServeDetails.from_json(
        {
            "controller_info": {},
            "deploy_mode": "MULTI_APP",
            "applications": {
                "a": {
                    "name": "a",
                    "status": "DEPLOYING",
                    "docs_path": None,
                    "last_deployed_time_s": 1.5,
                    "deployments": {"d": {"name": "d", "status": "UPDATING", "replicas": [{"x": 1}]}},
                },
                "b": None,
            },
        }
    )
    assert details.applications["a"].deployments["d"].status == "UPDATING"
    assert details.applications["a"].docs_path == ""
    assert details.applications["b"].status == ""


def test_terminal_statuses() -> None:
    assert [s.value for s in JobStatus if is_job_terminal(s)] == ["STOPPED", "SUCCEEDED", "FAILED"]
    assert not is_job_terminal("") and not is_job_terminal("SOMETHING_NEW")


def test_timeout_error_is_both_a_dashboard_error_and_a_timeout_error() -> None:
    err = DashboardTimeout("GetJobInfo: no answer")
    assert isinstance(err, DashboardError) and isinstance(err, TimeoutError)
    assert str(err) == "GetJobInfo: no answer" and err.status is None
