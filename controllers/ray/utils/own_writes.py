"""A controller's own status writes that its cache has not shown yet.

A reconcile that runs before the watch delivered the status it just wrote reads the older object: it
recomputes the same status and its write fails with a Conflict (the resourceVersion moved on), which
costs a failed request and a backoff requeue. Upstream lives with that race; waiting a moment for the
cache to catch up avoids it. Only equality of resourceVersions is used (they are opaque strings), and
the wait is bounded: after ``window`` seconds the reconcile runs whatever the cache says."""

from __future__ import annotations

import time
from collections.abc import Callable

#: how long a reconcile waits before looking again, and how long it waits at most
RECHECK_SECONDS = 0.05
WINDOW_SECONDS = 2.0


class OwnWrites:
    def __init__(self, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.window, self.clock = window, clock
        self._pending: dict[str, tuple[str, float]] = {}

    def wrote(self, key: str, based_on: str) -> None:
        """A write of ``key`` that read resourceVersion ``based_on`` succeeded."""
        if based_on:
            self._pending[key] = (based_on, self.clock())

    def unseen(self, key: str, cached: str) -> bool:
        """True while the cache still holds the version the last write of ``key`` replaced."""
        entry = self._pending.get(key)
        if entry is None:
            return False
        based_on, at = entry
        if cached != based_on or self.clock() - at > self.window:
            del self._pending[key]
            return False
        return True

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)
