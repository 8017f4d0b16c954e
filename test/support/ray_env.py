"""Environment for every Ray process a test starts, so that none of Ray's traffic leaves loopback.

Ray 2.60 rewrites a loopback node address (``127.0.0.1``, ``localhost``, ``::1``) to the address of the
interface that routes off the machine (``resolve_ip_for_localhost``) and then binds, advertises and dials
that address, and some of its servers listen on the wildcard address. With
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in the environment of every Ray process, the node keeps
``127.0.0.1`` and nothing listens beyond loopback (single-node only, which is all a test on one machine
needs). See ../shared/spec/local-node-notes.md.

Separately, Ray's dashboard asks the cloud metadata services (``169.254.169.254``,
``metadata.google.internal``) which cloud it runs on, whether or not usage statistics are enabled,
unless ``~/ray_bootstrap_config.yaml`` exists: ``ray_env`` gives Ray a HOME with an empty one.
"""

from __future__ import annotations

from pathlib import Path

RAY_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
BOOTSTRAP_CONFIG = "ray_bootstrap_config.yaml"


def ray_env(home: Path) -> dict[str, str]:
    """The variables to add to a Ray process's environment, with ``home`` as its HOME."""
    home.mkdir(parents=True, exist_ok=True)
    (home / BOOTSTRAP_CONFIG).write_text("{}\n")  # no cloud: no metadata requests
    return {**RAY_LOOPBACK_ENV, "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}
