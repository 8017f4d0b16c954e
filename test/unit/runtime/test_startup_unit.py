"""internal/startup's pure parts: how a permission and a list of them read in the one-line error, and
the kubeconfig checks that run before any connection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from internal import startup
from internal.startup import Access, StartupError


def test_access_reads_like_kubectl_auth_can_i() -> None:
    assert str(Access("list", "ray.io", "rayclusters")) == "list rayclusters.ray.io cluster-wide"
    assert str(Access("update", "", "pods/status", "ns")) == "update pods/status in namespace ns"


def test_summarize_shows_the_first_few() -> None:
    many = [Access(v, "", "pods") for v in ("get", "list", "watch", "create", "delete", "patch")]
    assert startup.summarize(many[:2]) == "get pods cluster-wide, list pods cluster-wide"
    assert startup.summarize(many, limit=3).endswith("watch pods cluster-wide and 3 more")


def test_kubeconfig_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(StartupError, match=r"^no kubeconfig: pass --kubeconfig or set KUBECONFIG") as e:
        startup._check_source(None)
    assert e.value.exit_code == 2
    empty = tmp_path / "empty"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(StartupError, match=f"^kubeconfig {re.escape(str(empty))} defines no clusters$"):
        startup._check_source(str(empty))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(StartupError, match="No such file or directory"):
        startup._check_source(None)
    # A KUBECONFIG list is left to the loader, which merges the files that exist.
    monkeypatch.setenv("KUBECONFIG", f"{empty}:{tmp_path / 'missing'}")
    assert startup._check_source(None) == f"{empty}:{tmp_path / 'missing'}"
