"""Helm (helm.sh/helm/v4, built by hack/build-helm.sh at the version hack/versions.env pins) for the
chart under helm-chart/kuberay-operator."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm-chart" / "kuberay-operator"
TIMEOUT = 120.0


@functools.cache
def helm_binary() -> Path:
    """The pinned Helm (looked up once per session); fails (not skips) the test when it was not built, as
    for the control plane."""
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "build-helm.sh"), "--path"], capture_output=True, text=True, check=True, timeout=30
    )
    path = Path(out.stdout.strip())
    if not path.exists():
        pytest.fail(f"Helm is not built ({path}): run `make helm`", pytrace=False)
    return path


def helm(
    *args: str, values: Mapping[str, Any] | None = None, sets: Sequence[str] = (), kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """One Helm command; ``values`` are passed as a values file on stdin, ``sets`` as --set."""
    cmd = [str(helm_binary()), *args]
    if values:
        cmd += ["--values", "-"]
    for s in sets:
        cmd += ["--set", s]
    if kubeconfig is not None:
        cmd.append(f"--kubeconfig={kubeconfig}")
    stdin = yaml.safe_dump(dict(values)) if values else None
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def _objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def template(
    values: Mapping[str, Any] | None = None, *, namespace: str = "default", include_crds: bool = False
) -> list[dict[str, Any]]:
    """``helm template`` of the chart: the rendered objects (a refusal fails the test with Helm's message)."""
    crds = ["--include-crds"] if include_crds else []
    res = helm("template", "kuberay-operator", str(CHART), "--namespace", namespace, *crds, values=values)
    assert res.returncode == 0, res.stderr
    return _objects(res.stdout)


def template_error(values: Mapping[str, Any]) -> str:
    """What Helm prints when the chart refuses ``values``."""
    res = helm("template", "kuberay-operator", str(CHART), values=values)
    assert res.returncode != 0, f"the chart rendered values it should refuse:\n{res.stdout[:2000]}"
    return res.stderr.strip()


def install(kubeconfig: Path, namespace: str, *sets: str) -> list[dict[str, Any]]:
    """``helm install`` as a cluster admin would; the objects of the release (``helm get manifest``)."""
    release = "kuberay-operator"
    res = helm("install", release, str(CHART), "--namespace", namespace, sets=sets, kubeconfig=kubeconfig)
    assert res.returncode == 0, res.stderr
    got = helm("get", "manifest", release, "--namespace", namespace, kubeconfig=kubeconfig)
    assert got.returncode == 0, got.stderr
    return _objects(got.stdout)
