"""Scale expectations hold a group back until the cache shows what was just created or deleted."""

from __future__ import annotations

from controllers.ray.expectations import EXPECTATIONS_TIMEOUT, HEAD_GROUP, Action, ScaleExpectations


class Cache:
    def __init__(self) -> None:
        self.pods: set[tuple[str, str]] = set()
        self.now = 0.0

    def exists(self, ns: str, name: str) -> bool:
        return (ns, name) in self.pods


def test_create_is_satisfied_when_the_cache_shows_the_pod_or_after_the_timeout() -> None:
    c = Cache()
    e = ScaleExpectations(c.exists, clock=lambda: c.now)
    e.expect("ns", "rc", "g", "p1", Action.CREATE)
    e.expect("ns", "rc", "g", "p2", Action.CREATE)
    assert not e.is_satisfied("ns", "rc", "g")
    assert e.is_satisfied("ns", "rc", HEAD_GROUP)  # other groups are not held back
    c.pods.add(("ns", "p1"))
    assert not e.is_satisfied("ns", "rc", "g")
    assert e.pending() == 1  # p1 is forgotten once seen
    c.now = EXPECTATIONS_TIMEOUT
    assert e.is_satisfied("ns", "rc", "g")
    assert e.pending() == 0


def test_delete_is_satisfied_only_when_the_pod_is_gone() -> None:
    c = Cache()
    c.pods.add(("ns", "w"))
    e = ScaleExpectations(c.exists, clock=lambda: c.now)
    e.expect("ns", "rc", "g", "w", Action.DELETE)
    c.now = 10 * EXPECTATIONS_TIMEOUT  # deletes never time out
    assert not e.is_satisfied("ns", "rc", "g")
    c.pods.clear()
    assert e.is_satisfied("ns", "rc", "g")


def test_forgetting_a_cluster_or_group() -> None:
    c = Cache()
    e = ScaleExpectations(c.exists, clock=lambda: c.now)
    e.expect("ns", "a", "g", "p", Action.CREATE)
    e.expect("ns", "a-b", "g", "q", Action.CREATE)
    e.delete_cluster("ns", "a")
    assert e.is_satisfied("ns", "a", "g")
    assert not e.is_satisfied("ns", "a-b", "g")
    e.delete_group("ns", "a-b", "g")
    assert e.pending() == 0
