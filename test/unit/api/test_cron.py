"""api/v1/_cron.py against robfig/cron v3.0.1 itself: the answers in cron_cases.json were produced by
hack/cron-oracle (robfig's ParseStandard and Next, `make cron-cases`) for every schedule there, in six
zones and with two operator zones, around DST changes, leap days and year ends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.v1._cron import CronError, load_location, parse_standard
from api.v1.errors import ValidationError
from api.v1.validation import validate_ray_cron_job_spec

CASES: dict[str, list[dict[str, Any]]] = json.loads((Path(__file__).parent / "cron_cases.json").read_text())


def _answer(spec: str, after: int, count: int) -> dict[str, Any]:
    out: dict[str, Any] = {"spec": spec, "after": after}
    try:
        schedule = parse_standard(spec)
    except CronError as e:
        out["error"] = str(e)
        return out
    nexts: list[int | None] = []
    t: int | None = after
    for _ in range(count):
        assert t is not None
        t = schedule.next(t)
        nexts.append(t)
        if t is None:
            break
    out["next"] = nexts
    return out


@pytest.mark.parametrize("local", sorted(CASES))
def test_schedules_fire_when_robfig_fires_and_fail_with_its_messages(
    local: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", local)  # robfig's time.Local is the operator's zone
    wrong = []
    for case in CASES[local]:
        count = len(case.get("next") or [None])
        mine = _answer(case["spec"], case["after"], max(count, 1))
        want = {k: case[k] for k in ("spec", "after", "error", "next") if k in case}
        if mine != want:
            wrong.append((want, mine))
    assert not wrong, f"{len(wrong)} of {len(CASES[local])} differ; first: {wrong[:3]}"


def test_time_zones_load_as_go_loads_them() -> None:
    assert load_location("UTC") is load_location("")
    assert str(load_location("Europe/Berlin")) == "Europe/Berlin"
    load_location("Local")  # Go's time.Local: always valid
    for name, message in (
        ("Mars/Olympus", "unknown time zone Mars/Olympus"),
        ("utc", "unknown time zone utc"),
        ("../etc/passwd", "time: invalid location name"),
        ("/etc/localtime", "time: invalid location name"),
    ):
        with pytest.raises(ValueError, match=f"^{message}$"):
            load_location(name)


def _cron(name: str = "nightly", **spec: Any) -> dict[str, Any]:
    head = {"template": {"spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.52.0"}]}}}
    template = {"entrypoint": "python x.py", "rayClusterSpec": {"headGroupSpec": head}}
    return {"metadata": {"name": name}, "spec": {"schedule": "* * * * *", "jobTemplate": template, **spec}}


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        # upstream's order: the first failing rule wins
        (_cron("x" * 37, schedule="bad"), "RayCronJob name should be no more than 36 characters"),
        (_cron(schedule="CRON_TZ=UTC x"), "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
        (
            _cron(schedule="@every 1x", timeZone=""),
            'invalid cron schedule: failed to parse duration @every 1x: time: unknown unit "x" in duration "1x"',
        ),
        (
            _cron(timeZone=""),
            "timeZone must not be empty string, omit the field to use the local time zone of the KubeRay operator",
        ),
        (_cron(timeZone="Europe/Nowhere", jobTemplate={}), "invalid time zone: unknown time zone Europe/Nowhere"),
        (
            _cron(jobTemplate={"entrypoint": "x", "clusterSelector": {"a": "b"}, "suspend": True}),
            "invalid RayJob template: The RayJob spec is invalid: a RayJob with shutdownAfterJobFinishes set to "
            "false is not allowed to be suspended",
        ),
    ],
)
def test_validation_rules_in_upstreams_order(cron: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        validate_ray_cron_job_spec(cron)
    assert str(err.value) == message


def test_a_valid_raycronjob_passes() -> None:
    validate_ray_cron_job_spec(_cron("x" * 36, schedule="@every 1h", timeZone="Local"))
    validate_ray_cron_job_spec(_cron(schedule="0 3 * * MON-FRI", timeZone="America/New_York"))
