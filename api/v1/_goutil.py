"""Ports of the small Go library functions whose behaviour and messages the validators reproduce:
apimachinery name validation (``IsDNS1035Label``, ``IsDNS1123Label``, ``IsQualifiedName``,
``IsValidLabelValue``), ``version.ParseGeneric``, ``time.ParseDuration``, ``strconv.Atoi``,
``strconv.Quote`` and ``sigs.k8s.io/yaml`` unmarshalling of a YAML string into a map.

Lengths are counted in UTF-8 bytes, as Go's ``len`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = [
    "GoVersion",
    "atoi",
    "go_list",
    "go_quote",
    "is_dns1035_label",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_qualified_name",
    "is_valid_label_value",
    "parse_duration",
    "parse_generic_version",
    "unmarshal_yaml_map",
]


def byte_len(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def go_list(items: list[str]) -> str:
    """``fmt.Sprintf("%v", []string{...})``."""
    return "[" + " ".join(items) + "]"


_QUOTE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(value: str) -> str:
    """``strconv.Quote`` (``%q``): a double-quoted Go string literal."""
    out = ['"']
    for ch in value:
        esc = _QUOTE_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
            continue
        code = ord(ch)
        if ch.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


# ---- apimachinery validation ----------------------------------------------------------------------


def _max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    msg += " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            msg += " or "
        msg += f"'{example}', "
    return msg + f"regex used for validation is '{fmt}')"


_EMPTY_ERROR = "must be non-empty"

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_ERR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT, re.ASCII)
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_ERR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT, re.ASCII)
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_ERR = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character"
)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT, re.ASCII)
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_ERR = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)
_QUALIFIED_NAME_RE = re.compile(_QUALIFIED_NAME_FMT, re.ASCII)
_LABEL_VALUE_FMT = "(" + _QUALIFIED_NAME_FMT + ")?"
_LABEL_VALUE_ERR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT, re.ASCII)


def _full(pattern: re.Pattern[str], value: str) -> bool:
    # Go's ``^...$`` on the whole string; Python's ``$`` would also match before a final newline.
    return pattern.fullmatch(value) is not None


def is_dns1035_label(value: str) -> list[str]:
    """``validation.IsDNS1035Label``."""
    errs: list[str] = []
    if byte_len(value) > 63:
        errs.append(_max_len_error(63))
    if not _full(_DNS1035_LABEL_RE, value):
        errs.append(_regex_error(_DNS1035_LABEL_ERR, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_dns1123_label(value: str) -> list[str]:
    """``validation.IsDNS1123Label``."""
    errs: list[str] = []
    if byte_len(value) > 63:
        errs.append(_max_len_error(63))
    if not _full(_DNS1123_LABEL_RE, value):
        if _full(_DNS1123_SUBDOMAIN_RE, value):
            errs.append("must not contain dots")
        else:
            errs.append(_regex_error(_DNS1123_LABEL_ERR, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    """``validation.IsDNS1123Subdomain``."""
    errs: list[str] = []
    if byte_len(value) > 253:
        errs.append(_max_len_error(253))
    if not _full(_DNS1123_SUBDOMAIN_RE, value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """``validation.IsQualifiedName`` (a label key: optional DNS subdomain prefix and a name)."""
    errs: list[str] = []
    prefix, slash, suffix = value.partition("/")
    if not slash:
        name = value
    elif "/" in suffix:
        return [
            "a valid label key "
            + _regex_error(_QUALIFIED_NAME_ERR, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    else:
        name = suffix
        if not prefix:
            errs.append("prefix part " + _EMPTY_ERROR)
        else:
            errs.extend("prefix part " + msg for msg in is_dns1123_subdomain(prefix))
    if not name:
        errs.append("name part " + _EMPTY_ERROR)
    elif byte_len(name) > 63:
        errs.append("name part " + _max_len_error(63))
    if not _full(_QUALIFIED_NAME_RE, name):
        errs.append(
            "name part " + _regex_error(_QUALIFIED_NAME_ERR, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def is_valid_label_value(value: str) -> list[str]:
    """``validation.IsValidLabelValue``."""
    errs: list[str] = []
    if byte_len(value) > 63:
        errs.append(_max_len_error(63))
    if not _full(_LABEL_VALUE_RE, value):
        errs.append(_regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


# ---- k8s.io/apimachinery/pkg/util/version ---------------------------------------------------------

_VERSION_RE = re.compile(r"^\s*v?([0-9]+(?:\.[0-9]+)*)(.*)*$", re.ASCII | re.DOTALL)


class VersionError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class GoVersion:
    """A generic version (``version.ParseGeneric``): numeric components, anything after them ignored."""

    components: tuple[int, ...]

    def compare(self, other: GoVersion) -> int:
        mine, theirs = self.components, other.components
        for a, b in zip(mine, theirs, strict=False):
            if a != b:
                return 1 if a > b else -1
        if len(theirs) < len(mine) and any(mine[len(theirs) :]):
            return 1
        if len(theirs) > len(mine) and any(theirs[len(mine) :]):
            return -1
        return 0

    def less_than(self, other: GoVersion) -> bool:
        return self.compare(other) < 0


_UINT64_MAX = (1 << 64) - 1


def parse_generic_version(value: str) -> GoVersion:
    """``version.ParseGeneric``; raises :class:`VersionError` with Go's message."""
    match = _VERSION_RE.match(value)
    if match is None:
        raise VersionError(f"could not parse {go_quote(value)} as version")
    components = match.group(1).split(".")
    if len(components) < 2:
        raise VersionError(f"illegal version string {go_quote(value)}")
    numbers: list[int] = []
    for i, comp in enumerate(components):
        if i == 0 and comp.startswith("0") and comp != "0":
            raise VersionError(f"illegal zero-prefixed version component {go_quote(comp)} in {go_quote(value)}")
        num = int(comp)
        if num > _UINT64_MAX:
            raise VersionError(
                f"illegal non-numeric version component {go_quote(comp)} in {go_quote(value)}: "
                f"strconv.ParseUint: parsing {go_quote(comp)}: value out of range"
            )
        numbers.append(num)
    return GoVersion(tuple(numbers))


