"""Kubernetes resource quantities (apimachinery ``resource.Quantity``), as far as the builders need them.

Parsing follows ``ParseQuantity`` exactly: the grammar (sign, leading zeros, ``1.G`` is allowed,
``K`` is not a suffix, ``e<n>``/``E<n>`` exponents), the suffix tables, the fast ``int64Amount`` path
and the slow ``inf.Dec`` path with its round-up to nano precision, the BinarySI cap at 2^63-1 and
the BinarySI -> DecimalSI switch for values below 1.

The value is kept exactly (a ``Fraction``), plus the (unscaled, exponent) pair Go stores, because
``AsApproximateFloat64`` multiplies exactly that pair by ``math.Pow10`` and the resulting float
leaks into ``rayStartParams['resources']`` (``"0.3"`` becomes ``0.30000000000000004`` upstream).

``value()`` is ``Quantity.Value()`` (rounded away from zero, so ``500m`` -> 1) and ``canonical()``
is ``Quantity.String()`` (``2048Mi`` -> ``2Gi``, ``0.5`` -> ``500m``, ``100000`` -> ``100k``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Final

__all__ = [
    "Quantity",
    "QuantityError",
    "QuantityFormat",
    "go_pow10",
    "parse_quantity",
    "try_parse_quantity",
]

_MAX_INT64: Final = (1 << 63) - 1
_MIN_INT64: Final = -(1 << 63)
#: ``maxInt64Factors``: digits an int64 can always hold.
_MAX_INT64_FACTORS: Final = 18
_NANO: Final = -9


class QuantityError(ValueError):
    """The string is not a valid Kubernetes quantity (``ErrFormatWrong``/``ErrSuffix``/``ErrNumeric``)."""


class QuantityFormat(StrEnum):
    DECIMAL_SI = "DecimalSI"
    BINARY_SI = "BinarySI"
    DECIMAL_EXPONENT = "DecimalExponent"


_DECIMAL_SUFFIXES: Final[dict[str, int]] = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SUFFIXES: Final[dict[str, int]] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_EXPONENT_TO_SUFFIX: Final[dict[int, str]] = {v: k for k, v in _DECIMAL_SUFFIXES.items()}
_BINARY_EXPONENT_TO_SUFFIX: Final[dict[int, str]] = {0: "", **{v: k for k, v in _BINARY_SUFFIXES.items()}}
_SUFFIX_CHARS: Final = "eEinumkKMGTP"

# math.Pow10 tables (Go builds the result from these, which matters only for |n| >= 32).
_POW10_TAB: Final = tuple(float(f"1e{i}") for i in range(32))
_POW10_POS_TAB32: Final = tuple(float(f"1e{32 * i}") for i in range(10))
_POW10_NEG_TAB32: Final = tuple(float(f"1e-{32 * i}") for i in range(11))


def go_pow10(n: int) -> float:
    """``math.Pow10``."""
    if 0 <= n <= 308:
        return _POW10_POS_TAB32[n // 32] * _POW10_TAB[n % 32]
    if -323 <= n <= 0:
        return _POW10_NEG_TAB32[(-n) // 32] / _POW10_TAB[(-n) % 32]
    if n > 0:
        return float("inf")
    return 0.0


def _go_int_to_float(n: int) -> float:
    try:
        return float(n)
    except OverflowError:
        return float("inf") if n > 0 else float("-inf")


def _pow10(n: int) -> int:
    """10**n for n >= 0 as an int (typeshed types ``int ** int`` as Any)."""
    result: int = 10**n
    return result


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


@dataclass(frozen=True)
class Quantity:
    """A parsed quantity: the exact value, its format, and Go's internal (unscaled, exponent) pair."""

    exact: Fraction
    format: QuantityFormat
    #: ``exact == unscaled * 10**exponent`` as Go stores it (int64Amount or inf.Dec).
    unscaled: int
    exponent: int
    #: True when Go keeps an ``inf.Dec`` (slow path) rather than an ``int64Amount``.
    is_dec: bool = False

    # -- predicates ---------------------------------------------------------------------------------

    def is_zero(self) -> bool:
        return self.exact == 0

    # -- conversions --------------------------------------------------------------------------------

    def value(self) -> int:
        """``Quantity.Value()``: the value at scale 0, rounded up (away from zero for int64Amount)."""
        return self.scaled_value(0)

    def milli_value(self) -> int:
        return self.scaled_value(-3)

    def scaled_value(self, scale: int) -> int:
        """``ScaledValue(scale)``, reproducing both Go code paths (including their negative rounding)."""
        if not self.is_dec:
            shift = self.exponent - scale
            if shift >= 0:
                return self.unscaled * _pow10(shift)
            # negativeScaleInt64: round away from zero.
            base = self.unscaled
            q, r = divmod(abs(base), _pow10(-shift))
            if r:
                q += 1
            return q if base >= 0 else -q
        # scaledValue(unscaled, scale=-exponent, newScale=-scale)
        dif = (-self.exponent) - (-scale)
        unscaled = self.unscaled
        if dif == 0:
            return unscaled
        if dif < 0:
            return unscaled * _pow10(-dif)
        divisor = _pow10(dif)
        if unscaled < _MAX_INT64 and dif < 19:
            # int64 division truncates toward zero, then +1 when there is a remainder.
            q = abs(unscaled) // divisor
            q = q if unscaled >= 0 else -q
            return q + 1 if unscaled - q * divisor != 0 else q
        q, r = divmod(unscaled, divisor)  # big.Int DivMod (Euclidean; divisor > 0)
        return q + 1 if r != 0 else q

    def as_approximate_float64(self) -> float:
        """``AsApproximateFloat64``: float(unscaled) * math.Pow10(exponent)."""
        base = _go_int_to_float(self.unscaled)
        if self.exponent == 0:
            return base
        return base * go_pow10(self.exponent)

    def canonical(self) -> str:
        """``Quantity.String()`` (``CanonicalizeBytes``)."""
        if self.exact == 0:
            return "0"
        fmt = self.format
        if fmt == QuantityFormat.BINARY_SI and (-1024 < self.exact < 1024 or self.exact.denominator != 1):
            fmt = QuantityFormat.DECIMAL_SI
        if fmt == QuantityFormat.BINARY_SI:
            amount = int(self.exact)
            exp = 0
            while amount % 1024 == 0:
                amount //= 1024
                exp += 10
            return f"{amount}{_BINARY_EXPONENT_TO_SUFFIX.get(exp, '')}"
        mantissa, exp = _to_decimal(self.exact)
        while mantissa % 10 == 0:
            mantissa //= 10
            exp += 1
        aligned = (exp // 3) * 3
        mantissa *= _pow10(exp - aligned)
        if fmt == QuantityFormat.DECIMAL_EXPONENT:
            suffix = "" if aligned == 0 else f"e{aligned}"
        else:
            suffix = _DECIMAL_EXPONENT_TO_SUFFIX.get(aligned, f"e{aligned}")
        return f"{mantissa}{suffix}"

    def __str__(self) -> str:
        return self.canonical()

    # -- arithmetic ---------------------------------------------------------------------------------

    def add(self, other: Quantity) -> Quantity:
        """``q.Add(y)``: the sum keeps q's format unless q is zero."""
        fmt = other.format if self.exact == 0 else self.format
        return from_fraction(self.exact + other.exact, fmt)

    def mul_int(self, n: int) -> Quantity:
        return from_fraction(self.exact * n, self.format)


def _to_decimal(value: Fraction) -> tuple[int, int]:
    """(m, e) with value == m * 10**e for a value whose denominator divides a power of ten."""
    exp = 0
    while value.denominator != 1:
        value *= 10
        exp -= 1
        if exp < -400:  # not a decimal fraction; cannot come out of parse_quantity
            raise QuantityError("not representable as a decimal quantity")
    return int(value), exp


def from_fraction(value: Fraction, fmt: QuantityFormat = QuantityFormat.DECIMAL_SI) -> Quantity:
    """A quantity with an exact decimal value (used for sums and products)."""
    mantissa, exp = _to_decimal(value)
    return Quantity(value, fmt, mantissa, exp, is_dec=not (_MIN_INT64 <= mantissa <= _MAX_INT64))


def from_int(n: int, fmt: QuantityFormat = QuantityFormat.DECIMAL_SI) -> Quantity:
    return Quantity(Fraction(n), fmt, n, 0, is_dec=not (_MIN_INT64 <= n <= _MAX_INT64))


ZERO: Final = Quantity(Fraction(0), QuantityFormat.DECIMAL_SI, 0, 0)


def _split(s: str) -> tuple[bool, str, str, str, str]:
    """``parseQuantityString``: (positive, value, num, denom, suffix)."""
    positive = True
    pos = 0
    end = len(s)
    if pos < end and s[0] in "+-":
        positive = s[0] != "-"
        pos += 1
    # strip leading zeros
    while True:
        if pos >= end:
            return positive, "0", "0", "", ""
        if s[pos] != "0":
            break
        pos += 1
    start = pos
    while pos < end and s[pos].isascii() and s[pos].isdigit():
        pos += 1
    num = s[start:pos]
    if pos >= end:
        return positive, s[:end], num, "", ""
    if not num:
        num = "0"
    denom = ""
    if s[pos] == ".":
        pos += 1
        dstart = pos
        while pos < end and s[pos].isascii() and s[pos].isdigit():
            pos += 1
        denom = s[dstart:pos]
        if pos >= end:
            return positive, s[:end], num, denom, ""
    value = s[:pos]
    suffix_start = pos
    while pos < end and s[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos >= end:
        return positive, value, num, denom, s[suffix_start:end]
    if s[pos] in "+-":
        pos += 1
    while pos < end:
        if not (s[pos].isascii() and s[pos].isdigit()):
            raise QuantityError(f"quantities must match the regular expression: {s!r}")
        pos += 1
    return positive, value, num, denom, s[suffix_start:end]


def _interpret(suffix: str) -> tuple[int, int, QuantityFormat]:
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], QuantityFormat.DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], QuantityFormat.BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        body = suffix[1:]
        digits = body[1:] if body[:1] in ("+", "-") else body
        if digits and digits.isascii() and digits.isdigit():
            parsed = int(body)
            if _MIN_INT64 <= parsed <= _MAX_INT64:
                # Go truncates the parsed int64 to int32.
                exponent = ((parsed + (1 << 31)) % (1 << 32)) - (1 << 31)
                return 10, exponent, QuantityFormat.DECIMAL_EXPONENT
    raise QuantityError(f"unable to parse quantity's suffix: {suffix!r}")


