"""Kubernetes quantities ("256Mi", "0.5", "1e3"): the schema's pattern and their value."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_NUMBER = r"([0-9]+(\.[0-9]*)?|\.[0-9]+)"
_SUFFIX = r"([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?"
# What the CRD accepts (RE2-compatible): an unsigned quantity.
QUANTITY_PATTERN = rf"^{_NUMBER}{_SUFFIX}$"
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