# ---- time.ParseDuration / strconv.Atoi ------------------------------------------------------------

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_DURATION = (1 << 63) - 1


class DurationError(ValueError):
    pass


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def parse_duration(value: str) -> int:
    """``time.ParseDuration``: the duration in nanoseconds; raises :class:`DurationError`."""
    orig = value
    s = value
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise DurationError(f"time: invalid duration {go_quote(orig)}")
    total = 0
    while s:
        if not (s[0] == "." or _is_digit(s[0])):
            raise DurationError(f"time: invalid duration {go_quote(orig)}")
        i = 0
        while i < len(s) and _is_digit(s[i]):
            i += 1
        pre = i > 0
        whole = int(s[:i]) if pre else 0
        if whole > (1 << 63):
            raise DurationError(f"time: invalid duration {go_quote(orig)}")
        s = s[i:]
        frac, scale, post = 0, 1, False
        if s and s[0] == ".":
            s = s[1:]
            j = 0
            while j < len(s) and _is_digit(s[j]):
                j += 1
            post = j > 0
            digits = s[:j][:18]
            frac = int(digits) if digits else 0
            scale = 10 ** len(digits)
            s = s[j:]
        if not pre and not post:
            raise DurationError(f"time: invalid duration {go_quote(orig)}")
        k = 0
        while k < len(s) and not (s[k] == "." or _is_digit(s[k])):
            k += 1
        if k == 0:
            raise DurationError(f"time: missing unit in duration {go_quote(orig)}")
        unit_name, s = s[:k], s[k:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise DurationError(f"time: unknown unit {go_quote(unit_name)} in duration {go_quote(orig)}")
        if whole > (1 << 63) // unit:
            raise DurationError(f"time: invalid duration {go_quote(orig)}")
        amount = whole * unit
        if frac:
            amount += int(frac * (unit / scale))
            if amount > (1 << 63):
                raise DurationError(f"time: invalid duration {go_quote(orig)}")
        total += amount
        if total > (1 << 63):
            raise DurationError(f"time: invalid duration {go_quote(orig)}")
    if neg:
        return -total
    if total > _MAX_DURATION:
        raise DurationError(f"time: invalid duration {go_quote(orig)}")
    return total


_ATOI_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)


def atoi(value: str) -> int:
    """``strconv.Atoi`` on a 64-bit platform; raises ValueError."""
    if not _ATOI_RE.fullmatch(value):
        raise ValueError(f"strconv.Atoi: parsing {go_quote(value)}: invalid syntax")
    number = int(value)
    if not -(1 << 63) <= number <= _MAX_DURATION:
        raise ValueError(f"strconv.Atoi: parsing {go_quote(value)}: value out of range")
    return number


# ---- sigs.k8s.io/yaml ------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys, as go-yaml does."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f'mapping key "{key}" already defined',
                    key_node.start_mark,
                )
    return loader.construct_mapping(node, deep=deep)  # type: ignore[arg-type]


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_JSON_KINDS = {str: "string", bool: "bool", int: "number", float: "number", list: "array"}


class YAMLMapError(ValueError):
    pass


def unmarshal_yaml_map(text: str) -> dict[str, Any] | None:
    """Unmarshal YAML into a ``map[string]interface{}`` like ``sigs.k8s.io/yaml``.

    Empty documents and ``null`` give ``None``; anything but a mapping raises :class:`YAMLMapError`.
    """
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as err:
        raise YAMLMapError(f"error converting YAML to JSON: yaml: {_yaml_problem(err)}") from None
    except Exception as err:  # malformed scalars (bad dates ...), recursion limits
        raise YAMLMapError(f"error converting YAML to JSON: yaml: {err}") from None
    if data is None or isinstance(data, dict):
        return data
    kind = "object"
    for py_type, name in _JSON_KINDS.items():
        if isinstance(data, py_type):
            kind = name
            break
    raise YAMLMapError(
        "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal "
        f"{kind} into Go value of type types.RuntimeEnvType"
    )


def _yaml_problem(err: yaml.YAMLError) -> str:
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        if mark is not None:
            return f"line {mark.line + 1}: {problem}"
        return problem
    return str(err)
