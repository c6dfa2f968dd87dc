"""Damage stored bytes on purpose (integrity and all-or-nothing tests)."""

from __future__ import annotations

import glob
import os


def flip(path: str, pos: int) -> None:
    """Invert byte ``pos`` of file ``path`` (twice restores it)."""
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0xFF]))


def locate(vdir: str, rank: int, payload: bytes) -> tuple[str, int]:
    """The BP5 data file (data.*) of ``rank`` holding ``payload``, and its offset."""
    hits = []
    for path in sorted(glob.glob(os.path.join(vdir, f"r{rank}.bp", "data.*"))):
        with open(path, "rb") as f:
            at = f.read().find(payload)
        if at >= 0:
            hits.append((path, at))
    assert len(hits) == 1, f"payload found {len(hits)} times under {vdir}/r{rank}.bp"
    return hits[0]
