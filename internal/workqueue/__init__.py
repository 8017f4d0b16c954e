"""asyncio port of client-go's ``util/workqueue``: a deduplicating work queue, delayed adds, rate
limiters and the ``workqueue_*`` metrics, for controller workers on one event loop."""

from .clock import Clock, FakeClock, LoopClock, Timer
from .delaying import DelayingQueue
from .metrics import DURATION_BUCKETS, MetricsProvider, PrometheusMetricsProvider
from .queue import DequeFifo, Fifo, Queue, QueueShutDown
from .ratelimiter import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    ItemFastSlowRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    WithMaxWaitRateLimiter,
    default_controller_rate_limiter,
    default_item_based_rate_limiter,
)
from .ratelimiting import RateLimitingQueue

__all__ = [
    "DURATION_BUCKETS",
    "BucketRateLimiter",
    "Clock",
    "DelayingQueue",
    "DequeFifo",
    "FakeClock",
    "Fifo",
    "ItemExponentialFailureRateLimiter",
    "ItemFastSlowRateLimiter",
    "LoopClock",
    "MaxOfRateLimiter",
    "MetricsProvider",
    "PrometheusMetricsProvider",
    "Queue",
    "QueueShutDown",
    "RateLimiter",
    "RateLimitingQueue",
    "Timer",
    "WithMaxWaitRateLimiter",
    "default_controller_rate_limiter",
    "default_item_based_rate_limiter",
]
