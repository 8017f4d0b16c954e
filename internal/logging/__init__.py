"""Structured logging: JSON or console lines carrying the controller, the object key, the reconcile id
and the active trace id, taken from context variables so every log call in a reconcile has them.

The options mirror controller-runtime's zap flags (``--zap-log-level``, ``--zap-stacktrace-level``,
``--zap-time-encoding``, ``--zap-encoder``, ``--zap-devel``) with their accepted values and error
messages, plus KubeRay's ``--log-file-path``/``--log-file-encoder``: a second, rotating copy of the log
at info level."""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import logging
import logging.handlers
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson
from opentelemetry import trace

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("kuberay_log_context", default={})  # noqa: B039

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

ENCODERS = ("json", "console")
#: zap's level names; an integer N > 0 is also accepted and means "more verbose than debug" (V(N-1)).
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "error": logging.ERROR}
STACKTRACE_LEVELS = {"info": logging.INFO, "error": logging.ERROR, "panic": logging.CRITICAL}
TIME_ENCODINGS = ("epoch", "millis", "nanos", "iso8601", "rfc3339", "rfc3339nano")
# zap's flag help advertises "nano" while its parser wants "nanos": take both.
_TIME_ALIASES = {"nano": "nanos"}
# lumberjack's settings in upstream's main.go: 500 MB per file, 10 backups.
FILE_MAX_BYTES = 500 * 1024 * 1024
FILE_BACKUPS = 10


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields to every log line emitted inside the block (and in tasks it starts). A value may be a
    dict (an object reference ``{name, namespace}``): JSON keeps it nested, console prints ``ns/name``."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


# ---- option parsing (the zap flags' accepted values and messages) ------------------------------------


def parse_level(value: str) -> int:
    """``--zap-log-level``: debug, info, error, or an integer verbosity > 0."""
    level = LEVELS.get(value.lower())
    if level is not None:
        return level
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n <= 0:
        raise ValueError(f'invalid log level "{value}"')
    return max(1, logging.DEBUG - (n - 1))


def parse_stacktrace_level(value: str) -> int:
    """``--zap-stacktrace-level``: info, error or panic."""
    level = STACKTRACE_LEVELS.get(value.lower())
    if level is None:
        raise ValueError(f'invalid stacktrace level "{value}"')
    return level


def parse_time_encoding(value: str) -> str:
    """``--zap-time-encoding``: one of TIME_ENCODINGS (case-insensitive)."""
    v = value.lower()
    v = _TIME_ALIASES.get(v, v)
    if v not in TIME_ENCODINGS:
        raise ValueError(f'invalid time-encoding value "{value}"')
    return v


def parse_encoder(value: str) -> str:
    v = value.lower()
    if v not in ENCODERS:
        raise ValueError(f'invalid encoder value "{value}"')
    return v


