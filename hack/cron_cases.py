"""Regenerate test/unit/api/cron_cases.json: robfig/cron's own answers (hack/cron-oracle, built with the Go
toolchain from the module proxy) to the schedules and instants below, which test/unit/api/test_cron.py
compares api/v1/_cron.py with. Run by `make cron-cases`; the file is committed, so tests need no Go.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test" / "unit" / "api" / "cron_cases.json"
LOCAL_ZONES = ("UTC", "America/New_York")  # $TZ for both sides: robfig's time.Local

FIELDS = [
    "* * * * *",
    "*/15 9-17 * * MON-FRI",
    "0 0 1 * *",
    "0 0 * * 0",
    "0 0 13 * 5",  # both day fields restricted: either matches
    "0 0 */2 * *",
    "5-10/2 * * * *",
    "30 2 * * *",  # DST gap in Europe and America
    "30 1 * * *",  # DST repeat in America
    "0 0 29 2 *",
    "0 0 30 2 *",  # never: no activation in five years
    "0 0 31 * *",
    "0 12 * JAN,jul ?",
    "59 23 31 12 *",
    "0 0 1 1 *",
    "0/20 * * * *",
    "3/7 1-5 * * *",
    "1,2,,3 * * * *",
    ", * * * *",
    "0 0 * * 7",
    "0 0 * * SUN-SAT",
    "00 +1 * * *",
]
DESCRIPTORS = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"]
EVERY = ["@every 1s", "@every 90s", "@every 1h30m", "@every 500ms", "@every 1.5s", "@every 2m3.9s"]
INVALID = [
    "",
    "x",
    "* * * *",
    "* * * * * *",
    "@foo",
    "@every",
    "@every ",
    "@every x",
    "@every -5s",
    "60 * * * *",
    "0-60 * * * *",
    "* 24 * * *",
    "* * 0 * *",
    "* * 32 * *",
    "* * * 13 *",
    "* * * 0 *",
    "* * * * 8",
    "x * * * *",
    "-1 * * * *",
    "1-2-3 * * * *",
    "1/2/3 * * * *",
    "5-1 * * * *",
    "*/0 * * * *",
    "*/x * * * *",
    "99999999999999999999 * * * *",
    "* * * FOO *",
    "* * * * MONDAY",
    "TZ=Nowhere/City * * * * *",
    "@Daily",
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Apia"]


def _ts(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())  # type: ignore[misc]


AFTERS = [
    _ts(2026, 12, 7, 10, 11, 12),
    _ts(2026, 3, 29, 0, 45, 0),  # just before Europe's spring-forward
    _ts(2026, 3, 8, 6, 30, 0),  # just before America's spring-forward
    _ts(2026, 11, 1, 5, 10, 0),  # inside America's fall-back hour
    _ts(2026, 10, 25, 0, 20, 0),  # just before Europe's fall-back
    _ts(2028, 2, 28, 23, 59, 59),  # leap year
    _ts(2026, 12, 31, 23, 59, 30),  # year end
]


def questions() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for spec in [*FIELDS, *DESCRIPTORS]:
        for zone in (None, *ZONES):
            full = spec if zone is None else f"TZ={zone} {spec}"
            out += [{"spec": full, "after": a, "count": 4} for a in AFTERS]
    out += [{"spec": spec, "after": a, "count": 3} for spec in EVERY for a in AFTERS[:2]]
    out += [{"spec": spec, "after": AFTERS[0], "count": 1} for spec in INVALID]
    return out


def main() -> int:
    qs = "".join(json.dumps(q) + "\n" for q in questions())
    cases: dict[str, list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "cron-oracle"
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=ROOT / "hack" / "cron-oracle", check=True)
        for local in LOCAL_ZONES:
            env = {**os.environ, "TZ": local}
            res = subprocess.run([str(binary)], input=qs, env=env, capture_output=True, text=True, check=True)
            answers = [json.loads(line) for line in res.stdout.splitlines()]
            # The operator's zone matters only to schedules without TZ=; the first zone keeps them all.
            cases[local] = [a for a in answers if not cases or not a["spec"].startswith("TZ=")]
    # A case per line: reviewable diffs when robfig's pin or the questions change.
    zones = [
        f"{json.dumps(z)}: [\n" + ",\n".join(json.dumps(a, sort_keys=True) for a in c) + "\n]" for z, c in cases.items()
    ]
    OUT.write_text("{\n" + ",\n".join(zones) + "\n}\n")
    print(f"wrote {sum(len(c) for c in cases.values())} cases to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
