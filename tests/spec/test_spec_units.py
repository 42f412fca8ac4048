from __future__ import annotations

import math

import pytest

from akoflow.port.units import UnitError, parse_cpu, parse_duration, parse_memory

Mi = 1024**2
Gi = 1024**3


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1.0), (0.5, 0.5), ("500m", 0.5), ("2", 2.0), ("1.5", 1.5), ("250m", 0.25)],
)
def test_cpu(value: object, expected: float) -> None:
    assert parse_cpu(value) == expected


@pytest.mark.parametrize("value", ["abc", "0", 0, -1, "1.5x", True, math.nan, math.inf, "0m"])
def test_cpu_rejects(value: object) -> None:
    with pytest.raises(UnitError):
        parse_cpu(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("512Mi", 512 * Mi),
        ("4Gi", 4 * Gi),
        ("1024M", 1024 * 10**6),
        ("1G", 10**9),
        (1048576, 1048576),
        ("1.5Gi", int(1.5 * Gi)),
        ("100", 100),
        ("2KiB", 2048),
    ],
)
def test_memory(value: object, expected: int) -> None:
    assert parse_memory(value) == expected


@pytest.mark.parametrize("value", ["12XB", "Gi", "-1Gi", -5, "1e9", True, math.inf, math.nan])
def test_memory_rejects(value: object) -> None:
    with pytest.raises(UnitError):
        parse_memory(value)


def test_memory_message_names_value() -> None:
    with pytest.raises(UnitError, match=r"memory '12XB' is not a size"):
        parse_memory("12XB")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (90, 90.0),
        ("90s", 90.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("05:00", 300.0),
        ("01:30:00", 5400.0),
        ("1-00:00:01", 86401.0),
        ("1-12", 129600.0),
        ("0-02:00", 7200.0),
    ],
)
def test_duration(value: object, expected: float) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", ["soon", "0", 0, "1:2:3:4", "x-01:00:00", math.inf, False])
def test_duration_rejects(value: object) -> None:
    with pytest.raises(UnitError):
        parse_duration(value)
