"""Cron schedules as upstream reads them: ``cron.ParseStandard`` of github.com/robfig/cron v3.0.1 (5 fields
or a descriptor, an optional ``TZ=<zone>`` prefix) and its ``Next``, with Go's ``time`` semantics for
wall-clock arithmetic (``time.Date`` normalisation, DST gaps and repeats), so a RayCronJob fires at the
same instants and fails validation with the same messages as under upstream's operator.

Times are whole Unix seconds: RayCronJob times (``creationTimestamp``, ``status.lastScheduleTime``) are
RFC 3339 without fractions, and every ``Next`` result is on a whole second.

``test/unit/api/test_cron.py`` compares this module with robfig itself (``hack/cron_oracle``).
"""

from __future__ import annotations

import calendar
import datetime as dt
import os
import re
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._goutil import DurationError, atoi, go_list, parse_duration

__all__ = ["CronError", "Schedule", "load_location", "parse_standard"]

_STAR = 1 << 63  # robfig's starBit: the field was "*" or "?" (decides how the two day fields combine)
_SECOND = 1_000_000_000


class CronError(ValueError):
    """A schedule robfig refuses; the message is robfig's."""


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: dict[str, int] | None = None


_SECONDS = _Bounds(0, 59)
_MINUTES = _Bounds(0, 59)
_HOURS = _Bounds(0, 23)
_DOM = _Bounds(1, 31)
_MONTHS = _Bounds(1, 12, {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_DOW = _Bounds(0, 6, {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))})


class Schedule(Protocol):
    def next(self, after: int) -> int | None:
        """The first activation strictly after ``after`` (Unix seconds); None when there is none in
        the next five years (robfig returns Go's zero time then)."""
        ...


# ---- zones --------------------------------------------------------------------------------------------


def _local_zone() -> dt.tzinfo:
    """Go's ``time.Local``: $TZ when set (empty or unknown means UTC), else /etc/localtime, else UTC."""
    tz = os.environ.get("TZ")
    if tz is not None:
        try:
            return ZoneInfo(tz.removeprefix(":")) if tz else dt.UTC
        except (ZoneInfoNotFoundError, ValueError):
            return dt.UTC
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="Local")
    except (OSError, ValueError):
        return dt.UTC


def load_location(name: str) -> dt.tzinfo:
    """``time.LoadLocation``: "" and "UTC" are UTC, "Local" the operator's zone, anything else an IANA
    name; raises ValueError with Go's message."""
    if name in ("", "UTC"):
        return dt.UTC
    if name == "Local":
        return _local_zone()
    if name.startswith(("/", "\\")) or ".." in name.split("/"):
        raise ValueError("time: invalid location name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name}") from None


def _offset(zone: dt.tzinfo, unix: int) -> int:
    off = dt.datetime.fromtimestamp(unix, zone).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def _wall(zone: dt.tzinfo, unix: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix, zone)


