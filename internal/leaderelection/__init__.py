"""Leader election on a coordination.k8s.io/v1 Lease, ported from client-go's ``tools/leaderelection``
with controller-runtime's defaults (15 s lease, 10 s renew deadline, 2 s retry period)."""

from internal.leaderelection.elector import (
    EVENT_REASON,
    JITTER_FACTOR,
    LeaderElectionConfig,
    LeaderElectionLost,
    LeaderElector,
    LeaseClient,
    default_identity,
    master_status_gauge,
)
from internal.leaderelection.record import LeaderElectionRecord, format_micro_time

__all__ = [
    "EVENT_REASON",
    "JITTER_FACTOR",
    "LeaderElectionConfig",
    "LeaderElectionLost",
    "LeaderElectionRecord",
    "LeaderElector",
    "LeaseClient",
    "default_identity",
    "format_micro_time",
    "master_status_gauge",
]
