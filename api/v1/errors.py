"""The one exception type of the ray.io/v1 API package."""

from __future__ import annotations

from typing import Any


class ValidationError(Exception):
    """An object is invalid. ``message`` (also ``str(err)``) is upstream's message text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def json_type_name(value: Any) -> str:
    """The OpenAPI type name of a decoded JSON value, as the API server reports it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class FieldTypeError(ValidationError):
    """A field holds a JSON value of the wrong type (what a Go client would fail to decode).

    The message follows the API server's OpenAPI wording, e.g.
    ``spec.backoffLimit: Invalid value: "string": spec.backoffLimit in body must be of type integer: "string"``.
    """

    def __init__(self, path: str, expected: str, value: Any) -> None:
        actual = json_type_name(value)
        where = path or "<root>"
        super().__init__(f'{where}: Invalid value: "{actual}": {where} in body must be of type {expected}: "{actual}"')
        self.path = path
        self.expected = expected
        self.value = value


class FieldRangeError(ValidationError):
    """An integer field is outside the range of its Go type (int32/int64)."""

    def __init__(self, path: str, value: int, bits: int) -> None:
        where = path or "<root>"
        super().__init__(f"{where}: Invalid value: {value}: {where} in body must fit in int{bits}")
        self.path = path
        self.value = value
