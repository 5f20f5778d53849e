"""Kubernetes quantities: what the schema accepts and what they are worth."""

from __future__ import annotations

import pytest

from vmrole_operator.quantity import parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [("1Gi", 2**30), ("1024Mi", 2**30), ("500m", 0.5), ("0.5", 0.5), ("1e3", 1000), ("1k", 1000), ("2", 2)],
)
def test_parse_quantity(text: str, value: float) -> None:
    parsed = parse_quantity(text)
    assert parsed is not None
    assert float(parsed) == value


def test_parse_quantity_rejects_non_quantities() -> None:
    assert parse_quantity("lots") is None
    assert parse_quantity("1Gb") is None
