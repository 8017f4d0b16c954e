"""A wall clock for the operator under test that the test moves forward, so that what the operator
times (deletion delays, cron activations) comes without waiting for it."""

from __future__ import annotations

import time


class SkewedClock:
    """``time.time()`` plus ``offset`` seconds; everything the operator times moves with it."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset
