"""Kubernetes quantities ("256Mi", "0.5", "1e3"): the schema's pattern and their value."""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Context, Decimal, InvalidOperation

_NUMBER = r"([0-9]+(\.[0-9]*)?|\.[0-9]+)"
_SUFFIX = r"([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?"
# What the CRD accepts (RE2-compatible): an unsigned quantity whose exponent has at most two digits.
# The API server reads an exponent as an int64 and then an int32, so "1e99999999999999999999" is no
# quantity at all, and a huge exponent makes every later arithmetic on the value slow. CEL rules embed
# this pattern, so "." is spelled "[.]": a backslash would need escaping in a CEL string.
QUANTITY_PATTERN = r"^([0-9]+([.][0-9]*)?|[.][0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]{1,2})?$"
_QUANTITY = re.compile(QUANTITY_PATTERN)
# What the API may hand back (it keeps a sign).
_PARSED = re.compile(rf"^(?P<number>[+-]?{_NUMBER})(?P<suffix>{_SUFFIX[:-1]})?$")

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": "1e-9", "u": "1e-6", "m": "1e-3", "": "1", "k": "1e3", "M": "1e6", "G": "1e9", "T": "1e12"}
_DECIMAL |= {"P": "1e15", "E": "1e18"}


def parse_quantity(text: str) -> Decimal | None:
    """The value of a Kubernetes quantity string, or None when it is not one."""
    match = _PARSED.match(text.strip())
    if match is None:
        return None
    number, suffix = match.group("number"), match.group("suffix") or ""
    try:
        value = Decimal(number)
        if suffix in _BINARY:
            return value * _BINARY[suffix]
        if suffix in _DECIMAL:
            return value * Decimal(_DECIMAL[suffix])
        return value * (Decimal(10) ** int(suffix[1:]))
    except (InvalidOperation, ValueError):
        return None


_BINARY_EXPONENTS = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_EXPONENTS = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
# Exact for every value QUANTITY_PATTERN admits (at most 64 digits, exponents below 100).
_EXACT = Context(prec=400)
_NANO = Decimal("1e-9")
_MAX_INT64 = Decimal(2**63 - 1)


def quantity_value(text: str) -> Decimal:
    """The value the API server gives a quantity of QUANTITY_PATTERN (resource.ParseQuantity, which
    CEL's quantity() and the Pod API's requests-within-limits check use).

    Not the exact number: a non-zero value is rounded up to a whole nano, and a value with a binary
    suffix is capped at the largest int64, so "100Ei" is less than "10E" there, and here.
    """
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    number, suffix = match.group(1), match.group(3) or ""
    value = Decimal(number)
    if suffix in _BINARY_EXPONENTS:
        value = _EXACT.multiply(value, _EXACT.power(Decimal(2), _BINARY_EXPONENTS[suffix]))
    else:
        exponent = _DECIMAL_EXPONENTS[suffix] if suffix in _DECIMAL_EXPONENTS else int(suffix[1:])
        value = _EXACT.multiply(value, _EXACT.power(Decimal(10), exponent))
    value = value.quantize(_NANO, rounding=ROUND_CEILING, context=_EXACT)
    if suffix in _BINARY_EXPONENTS:
        value = min(value, _MAX_INT64)
    return value
