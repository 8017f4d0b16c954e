"""The chaos tier runs only when asked for (``make chaos`` / ``make chaos-ci``, i.e. ``pytest test/chaos``):
a bare ``pytest`` (``make test``) skips this directory, so the main suite's duration is unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness modules


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if config.args_source == pytest.Config.ArgsSource.TESTPATHS:
        return True
    return None
