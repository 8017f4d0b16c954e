"""The parity tier runs only when asked for (``make test-parity``, i.e. ``pytest test/parity``): a bare
``pytest`` (``make test``) skips this directory, so the main suite needs no oracle binary."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # oracle.py, harness.py, inputs.py


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if config.args_source == pytest.Config.ArgsSource.TESTPATHS:
        return True
    return None
