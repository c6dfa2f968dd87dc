"""Rank indexes (docs/format.md, section 3): the one loader every reader
uses (restore, dedup, prefetch, verify, gc, du)."""

from __future__ import annotations

from ..errors import CorruptionError, FormatVersionError
from .checksums import chunk_hash
from .fsutil import read_regular
from .records import IndexLeaf
from .schema import check_index
from .sealed import unseal

INDEX_VERSION = 3
READABLE = (1, 2, 3)   # 3: tiled distributed leaves (docs/format.md, section 3.3)


def load_index(path: str, expected_checksum: str | None, where: str, *, purpose: str = "") -> dict:
    """Read, check and parse a rank index file (docs/format.md, section 3):
    its bytes must hash to the manifest's ``index_checksum``, its seal must
    hold and its format version must be known. Errors name ``where``."""
    try:
        raw = read_regular(path, where)
    except FileNotFoundError:
        raise CorruptionError(f"{where}: missing{purpose}") from None
    except NotADirectoryError:   # a file where a directory should be
        raise CorruptionError(f"{where}: {path} is not inside a directory") from None
    if expected_checksum is not None and chunk_hash(raw) != expected_checksum:
        raise CorruptionError(f"{where}: checksum differs from the manifest's")
    idx = unseal(raw, where)
    if idx.get("vlcc_index") not in READABLE:
        raise FormatVersionError(f"{where}: index version {idx.get('vlcc_index')!r}, "
                                 f"this vlcc reads {', '.join(map(str, READABLE))} (written by a newer vlcc?)")
    check_index(idx, where)
    try:
        idx["leaves"] = {n: IndexLeaf.from_json(e) for n, e in idx["leaves"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptionError(f"{where}: malformed index ({type(exc).__name__}: {exc})") from None
    return idx
