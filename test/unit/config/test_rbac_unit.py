"""RBAC rendered from the controllers' declared permissions (controllers/ray/rbac.py) and written by
hack/gen_manifests.py: exact verbs per (group, resource), determinism, the namespaced variant, and the
generator's file handling."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from controllers.ray import rbac
from controllers.ray.rbac import Permission, effective_verbs, expand_rules, render_rbac, rules_for

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "config"

ALL = {"get", "list", "watch", "create", "update", "patch", "delete"}


def _load_gen() -> ModuleType:
    name = "kuberay_hack_gen_manifests"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "hack" / "gen_manifests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _one(name: str) -> dict[str, Any]:
    objects = render_rbac()[name]
    assert len(objects) == 1
    return objects[0]


def _cluster_role_grants() -> dict[tuple[str, str], frozenset[str]]:
    return expand_rules(_one("role.yaml")["rules"])


# ---- the ClusterRole grants exactly what the controllers declare --------------------------------------


def test_cluster_role_grants_exactly_the_declared_verbs() -> None:
    assert _cluster_role_grants() == effective_verbs(rbac.all_permissions())


def test_every_declared_permission_is_granted_per_controller() -> None:
    grants = _cluster_role_grants()
    for controller, permissions in rbac.CONTROLLER_PERMISSIONS.items():
        for perm in permissions:
            for resource in perm.resources:
                got = grants.get((perm.group, resource), frozenset())
                assert set(perm.verbs) <= got, (controller, perm.group, resource, perm.verbs, got)


def test_each_group_resource_appears_in_exactly_one_rule() -> None:
    seen: dict[tuple[str, str], int] = {}
    for index, rule in enumerate(_one("role.yaml")["rules"]):
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) not in seen, (
                    f"{group}/{resource} in rules {seen[(group, resource)]} and {index}"
                )
                seen[(group, resource)] = index


@pytest.mark.parametrize(
    ("group", "resource", "verbs"),
    [
        ("", "pods", ALL | {"deletecollection"}),
        ("", "pods/status", ALL),
        ("", "pods/resize", {"patch"}),
        ("", "pods/proxy", {"get", "update", "patch"}),
        ("", "services", ALL),
        ("", "services/status", {"get", "update", "patch"}),
        ("", "services/proxy", {"get", "create", "update", "patch"}),
        # patch: the GCS PVC's ownerReference follows deletionPolicy (§4.9), which needs a write verb
        ("", "persistentvolumeclaims", {"get", "list", "watch", "create", "delete", "patch"}),
        ("", "secrets", {"get", "list", "watch", "create"}),
        ("", "serviceaccounts", {"get", "list", "watch", "create", "delete"}),
        ("batch", "jobs", ALL),
        ("coordination.k8s.io", "leases", {"get", "list", "create", "update"}),
        ("discovery.k8s.io", "endpointslices", {"get", "list", "watch"}),
        ("events.k8s.io", "events", {"create", "patch"}),
        ("networking.k8s.io", "ingresses", ALL),
        ("extensions", "ingresses", ALL),
        ("networking.k8s.io", "ingressclasses", {"get", "list", "watch"}),
        ("networking.k8s.io", "networkpolicies", {"get", "list", "watch", "create", "update", "delete"}),
        ("rbac.authorization.k8s.io", "roles", {"get", "list", "watch", "create", "update", "delete"}),
        ("rbac.authorization.k8s.io", "rolebindings", {"get", "list", "watch", "create", "delete"}),
        ("route.openshift.io", "routes", ALL),
        ("gateway.networking.k8s.io", "gateways", {"get", "list", "watch", "create", "update", "delete"}),
        ("gateway.networking.k8s.io", "httproutes", {"get", "list", "watch", "create", "update", "delete"}),
        ("cert-manager.io", "certificates", {"get", "list", "watch", "create", "update", "delete"}),
        ("cert-manager.io", "issuers", {"get", "list", "watch", "create", "update", "delete"}),
        *[("ray.io", kind, ALL) for kind in ("rayclusters", "rayjobs", "rayservices", "raycronjobs")],
        *[("ray.io", f"{kind}/status", {"get", "update", "patch"}) for kind in ("rayclusters", "rayjobs")],
        *[("ray.io", f"{kind}/status", {"get", "update", "patch"}) for kind in ("rayservices", "raycronjobs")],
        *[("ray.io", f"{k}/finalizers", {"update"}) for k in ("rayclusters", "rayjobs", "rayservices", "raycronjobs")],
    ],
)
def test_upstream_permission_list(group: str, resource: str, verbs: set[str]) -> None:
    """The operator's permissions as listed in the spec (§1.2), verb for verb."""
    assert _cluster_role_grants().get((group, resource)) == frozenset(verbs)


