"""Feature gates with upstream's names and defaults, parsed from --feature-gates=Name=bool,…"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULTS: dict[str, bool] = {
    "RayClusterStatusConditions": True,
    "RayJobDeletionPolicy": True,
    "RayMultiHostIndexing": True,
    "RayServiceIncrementalUpgrade": True,
    "RayCronJob": False,
    "SidecarSubmitterRestart": False,
    "RayClusterNetworkPolicy": False,
    "GCSFaultToleranceEmbeddedStorage": False,
    "RayClusterMTLS": False,
    "RayClusterHistoryServer": False,
    "KubernetesWAS": False,
}


@dataclass(frozen=True)
class FeatureGates:
    values: Mapping[str, bool] = field(default_factory=lambda: dict(DEFAULTS))

    @classmethod
    def parse(cls, spec: str | None) -> FeatureGates:
        """Parse "A=true,B=false"; unknown names and non-boolean values are errors, as upstream."""
        values = dict(DEFAULTS)
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, raw = part.partition("=")
            name = name.strip()
            if not sep:
                raise ValueError(f"missing bool value for feature gate {name!r}")
            if name not in DEFAULTS:
                raise ValueError(f"unrecognized feature gate: {name}")
            val = raw.strip().lower()
            if val not in ("true", "false"):
                raise ValueError(f"invalid value of {name}={raw.strip()}, err: must be true or false")
            values[name] = val == "true"
        return cls(values)

    def enabled(self, name: str) -> bool:
        return self.values[name]

    def __str__(self) -> str:
        return ",".join(f"{k}={str(v).lower()}" for k, v in sorted(self.values.items()))