def _date(zone: dt.tzinfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> int:
    """``time.Date(...).Unix()``: out-of-range fields carry over (Jan 32 is Feb 1); a wall time that a
    DST change skips or repeats is resolved as Go does (the offset in force at the naive instant, then
    the offset at the instant that gives)."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    naive = dt.datetime(year, month, 1) + dt.timedelta(days=day - 1, hours=hour, minutes=minute, seconds=sec)
    wall = calendar.timegm(naive.timetuple())
    return wall - _offset(zone, wall - _offset(zone, wall))


# ---- schedules ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConstantDelay:
    """``@every <duration>``: fixed steps, whole seconds, at least one; the zone plays no part."""

    delay: int  # seconds

    def next(self, after: int) -> int | None:
        return after + self.delay


@dataclass(frozen=True)
class SpecSchedule:
    """Bit sets of the allowed seconds, minutes, hours, days of month, months and days of week."""

    second: int
    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    zone: dt.tzinfo | None = None  # None: the operator's local zone (Go's time.Local)

    def _day_matches(self, t: dt.datetime) -> bool:
        dom = bool(1 << t.day & self.dom)
        dow = bool(1 << (t.weekday() + 1) % 7 & self.dow)
        if self.dom & _STAR or self.dow & _STAR:
            return dom and dow
        return dom or dow

    def _never(self) -> bool:
        """A field that allows nothing (``,`` parses to an empty set): robfig would step through five
        years of minutes before giving up; the answer is the same."""
        if not (self.second and self.minute and self.hour and self.month):
            return True
        if self.dom & _STAR or self.dow & _STAR:
            return not (self.dom and self.dow)
        return not (self.dom or self.dow)

    def next(self, after: int) -> int | None:
        if self._never():
            return None
        zone = self.zone if self.zone is not None else _local_zone()
        t = after + 1
        added = False  # once a field moved, the lower ones start from their lowest value
        year_limit = _wall(zone, t).year + 5
        while True:  # robfig's WRAP: a field rolled over, so the higher ones are checked again
            w = _wall(zone, t)
            if w.year > year_limit:
                return None
            wrapped = False
            while not 1 << w.month & self.month:
                if not added:
                    added = True
                    t = _date(zone, w.year, w.month, 1)
                    w = _wall(zone, t)
                t = _date(zone, w.year, w.month + 1, w.day, w.hour, w.minute, w.second)
                w = _wall(zone, t)
                if w.month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self._day_matches(w):
                if not added:
                    added = True
                    t = _date(zone, w.year, w.month, w.day)
                    w = _wall(zone, t)
                t = _date(zone, w.year, w.month, w.day + 1, w.hour, w.minute, w.second)
                w = _wall(zone, t)
                if w.hour:  # a DST change moved midnight: back to the day's start, or on to the next
                    t += (24 - w.hour) * 3600 if w.hour > 12 else -w.hour * 3600
                    w = _wall(zone, t)
                if w.day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not 1 << w.hour & self.hour:
                if not added:
                    added = True
                    t = _date(zone, w.year, w.month, w.day, w.hour)
                t += 3600
                w = _wall(zone, t)
                if w.hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not 1 << w.minute & self.minute:
                if not added:
                    added = True
                    t -= t % 60  # Go's Truncate: on the absolute time line, not the wall clock
                t += 60
                w = _wall(zone, t)
                if w.minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not 1 << w.second & self.second:
                added = True
                t += 1
                w = _wall(zone, t)
                if w.second == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            return t


# ---- parsing ------------------------------------------------------------------------------------------


def _number(expr: str) -> int:
    try:
        n = atoi(expr)
    except ValueError as e:
        raise CronError(f"failed to parse int from {expr}: {e}") from None
    if n < 0:
        raise CronError(f"negative number ({n}) not allowed: {expr}")
    return n


def _number_or_name(expr: str, names: dict[str, int] | None) -> int:
    if names is not None and expr.lower() in names:
        return names[expr.lower()]
    return _number(expr)


def _bits(low: int, high: int, step: int) -> int:
    return sum(1 << i for i in range(low, high + 1, step))


def _range(expr: str, b: _Bounds) -> int:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    extra = 0
    if low_and_high[0] in ("*", "?"):
        start, end, extra = b.low, b.high, _STAR
    else:
        start = _number_or_name(low_and_high[0], b.names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _number_or_name(low_and_high[1], b.names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _number(range_and_step[1])
        if len(low_and_high) == 1:  # "N/step" runs to the field's end
            end = b.high
        if step > 1:
            extra = 0
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < b.low:
        raise CronError(f"beginning of range ({start}) below minimum ({b.low}): {expr}")
    if end > b.high:
        raise CronError(f"end of range ({end}) above maximum ({b.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return _bits(start, end, step) | extra


def _field(text: str, b: _Bounds) -> int:
    bits = 0
    for expr in (part for part in text.split(",") if part):
        bits |= _range(expr, b)
    return bits


def _all(b: _Bounds) -> int:
    return _bits(b.low, b.high, 1) | _STAR


def _descriptor(spec: str, zone: dt.tzinfo | None) -> Schedule:
    def at(minute: int, hour: int, dom: int, month: int, dow: int) -> SpecSchedule:
        return SpecSchedule(1, minute, hour, dom, month, dow, zone)

    first = 1 << 0
    if spec in ("@yearly", "@annually"):
        return at(first, first, 1 << 1, 1 << 1, _all(_DOW))
    if spec == "@monthly":
        return at(first, first, 1 << 1, _all(_MONTHS), _all(_DOW))
    if spec == "@weekly":
        return at(first, first, _all(_DOM), _all(_MONTHS), first)
    if spec in ("@daily", "@midnight"):
        return at(first, first, _all(_DOM), _all(_MONTHS), _all(_DOW))
    if spec == "@hourly":
        return at(first, _all(_HOURS), _all(_DOM), _all(_MONTHS), _all(_DOW))
    if spec.startswith("@every "):
        try:
            ns = parse_duration(spec[len("@every ") :])
        except DurationError as e:
            raise CronError(f"failed to parse duration {spec}: {e}") from None
        ns = max(ns, _SECOND)
        return ConstantDelay((ns - ns % _SECOND) // _SECOND)
    raise CronError(f"unrecognized descriptor: {spec}")


_TZ_PREFIX = re.compile(r"(?:CRON_)?TZ=")
# Go's unicode.IsSpace, which strings.Fields splits on (Python's str.split also splits on \x1c-\x1f).
_GO_SPACE = re.compile("[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


def parse_standard(spec: str) -> Schedule:
    """``cron.ParseStandard``: minute, hour, day of month, month, day of week; or a descriptor."""
    if not spec:
        raise CronError("empty spec string")
    zone: dt.tzinfo | None = None
    if _TZ_PREFIX.match(spec):
        space, eq = spec.find(" "), spec.find("=")
        name = spec[eq + 1 : space] if space > eq else spec[eq + 1 :]
        try:
            zone = load_location(name)
        except ValueError as e:
            raise CronError(f"provided bad location {name}: {e}") from None
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        return _descriptor(spec, zone)
    fields = [f for f in _GO_SPACE.split(spec) if f]
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {go_list(fields)}")
    minute, hour, dom, month, dow = fields
    return SpecSchedule(
        _field("0", _SECONDS),
        _field(minute, _MINUTES),
        _field(hour, _HOURS),
        _field(dom, _DOM),
        _field(month, _MONTHS),
        _field(dow, _DOW),
        zone,
    )