def test_no_core_events_or_wildcards_in_the_cluster_role() -> None:
    grants = _cluster_role_grants()
    assert ("", "events") not in grants  # events are written through events.k8s.io/v1
    assert all("*" not in verbs for verbs in grants.values())
    assert all("*" not in resource and group != "*" for group, resource in grants)


# ---- normalisation and determinism ------------------------------------------------------------------


def test_rules_are_sorted_and_normalised() -> None:
    rules = _one("role.yaml")["rules"]
    keys = [(r["apiGroups"], r["resources"]) for r in rules]
    assert keys == sorted(keys)
    for rule in rules:
        assert list(rule) == ["apiGroups", "resources", "verbs"]
        assert rule["apiGroups"] == sorted(set(rule["apiGroups"]))
        assert rule["resources"] == sorted(set(rule["resources"]))
        assert rule["verbs"] == sorted(set(rule["verbs"]))


def test_same_verbs_in_one_group_share_a_rule_and_groups_with_identical_rules_merge() -> None:
    rules = rules_for(
        [
            Permission("", ("services",), ("get", "list")),
            Permission("", ("pods",), ("list", "get")),
            Permission("", ("secrets",), ("get",)),
            Permission("networking.k8s.io", ("ingresses",), ("get",)),
            Permission("extensions", ("ingresses",), ("get",)),
        ]
    )
    assert rules == [
        {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": ["extensions", "networking.k8s.io"], "resources": ["ingresses"], "verbs": ["get"]},
    ]


def test_verbs_of_one_resource_declared_by_several_controllers_are_unioned() -> None:
    rules = rules_for([Permission("", ("pods",), ("get",)), Permission("", ("pods",), ("delete", "get"))])
    assert rules == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["delete", "get"]}]


def test_render_is_deterministic_and_independent_of_declaration_order() -> None:
    first = render_rbac()
    assert render_rbac() == first
    assert yaml.safe_dump(render_rbac(), sort_keys=False) == yaml.safe_dump(first, sort_keys=False)
    perms = list(rbac.all_permissions())
    for seed in range(5):
        random.Random(seed).shuffle(perms)
        assert rules_for(perms) == first["role.yaml"][0]["rules"]