def _utc(created: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(created, datetime.UTC)


def _rfc3339nano(created: float) -> str:
    # Go trims trailing zeros of the fraction (and the dot when nothing is left).
    t = _utc(created)
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def _iso8601(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


_TIME_ENCODERS: dict[str, Callable[[float], Any]] = {
    "epoch": lambda t: t,
    "millis": lambda t: t * 1000.0,
    "nanos": lambda t: int(t * 1e9),
    "iso8601": lambda t: _iso8601(_utc(t)),
    "rfc3339": lambda t: _utc(t).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "rfc3339nano": _rfc3339nano,
}


# ---- formatting ----------------------------------------------------------------------------------------


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = dict(_context.get())
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        out["trace_id"] = format(span.trace_id, "032x")
        out["span_id"] = format(span.span_id, "016x")
    for k, v in record.__dict__.items():
        if k not in _RESERVED and not k.startswith("_"):
            out[k] = v
    return out


class _Formatter(logging.Formatter):
    def __init__(self, time_encoding: str = "iso8601") -> None:
        super().__init__()
        self.encode_time = _TIME_ENCODERS[time_encoding]


class JSONFormatter(_Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.encode_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            # An explicit "error" (the error's text, as zap's) keeps its key; the traceback is the stack.
            key = "stacktrace" if "error" in entry else "error"
            entry[key] = self.formatException(record.exc_info)
        if record.stack_info and "stacktrace" not in entry:
            entry["stacktrace"] = record.stack_info
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(_Formatter):
    """zap's console layout: time, level, logger and message, then the fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        head = f"{self.encode_time(record.created)}\t{record.levelname}\t{record.name}\t{record.getMessage()}"
        extra = " ".join(f"{k}={_console_value(v)}" for k, v in _fields(record).items())
        line = f"{head}\t{extra}" if extra else head
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


def _console_value(v: Any) -> Any:
    # klog.KRef's console form.
    if isinstance(v, dict) and set(v) == {"name", "namespace"}:
        return f"{v['namespace']}/{v['name']}" if v["namespace"] else v["name"]
    return v


class _StacktraceFilter(logging.Filter):
    """Attach the caller's stack to records at or above ``level`` (zap's stacktrace level), unless the
    record already carries an exception traceback or was logged with ``extra={"_nostack": True}`` (an
    error whose message says everything, such as a start-up check's)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        wanted = record.levelno >= self.level and not getattr(record, "_nostack", False)
        if wanted and not record.exc_info and not record.stack_info:
            frames = [f for f in traceback.extract_stack() if not _is_logging_frame(f.filename)]
            record.stack_info = "".join(traceback.format_list(frames)).rstrip("\n")
        return True


def _is_logging_frame(filename: str) -> bool:
    return filename in (logging.__file__, __file__)


# ---- set-up --------------------------------------------------------------------------------------------


_installed: list[logging.Handler] = []


@dataclass(frozen=True)
class LogOptions:
    """How the process logs. ``level``/``stacktrace_level`` are ``logging`` levels (see parse_*)."""

    encoder: str = "json"
    level: int = logging.INFO
    stacktrace_level: int = logging.ERROR
    time_encoding: str = "iso8601"
    file_path: str = ""
    file_encoder: str = "json"


def _formatter(encoder: str, time_encoding: str) -> logging.Formatter:
    return JSONFormatter(time_encoding) if encoder == "json" else TextFormatter(time_encoding)


def configure(
    fmt: str | LogOptions = "json", level: str = "info", stream: TextIO | None = None
) -> list[logging.Handler]:
    """Set up the root logger once, at process start (cmd/). ``fmt`` is an encoder name ("json", or
    "console"/"text") with ``level``, or a full LogOptions. Logs go to ``stream`` (stdout by default:
    stderr is kept for the one-line fatal errors) and, with ``file_path``, to a rotating file at info
    level. Raises OSError when the log file cannot be opened."""
    if isinstance(fmt, LogOptions):
        opts = fmt
    else:
        opts = LogOptions(encoder="console" if fmt in ("console", "text") else "json", level=parse_level(level))
    handlers: list[logging.Handler] = []
    out = logging.StreamHandler(stream or sys.stdout)
    out.setFormatter(_formatter(opts.encoder, opts.time_encoding))
    out.setLevel(opts.level)
    handlers.append(out)
    if opts.file_path:
        path = Path(opts.file_path)
        file = logging.handlers.RotatingFileHandler(
            path, maxBytes=FILE_MAX_BYTES, backupCount=FILE_BACKUPS, encoding="utf-8"
        )
        # Upstream's file core is fixed at info level and ISO 8601 times, whatever the zap flags say.
        file.setFormatter(_formatter(opts.file_encoder, "iso8601"))
        file.setLevel(logging.INFO)
        handlers.append(file)
    stack = _StacktraceFilter(opts.stacktrace_level)
    for h in handlers:
        h.addFilter(stack)
    root = logging.getLogger()
    for old in _installed:
        old.close()  # a previous configure's log file
    _installed[:] = handlers
    root.handlers[:] = handlers
    root.setLevel(min(h.level for h in handlers))
    # aiohttp's access log and kubernetes-asyncio's debug chatter are noise at info level.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handlers
