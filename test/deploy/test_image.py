"""The production image (Containerfile, built by `make image`): what a user pulling it would see.

It runs the operator as uid 65532 with the exec-form entrypoint, carries the OCI labels, holds only the
runtime dependencies (each at the version constraints.txt pins), and works with the Deployment's
security settings (read-only root filesystem, every capability dropped). The image is built once if
podman's storage lacks it (support/image.py: offline, from the cached base and wheels).
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.image import VENV, Container, ensure_image, image_ref, podman, run_image

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = f"{VENV}/bin/kuberay-operator"
PYTHON = f"{VENV}/bin/python"
# Extras of pyproject.toml (tests, dev tools, Ray, the local control plane's certificates): never shipped.
NOT_SHIPPED = ("ray", "pytest", "cryptography", "testcontainers", "hypothesis", "mypy", "ruff", "pip", "setuptools")
SHIPPED = (
    "kuberay_operator",
    "api",
    "controllers",
    "internal",
    "pkg",
    "kubernetes_asyncio",
    "aiohttp",
    "prometheus_client",
)
# Run as the Deployment runs it (config/manager/manager.yaml's securityContext).
AS_DEPLOYED = ("--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges")


def _pyproject() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            pins[_norm(name)] = version
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def image() -> str:
    return ensure_image()


@pytest.fixture(scope="module")
def inspected(image: str) -> dict[str, Any]:
    out = podman("image", "inspect", image).stdout
    return dict(json.loads(out)[0])


def test_help_runs_as_uid_65532_with_the_deployments_security_settings(image: str) -> None:
    res = run_image("--help", podman_args=AS_DEPLOYED)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: kuberay-operator"), res.stdout[:500]
    for flag in ("--metrics-addr", "--health-probe-bind-address", "--enable-leader-election", "--watch-namespace"):
        assert flag in res.stdout, f"{flag} missing from --help:\n{res.stdout}"
    # The same default user and entrypoint's interpreter: who the operator runs as.
    who = run_image(
        "-c",
        "import os, sys; print(os.getuid(), os.getgid(), sys.executable)",
        entrypoint=PYTHON,
        podman_args=AS_DEPLOYED,
    )
    assert who.returncode == 0, who.stderr
    assert who.stdout.split() == ["65532", "65532", PYTHON]


def test_upstreams_command_path_starts_the_operator(image: str) -> None:
    """Upstream's manifests and Helm chart set ``command: [/manager]``: swapping in this image is enough."""
    res = run_image("--help", entrypoint="/manager", podman_args=AS_DEPLOYED)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: kuberay-operator"), res.stdout[:500]


def test_a_bad_flag_exits_non_zero_with_usage(image: str) -> None:
    res = run_image("--no-such-flag")
    assert res.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in res.stderr


def test_image_config_user_entrypoint_and_labels(inspected: dict[str, Any]) -> None:
    config = inspected["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == [ENTRYPOINT]  # exec form: no shell between the runtime and the operator
    assert not config.get("Cmd")
    labels = config["Labels"]
    project = _pyproject()["project"]
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.title"] == "kuberay-operator"
    assert labels["org.opencontainers.image.description"]
    assert labels["org.opencontainers.image.source"]
    # Without Ray or the test tools the image stays small (it was 209 MB when this was written).
    assert inspected["Size"] < 300_000_000, f"image is {inspected['Size'] / 1e6:.0f} MB"


def test_only_runtime_dependencies_at_the_pinned_versions(image: str) -> None:
    probe = (
        "import importlib.util as u, importlib.metadata as m, json; "
        f"print(json.dumps({{'found': {{n: u.find_spec(n) is not None for n in {list(NOT_SHIPPED + SHIPPED)!r}}}, "
        "'dists': {d.metadata['Name']: d.version for d in m.distributions()}}))"
    )
    res = run_image("-c", probe, entrypoint=PYTHON)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    shipped_test_tools = [n for n in NOT_SHIPPED if got["found"][n]]
    assert not shipped_test_tools, f"test-only or build packages in the image: {shipped_test_tools}"
    assert all(got["found"][n] for n in SHIPPED), got["found"]
    pins = _pins()
    dists = {_norm(name): version for name, version in got["dists"].items()}
    assert dists.pop("kuberay-py") == _pyproject()["project"]["version"]
    unpinned = sorted(set(dists) - set(pins))
    assert not unpinned, f"installed but not pinned in constraints.txt: {unpinned}"
    off = {n: (v, pins[n]) for n, v in dists.items() if v != pins[n]}
    assert not off, f"(installed, pinned) differ: {off}"


def test_raycronjob_time_zones_resolve_in_the_image(image: str) -> None:
    """A RayCronJob's ``timeZone`` names an IANA zone: the image resolves them as the operator does."""
    probe = "from api.v1._cron import load_location as z; print(z('Asia/Kolkata'), z('America/New_York'))"
    res = run_image("-c", probe, entrypoint=PYTHON)
    assert (res.returncode, res.stdout.strip()) == (0, "Asia/Kolkata America/New_York"), res.stderr


def test_manifests_deploy_the_image_make_image_builds() -> None:
    image = image_ref()
    manager = yaml.safe_load((REPO / "config/manager/manager.yaml").read_text())
    container = manager["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image
    default = yaml.safe_load((REPO / "config/default/kustomization.yaml").read_text())
    name, _, tag = image.rpartition(":")
    assert {"name": name, "newName": name, "newTag": tag} in default["images"]


def test_container_helper_stops_and_kills(image: str, tmp_path: Path) -> None:
    """The helper other tests run the operator with: SIGTERM reaches the entrypoint's process (PID 1 in the
    container, which only handles signals it installed handlers for), SIGKILL always ends it."""
    handles_term = (
        "import signal, sys, time; "
        "signal.signal(signal.SIGTERM, lambda *_: (print('got SIGTERM', flush=True), sys.exit(3))); "
        "print('ready', flush=True); time.sleep(600)"
    )
    with Container(args=["-c", handles_term], entrypoint=PYTHON, read_only=True, log_dir=tmp_path) as c:
        c.wait_started()
        _wait_for_log(c, "ready")
        assert c.stop(grace=30) == 3
        assert "got SIGTERM" in c.logs()
    ignores_term = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(600)"
    )
    with Container(args=["-c", ignores_term], entrypoint=PYTHON, log_dir=tmp_path) as c:
        _wait_for_log(c, "ready")
        assert c.stop(grace=1) == 137  # SIGTERM ignored: SIGKILL after the grace period
    assert not c.exists()


def _wait_for_log(c: Container, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in c.logs():
        assert c.running(), f"exited ({c.returncode}) before printing {text!r}:\n{c.logs()}"
        assert time.monotonic() < deadline, f"{text!r} not printed after {timeout:.0f} s:\n{c.logs()}"
        time.sleep(0.1)
