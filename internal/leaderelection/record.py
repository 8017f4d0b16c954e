"""The leader election record and its mapping to and from a coordination.k8s.io/v1 Lease spec."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson


def format_micro_time(dt: datetime) -> str:
    """A metav1.MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class LeaderElectionRecord:
    """What a Lease says about its holder (client-go ``resourcelock.LeaderElectionRecord``).

    Times are kept as the server's strings: they are written for humans and other tools, never
    compared with the local clock (expiry is judged by local observation time only)."""

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    leader_transitions: int = 0
    strategy: str | None = None
    preferred_holder: str | None = None

    @classmethod
    def from_lease_spec(cls, spec: Mapping[str, Any] | None) -> LeaderElectionRecord:
        spec = spec or {}
        return cls(
            holder_identity=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            leader_transitions=int(spec.get("leaseTransitions") or 0),
            strategy=spec.get("strategy"),
            preferred_holder=spec.get("preferredHolder"),
        )

    def to_lease_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder_identity,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.leader_transitions,
        }
        if self.acquire_time is not None:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time is not None:
            spec["renewTime"] = self.renew_time
        if self.strategy:
            spec["strategy"] = self.strategy
        if self.preferred_holder:
            spec["preferredHolder"] = self.preferred_holder
        return spec

    def raw(self) -> bytes:
        """Canonical bytes, compared to decide whether the record changed since the last look."""
        return orjson.dumps(self.to_lease_spec(), option=orjson.OPT_SORT_KEYS)

    def with_(self, **changes: Any) -> LeaderElectionRecord:
        return replace(self, **changes)
