"""The wheel as a user installs it: built from these sources, installed with `-c constraints.txt` into a
fresh virtualenv, its `kuberay-operator` command works and nothing but the runtime dependencies came along.

Tests may not use the network, so both steps install from the wheel cache `make image` fills (the runtime
dependencies pinned by constraints.txt and the pinned build tools from Containerfile), with --no-index:
the same wheels a `pip install -c constraints.txt` from PyPI picks.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.image import wheels_dir

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "api", "controllers", "internal", "cmd", "pkg")
PIP_TIMEOUT = 600


def _containerfile_arg(name: str) -> str:
    m = re.search(rf"^ARG {name}=(\S+)$", (REPO / "Containerfile").read_text(), re.M)
    assert m, f"ARG {name} not in Containerfile"
    return m.group(1)


def _run(*cmd: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=PIP_TIMEOUT, cwd=cwd, check=False
    )
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res


def _venv(path: Path) -> Path:
    _run(sys.executable, "-m", "venv", path)
    return path / "bin"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the sources with the Containerfile's pinned build tools."""
    wheels = wheels_dir()
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=ignore)
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    build = _venv(tmp / "build")
    tools = [
        f"{t}=={_containerfile_arg(v)}" for t, v in (("setuptools", "SETUPTOOLS_VERSION"), ("wheel", "WHEEL_VERSION"))
    ]
    _run(build / "pip", "install", "-q", "--no-index", "--find-links", wheels, *tools)
    _run(build / "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", tmp / "dist", src)
    (built,) = (tmp / "dist").glob("kuberay_py-*.whl")
    return built


def test_wheel_installs_into_a_fresh_venv_and_runs(wheel: Path, tmp_path: Path) -> None:
    bin_dir = _venv(tmp_path / "venv")
    _run(
        bin_dir / "pip",
        "install",
        "-q",
        "--no-index",
        "--find-links",
        wheels_dir(),
        "-c",
        REPO / "constraints.txt",
        wheel,
    )
    # Run from elsewhere, so nothing is imported from the work tree.
    res = subprocess.run(
        [str(bin_dir / "kuberay-operator"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "--metrics-addr" in res.stdout
    assert "--health-probe-bind-address" in res.stdout
    listed = _run(bin_dir / "python", "-m", "pip", "list", "--format=freeze", cwd=tmp_path).stdout
    installed = {line.split("==")[0].lower().replace("_", "-") for line in listed.split()}
    for extra in ("ray", "pytest", "cryptography", "testcontainers", "hypothesis"):
        assert extra not in installed, f"{extra} installed by the plain wheel (it belongs to an extra)"
    assert "kuberay-py" in installed
