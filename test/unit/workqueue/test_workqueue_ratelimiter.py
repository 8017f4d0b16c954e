"""Rate limiter arithmetic: exponential backoff, token bucket, fast/slow, max-of, max-wait, defaults."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from internal.workqueue import (
    BucketRateLimiter,
    FakeClock,
    ItemExponentialFailureRateLimiter,
    ItemFastSlowRateLimiter,
    MaxOfRateLimiter,
    WithMaxWaitRateLimiter,
    default_controller_rate_limiter,
    default_item_based_rate_limiter,
)
from internal.workqueue.ratelimiter import INF_DURATION

MS = 0.001


def test_exponential_sequence_5ms_doubling_capped_at_1000s() -> None:
    rl: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(5 * MS, 1000.0)
    delays = [rl.when("k") for _ in range(25)]
    assert delays[:8] == [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64]
    assert delays[8:12] == [1.28, 2.56, 5.12, 10.24]
    assert delays[17] == 655.36  # 18th failure
    assert delays[18:] == [1000.0] * 7  # 19th onwards
    assert sum(delays[:18]) == pytest.approx(1310.715)
    assert rl.num_requeues("k") == 25


def test_exponential_forget_resets_and_items_are_independent() -> None:
    rl: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(5 * MS, 1000.0)
    for _ in range(4):
        rl.when("a")
    assert rl.when("b") == 0.005
    assert rl.when("a") == 0.08
    rl.forget("a")
    assert rl.num_requeues("a") == 0
    assert rl.when("a") == 0.005
    assert rl.num_requeues("b") == 1
    rl.forget("never-seen")


def test_exponential_is_overflow_safe() -> None:
    rl: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(5 * MS, 1000.0)
    for _ in range(3000):  # 2**3000 overflows a float
        assert rl.when("k") <= 1000.0
    assert rl.when("k") == 1000.0


@settings(max_examples=100)
@given(
    base=st.floats(min_value=1e-6, max_value=10.0),
    cap=st.floats(min_value=1e-3, max_value=1e6),
    failures=st.integers(min_value=1, max_value=1200),
)
def test_exponential_kth_failure_is_min_of_doubling_and_cap(base: float, cap: float, failures: int) -> None:
    rl: ItemExponentialFailureRateLimiter[int] = ItemExponentialFailureRateLimiter(base, cap)
    delays = [rl.when(0) for _ in range(failures)]
    capped = False
    for k, d in enumerate(delays):
        # Exact arithmetic in the oracle (no float overflow); once over the cap it stays there.
        capped = capped or Fraction(base) * 2**k > cap
        assert d == (cap if capped else base * 2**k)
    assert delays == sorted(delays)
    assert rl.num_requeues(0) == failures


def test_default_item_based_limiter_starts_at_1ms() -> None:
    rl: ItemExponentialFailureRateLimiter[str] = default_item_based_rate_limiter()
    assert [rl.when("k") for _ in range(3)] == [0.001, 0.002, 0.004]


def test_bucket_burst_of_100_then_100ms_spacing(clock: FakeClock) -> None:
    rl = BucketRateLimiter(10.0, 100, clock)
    assert [rl.when(i) for i in range(100)] == [0.0] * 100
    beyond = [rl.when(i) for i in range(5)]
    assert beyond == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5], abs=1e-9)
    assert rl.num_requeues("x") == 0
    rl.forget("x")  # no-op: the bucket has no per-item state
    assert rl.when("x") == pytest.approx(0.6, abs=1e-9)


def test_bucket_refills_at_qps(clock: FakeClock) -> None:
    rl = BucketRateLimiter(10.0, 100, clock)
    for i in range(100):
        rl.when(i)
    clock.advance(0.1)
    assert rl.when("a") == 0.0  # one token refilled
    assert rl.when("b") == pytest.approx(0.1, abs=1e-9)
    clock.advance(60.0)  # refills to the burst, not beyond
    assert [rl.when(i) for i in range(100)] == [0.0] * 100
    assert rl.when("c") == pytest.approx(0.1, abs=1e-9)


def test_bucket_edge_limits(clock: FakeClock) -> None:
    assert BucketRateLimiter(10.0, 0, clock).when("k") == INF_DURATION
    assert BucketRateLimiter(float("inf"), 0, clock).when("k") == 0.0
    zero_rate = BucketRateLimiter(0.0, 2, clock)
    assert [zero_rate.when("k") for _ in range(3)] == [0.0, 0.0, INF_DURATION]


@settings(max_examples=150)
@given(
    qps=st.sampled_from([1.0, 10.0, 50.0]),
    burst=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=150),
)
def test_bucket_never_grants_more_than_burst_plus_rate(qps: float, burst: int, gaps: list[int]) -> None:
    clock = FakeClock(start=0.0)
    rl = BucketRateLimiter(qps, burst, clock)
    calls: list[tuple[float, float]] = []  # (time of call, delay)
    for gap_ms in gaps:
        clock.advance(gap_ms / 1000)
        calls.append((clock.now(), rl.when("k")))
    assert all(d >= 0 for _, d in calls)
    for (t0, d0), (t1, d1) in itertools.pairwise(calls):
        assert t1 + d1 >= t0 + d0 - 1e-9, "reservations out of order"
        if d0 > 0 and d1 > 0:  # in debt: each further reservation acts exactly 1/qps later
            assert (t1 + d1) - (t0 + d0) == pytest.approx(1 / qps, abs=1e-6)
    granted = [0]  # prefix counts of calls that got a token at once
    for _, d in calls:
        granted.append(granted[-1] + (d == 0))
    for i in range(len(calls)):
        for j in range(i, len(calls)):
            window = calls[j][0] - calls[i][0]
            assert granted[j + 1] - granted[i] <= burst + qps * window + 1e-6


def test_fast_slow() -> None:
    rl: ItemFastSlowRateLimiter[str] = ItemFastSlowRateLimiter(0.01, 5.0, 3)
    assert [rl.when("k") for _ in range(5)] == [0.01, 0.01, 0.01, 5.0, 5.0]
    assert rl.num_requeues("k") == 5
    assert rl.when("other") == 0.01
    rl.forget("k")
    assert rl.num_requeues("k") == 0
    assert rl.when("k") == 0.01


class Spy:
    def __init__(self, delay: float, requeues: int) -> None:
        self.delay = delay
        self.requeues = requeues
        self.when_calls = 0
        self.forgotten: list[str] = []

    def when(self, item: str) -> float:
        self.when_calls += 1
        return self.delay

    def num_requeues(self, item: str) -> int:
        return self.requeues

    def forget(self, item: str) -> None:
        self.forgotten.append(item)


def test_max_of_consults_every_limiter_and_returns_the_max() -> None:
    spies = [Spy(0.5, 1), Spy(2.0, 7), Spy(0.0, 3)]
    rl: MaxOfRateLimiter[str] = MaxOfRateLimiter(*spies)
    assert rl.when("k") == 2.0
    assert rl.when("k") == 2.0
    assert [s.when_calls for s in spies] == [2, 2, 2]
    assert rl.num_requeues("k") == 7
    rl.forget("k")
    assert all(s.forgotten == ["k"] for s in spies)


def test_with_max_wait_caps_the_delay() -> None:
    inner: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(1.0, 1000.0)
    rl = WithMaxWaitRateLimiter(inner, 3.0)
    assert [rl.when("k") for _ in range(4)] == [1.0, 2.0, 3.0, 3.0]
    assert rl.num_requeues("k") == 4
    rl.forget("k")
    assert rl.when("k") == 1.0


def test_default_controller_limiter_is_max_of_exponential_and_bucket(clock: FakeClock) -> None:
    rl: MaxOfRateLimiter[str] = default_controller_rate_limiter(clock)
    # 100 distinct keys fail once: the bucket still has tokens, so the exponential 5 ms wins.
    assert [rl.when(f"k{i}") for i in range(100)] == [0.005] * 100
    # A failure storm throttles unrelated keys: a fresh key now waits on the bucket.
    assert rl.when("fresh") == pytest.approx(0.1, abs=1e-9)
    for i in range(48):
        rl.when(f"storm{i}")
    assert rl.when("another-fresh") == pytest.approx(5.0, abs=1e-9)
    # Repeated failures of one key: the exponential part takes over once it exceeds the bucket's debt.
    clock.advance(3600.0)
    assert [rl.when("k0") for _ in range(3)] == [0.01, 0.02, 0.04]
    assert rl.num_requeues("k0") == 4
    rl.forget("k0")
    assert rl.num_requeues("k0") == 0
    assert rl.when("k0") == 0.005
