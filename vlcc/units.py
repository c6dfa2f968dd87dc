"""Byte counts as people write and read them: ``parse_bytes("512MiB")`` for
settings and options, ``human_bytes(n)`` and ``byte_unit(n)`` for messages,
the CLI, progress bars and plots. One table of units."""

from __future__ import annotations

import re

from .errors import ArgumentError

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 10**6,
          "mib": 1 << 20, "g": 1 << 30, "gb": 10**9, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40}
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def parse_bytes(value, what: str) -> int:
    """``1073741824``, ``"512MiB"``, ``"2G"`` → bytes."""
    if isinstance(value, (int, float)):
        n = int(value)
    else:
        m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(value))
        if not m or m.group(2).lower() not in _UNITS:
            raise ArgumentError(f"{what}: cannot parse size {value!r} (use e.g. 512MiB, 2GiB, 1000000)")
        n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n <= 0:
        raise ArgumentError(f"{what} must be positive, got {value!r}")
    return n


def byte_unit(n: float) -> tuple[str, int]:
    """The binary unit to show ``n`` bytes in, and its size: (``"MiB"``, 2**20)."""
    k = 0
    while k < len(_BINARY) - 1 and abs(n) >= 1024 ** (k + 1):
        k += 1
    return _BINARY[k], 1024 ** k


def human_bytes(n: float) -> str:
    """``512 B``, ``1.5 MiB``."""
    unit, scale = byte_unit(n)
    return f"{n:.0f} B" if scale == 1 else f"{n / scale:.1f} {unit}"
