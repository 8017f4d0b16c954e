"""The reconcile contract: a level-based request (namespace/name) in, a Result (or an error) out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True, order=True)
class Request:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True)
class Result:
    """``requeue_after`` > 0: forget the item's failures and look again after that many seconds.
    ``requeue`` (deprecated upstream): requeue rate-limited, as after an error but without one."""

    requeue: bool = False
    requeue_after: float = 0.0


class TerminalError(Exception):
    """An error retrying cannot fix: counted, logged, not requeued (a later event will bring the
    object back)."""


class ReconcileError(Exception):
    """An expected failure of a reconcile (retried with backoff like an API error); any other exception
    escaping a reconciler is counted as a panic."""


class Reconciler(Protocol):
    async def reconcile(self, request: Request) -> Result: ...