def parse_quantity(raw: str | int | float) -> Quantity:
    """``resource.ParseQuantity`` (ints and floats, as YAML may give them, are formatted first)."""
    if isinstance(raw, bool):
        raise QuantityError("a boolean is not a quantity")
    s = raw if isinstance(raw, str) else (str(raw) if isinstance(raw, int) else repr(raw))
    if not s:
        raise QuantityError("quantities must match the regular expression")
    if s == "0":
        return ZERO
    positive, value, num, denom, suffix = _split(s)
    base, exponent, fmt = _interpret(suffix)
    sign = 1 if positive else -1

    # ---- fast path (int64Amount)
    precision = -1
    scale = 0
    mantissa = 1
    if fmt in (QuantityFormat.DECIMAL_SI, QuantityFormat.DECIMAL_EXPONENT):
        scale = exponent
        precision = _MAX_INT64_FACTORS - (len(num) + len(denom))
    elif exponent >= 0 and not denom:
        mantissa = 1 << exponent
        precision = 15 - len(num) - int(exponent * 3 / 10) - 1
    if precision >= 0:
        scale -= len(denom)
        if scale >= _NANO:
            shifted = int(num + denom)
            result = shifted * mantissa
            if result <= _MAX_INT64:
                result *= sign
                return Quantity(Fraction(result) * Fraction(10) ** scale, fmt, result, scale)

    # ---- slow path (inf.Dec)
    magnitude = Fraction(int(num + denom), _pow10(len(denom))) if (num + denom) else Fraction(0)
    del value  # Go re-parses the same digits; the exact value is identical.
    magnitude *= Fraction(10) ** exponent if base == 10 else Fraction(2) ** exponent
    if magnitude != 0:
        unscaled = _ceil_div(magnitude.numerator * _pow10(9), magnitude.denominator)
        dec_exp = _NANO
    else:
        unscaled, dec_exp = 0, 0
    if fmt == QuantityFormat.BINARY_SI and Fraction(unscaled) * Fraction(10) ** dec_exp > _MAX_INT64:
        unscaled, dec_exp = _MAX_INT64, 0
    exact = Fraction(unscaled) * Fraction(10) ** dec_exp
    if fmt == QuantityFormat.BINARY_SI and 0 < exact < 1:
        fmt = QuantityFormat.DECIMAL_SI
    return Quantity(exact * sign, fmt, unscaled * sign, dec_exp, is_dec=True)


def try_parse_quantity(raw: object) -> Quantity | None:
    """The parsed quantity, or None when ``raw`` is missing or not a valid quantity."""
    if raw is None or not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
        return None
    try:
        return parse_quantity(raw)
    except QuantityError:
        return None
