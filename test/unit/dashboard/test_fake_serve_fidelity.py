"""The fake Serve model (support/fake_serve.py) answers in the shape real Ray 2.60 answered: the documents
and 400 texts recorded by test/e2e/test_rayservice_e2e.py in test/data/ray_serve_applications.json.

The fake is driven through the states the e2e recorded (with the e2e's own configs), and each answer's
field names per kind of object, null-ness, statuses and messages are compared with the recording; ids,
times and metrics are not. When Ray is installed, the fake's 400 texts are also compared with Ray's own
``ServeDeploySchema`` for more refused configs than the e2e recorded."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from support.fake_serve import ServeModel, ServeTiming, ServeValidationError

FIXTURE = Path(__file__).resolve().parents[2] / "data" / "ray_serve_applications.json"
RECORDED: dict[str, Any] = json.loads(FIXTURE.read_text())
ANSWERS: dict[str, Any] = RECORDED["answers"]
IMPORT_ERROR = "Traceback (most recent call last):\nAttributeError: module 'hello' has no attribute 'no_such_app'\n"


def key_sets(doc: Mapping[str, Any]) -> dict[str, set[str]]:
    """Field names per kind of object (as the e2e's ``key_sets``, plus the nested objects it skips)."""
    out: dict[str, set[str]] = {"document": set(doc)}

    def add(kind: str, items: Any) -> None:
        for item in items:
            out.setdefault(kind, set()).update(item)

    add("proxy", (doc.get("proxies") or {}).values())
    add("controller_info", [doc["controller_info"]] if doc.get("controller_info") else [])
    add("controller_health_metrics", [doc["controller_health_metrics"]] if "controller_health_metrics" in doc else [])
    add("http_options", [doc["http_options"]] if "http_options" in doc else [])
    add("grpc_options", [doc["grpc_options"]] if "grpc_options" in doc else [])
    add("target_group", doc.get("target_groups") or [])
    add("target", [t for g in doc.get("target_groups") or [] for t in g["targets"]])
    for app in (doc.get("applications") or {}).values():
        add("application", [app])
        if app.get("deployment_topology"):
            add("topology", [app["deployment_topology"]])
            add("topology_node", app["deployment_topology"]["nodes"].values())
        for dep in (app.get("deployments") or {}).values():
            add("deployment", [dep])
            add("deployment_config", [dep["deployment_config"]])
            add("replica", [*dep.get("replicas", []), *dep.get("recent_dead_replicas", [])])
    return out


def config_of(label: str) -> dict[str, Any]:
    """The PUT the e2e made for a recorded answer: its apps' ``deployed_app_config`` and HTTP options."""
    doc = ANSWERS[label]
    apps = [app["deployed_app_config"] for app in doc["applications"].values()]
    http = {"host": doc["http_options"]["host"], "port": doc["http_options"]["port"]}
    return {"http_options": http, "applications": apps}


def serve(deploy: float = 0.0) -> ServeModel:
    model = ServeModel()
    model.timing = ServeTiming(deploy=deploy)
    model.failing_imports = {"hello:no_such_app": IMPORT_ERROR}
    model.failing_constructors = {"Broken": "RuntimeError: this release cannot start"}
    return model


def assert_same_shape(label: str, got: dict[str, Any]) -> None:
    want = ANSWERS[label]
    assert key_sets(got) == key_sets(want)
    assert set(got["applications"]) == set(want["applications"])
    for name, app in want["applications"].items():
        mine = got["applications"][name]
        for key in ("status", "route_prefix", "source", "docs_path", "external_scaler_enabled"):
            assert mine[key] == app[key], (name, key)
        assert (mine["deployment_topology"] is None) == (app["deployment_topology"] is None), name
        if app["deployment_topology"] is not None:
            assert mine["deployment_topology"] == app["deployment_topology"], name
        assert mine["deployed_app_config"] == app["deployed_app_config"], name
        assert set(mine["deployments"]) == set(app["deployments"]), name
        for dname, dep in app["deployments"].items():
            d = mine["deployments"][dname]
            for key in ("status", "status_trigger", "target_num_replicas", "required_resources"):
                assert d[key] == dep[key], (name, dname, key)
            assert [r["state"] for r in d["replicas"]] == [r["state"] for r in dep["replicas"]], (name, dname)
            assert [r["state"] for r in d["recent_dead_replicas"]] == [
                r["state"] for r in dep["recent_dead_replicas"]
            ], (name, dname)
            assert d["deployment_config"] == dep["deployment_config"], (name, dname)
            assert d["message"].split("Error:\n")[0] == dep["message"].split("Error:\n")[0], (name, dname)
    for key in ("http_options", "grpc_options", "proxy_location", "target_capacity", "restores_unset_config_options"):
        assert got[key] == want[key], key
    assert [{**g, "targets": [{**t, "name": ""} for t in g["targets"]]} for g in got["target_groups"]] == [
        {**g, "targets": [{**t, "name": ""} for t in g["targets"]]} for g in want["target_groups"]
    ]
    for g in got["target_groups"]:
        assert [t["name"] for t in g["targets"]] == [p["actor_name"] for p in got["proxies"].values()]


def test_serve_not_started() -> None:
    assert serve().details() == ANSWERS["serve_not_started"]


def test_deploying_right_after_the_put() -> None:
    model = serve(deploy=3600.0)  # still building the app
    model.put(config_of("deploying"))
    assert_same_shape("deploying", model.details())


def test_running() -> None:
    model = serve()
    model.put(config_of("running"))
    assert_same_shape("running", model.details())


def test_deploy_failed_beside_a_healthy_app() -> None:
    model = serve()
    model.put(config_of("deploy_failed"))
    doc = model.details()
    assert_same_shape("deploy_failed", doc)
    for name in ("broken", "missing"):
        assert (
            doc["applications"][name]["message"].split("\n")[0]
            == (ANSWERS["deploy_failed"]["applications"][name]["message"].split("\n")[0])
        )
    broken = doc["applications"]["broken"]["deployments"]["Broken"]["message"]
    assert broken.endswith("RuntimeError: this release cannot start")


def test_no_applications_keeps_serve_and_its_proxy() -> None:
    model = serve()
    model.put(config_of("running"))
    model.put({**config_of("running"), "applications": []})
    assert_same_shape("no_applications", model.details())


def test_a_rebuild_keeps_the_old_prefix_and_an_identical_reput_does_not_rebuild() -> None:
    model = serve()
    model.put(config_of("running"))
    model.timing = ServeTiming(deploy=3600.0, redeploy=3600.0)
    model.put(config_of("running"))  # same code: options applied to the built app
    app = model.details()["applications"]["hello"]
    assert (app["status"], app["route_prefix"]) == ("DEPLOYING", "/")
    assert app["deployments"]["Hello"]["status"] == "UPDATING" and app["deployment_topology"] is not None
    changed = config_of("running")
    changed["applications"][0]["import_path"] = "hello:other"  # new code: rebuilt
    model.put(changed)
    app = model.details()["applications"]["hello"]
    assert (app["status"], app["route_prefix"], app["deployments"]) == ("DEPLOYING", "/", {})
    assert app["deployment_topology"] is None


@pytest.mark.parametrize("label", sorted(RECORDED["put_errors"]))
def test_recorded_400_texts(label: str) -> None:
    configs: dict[str, Any] = {
        "bad_import_path": {
            **config_of("running"),
            "applications": [{**config_of("running")["applications"][0], "import_path": "nodots"}],
        },
        "duplicate_application": {
            **config_of("running"),
            "applications": [
                config_of("running")["applications"][0],
                {**config_of("running")["applications"][0], "route_prefix": "/other"},
            ],
        },
        "no_applications_field": {},
    }
    with pytest.raises(ServeValidationError) as exc:
        ServeModel().put(configs[label])
    if label == "duplicate_application":
        # The e2e's YAML lists the keys in another order than deployed_app_config: compare all but the
        # truncated input_value, then its length.
        want = RECORDED["put_errors"][label]
        got = str(exc.value)
        cut = "input_value="
        assert got.split(cut, maxsplit=1)[0] == want.split(cut)[0]
        assert got.split("input_type=")[1] == want.split("input_type=")[1]
        assert len(got.split(cut)[1].split(", input_type", maxsplit=1)[0]) == 52
    else:
        assert str(exc.value) == RECORDED["put_errors"][label]


REFUSED: dict[str, Any] = {
    "not_an_object": [1],
    "applications_not_a_list": {"applications": 3},
    "target_capacity_text": {"applications": [], "target_capacity": "x"},
    "target_capacity_150": {"applications": [], "target_capacity": 150},
    "target_capacity_negative": {"applications": [], "target_capacity": -1},
    "app_not_an_object": {"applications": [3]},
    "no_import_path": {"applications": [{"name": "a"}]},
    "import_path_colon_end": {"applications": [{"import_path": "m:"}]},
    "import_path_two_colons": {"applications": [{"import_path": "a:b:c"}]},
    "import_path_dot_end": {"applications": [{"import_path": "m."}]},
    "empty_name": {"applications": [{"name": "", "import_path": "m:a"}]},
    "duplicate_name": {
        "applications": [{"name": "a", "import_path": "m:a"}, {"name": "a", "import_path": "m:a", "route_prefix": "/x"}]
    },
    "duplicate_prefix": {
        "applications": [
            {"name": "a", "import_path": "m:a", "route_prefix": "/x"},
            {"name": "b", "import_path": "m:a", "route_prefix": "/x"},
        ]
    },
    "app_host": {"applications": [{"import_path": "m:a", "host": "1.2.3.4"}]},
    "app_port": {"applications": [{"import_path": "m:a", "port": 8001}]},
    "local_working_dir": {"applications": [{"import_path": "m:a", "runtime_env": {"working_dir": "/tmp/app"}}]},
    "zero_replicas": {"applications": [{"import_path": "m:a", "deployments": [{"name": "D", "num_replicas": 0}]}]},
    "text_replicas": {"applications": [{"import_path": "m:a", "deployments": [{"name": "D", "num_replicas": "x"}]}]},
    "deployment_without_name": {"applications": [{"import_path": "m:a", "deployments": [{"num_replicas": 1}]}]},
    "two_errors": {"applications": [{"import_path": "nodots"}], "target_capacity": 150},
    "accepted_bad_prefix": {"applications": [{"import_path": "m:a", "route_prefix": "x/"}]},
    "accepted_null_prefix": {"applications": [{"import_path": "m:a", "route_prefix": None}]},
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_400_texts_equal_rays_schema(case: str) -> None:
    pytest.importorskip("ray.serve.schema", reason="Ray's Serve extra is not installed")
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    config = REFUSED[case]
    try:
        ServeDeploySchema.model_validate(config)
        want: str | None = None
    except ValidationError as e:
        want = repr(e)
    try:
        ServeModel().put(config)
        got: str | None = None
    except ServeValidationError as e:
        got = str(e)
    assert got == want


def test_a_bad_route_prefix_fails_the_build() -> None:
    model = serve()
    model.put({"applications": [{"name": "a", "import_path": "m:a", "route_prefix": "x"}]})
    app = model.details()["applications"]["a"]
    assert (app["status"], app["route_prefix"], app["deployments"]) == ("DEPLOY_FAILED", None, {})
    assert app["message"].endswith('ValueError: Got "x" for route_prefix. Route prefix must start with "/".\n')


@pytest.mark.parametrize(("capacity", "want"), [(None, 3), (50, 2), (10, 1), (0, 0)])
def test_target_capacity_scales_the_target_replicas(capacity: float | None, want: int) -> None:
    model = serve()
    app = {"name": "a", "import_path": "m:a", "deployments": [{"name": "D", "num_replicas": 3}]}
    model.put({"applications": [app], "target_capacity": capacity})
    dep = model.details()["applications"]["a"]["deployments"]["D"]
    assert (dep["target_num_replicas"], len(dep["replicas"])) == (want, want)


def test_deleting_keeps_the_prefix_and_leaves_the_config_checkpoint() -> None:
    model = serve()
    model.put(config_of("running"))
    model.timing = ServeTiming(delete=3600.0)
    model.put({"applications": []})
    app = model.details()["applications"]["hello"]
    assert (app["status"], app["route_prefix"], app["deployed_app_config"], app["deployment_topology"]) == (
        "DELETING",
        "/",
        None,
        None,
    )
