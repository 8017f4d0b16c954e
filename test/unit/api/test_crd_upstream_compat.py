"""The generated CRDs can replace upstream's on a live cluster: the same versions served and stored, and
no defaults upstream's schemas do not have (a default rewrites every object a user applies). Upstream's
CRDs are read from the Go module cache (the KubeRay module ``make bins`` downloads), never copied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
UPSTREAM = Path("/root/go/pkg/mod/github.com/ray-project/kuberay/ray-operator@v1.6.1/config/crd/bases")
KINDS = ("rayclusters", "rayjobs", "rayservices", "raycronjobs")


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
    return doc


def schema_defaults(schema: dict[str, Any], path: str = "") -> tuple[set[str], dict[str, Any]]:
    """Every property path of ``schema`` and the defaults set on them."""
    paths, defaults = {path}, {}
    if "default" in schema:
        defaults[path] = schema["default"]
    children = [(f"{path}.{k}", v) for k, v in (schema.get("properties") or {}).items()]
    if isinstance(schema.get("items"), dict):
        children.append((f"{path}[]", schema["items"]))
    if isinstance(schema.get("additionalProperties"), dict):
        children.append((f"{path}{{}}", schema["additionalProperties"]))
    for p, child in children:
        ps, ds = schema_defaults(child, p)
        paths |= ps
        defaults |= ds
    return paths, defaults


def versions(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in crd["spec"]["versions"]}


@pytest.fixture(scope="module", autouse=True)
def _upstream() -> None:
    if not UPSTREAM.is_dir():
        pytest.fail(f"upstream KubeRay CRDs not found at {UPSTREAM} (make bins downloads the module)")


@pytest.mark.parametrize("kind", KINDS)
def test_no_default_upstream_does_not_have(kind: str) -> None:
    ours = versions(load(REPO / "config/crd/bases" / f"ray.io_{kind}.yaml"))["v1"]
    theirs = versions(load(UPSTREAM / f"ray.io_{kind}.yaml"))["v1"]
    _, our_defaults = schema_defaults(ours["schema"]["openAPIV3Schema"])
    their_paths, their_defaults = schema_defaults(theirs["schema"]["openAPIV3Schema"])
    # Fields upstream 1.6.1 does not have at all (1.7 additions) are not comparable.
    extra = {p: d for p, d in our_defaults.items() if p in their_paths and their_defaults.get(p, ...) != d}
    assert not extra, extra
    missing = {p: d for p, d in their_defaults.items() if p not in our_defaults}
    assert not missing, missing


@pytest.mark.parametrize("kind", KINDS)
def test_same_versions_served_and_stored_as_upstream(kind: str) -> None:
    ours = versions(load(REPO / "config/crd/bases" / f"ray.io_{kind}.yaml"))
    theirs = versions(load(UPSTREAM / f"ray.io_{kind}.yaml"))
    assert {n: (v["served"], v["storage"]) for n, v in ours.items()} == {
        n: (v["served"], v["storage"]) for n, v in theirs.items()
    }
    for name, v in theirs.items():
        if name == "v1":
            continue  # v1's columns follow the 1.7 types (RayCronJob has gained some)
        cols = [c["name"] for c in v.get("additionalPrinterColumns") or ()]
        assert [c["name"] for c in ours[name].get("additionalPrinterColumns") or ()] == cols
        assert bool(ours[name].get("subresources")) == bool(v.get("subresources"))
