"""Environment for every Ray process a test starts, so that all of Ray's traffic stays on loopback.

Ray 2.60 rewrites a loopback node address (``127.0.0.1``, ``localhost``, ``::1``) to the address of the
interface that routes off the machine (``resolve_ip_for_localhost``) and then binds, advertises and dials
that address, and some of its servers listen on the wildcard address. With this switch in the
environment of every Ray process, the node keeps ``127.0.0.1`` and nothing listens beyond loopback
(single-node only, which is all a test on one machine needs). See ../shared/spec/local-node-notes.md.
"""

from __future__ import annotations

RAY_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
