"""Scale expectations: what the RayCluster controller has just created or deleted and the cache has
not shown yet. While a group has unsatisfied expectations it is not scaled again, so a lagging
informer cache can never cause duplicate pod creates or double deletes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

HEAD_GROUP = ""  # the head group's key, as upstream
EXPECTATIONS_TIMEOUT = 30.0  # a create not seen by then is assumed lost


class Action(Enum):
    CREATE = "create"
    DELETE = "delete"


@dataclass
class _Expectation:
    namespace: str
    cluster: str
    group: str
    pod: str
    action: Action
    recorded: float


PodExists = Callable[[str, str], bool]  # (namespace, pod name) -> is it in the cache?


class ScaleExpectations:
    def __init__(self, exists: PodExists, clock: Callable[[], float] = time.monotonic) -> None:
        self._exists = exists
        self._clock = clock
        self._items: dict[str, _Expectation] = {}  # "ns/pod"
        self._by_group: dict[str, set[str]] = {}  # "ns/cluster/group" -> keys

    def expect(self, namespace: str, cluster: str, group: str, pod: str, action: Action) -> None:
        key = f"{namespace}/{pod}"
        self._drop(key)
        self._items[key] = _Expectation(namespace, cluster, group, pod, action, self._clock())
        self._by_group.setdefault(f"{namespace}/{cluster}/{group}", set()).add(key)

    def is_satisfied(self, namespace: str, cluster: str, group: str) -> bool:
        """True when every expectation of the group has come true (satisfied ones are forgotten)."""
        keys = self._by_group.get(f"{namespace}/{cluster}/{group}")
        if not keys:
            return True
        for key in sorted(keys):
            e = self._items[key]
            present = self._exists(e.namespace, e.pod)
            if e.action is Action.CREATE:
                done = present or self._clock() - e.recorded >= EXPECTATIONS_TIMEOUT
            else:
                done = not present
            if not done:
                return False
            self._drop(key)
        return True

    def delete_group(self, namespace: str, cluster: str, group: str) -> None:
        for key in list(self._by_group.get(f"{namespace}/{cluster}/{group}", ())):
            self._drop(key)

    def delete_cluster(self, namespace: str, cluster: str) -> None:
        prefix = f"{namespace}/{cluster}/"
        for g in [g for g in self._by_group if g.startswith(prefix)]:
            for key in list(self._by_group.get(g, ())):
                self._drop(key)

    def pending(self) -> int:
        return len(self._items)

    def _drop(self, key: str) -> None:
        e = self._items.pop(key, None)
        if e is None:
            return
        gk = f"{e.namespace}/{e.cluster}/{e.group}"
        keys = self._by_group.get(gk)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_group[gk]
