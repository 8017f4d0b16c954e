"""A reconcile that would read the RayCluster from before its own status write waits for the cache
(controllers/ray/utils/own_writes.py) instead of redoing the write into a Conflict; bounded in time."""

from __future__ import annotations

from controllers.ray.utils.own_writes import OwnWrites


def test_waits_only_while_the_cache_shows_the_replaced_version_and_only_for_a_while() -> None:
    now = [0.0]
    w = OwnWrites(window=2.0, clock=lambda: now[0])
    assert not w.unseen("ns/a", "10")  # nothing written
    w.wrote("ns/a", "10")
    assert w.unseen("ns/a", "10")  # the cache still has the version the write replaced
    assert not w.unseen("ns/b", "10")  # other objects are not held
    assert not w.unseen("ns/a", "11")  # the cache moved on: run, and stop tracking
    assert not w.unseen("ns/a", "10")
    w.wrote("ns/a", "12")
    now[0] = 2.5
    assert not w.unseen("ns/a", "12")  # a watch that never delivers does not stall the cluster
    w.wrote("ns/a", "13")
    w.forget("ns/a")
    assert not w.unseen("ns/a", "13")
    w.wrote("ns/a", "")  # no version known: nothing to wait for
    assert not w.unseen("ns/a", "")
