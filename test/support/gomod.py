"""Files shipped in Go modules (third-party CRDs): the module's directory in the Go module cache, fetched
through the module proxy at a pinned version, as the plane's own binaries are."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def go_module_dir(module: str) -> Path:
    """``go mod download`` of ``module`` (``path@version``); its directory in the module cache."""
    proc = subprocess.run(
        ["go", "mod", "download", "-json", module], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Path(json.loads(proc.stdout)["Dir"])
