"""Event recording: an events.k8s.io/v1 recorder with series aggregation and a spam filter, and an
in-memory recorder for unit tests."""

from internal.events.recorder import (
    NORMAL,
    WARNING,
    EventRecorder,
    EventsClient,
    FakeRecorder,
    IsomorphicKey,
    RecordedEvent,
    Recorder,
    RecorderStats,
    SpamFilter,
    format_micro_time,
    object_reference,
    reporting_instance_for,
    truncate_utf8,
)

__all__ = [
    "NORMAL",
    "WARNING",
    "EventRecorder",
    "EventsClient",
    "FakeRecorder",
    "IsomorphicKey",
    "RecordedEvent",
    "Recorder",
    "RecorderStats",
    "SpamFilter",
    "format_micro_time",
    "object_reference",
    "reporting_instance_for",
    "truncate_utf8",
]
