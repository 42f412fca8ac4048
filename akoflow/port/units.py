"""Unit parsing for cpu, memory and durations, in the forms AkôFlow and Kubernetes users write."""

from __future__ import annotations

import math
import re

_MEM_SUFFIX: dict[str, int] = {
    "": 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "P": 1000**5,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "Pi": 1024**5,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}
_MEM_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
_CPU_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(m?)\s*$")


MAX_MEMORY = 2**60  # 1 EiB: anything larger is a typo, and must still fit a SQLite integer
MAX_SECONDS = 100 * 365 * 86400  # a century


class UnitError(ValueError):
    """A value with a unit that cannot be parsed."""


def _bytes(value: object, n: float) -> int:
    if n > MAX_MEMORY or n != n:  # too big (an int beyond any float, inf) or NaN
        raise UnitError(f"memory {value!r} is larger than 1 EiB")
    if n < 0:
        raise UnitError(f"memory {value!r} is negative")
    return int(n)


def parse_memory(value: object) -> int:
    """`512Mi`, `4Gi`, `1024M`, `1G`, `1.5Gi`, plain bytes → bytes."""
    if isinstance(value, bool):
        raise UnitError(f"memory {value!r} is not a size")
    if isinstance(value, int):
        return _bytes(value, value)
    if isinstance(value, float):
        if math.isnan(value):
            raise UnitError(f"memory {value!r} is not a size")
        return _bytes(value, value)
    m = _MEM_RE.match(str(value))
    if not m or m.group(2) not in _MEM_SUFFIX:
        raise UnitError(
            f"memory {value!r} is not a size (use bytes or a suffix: Ki, Mi, Gi, Ti, K, M, G, T)"
        )
    return _bytes(value, float(m.group(1)) * _MEM_SUFFIX[m.group(2)])


def parse_cpu(value: object) -> float:
    """`1`, `0.5`, `"500m"` → cores as float."""
    if isinstance(value, bool):
        raise UnitError(f"cpu {value!r} is not a number of cores")
    if isinstance(value, (int, float)):
        cores = float(value)
    else:
        m = _CPU_RE.match(str(value))
        if not m:
            raise UnitError(f"cpu {value!r} is not a number of cores (e.g. 1, 0.5, 500m)")
        cores = float(m.group(1)) / (1000.0 if m.group(2) else 1.0)
    if not math.isfinite(cores):
        raise UnitError(f"cpu {value!r} is not a number of cores")
    if cores <= 0:
        raise UnitError(f"cpu {value!r} must be greater than zero")
    return cores


_DUR_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d|ms)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds from `90`, `90s`, `5m`, `2h`, `1d`, `MM:SS`, `HH:MM:SS` or `D-HH:MM:SS`."""
    if isinstance(value, bool):
        raise UnitError(f"time {value!r} is not a duration")
    secs: float
    if isinstance(value, (int, float)):
        if value != value:  # NaN
            raise UnitError(f"time {value!r} is not a duration")
        secs = value
    else:
        secs = _duration_text(value)
    if not secs < MAX_SECONDS:
        raise UnitError(f"time {value!r} is longer than a century")
    if secs <= 0:
        raise UnitError(f"time {value!r} must be greater than zero")
    return float(secs)


def _duration_text(value: object) -> float:
    text = str(value).strip()
    m = _DUR_RE.match(text)
    if m:
        mult = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}.get(m.group(2) or "s", 1)
        return float(m.group(1)) * mult
    days = 0
    rest = text
    has_days = "-" in text
    if has_days:
        d, _, rest = text.partition("-")
        if not d.isdigit():
            raise UnitError(f"time {value!r} is not a duration")
        days = int(d)
    parts = rest.split(":")
    if has_days and len(parts) == 1:  # Slurm's `days-hours`
        parts = [parts[0], "0", "0"]
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise UnitError(f"time {value!r} is not a duration (e.g. 90s, 30m, 2h, 01:30:00)")
    nums = [int(p) for p in parts]
    if len(nums) == 2:  # `MM:SS`, but `D-HH:MM` after a day count (as Slurm reads them)
        nums = [*nums, 0] if has_days else [0, *nums]
    return days * 86400 + nums[0] * 3600 + nums[1] * 60 + nums[2]


def format_bytes(n: float | None) -> str:
    """Human-readable size for tables."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}TiB"
