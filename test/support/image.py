"""The operator image for tests: its name, building it when it is missing, and running it with podman.

``image_ref()`` is the name ``make image`` tags (``localhost/kuberay-operator:<version>``).
``ensure_image()`` builds it with ``hack/build-image.sh --offline`` only when podman's storage lacks it
(set ``KUBERAY_TEST_REBUILD_IMAGE=1`` to rebuild anyway: a no-change rebuild takes seconds). Tests may
not use the network, so that build only uses the cached Debian base and wheels: when those are missing
too, or the tools are, the test fails and says what to run (``make image``, which downloads them, or the
``apt-get install`` line). ``Container`` runs the image with ``podman run --rm --network host`` under the
configuration the build script writes (runc, no default rlimits, the project's storage), so it needs no
host-wide podman setup. ``wheels_dir()`` is the build's wheel cache (runtime dependencies pinned by
constraints.txt, and the build tools), for installing the project offline.

Every podman call has a timeout; waits poll a condition with a deadline. The run's process-guard
marker is passed into the container, so the session's socket guard (support/proc_guard.py) sees the
container's processes too: with the host's network, a containerised operator must bind loopback
addresses (``--metrics-addr=127.0.0.1:<port>`` and so on), as every other process of the run does.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import pytest

from support.proc_guard import MARKER_ENV

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "build-image.sh"
TOOLS = ("buildah", "podman", "runc", "mmdebstrap")
INSTALL_HINT = "apt-get install -y buildah podman runc mmdebstrap (or bash hack/ci-tools.sh)"
BUILD_TIMEOUT = 900.0  # an offline build takes 10-20 s here
PODMAN_TIMEOUT = 120.0
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
VENV = "/opt/venv"


@functools.cache
def _build_env() -> dict[str, str]:
    """``CONTAINERS_CONF``, ``CONTAINERS_STORAGE_CONF`` and ``IMAGE`` from ``hack/build-image.sh --print-env``
    (which writes the two configuration files; it needs none of the tools)."""
    res = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-env"], capture_output=True, text=True, timeout=60, check=False
    )
    if res.returncode != 0:
        pytest.fail(f"{BUILD_SCRIPT.name} --print-env failed ({res.returncode}): {res.stderr.strip()}")
    pairs = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    return {k: pairs[k] for k in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "IMAGE", "WHEELS")}


def image_ref() -> str:
    """The name ``make image`` gives the image: ``localhost/kuberay-operator:<version in pyproject.toml>``."""
    return _build_env()["IMAGE"]


def wheels_dir() -> Path:
    """The wheels ``make image`` downloaded (for CPython 3.11, manylinux); fails the test when absent."""
    path = Path(_build_env()["WHEELS"])
    if not (path / ".complete").is_file():
        pytest.fail(
            f"the wheel cache {path} is missing: run `make image` once (it downloads the wheels; tests may "
            "not use the network)",
            pytrace=False,
        )
    return path


def podman_env() -> dict[str, str]:
    """This process's environment plus the project's container configuration files."""
    env = dict(os.environ)
    env.update({k: v for k, v in _build_env().items() if k.startswith("CONTAINERS_")})
    return env


def podman(*args: str, timeout: float = PODMAN_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``podman ARGS`` under the project's configuration; raises AssertionError (with stderr) if ``check``."""
    res = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, env=podman_env(), check=False
    )
    if check and res.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {res.returncode}: {res.stderr.strip()[-2000:]}")
    return res


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def image_exists(ref: str | None = None) -> bool:
    return podman("image", "exists", ref or image_ref(), check=False).returncode == 0


