"""Label selectors: parse the string form and match label maps (equality and set-based)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        v = labels.get(self.key)
        match self.op:
            case "=" | "in":
                return has and v in self.values
            case "!=" | "notin":
                return not has or v not in self.values
            case "exists":
                return has
            case _:
                return not has


def _split(s: str) -> list[str]:
    # Commas inside "in (a,b)" do not separate requirements.
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...]

    @classmethod
    def parse(cls, s: str | None) -> Selector:
        reqs: list[Requirement] = []
        for part in _split(s or ""):
            if m := _SET_RE.match(part):
                vals = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
                reqs.append(Requirement(m.group(1), m.group(2), vals))
            elif "!=" in part:
                k, v = part.split("!=", 1)
                reqs.append(Requirement(k.strip(), "!=", frozenset([v.strip()])))
            elif "=" in part:
                k, v = part.split("==", 1) if "==" in part else part.split("=", 1)
                reqs.append(Requirement(k.strip(), "=", frozenset([v.strip()])))
            elif part.startswith("!"):
                reqs.append(Requirement(part[1:].strip(), "!"))
            else:
                reqs.append(Requirement(part, "exists"))
        return cls(tuple(reqs))

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Selector:
        return cls(tuple(Requirement(k, "=", frozenset([v])) for k, v in sorted(labels.items())))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        out = []
        for r in self.requirements:
            if r.op in ("=", "!="):
                out.append(f"{r.key}{r.op}{next(iter(r.values))}")
            elif r.op in ("in", "notin"):
                out.append(f"{r.key} {r.op} ({','.join(sorted(r.values))})")
            elif r.op == "exists":
                out.append(r.key)
            else:
                out.append(f"!{r.key}")
        return ",".join(out)