def test_render_returns_fresh_objects() -> None:
    a = render_rbac()
    a["role.yaml"][0]["rules"].clear()
    assert render_rbac()["role.yaml"][0]["rules"]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", (), ("get",)), "resources"),
        (("", ("pods",), ()), "no verbs"),
        (("", ("pods",), ("get", "frobnicate")), "unknown verbs"),
        (("", ("",), ("get",)), "resources"),
    ],
)
def test_permission_rejects_bad_declarations(args: tuple[str, tuple[str, ...], tuple[str, ...]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Permission(*args)


def test_permission_is_frozen() -> None:
    perm = Permission("", ("pods",), ("get",))
    with pytest.raises(AttributeError):
        perm.group = "x"  # type: ignore[misc]


# ---- the other objects --------------------------------------------------------------------------------


def test_file_set() -> None:
    assert sorted(render_rbac()) == [
        "leader_election_role.yaml",
        "leader_election_role_binding.yaml",
        "namespaced/role.yaml",
        "namespaced/role_binding.yaml",
        "role.yaml",
        "role_binding.yaml",
        "service_account.yaml",
    ]


def test_cluster_role_and_binding() -> None:
    role = _one("role.yaml")
    assert (role["apiVersion"], role["kind"], role["metadata"]) == (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        {"name": "kuberay-operator"},
    )
    binding = _one("role_binding.yaml")
    assert binding["kind"] == "ClusterRoleBinding"
    assert binding["metadata"] == {"name": "kuberay-operator"}
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "kuberay-operator",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kuberay-operator", "namespace": "default"}]
    sa = _one("service_account.yaml")
    assert sa == {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kuberay-operator"}}


def test_leader_election_role() -> None:
    role = _one("leader_election_role.yaml")
    assert role["kind"] == "Role"
    assert role["metadata"] == {"name": "kuberay-operator-leader-election"}
    assert expand_rules(role["rules"]) == {
        ("", "configmaps"): frozenset(ALL),
        ("coordination.k8s.io", "leases"): frozenset({"create", "get", "list", "update"}),
        ("", "events"): frozenset({"create", "patch"}),
        ("events.k8s.io", "events"): frozenset({"create", "patch"}),
    }
    binding = _one("leader_election_role_binding.yaml")
    assert binding["kind"] == "RoleBinding"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "kuberay-operator-leader-election",
    }
    assert binding["subjects"][0]["name"] == "kuberay-operator"


def test_namespaced_variant_mirrors_the_cluster_role() -> None:
    cluster_role = _one("role.yaml")
    role = _one("namespaced/role.yaml")
    assert role["kind"] == "Role"
    assert role["metadata"] == {"name": "kuberay-operator"}
    assert "namespace" not in role["metadata"]
    assert role["rules"] == cluster_role["rules"]
    assert role["rules"] is not cluster_role["rules"]
    binding = _one("namespaced/role_binding.yaml")
    assert binding["kind"] == "RoleBinding"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kuberay-operator"}
    assert binding["subjects"] == _one("role_binding.yaml")["subjects"]


# ---- hack/gen_manifests.py ------------------------------------------------------------------------------


def test_committed_rbac_files_are_up_to_date() -> None:
    """config/rbac matches render_rbac(): `make manifests` has been run after the last declaration change."""
    gen = _load_gen()
    assert gen.run(CONFIG, check=True) == []


def test_generated_file_format() -> None:
    gen = _load_gen()
    text = (CONFIG / "rbac" / "role.yaml").read_text()
    assert text.startswith("# Code generated by make manifests. DO NOT EDIT.\n---\n")
    assert list(yaml.safe_load_all(text)) == render_rbac()["role.yaml"]
    assert gen.to_yaml(render_rbac()["role.yaml"]) == text


def test_generator_writes_idempotently_and_prunes_only_its_own_stale_files(tmp_path: Path) -> None:
    gen = _load_gen()
    config = tmp_path / "config"
    (config / "rbac").mkdir(parents=True)
    hand_written = config / "rbac" / "kustomization.yaml"
    hand_written.write_text("resources: []\n")
    stale = config / "rbac" / "old_role.yaml"
    stale.write_text(gen.HEADER + "---\n{}\n")

    rbac_only = [g for g in gen.GENERATORS if g.name == "rbac"]
    first = gen.run(config, generators=rbac_only)
    assert sorted(line.split(": ", 1)[1] for line in first) == sorted(
        [f"wrote config/rbac/{name}" for name in render_rbac()] + ["removed config/rbac/old_role.yaml"]
    )
    assert not stale.exists()
    assert hand_written.read_text() == "resources: []\n"
    snapshot = {p: p.read_bytes() for p in config.rglob("*") if p.is_file()}
    mtimes = {p: p.stat().st_mtime_ns for p in snapshot}

    assert gen.run(config, generators=rbac_only) == []
    assert gen.run(config, check=True, generators=rbac_only) == []
    assert {p: p.read_bytes() for p in config.rglob("*") if p.is_file()} == snapshot
    assert {p: p.stat().st_mtime_ns for p in snapshot} == mtimes  # unchanged files are not rewritten

    (config / "rbac" / "role.yaml").write_text(gen.HEADER + "---\nedited: true\n")
    assert gen.run(config, check=True, generators=rbac_only) == ["config/rbac/role.yaml (out of date)"]
    assert (config / "rbac" / "role.yaml").read_text() == gen.HEADER + "---\nedited: true\n"


def test_generator_list_is_the_extension_point() -> None:
    gen = _load_gen()
    assert ("rbac", "rbac") in [(g.name, g.out_dir) for g in gen.GENERATORS]
    extra = gen.Generator("extra", "extra", lambda: {"a.yaml": [{"kind": "X"}]})
    assert gen.plan(extra, Path("/nonexistent-config")).writes  # a second generator plugs in the same way


def test_generator_refuses_paths_outside_its_directory(tmp_path: Path) -> None:
    gen = _load_gen()
    bad = gen.Generator("bad", "rbac", lambda: {"../escape.yaml": [{}]})
    with pytest.raises(ValueError, match="outside"):
        gen.plan(bad, tmp_path)