def ensure_image() -> str:
    """The image's name, after building it (``make image``'s script) if podman's storage does not have it."""
    missing = missing_tools()
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed; the image tests need them: {INSTALL_HINT}", pytrace=False)
    ref = image_ref()
    if image_exists(ref) and os.environ.get("KUBERAY_TEST_REBUILD_IMAGE", "0") != "1":
        return ref
    try:
        res = subprocess.run(
            ["bash", str(BUILD_SCRIPT), "--offline"],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{BUILD_SCRIPT.name} --offline did not finish in {BUILD_TIMEOUT:.0f} s", pytrace=False)
    if res.returncode == 3:
        pytest.fail(
            f"the image {ref} is missing and so is its cached base or wheels: run `make image` (it downloads "
            f"them; tests may not use the network): {res.stderr.strip()[-1000:]}",
            pytrace=False,
        )
    if res.returncode != 0:
        pytest.fail(
            f"{BUILD_SCRIPT.name} failed ({res.returncode}):\n{res.stderr.strip()[-4000:]}",
            pytrace=False,
        )
    built = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    assert built == ref, f"{BUILD_SCRIPT.name} printed {built!r}, expected {ref!r}"
    return ref


def run_image(
    *args: str,
    entrypoint: str | None = None,
    env: Mapping[str, str] | None = None,
    podman_args: Sequence[str] = (),
    timeout: float = PODMAN_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """One ``podman run --rm --network host`` of the image to completion (stdout and stderr captured)."""
    cmd = ["run", "--rm", "--network", "host", "--name", f"kuberay-test-{uuid.uuid4().hex[:10]}"]
    for k, v in {**_marker_env(), **(env or {})}.items():
        cmd += ["--env", f"{k}={v}"]
    if entrypoint is not None:
        cmd += ["--entrypoint", entrypoint]
    return podman(*cmd, *podman_args, image_ref(), *args, timeout=timeout, check=False)


def _marker_env() -> dict[str, str]:
    marker = os.environ.get(MARKER_ENV)
    return {MARKER_ENV: marker} if marker else {}


@dataclass(frozen=True)
class Mount:
    """A bind mount: ``source`` on the host at ``target`` in the container, read-only by default."""

    source: Path
    target: str
    read_only: bool = True

    def volume(self) -> str:
        return f"{self.source}:{self.target}:{'ro' if self.read_only else 'rw'}"


def service_account_mount(token_dir: Path) -> Mount:
    """``token_dir`` (token, ca.crt, namespace; files 0644 so uid 65532 can read them) where a pod has it."""
    return Mount(token_dir, SA_MOUNT)


@dataclass
class Container:
    """The image run in the background: ``podman run --rm --network host --name <unique> IMAGE ARGS``.

    Output (stdout and stderr, interleaved) goes to a file, so ``logs()`` works after the container
    is gone. Use as a context manager, or call ``start()`` and then ``stop()``/``kill()``.
    """

    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: Sequence[Mount] = ()
    entrypoint: str | None = None
    read_only: bool = False  # --read-only with a tmpfs /tmp, as the Deployment's readOnlyRootFilesystem
    podman_args: Sequence[str] = ()  # more `podman run` options (e.g. --cap-drop=ALL)
    log_dir: Path | None = None  # where the output file goes (default: the system's temporary directory)
    image: str = field(default_factory=image_ref)
    name: str = field(default_factory=lambda: f"kuberay-test-{uuid.uuid4().hex[:10]}")
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)
    log_path: Path | None = field(default=None, init=False)

    def command(self) -> list[str]:
        cmd = ["podman", "run", "--rm", "--network", "host", "--name", self.name]
        for k, v in {**_marker_env(), **self.env}.items():
            cmd += ["--env", f"{k}={v}"]
        for m in self.mounts:
            cmd += ["--volume", m.volume()]
        if self.read_only:
            cmd += ["--read-only", "--tmpfs", "/tmp:rw,size=64m,mode=1777"]
        if self.entrypoint is not None:
            cmd += ["--entrypoint", self.entrypoint]
        return [*cmd, *self.podman_args, self.image, *self.args]

    def start(self) -> Container:
        assert self.proc is None, "already started"
        fd, path = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log", dir=self.log_dir)
        self.log_path = Path(path)
        self._log = os.fdopen(fd, "wb")
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=podman_env()
        )
        return self

    # ---- state ----

    def running(self) -> bool:
        """True while ``podman run`` has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def exists(self) -> bool:
        """True once podman has created the container (and until it is removed)."""
        return podman("container", "exists", self.name, timeout=30, check=False).returncode == 0

    def wait_started(self, timeout: float = 60.0) -> None:
        """Until podman has created the container (fails if ``podman run`` exits first)."""
        deadline = time.monotonic() + timeout
        while not self.exists():
            if not self.running():
                raise AssertionError(f"{self.name} exited ({self.returncode}) before it started:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not created after {timeout:.0f} s:\n{self.logs()}")
            time.sleep(0.1)

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def wait(self, timeout: float = 60.0) -> int:
        """The container's exit code (``podman run`` passes it on); AssertionError after ``timeout``."""
        assert self.proc is not None, "not started"
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout:.0f} s:\n{self.logs()[-4000:]}") from None

    def logs(self) -> str:
        if self._log is not None:
            self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    # ---- signals ----

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to the container's main process; False if the container is already gone."""
        if not self.running():
            return False
        res = podman("kill", "--signal", sig.name, self.name, timeout=30, check=False)
        return res.returncode == 0

    def stop(self, grace: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited after ``grace`` seconds; the exit code."""
        assert self.proc is not None, "not started"
        if self.running():
            try:
                self.wait_started()
            except AssertionError:
                if self.running():
                    raise
                return self.wait(timeout=30)
            self.signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                return self.kill()
        return self.wait(timeout=30)

    def kill(self, timeout: float = 30.0) -> int:
        """SIGKILL (no grace); the exit code (137)."""
        assert self.proc is not None, "not started"
        if self.running():
            try:
                self.wait_started()
            except AssertionError:
                if self.running():
                    raise
            self.signal(signal.SIGKILL)
        return self.wait(timeout=timeout)

    def close(self) -> None:
        """Stop it if it still runs, make sure podman removed it, and close the log (the file stays)."""
        if self.proc is not None and self.running():
            try:
                self.kill()
            except AssertionError:
                self.proc.kill()
                self.proc.wait(timeout=30)
        podman("rm", "--force", "--ignore", self.name, timeout=60, check=False)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Container:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
