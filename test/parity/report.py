"""Re-applies allowed_differences.yaml to the JSON results the tier kept (test-artifacts/parity/*.json)
and prints each result's summary and the differences grouped by (kind, path): for editing the allowed
list without another run. ``python test/parity/report.py [files...]``"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness import Difference, Result, apply_allowed, load_allowed

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "parity"


def load(path: Path) -> Result:
    raw = json.loads(path.read_text())
    r = Result(raw["label"])
    for k in ("compared", "identical", "only_ours", "only_upstream"):
        getattr(r, k).update(raw[k])
    r.unsettled = raw["unsettled"]
    r.hash_problems = raw.get("hash_problems", [])
    r.differences = [Difference(**{**d, "allowed_by": ""}) for d in raw["differences"]]
    return r


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or sorted(f for f in ARTIFACTS.glob("*.json") if not f.name.endswith(".raw.json"))
    allowed = load_allowed()
    used: Counter[str] = Counter()
    for f in files:
        r = load(f)
        apply_allowed(r, allowed)
        used.update(d.allowed_by for d in r.differences if d.allowed_by)
        print(r.report().split("\n  differences:")[0])
        groups: Counter[tuple[str, str]] = Counter()
        example: dict[tuple[str, str], Difference] = {}
        for d in r.failures():
            key = (d.kind, re.sub(r"\[\d+\]", "[]", d.path) or "<object>")
            groups[key] += 1
            example.setdefault(key, d)
        for key, n in sorted(groups.items()):
            print(f"  {n:4d} x {example[key].line()[:400]}")
    print("allowed entries used:", dict(used))
    print("allowed entries unused:", [a.id for a in allowed if a.id not in used])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
