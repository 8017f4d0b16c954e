"""The operator's log options (internal/logging): zap's level, stacktrace-level and time-encoding values
and error messages, what the lines look like with each, and the --log-file-path copy (its own encoder,
info level whatever the stdout level)."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from internal import logging as oplog
from internal.logging import LogOptions


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in root.handlers:
        if h not in handlers:
            h.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize(
    ("value", "level"),
    [("debug", logging.DEBUG), ("INFO", logging.INFO), ("error", logging.ERROR), ("1", 10), ("3", 8)],
)
def test_log_levels(value: str, level: int) -> None:
    assert oplog.parse_level(value) == level


@pytest.mark.parametrize("value", ["warn", "0", "-2", "verbose", ""])
def test_bad_log_levels(value: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f'invalid log level "{value}"')):
        oplog.parse_level(value)


def test_stacktrace_levels() -> None:
    assert oplog.parse_stacktrace_level("Info") == logging.INFO
    assert oplog.parse_stacktrace_level("error") == logging.ERROR
    assert oplog.parse_stacktrace_level("panic") == logging.CRITICAL
    with pytest.raises(ValueError, match=r'^invalid stacktrace level "debug"$'):
        oplog.parse_stacktrace_level("debug")


def test_time_encodings() -> None:
    for name in ("epoch", "millis", "nanos", "iso8601", "rfc3339", "rfc3339nano"):
        assert oplog.parse_time_encoding(name.upper()) == name
    assert oplog.parse_time_encoding("nano") == "nanos"  # what zap's own help text says
    with pytest.raises(ValueError, match=r'^invalid time-encoding value "unix"$'):
        oplog.parse_time_encoding("unix")


@pytest.mark.parametrize(
    ("encoding", "check"),
    [
        ("iso8601", lambda ts: re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ts)),
        ("rfc3339", lambda ts: re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ts)),
        ("rfc3339nano", lambda ts: re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", ts)),
        ("epoch", lambda ts: isinstance(ts, float) and 1.6e9 < ts < 1e10),
        ("millis", lambda ts: isinstance(ts, float) and 1.6e12 < ts < 1e13),
        ("nanos", lambda ts: isinstance(ts, int) and 1.6e18 < ts < 1e19),
    ],
)
def test_each_time_encoding_shapes_the_timestamp(encoding: str, check: Any) -> None:
    out = io.StringIO()
    oplog.configure(LogOptions(time_encoding=encoding), stream=out)
    logging.getLogger("kuberay.test").info("hello")
    [line] = json_lines(out.getvalue())
    assert check(line["ts"]), line["ts"]


def test_stack_traces_from_the_stacktrace_level() -> None:
    out = io.StringIO()
    oplog.configure(LogOptions(stacktrace_level=logging.ERROR), stream=out)
    log = logging.getLogger("kuberay.test")
    log.info("fine")
    log.error("broken")
    log.error("said it all", extra={"_nostack": True})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    fine, broken, said, failed = json_lines(out.getvalue())
    assert "stacktrace" not in fine
    assert "test_stack_traces_from_the_stacktrace_level" in broken["stacktrace"]
    assert "logging/__init__.py" not in broken["stacktrace"]  # the caller's frames, not logging's
    assert "stacktrace" not in said
    assert "stacktrace" not in failed and "RuntimeError: boom" in failed["error"]


def test_info_stacktrace_level() -> None:
    out = io.StringIO()
    oplog.configure(LogOptions(stacktrace_level=logging.INFO), stream=out)
    logging.getLogger("kuberay.test").info("traced")
    assert "stacktrace" in json_lines(out.getvalue())[0]


def test_console_encoder_is_zaps_layout() -> None:
    out = io.StringIO()
    oplog.configure(LogOptions(encoder="console", time_encoding="rfc3339"), stream=out)
    with oplog.log_context(controller="raycluster"):
        logging.getLogger("kuberay.test").warning("careful")
    ts, level, logger, msg, fields = out.getvalue().rstrip("\n").split("\t")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ts)
    assert (level, logger, msg, fields) == ("WARNING", "kuberay.test", "careful", "controller=raycluster")


def test_log_file_gets_info_and_above_with_its_own_encoder(tmp_path: Path) -> None:
    out, path = io.StringIO(), tmp_path / "operator.log"
    oplog.configure(
        LogOptions(encoder="console", level=logging.ERROR, file_path=str(path), file_encoder="json"), stream=out
    )
    log = logging.getLogger("kuberay.test")
    log.debug("too chatty")
    log.info("started")
    log.error("failed", extra={"_nostack": True})
    assert [(x["level"], x["msg"]) for x in json_lines(path.read_text())] == [("info", "started"), ("error", "failed")]
    assert "started" not in out.getvalue() and "\tERROR\tkuberay.test\tfailed" in out.getvalue()


def test_console_log_file(tmp_path: Path) -> None:
    path = tmp_path / "operator.log"
    oplog.configure(LogOptions(file_path=str(path), file_encoder="console"), stream=io.StringIO())
    logging.getLogger("kuberay.test").info("hello")
    assert "\tINFO\tkuberay.test\thello" in path.read_text()


def test_unopenable_log_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        oplog.configure(LogOptions(file_path=str(tmp_path / "no" / "such" / "dir.log")), stream=io.StringIO())


def test_debug_level_reaches_stdout_but_not_the_file(tmp_path: Path) -> None:
    out, path = io.StringIO(), tmp_path / "operator.log"
    oplog.configure(LogOptions(level=logging.DEBUG, file_path=str(path)), stream=out)
    logging.getLogger("kuberay.test").debug("details")
    assert "details" in out.getvalue() and "details" not in path.read_text()
